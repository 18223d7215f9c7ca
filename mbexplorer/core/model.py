"""Loading models: format sniffing, ONNX parsing and validation, shape inference.

``load(path)`` is the one entry point. It decides what a file is from its bytes (never its extension),
parses ONNX, checks that onnxruntime could run it (opset, operators), resolves every tensor's shape at
batch 1 for the cost analysis, and returns a :class:`LoadedModel`. Other formats go to their importer
(``importers/``), which returns a LoadedModel of the ONNX it made: TFLite, Keras (.h5, .keras), TF.js layers
models (a folder with model.json, or the model.json itself) and PyTorch state dicts (.safetensors, .pth).
"""

from __future__ import annotations

import hashlib
import os
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper, shape_inference

from .errors import (
    ExternalDataError,
    InputShapeError,
    InvalidGraphError,
    ModelLoadError,
    NotAModelError,
    TruncatedModelError,
    UnknownOperatorError,
    UnsupportedFormatError,
    UnsupportedOpsetError,
)

# onnxruntime runs ONNX opsets 7 and newer; older files need the ONNX version converter first.
MIN_OPSET = 7


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints, or strings for symbolic dimensions
    dtype: str  # numpy dtype name, e.g. "float32", "uint8"
    layout: str | None = None  # "NCHW", "NHWC", or None when it is not an image tensor

    def describe(self) -> str:
        dims = "x".join(str(d) for d in self.shape)
        lay = f" {self.layout}" if self.layout else ""
        return f"{self.name}: {self.dtype} [{dims}]{lay}"


@dataclass
class LoadedModel:
    """A model the app can analyse and run. ``model`` is always a runnable ONNX ModelProto."""

    model: onnx.ModelProto
    name: str
    source_format: str  # "onnx", "builder"; later importers add their own
    source_path: Path | None
    sha256: str
    file_size: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: int
    producer: str
    shapes: dict[str, tuple[int, ...]] = field(repr=False, default_factory=dict)  # at batch 1
    dtypes: dict[str, str] = field(repr=False, default_factory=dict)
    preprocessing: object | None = None  # filled by importers / the preprocessing module
    labels: list[str] | None = None
    float_twin: "LoadedModel | None" = None  # quantized sources: the same graph with float weights

    @property
    def graph(self) -> onnx.GraphProto:
        return self.model.graph


# --------------------------------------------------------------------------------------------------
# Format sniffing


_IMAGE_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"BM": "a BMP image",
    b"GIF8": "a GIF image",
    b"RIFF": "a RIFF file (WebP image or audio)",
}


def sniff(path: Path, head: bytes) -> str:
    """Name the format of a file from its first bytes: 'onnx', 'tflite', 'hdf5', 'zip', 'safetensors',
    'json', 'image:<what>', 'text', 'empty' or 'unknown'."""
    if not head:
        return "empty"
    if head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:  # a pickle: legacy torch.save files
        return "pickle"
    for magic, what in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return "image:" + what
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 0 < n < 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"["):
        return "json"
    # ONNX is a protobuf ModelProto whose first field is ir_version (field 1, varint: tag 0x08),
    # as every exporter writes it; Netron sniffs the same way.
    if head[0] == 0x08 and len(head) > 1 and head[1] < 0x80:
        return "onnx"
    if _looks_like_text(head):
        return "text"
    return "unknown"


