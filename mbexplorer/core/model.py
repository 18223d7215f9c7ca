"""The model record: :class:`LoadedModel`, and ``from_proto``, which validates an ONNX model and makes one.

Every way a model arrives (an ONNX file through ``loading.load``, an importer, the builder) ends in
``from_proto``: it checks that onnxruntime could run the graph (opset, operators, no dangling tensors),
sorts nodes topologically, resolves every tensor's shape at batch 1 for the cost analysis, and reads labels
embedded in the metadata. This module imports no importer: importers import it.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from .errors import (
    InputShapeError,
    InvalidGraphError,
    ModelLoadError,
    UnknownOperatorError,
    UnsupportedOpsetError,
)
from .formatting import plural

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
    float_twin: LoadedModel | None = None  # quantized sources: the same graph with float weights
    # what the source file itself says, when it is not ONNX (importers fill it): {"format", "inputs",
    # "outputs" (each: name, dtype, shape, layout, quantization {scale, zero_point} or None), "operators"}
    source: dict | None = None

    @property
    def graph(self) -> onnx.GraphProto:
        return self.model.graph


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
    _name_nodes(proto)
    _check_dangling(proto, name)
    _fix_input_shapes(proto, name, input_shapes or {})
    try:
        shapes, dtypes = _infer_shapes(proto, name)
    except ModelLoadError as exc:
        if not input_shapes or type(exc) is not ModelLoadError:  # a typed refusal is the file's, not the shape's
            raise
        # shape inference failed only once a shape was given: the given shape is what the graph cannot take
        raise InputShapeError(f"the input shape given does not fit {name}: {exc}") from exc
    if input_shapes:
        _check_given_shapes(proto, name, input_shapes, shapes)
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
    nodes = list(proto.graph.node)
    ordered = toposort(nodes)
    if any(a is not b for a, b in zip(nodes, ordered)):
        copies = [onnx.NodeProto() for _ in ordered]
        for c, n in zip(copies, ordered):
            c.CopyFrom(n)
        del proto.graph.node[:]
        proto.graph.node.extend(copies)


def _name_nodes(proto: onnx.ModelProto) -> None:
    """Give every node a unique name, written into the model: onnxruntime refuses two nodes of one name, and
    its profiling, the quantizer's node lists and the app's tables all refer to nodes by name. An unnamed
    node becomes ``{op_type}_{i}`` (``i`` its topological position); a repeated name gets ``_1``, ``_2``, …
    (not ``#1``: other tools take these names into identifiers and file names). A new name never takes one
    that a node already has."""
    nodes = proto.graph.node
    taken = {n.name for n in nodes if n.name}
    kept: set[str] = set()
    suffix: dict[str, int] = {}  # next suffix to try per base: many duplicates stay linear
    for i, node in enumerate(nodes):
        if node.name and node.name not in kept:
            kept.add(node.name)
            continue
        base = new = node.name or f"{node.op_type}_{i}"
        while new in taken:
            suffix[base] = suffix.get(base, 0) + 1
            new = f"{base}_{suffix[base]}"
        taken.add(new)
        node.name = new


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
    """Every node is well formed (an op type, an output, typed attributes: onnxruntime refuses the graph
    otherwise, and a damaged file gets this far) and its operator is one onnxruntime knows."""
    local = {(f.domain, f.name) for f in proto.functions}
    fix = "the file is corrupt or was edited by hand; export it again."
    for i, node in enumerate(proto.graph.node):
        which = f"node '{node.name or node.output[0]}'" if node.name or node.output else f"node {i}"
        if not node.op_type:
            raise InvalidGraphError(f"{name}: {which} has no operator type: {fix}")
        if not node.output:
            raise InvalidGraphError(f"{name}: {which} ({node.op_type}) has no output: {fix}")
        for a in node.attribute:
            if a.type == onnx.AttributeProto.UNDEFINED:  # its value cannot be read (it reads as None)
                raise InvalidGraphError(f"{name}: attribute '{a.name}' of {which} ({node.op_type}) has no type: {fix}")
        domain = node.domain or ""
        if domain in ("", "ai.onnx", "ai.onnx.ml"):
            if onnx.defs.has(node.op_type, domain):
                continue
        elif (domain, node.op_type) in _runtime_ops() or (domain, node.op_type) in local:
            continue
        where = f" (domain '{domain}')" if domain else ""
        raise UnknownOperatorError(
            f"{name}: operator '{node.op_type}'{where} in {which} is unknown to "
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
                    f"input '{vi.name}' of {name} has {plural(len(dims), 'dimension')}, the given shape {len(shape)}."
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


def _check_given_shapes(proto: onnx.ModelProto, name: str, given: Mapping[str, Sequence[int]],
                        shapes: Mapping[str, tuple]) -> None:
    """A shape given for an input must suit the layers it reaches. ONNX shape inference does not compare a
    convolution's (or Gemm's) input channels with its weights, so 4 channels into a 3-channel stem would pass
    here, give wrong costs, and fail only when run."""
    producer = {t: n for n in proto.graph.node for t in n.output}
    for node in proto.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2:
            continue
        x, w = shapes.get(node.input[0]), shapes.get(node.input[1])
        if not x or not w or len(x) < 2 or len(w) < 2:
            continue
        attrs = {a.name: a.i for a in node.attribute}
        if node.op_type == "Conv":
            got, want, what = x[1], w[1] * attrs.get("group", 1), "input channel"
        else:
            got, want, what = x[0 if attrs.get("transA") else 1], w[1 if attrs.get("transB") else 0], "input feature"
        if got == want:
            continue
        inp = _given_input_of(node.input[0], producer, given) or next(iter(given))
        dims = "x".join(str(d) for d in given[inp])
        hint = (f"keep its {plural(want, 'channel')}: the batch and the picture size may change"
                if node.op_type == "Conv" else "it needs another input size")
        raise InputShapeError(f"input '{inp}' of {name} cannot be {dims}: that gives {node.op_type} '{node.name}' "
                              f"{plural(got, what)} where its weights take {want}; {hint}.")


def _given_input_of(tensor: str, producer: Mapping[str, onnx.NodeProto], given: Mapping) -> str | None:
    """The given graph input that ``tensor`` is computed from (the first found walking back), or None."""
    seen, todo = set(), [tensor]
    while todo:
        t = todo.pop()
        if t in given:
            return t
        node = producer.get(t)
        if node is not None:
            todo.extend(i for i in node.input if i and i not in seen)
            seen.update(node.input)
    return None


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
            f"{name}: ONNX shape inference failed: {str(exc).splitlines()[0]}. "
            "The graph is inconsistent; export it again."
        ) from exc
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}

    def dtype(elem: int, tensor: str) -> str:
        if elem not in _ELEM_TYPES:  # the field holds any int; shape inference lets unused ones through
            raise InvalidGraphError(f"{name}: tensor '{tensor}' has element type {elem}, which ONNX does not "
                                    "define: the file is corrupt or was edited by hand; export it again.")
        return _np_dtype(elem)

    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        elem = vi.type.tensor_type.elem_type
        if elem:
            dtypes[vi.name] = dtype(elem, vi.name)
        dims = _dims(vi)
        if vi.type.tensor_type.HasField("shape") and all(isinstance(d, int) and d >= 0 for d in dims):
            shapes[vi.name] = tuple(dims)
    for t in g.initializer:
        shapes[t.name] = tuple(t.dims)
        dtypes[t.name] = dtype(t.data_type, t.name)
    for node in g.node:  # Constant nodes are initializers by another name
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]] = tuple(a.t.dims)
                    dtypes[node.output[0]] = dtype(a.t.data_type, node.output[0])
    return shapes, dtypes


_ELEM_TYPES = frozenset(onnx.TensorProto.DataType.values())


@cache  # a handful of element types, asked once per tensor: 27k times for a 10k-node graph
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


def toposort(nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """Kahn's algorithm, keeping the file's order wherever it is already valid."""
    produced = {t for n in nodes for t in n.output if t}
    waiting = defaultdict(list)
    need = []
    for idx, n in enumerate(nodes):
        deps = {t for t in n.input if t and t in produced}
        need.append(len(deps))
        for t in deps:
            waiting[t].append(idx)
    heap = [i for i, k in enumerate(need) if k == 0]
    heapq.heapify(heap)
    order = []
    done_tensors = set()
    while heap:
        i = heapq.heappop(heap)
        order.append(nodes[i])
        for t in nodes[i].output:
            if t and t not in done_tensors:
                done_tensors.add(t)
                for j in waiting.get(t, ()):
                    need[j] -= 1
                    if need[j] == 0:
                        heapq.heappush(heap, j)
    if len(order) != len(nodes):  # a cycle: ONNX forbids it; keep file order so nothing is lost
        return nodes
    return order
