"""Reading TensorFlow Lite flatbuffers into plain records (``TFLiteGraph``), without TensorFlow.

Every read of the file happens in :func:`read_tflite`, so a truncated or corrupt file fails there with a
:class:`TruncatedModelError`, never with a raw exception. ``tflite.py`` turns the records into ONNX
(through ``tflite_ops.py``); the op writers import only these records, never the importer.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ..errors import (
    ModelLoadError,
    NotAModelError,
    TruncatedModelError,
    UnsupportedOperatorError,
)
from ..formatting import plural

# TensorType enum of the TFLite schema -> numpy dtype (None: a type this importer cannot hold)
_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 5: None, 6: np.bool_,
          7: np.int16, 8: None, 9: np.int8, 10: np.float64, 15: np.uint32, 16: np.uint16}
_TYPE_NAMES = {5: "string", 8: "complex64", 11: "resource", 12: "variant", 13: "complex128", 14: "uint64",
               17: "int4"}
QUANTIZED_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8))


@dataclass
class Quant:
    scale: np.ndarray  # float32, 1-D: one value (per tensor) or one per channel
    zero_point: np.ndarray  # int64, same length as scale
    axis: int  # TFLite quantized_dimension, meaningful when per channel

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


@dataclass
class Tensor:
    index: int
    name: str  # as in the file
    shape: tuple[int, ...]
    dtype: np.dtype
    quant: Quant | None
    data: np.ndarray | None  # constants only, already shaped

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def quantized(self) -> bool:
        return self.quant is not None and self.dtype in QUANTIZED_DTYPES


@dataclass
class Operator:
    index: int
    op: str  # builtin name, e.g. "CONV_2D"; custom ops: "CUSTOM:<code>"
    inputs: tuple[int, ...]  # tensor indices, -1 for an omitted optional input
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)


@dataclass
class TFLiteGraph:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    description: str
    version: int
    metadata: dict  # name -> bytes of the metadata buffers (TFLITE_METADATA, min_runtime_version, ...)


# --------------------------------------------------------------------------------------------------
# Reading the flatbuffer


def _builtin_names() -> dict[int, str]:
    from tflite.BuiltinOperator import BuiltinOperator

    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


# option readers: builtin op -> (options class name, {key: accessor})
_OPTIONS = {
    "CONV_2D": ("Conv2DOptions", ("Padding", "StrideW", "StrideH", "FusedActivationFunction",
                                  "DilationWFactor", "DilationHFactor")),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", ("Padding", "StrideW", "StrideH", "DepthMultiplier",
                                                     "FusedActivationFunction", "DilationWFactor",
                                                     "DilationHFactor")),
    "AVERAGE_POOL_2D": ("Pool2DOptions", ("Padding", "StrideW", "StrideH", "FilterWidth", "FilterHeight",
                                          "FusedActivationFunction")),
    "MAX_POOL_2D": ("Pool2DOptions", ("Padding", "StrideW", "StrideH", "FilterWidth", "FilterHeight",
                                      "FusedActivationFunction")),
    "FULLY_CONNECTED": ("FullyConnectedOptions", ("FusedActivationFunction", "WeightsFormat", "KeepNumDims")),
    "SOFTMAX": ("SoftmaxOptions", ("Beta",)),
    "CONCATENATION": ("ConcatenationOptions", ("Axis", "FusedActivationFunction")),
    "ADD": ("AddOptions", ("FusedActivationFunction",)),
    "SUB": ("SubOptions", ("FusedActivationFunction",)),
    "MUL": ("MulOptions", ("FusedActivationFunction",)),
    "DIV": ("DivOptions", ("FusedActivationFunction",)),
    "RESHAPE": ("ReshapeOptions", ("NewShapeAsNumpy",)),
    "SQUEEZE": ("SqueezeOptions", ("SqueezeDimsAsNumpy",)),
    "MEAN": ("ReducerOptions", ("KeepDims",)),
    "LEAKY_RELU": ("LeakyReluOptions", ("Alpha",)),
}


def read_tflite(data: bytes, name: str = "model") -> TFLiteGraph:
    """Parse a .tflite flatbuffer into plain records; a corrupt or truncated file raises
    :class:`TruncatedModelError` (nothing of the flatbuffer library escapes)."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise NotAModelError(f"{name} is not a TensorFlow Lite model (no TFL3 identifier).")
    try:
        graph = _read(data)
    except ModelLoadError:
        raise
    except Exception as exc:  # any failure reading offsets means the bytes are not a whole flatbuffer
        why = str(exc) if isinstance(exc, _CorruptError) else "an offset points outside the file"
        raise TruncatedModelError(
            f"{name} starts like a TensorFlow Lite model but its flatbuffer cannot be read ({len(data):,} bytes; "
            f"{why}): the file is truncated or corrupt. Download or convert it again."
        ) from exc
    _validate(graph, name, len(data))
    return graph