def _zip_kind(path: Path) -> str:
    """'torch' for torch.save archives (``<name>/data.pkl``), 'keras' for .keras files, else 'zip'."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return "zip"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "torch"
    if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
        return "keras"
    return "zip"


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(ch in string.printable or ord(ch) > 127 for ch in text)
    return printable / max(1, len(text)) > 0.95


# What opens, for messages that tell the user what to choose instead.
_OPENS = ("Open a model: ONNX (.onnx), TFLite (.tflite), Keras (.h5, .keras), a TF.js folder (model.json) "
          "or a PyTorch state dict (.safetensors, .pth)")


def _refuse(path: Path, kind: str) -> ModelLoadError:
    if kind == "empty":
        return NotAModelError(f"{path.name} is empty (0 bytes): it is not a model. Export or download it again.")
    if kind.startswith("image:"):
        return NotAModelError(
            f"{path.name} is {kind[6:]}, not a model. {_OPENS}; images are for classifying."
        )
    if kind == "text":
        return NotAModelError(f"{path.name} is a text file, not a model. {_OPENS}.")
    if kind == "zip":
        return UnsupportedFormatError(
            f"{path.name} is a zip archive but neither a Keras .keras file (config.json + model.weights.h5) nor a "
            "PyTorch checkpoint (data.pkl). Open the model inside it, or export it to ONNX."
        )
    return NotAModelError(f"{path.name} is not a model this app knows. {_OPENS}.")


# --------------------------------------------------------------------------------------------------
# Loading


def load(path: str | os.PathLike, input_shapes: Mapping[str, Sequence[int]] | None = None) -> LoadedModel:
    """Open a model file. ``input_shapes`` fixes inputs whose size is symbolic (beyond the batch)."""
    path = Path(path)
    if path.is_dir():
        if (path / "model.json").is_file():
            from .importers.keras import import_keras

            return import_keras(path)
        raise NotAModelError(f"{path} is a folder, not a model file. Choose the model file inside it.")
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    kind = sniff(path, data[:64])
    if kind == "tflite":
        from .importers.tflite import import_tflite

        return import_tflite(path, data)
    zip_kind = _zip_kind(path) if kind == "zip" else None
    if kind in ("safetensors", "pickle") or zip_kind == "torch":
        from .importers.torch_state import import_state_dict

        return import_state_dict(path)
    if kind in ("hdf5", "json") or zip_kind == "keras":
        from .importers.keras import import_keras

        return import_keras(path)
    if kind != "onnx":
        raise _refuse(path, kind)
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError as exc:
        raise TruncatedModelError(
            f"{path.name} starts like an ONNX model but cannot be parsed ({len(data):,} bytes): "
            "the file is truncated or corrupt. Export or download it again."
        ) from exc
    if not proto.HasField("graph") or not proto.graph.node:
        raise TruncatedModelError(
            f"{path.name} parses as ONNX but has no graph: the file is truncated or corrupt. Export it again."
        )
    _load_external_data(proto, path)
    return from_proto(
        proto,
        name=path.stem,
        source_format="onnx",
        source_path=path.resolve(),
        sha256=hashlib.sha256(data).hexdigest(),
        file_size=len(data),
        input_shapes=input_shapes,
    )


def _load_external_data(proto: onnx.ModelProto, path: Path) -> None:
    base = path.resolve().parent
    for tensor in external_data_helper._get_all_tensors(proto):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        target = (base / info.location).resolve()
        if base != target and base not in target.parents:
            raise ExternalDataError(
                f"{path.name} refers to weights outside its folder ({info.location}); "
                "only external data next to the model is loaded. Move the data file beside the model."
            )
        if not target.is_file():
            raise ExternalDataError(
                f"{path.name} keeps weights in {info.location}, which is missing. Put it beside the model."
            )
    try:
        external_data_helper.load_external_data_for_model(proto, str(base))
    except (OSError, ValueError) as exc:
        raise ExternalDataError(f"cannot read the external weights of {path.name}: {exc}") from exc


def from_proto(
    proto: onnx.ModelProto,
    *,
    name: str,
    source_format: str,
    source_path: Path | None = None,
    sha256: str | None = None,
    file_size: int | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> LoadedModel:
    """Validate an in-memory ONNX model and wrap it (builder and importers come through here)."""
    if sha256 is None or file_size is None:
        blob = proto.SerializeToString()
        sha256, file_size = hashlib.sha256(blob).hexdigest(), len(blob)
    opset = _check_opset(proto, name)
    _check_operators(proto, name)
    _sort_nodes(proto)
    _check_dangling(proto, name)
    _fix_input_shapes(proto, name, input_shapes or {})
    shapes, dtypes = _infer_shapes(proto, name)
    inits = {t.name for t in proto.graph.initializer}
    inputs = [_spec(vi) for vi in proto.graph.input if vi.name not in inits]
    outputs = [_spec(vi) for vi in proto.graph.output]
    producer = " ".join(x for x in (proto.producer_name, proto.producer_version) if x)
    return LoadedModel(
        model=proto,
        name=name,
        source_format=source_format,
        source_path=source_path,
        sha256=sha256,
        file_size=file_size,
        inputs=inputs,
        outputs=outputs,
        opset=opset,
        producer=producer,
        shapes=shapes,
        dtypes=dtypes,
        labels=_embedded_labels(proto),
    )


def _sort_nodes(proto: onnx.ModelProto) -> None:
    """ONNX requires nodes in topological order, and shape inference relies on it; some writers don't."""
    from .graph import toposort

    nodes = list(proto.graph.node)
    ordered = toposort(nodes)
    if any(a is not b for a, b in zip(nodes, ordered)):
        copies = [onnx.NodeProto() for _ in ordered]
        for c, n in zip(copies, ordered):
            c.CopyFrom(n)
        del proto.graph.node[:]
        proto.graph.node.extend(copies)