class _CorruptError(Exception):
    pass


def _count(n: int, limit: int) -> int:
    if not 0 <= n <= limit:
        raise _CorruptError(f"vector of {n} entries")
    return n


def _read(data: bytes) -> TFLiteGraph:
    import tflite

    size = len(data)
    buf = bytearray(data)
    model = tflite.Model.GetRootAs(buf, 0)
    n_sub = _count(model.SubgraphsLength(), size // 4)
    if n_sub < 1:
        raise _CorruptError("no subgraph")
    codes = _operator_codes(model, size)
    n_buffers = _count(model.BuffersLength(), size // 4)

    def buffer_bytes(b: int) -> bytes:
        if not 0 <= b < n_buffers:
            raise _CorruptError(f"buffer {b}")
        buffer = model.Buffers(b)
        off, length = int(buffer.Offset()), int(buffer.Size())
        if off > 1:  # large models keep buffers after the flatbuffer, addressed by file offset
            if off + length > size:
                raise _CorruptError("buffer beyond the end of the file")
            return bytes(data[off:off + length])
        n = _count(buffer.DataLength(), size)
        return buffer.DataAsNumpy().tobytes() if n else b""

    sg = model.Subgraphs(0)
    tensors = [_tensor(sg.Tensors(i), i, buffer_bytes) for i in range(_count(sg.TensorsLength(), size // 4))]
    ops: list[Operator] = []
    for i in range(_count(sg.OperatorsLength(), size // 4)):
        o = sg.Operators(i)
        idx = int(o.OpcodeIndex())
        if not 0 <= idx < len(codes):
            raise _CorruptError(f"opcode {idx}")
        kind = codes[idx]
        ins = tuple(int(x) for x in (o.InputsAsNumpy() if o.InputsLength() else ()))
        outs = tuple(int(x) for x in (o.OutputsAsNumpy() if o.OutputsLength() else ()))
        ops.append(Operator(i, kind, ins, outs, _options(o, kind)))
    inputs = [int(x) for x in (sg.InputsAsNumpy() if sg.InputsLength() else ())]
    outputs = [int(x) for x in (sg.OutputsAsNumpy() if sg.OutputsLength() else ())]
    metadata = {}
    for i in range(_count(model.MetadataLength(), size // 4)):
        md = model.Metadata(i)
        key = (md.Name() or b"").decode("utf-8", "replace")
        try:
            metadata[key] = buffer_bytes(int(md.Buffer()))
        except _CorruptError:
            continue  # metadata is optional: a bad entry does not make the model unreadable
    desc = (model.Description() or b"").decode("utf-8", "replace")
    return TFLiteGraph(tensors, ops, inputs, outputs, desc, int(model.Version()), metadata)


def _operator_codes(model, size: int) -> list[str]:
    """Each operator code's name: a builtin's ("CONV_2D"), or "CUSTOM:<name>"."""
    builtin = _builtin_names()
    codes = []
    for i in range(_count(model.OperatorCodesLength(), size // 4)):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        if code == 32:  # CUSTOM
            custom = oc.CustomCode()
            codes.append("CUSTOM:" + (custom.decode("utf-8", "replace") if custom else "?"))
        else:
            codes.append(builtin.get(code, f"BUILTIN_{code}"))
    return codes


def _tensor(t, i: int, buffer_bytes) -> Tensor:
    """One tensor record: name, shape, dtype, quantization and (for constants) its data, shaped."""
    tname = (t.Name() or b"").decode("utf-8", "replace")
    shape = tuple(int(d) for d in (t.ShapeAsNumpy() if t.ShapeLength() else ()))
    ttype = int(t.Type())
    if ttype not in _TYPES or _TYPES[ttype] is None:
        tn = _TYPE_NAMES.get(ttype, f"type {ttype}")
        raise UnsupportedOperatorError(f"TFLite tensor '{tname}' has element type {tn}, which the importer "
                                       "does not support.")
    dtype = np.dtype(_TYPES[ttype])
    if t.Sparsity() is not None:
        raise UnsupportedOperatorError(f"TFLite tensor '{tname}' is stored sparse; the importer supports "
                                       "dense tensors only.")
    quant = None
    q = t.Quantization()
    if q is not None and q.ScaleLength():
        scale = np.array(q.ScaleAsNumpy(), dtype=np.float32).reshape(-1)
        zp = np.array(q.ZeroPointAsNumpy(), dtype=np.int64).reshape(-1) if q.ZeroPointLength() else \
            np.zeros(scale.size, np.int64)
        if zp.size == 1 and scale.size > 1:
            zp = np.repeat(zp, scale.size)
        quant = Quant(scale, zp, int(q.QuantizedDimension()))
    raw = buffer_bytes(int(t.Buffer())) if t.Buffer() else b""
    arr = None
    if raw:
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count * dtype.itemsize != len(raw):
            raise _CorruptError(f"tensor '{tname}' holds {plural(len(raw), 'byte')} for shape {shape}")
        arr = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    return Tensor(i, tname, shape, dtype, quant, arr)


def _options(o, kind: str) -> dict:
    spec = _OPTIONS.get(kind)
    table = o.BuiltinOptions()
    if spec is None or table is None:
        return {}
    import tflite

    opts = getattr(tflite, spec[0])()
    opts.Init(table.Bytes, table.Pos)
    out = {}
    for acc in spec[1]:
        value = getattr(opts, acc)()
        key = acc.replace("AsNumpy", "")
        if isinstance(value, np.ndarray):
            value = [int(v) for v in value]
        elif acc.endswith("AsNumpy"):  # an absent vector reads as 0
            value = []
        out[key] = value
    return out


def _validate(g: TFLiteGraph, name: str, size: int) -> None:
    n = len(g.tensors)

    def bad(what: str) -> TruncatedModelError:
        return TruncatedModelError(
            f"{name} is a TensorFlow Lite model whose graph is inconsistent ({what}): the file is corrupt. "
            "Download or convert it again.")

    if not g.operators or not g.inputs or not g.outputs:
        raise bad("no operators, inputs or outputs")
    for t in list(g.inputs) + list(g.outputs):
        if not 0 <= t < n:
            raise bad(f"graph tensor {t} of {n}")
    for op in g.operators:
        for t in op.inputs:
            if not -1 <= t < n:
                raise bad(f"operator {op.index} reads tensor {t} of {n}")
        for t in op.outputs:
            if not 0 <= t < n:
                raise bad(f"operator {op.index} writes tensor {t} of {n}")
    for t in g.tensors:
        if any(d < 0 for d in t.shape) and t.is_const:
            raise bad(f"constant '{t.name}' has shape {t.shape}")
        if t.quant is not None and t.quant.zero_point.size != t.quant.scale.size:
            raise bad(f"tensor '{t.name}' has {t.quant.scale.size} scales and {t.quant.zero_point.size} zero points")
        if t.quant is not None and t.dtype.kind in "iu":
            _check_quant(t, bad)


_FLOAT_MAX = float(np.finfo(np.float32).max)


def _check_quant(t: Tensor, bad) -> None:
    """Quantization the TFLite runtime can use: scales above 0 and small enough that every value of the
    integer type is a finite float32 real value, zero points in the type's range, per-channel parameters along
    an axis of that many channels. Checked before any arithmetic: a flipped bit here otherwise turns into
    numpy overflow warnings, infinite weights or Python ints too large for int64 further on."""
    q, info = t.quant, np.iinfo(t.dtype)
    span = float(info.max) - float(info.min)
    # compared in float32, never cast: a signalling nan warns when cast, comparisons are false for any nan;
    # the limit one step below the quotient, so that rounding it cannot let span * scale overflow
    limit = np.nextafter(np.float32(_FLOAT_MAX / span), np.float32(0))
    wrong = ~((q.scale > 0) & (q.scale <= limit))
    if wrong.any():
        raise bad(f"tensor '{t.name}' has quantization scale {q.scale[wrong][0]}; a scale must be above 0 and "
                  f"at most {_FLOAT_MAX / span:.3g} for {t.dtype.name}")
    outside = (q.zero_point < info.min) | (q.zero_point > info.max)
    if outside.any():
        raise bad(f"tensor '{t.name}' has zero point {q.zero_point[outside][0]}, outside {t.dtype.name}'s range "
                  f"{info.min} to {info.max}")
    if q.per_channel and not (0 <= q.axis < len(t.shape) and t.shape[q.axis] == q.scale.size):
        raise bad(f"tensor '{t.name}' of shape {t.shape} has {q.scale.size} scales along axis {q.axis}")


# --------------------------------------------------------------------------------------------------
# Metadata: labels (TFLite Support metadata, files packed as a zip after the flatbuffer)


def _metadata_files(meta: bytes) -> tuple[list[tuple[str, int]], dict | None]:
    """(associated file name, type) pairs from the output tensors' metadata and the model's, and the input
    normalisation (mean/std) if the metadata has one. Schema: tflite-support metadata_schema.fbs."""
    import flatbuffers
    from flatbuffers import number_types as nt
    from flatbuffers.table import Table

    buf = bytearray(meta)
    root = Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))

    def slot(t, i):
        return t.Offset(4 + 2 * i)

    def string(t, i):
        o = slot(t, i)
        return t.String(o + t.Pos).decode("utf-8", "replace") if o else None

    def tables(t, i):
        o = slot(t, i)
        if not o:
            return []
        start = t.Vector(o)
        return [Table(t.Bytes, t.Indirect(start + 4 * k)) for k in range(_count(t.VectorLen(o), len(buf) // 4))]

    def files(t, i):
        out = []
        for f in tables(t, i):
            o = slot(f, 2)
            out.append((string(f, 0) or "", f.Get(nt.Int8Flags, o + f.Pos) if o else 0))
        return out

    def floats(t, i):
        o = slot(t, i)
        if not o:
            return []
        start = t.Vector(o)
        return [float(t.Get(nt.Float32Flags, start + 4 * k)) for k in range(_count(t.VectorLen(o), len(buf) // 4))]

    found = list(files(root, 6))
    norm = None
    for sg in tables(root, 3):  # subgraph_metadata
        for tm in tables(sg, 3):  # output_tensor_metadata
            found.extend(files(tm, 6))
        found.extend(files(sg, 4))
        for tm in tables(sg, 2)[:1]:  # input_tensor_metadata: process units
            for pu in tables(tm, 4):
                o = slot(pu, 0)
                if o and pu.Get(nt.Uint8Flags, o + pu.Pos) == 1:  # NormalizationOptions
                    opt_o = slot(pu, 1)
                    opt = Table(pu.Bytes, pu.Indirect(opt_o + pu.Pos))
                    norm = {"mean": floats(opt, 0), "std": floats(opt, 1)}
    return found, norm


_LABEL_TYPES = (2, 3)  # TENSOR_AXIS_LABELS, TENSOR_VALUE_LABELS


def embedded_metadata(data: bytes, g: TFLiteGraph, num_classes: int | None) -> tuple[list[str] | None, dict | None]:
    """Labels packed into the file (only when a labels file is embedded) and the metadata normalisation."""
    named: list[tuple[str, int]] = []
    norm = None
    if "TFLITE_METADATA" in g.metadata:
        try:
            named, norm = _metadata_files(g.metadata["TFLITE_METADATA"])
        except Exception:  # optional, best effort: a damaged metadata buffer only loses the labels
            named, norm = [], None
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None, norm
    wanted = [n for n, kind in named if kind in _LABEL_TYPES and n in members]
    if not named:  # no metadata to say which file holds labels: go by the name
        wanted = [n for n in members if "label" in n.lower() and n.lower().endswith(".txt")]
    for member in wanted:
        try:
            text = archive.read(member).decode("utf-8-sig")
        except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError, EOFError):
            continue
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines and (num_classes is None or len(lines) in (num_classes, num_classes - 1)):
            return lines, norm
    return None, norm