def _check_dangling(proto: onnx.ModelProto, name: str) -> None:
    """Every tensor a node reads must exist before it: onnxruntime refuses the graph otherwise, and the
    analysis would count a graph with holes. Runs after the sort, so "before" means topologically."""
    g = proto.graph
    known = {vi.name for vi in g.input} | {t.name for t in g.initializer}
    known |= {t.values.name for t in g.sparse_initializer}
    fix = "the file is incomplete or was edited by hand; export it again."
    for node in g.node:
        for t in node.input:
            if t and t not in known:  # "" marks an omitted optional input
                raise InvalidGraphError(
                    f"{name}: node '{node.name or node.op_type}' reads tensor '{t}', which is not a graph input, "
                    f"an initializer or the output of an earlier node: {fix}"
                )
        known.update(node.output)
    for vi in g.output:
        if vi.name not in known:
            raise InvalidGraphError(f"{name}: graph output '{vi.name}' is produced by no node: {fix}")


_LABEL_KEYS = ("labels", "classes", "class_names", "names")


def _embedded_labels(proto: onnx.ModelProto) -> list[str] | None:
    """Class names some exporters store in the model's metadata: a JSON list or mapping, or one per line."""
    import json

    for prop in proto.metadata_props:
        if prop.key.lower() not in _LABEL_KEYS:
            continue
        text = prop.value.strip()
        try:
            value = json.loads(text)
        except ValueError:
            value = [line.strip() for line in text.splitlines() if line.strip()]
        if isinstance(value, dict):  # {"0": "tench", ...} as Ultralytics and others write it
            try:
                value = [str(value[k]) for k in sorted(value, key=int)]
            except (TypeError, ValueError):
                continue
        if isinstance(value, list) and value and all(isinstance(v, (str, int, float)) for v in value):
            return [str(v) for v in value]
    return None


def _check_opset(proto: onnx.ModelProto, name: str) -> int:
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise UnsupportedOpsetError(f"{name} declares no ONNX opset; it is not a valid ONNX model. Export it again.")
    newest = onnx.defs.onnx_opset_version()
    if opset < MIN_OPSET or opset > newest:
        raise UnsupportedOpsetError(
            f"{name} uses ONNX opset {opset}; this app runs opsets {MIN_OPSET} to {newest}. "
            f"Convert it with onnx.version_converter.convert_version(model, 17) or re-export with another opset."
        )
    return opset


@lru_cache(maxsize=1)
def _runtime_ops() -> frozenset[tuple[str, str]]:
    """(domain, op_type) pairs that onnxruntime implements beyond the ONNX standard (contrib ops)."""
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_c

        return frozenset((s.domain, s.name) for s in ort_c.get_all_operator_schema())
    except Exception:  # an onnxruntime build without schema access: rely on ONNX alone
        return frozenset()


def _check_operators(proto: onnx.ModelProto, name: str) -> None:
    local = {(f.domain, f.name) for f in proto.functions}
    for node in proto.graph.node:
        domain = node.domain or ""
        if domain in ("", "ai.onnx", "ai.onnx.ml"):
            if onnx.defs.has(node.op_type, domain):
                continue
        elif (domain, node.op_type) in _runtime_ops() or (domain, node.op_type) in local:
            continue
        where = f" (domain '{domain}')" if domain else ""
        raise UnknownOperatorError(
            f"{name}: operator '{node.op_type}'{where} in node '{node.name or node.output[0]}' is unknown to "
            "ONNX and onnxruntime, so the model can neither run nor be analysed. Re-export it with standard ONNX ops."
        )


def _dims(vi: onnx.ValueInfoProto) -> list:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def _fix_input_shapes(proto: onnx.ModelProto, name: str, given: Mapping[str, Sequence[int]]) -> None:
    inits = {t.name for t in proto.graph.initializer}
    graph_inputs = {vi.name: vi for vi in proto.graph.input if vi.name not in inits}
    for key in given:
        if key not in graph_inputs:
            raise InputShapeError(f"{name} has no input '{key}'; its inputs are {', '.join(graph_inputs)}.")
    for vi in graph_inputs.values():
        if vi.name in given:
            shape = [int(d) for d in given[vi.name]]
            if any(d < 1 for d in shape):
                raise InputShapeError(
                    f"the shape given for input '{vi.name}' of {name} is {shape}; every size must be at least 1."
                )
            dims = vi.type.tensor_type.shape.dim
            if len(dims) and len(dims) != len(shape):
                raise InputShapeError(
                    f"input '{vi.name}' of {name} has {len(dims)} dimensions, the given shape has {len(shape)}."
                )
            del dims[:]
            for d in shape:
                vi.type.tensor_type.shape.dim.add().dim_value = d
            continue
        t = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and not t.HasField("shape"):
            # No shape at all is unknown rank, not a scalar: every op downstream would cost 0.
            raise InputShapeError(
                f"input '{vi.name}' of {name} has no shape at all (unknown rank). Give one: "
                f"--input-shape {vi.name}=1,3,224,224 (your model's sizes) on the command line, "
                "or Model > Set input shape in the app."
            )
        dims = _dims(vi)
        fixed = [d for d in dims[1:] if not (isinstance(d, int) and d > 0)]
        if fixed:
            shown = ",".join(str(d) for d in dims)
            example = ",".join(["1"] + [str(d) if isinstance(d, int) and d > 0 else "224" for d in dims[1:]])
            raise InputShapeError(
                f"input '{vi.name}' of {name} has no fixed size ([{shown}]). Give one: "
                f"--input-shape {vi.name}={example} on the command line, or Model > Set input shape in the app."
            )


def _infer_shapes(proto: onnx.ModelProto, name: str) -> tuple[dict, dict]:
    """Shapes of every tensor at batch 1 (symbolic leading dims set to 1 in a copy) and their dtypes."""
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    for vi in probe.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if len(dims) and (not dims[0].HasField("dim_value") or dims[0].dim_value <= 0):
            dims[0].Clear()
            dims[0].dim_value = 1
    try:
        inferred = shape_inference.infer_shapes(probe, data_prop=True)
    except Exception as exc:  # onnx raises several types (InferenceError, ValidationError, RuntimeError)
        raise ModelLoadError(
            f"{name}: ONNX shape inference failed: {str(exc).splitlines()[0]}. The graph is inconsistent; export it again."
        ) from exc
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        elem = vi.type.tensor_type.elem_type
        if elem:
            dtypes[vi.name] = _np_dtype(elem)
        dims = _dims(vi)
        if vi.type.tensor_type.HasField("shape") and all(isinstance(d, int) and d >= 0 for d in dims):
            shapes[vi.name] = tuple(dims)
    for t in g.initializer:
        shapes[t.name] = tuple(t.dims)
        dtypes[t.name] = _np_dtype(t.data_type)
    for node in g.node:  # Constant nodes are initializers by another name
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]] = tuple(a.t.dims)
                    dtypes[node.output[0]] = _np_dtype(a.t.data_type)
    return shapes, dtypes


@lru_cache(maxsize=None)  # a handful of element types, asked once per tensor: 27k times for a 10k-node graph
def _np_dtype(elem_type: int) -> str:
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _spec(vi: onnx.ValueInfoProto) -> TensorSpec:
    dims = tuple(_dims(vi))
    dtype = _np_dtype(vi.type.tensor_type.elem_type) if vi.type.tensor_type.elem_type else "unknown"
    return TensorSpec(vi.name, dims, dtype, _layout(dims))


def _layout(dims: tuple) -> str | None:
    if len(dims) != 4:
        return None
    chan = (1, 3, 4)
    if dims[1] in chan and dims[3] not in chan:
        return "NCHW"
    if dims[3] in chan and dims[1] not in chan:
        return "NHWC"
    return None
