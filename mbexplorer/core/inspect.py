"""What one node is, as Netron shows it, and what a quantized graph really holds. Qt-free.

* :class:`Storage`: where each activation tensor lives. In a QDQ model the float tensors around a
  Quantize/Dequantize pair are one value held as integers (what the TFLite file it came from stores, and
  what a runtime running QDQ as integer ops writes): a DequantizeLinear's output is its integer input, a
  tensor that is only quantized is the quantized tensor, and so is the output of an op whose only reader is a
  fused activation (Relu, Clip) that is only quantized. Peak memory and the quantization columns use it.
* :func:`node_facts`: a node's attributes, inputs and outputs (shape, dtype, quantization), weight statistics
  and costs, for the inspector. :func:`find_nodes`: names containing a text, in execution order.
* :func:`source_io`: the inputs and outputs as the source file defines them (a TFLite file's own names,
  dtypes and quantization), or the ONNX graph's own for ONNX sources.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from .graph import GraphIndex
from .model import LoadedModel

Q, DQ = "QuantizeLinear", "DequantizeLinear"
QDQ_OPS = {Q, DQ, "DynamicQuantizeLinear"}  # folded away by default in the table and the graph
_FUSED_ACTS = {"Relu", "Clip"}  # activations a quantized conv writes in the same pass (TFLite fuses them)


class Storage:
    """``of[t]``: the tensor that really holds activation ``t`` (itself unless Q/DQ folding applies)."""

    def __init__(self, gi: GraphIndex):
        self.gi = gi
        self.of: dict[str, str] = {}
        outputs = set(gi.graph_outputs)

        def quantized_to(t: str, depth: int = 0) -> str | None:
            cons = gi.consumers.get(t, [])
            if not cons or t in outputs:
                return None
            if all(gi.nodes[c].op_type == Q for c in cons):
                return gi.nodes[cons[0]].output[0]
            if depth == 0 and len(cons) == 1 and gi.nodes[cons[0]].op_type in _FUSED_ACTS:
                return quantized_to(gi.nodes[cons[0]].output[0], 1)
            return None

        for i in gi.activation_nodes:
            node = gi.nodes[i]
            for t in node.output:
                if not t:
                    continue
                if node.op_type == DQ and node.input[0] not in gi.constants:
                    self.of[t] = self.resolve(node.input[0])
                elif (q := quantized_to(t)) is not None:
                    self.of[t] = q

    def resolve(self, t: str) -> str:
        return self.of.get(t, t)

    def nbytes(self, t: str) -> int:
        return self.gi.nbytes(self.resolve(t))


def live_bytes(gi: GraphIndex, storage: Storage | None = None) -> dict[int, int]:
    """Bytes of activations alive while each node runs (node index -> bytes), in execution order: a tensor
    lives from its producer to its last reader, graph inputs from the start, graph outputs to the end;
    constants are not activations. Tensors folded into one storage count once, at its dtype."""
    storage = storage or Storage(gi)
    steps = gi.activation_nodes
    first: dict[str, int] = {}
    last: dict[str, int] = {}

    def touch(t: str, k: int) -> None:
        s = storage.resolve(t)
        first[s] = min(first.get(s, k), k)
        last[s] = max(last.get(s, k), k)

    for t in gi.graph_inputs:
        touch(t, 0)
    for k, i in enumerate(steps):
        node = gi.nodes[i]
        for t in list(node.input) + list(node.output):
            if t and t not in gi.constants:
                touch(t, k)
    end = max(len(steps) - 1, 0)
    for t in gi.graph_outputs:
        if t not in gi.constants:
            touch(t, end)
    delta = [0] * (len(steps) + 1)
    for s, k0 in first.items():
        b = storage.nbytes(s)
        delta[k0] += b
        delta[last[s] + 1] -= b
    out, live = {}, 0
    for k, i in enumerate(steps):
        live += delta[k]
        out[i] = live
    return out


# quantization -------------------------------------------------------------------------------------
def const_array(gi: GraphIndex, t: str) -> np.ndarray | None:
    """The value of a constant tensor held in an initializer or a Constant node (as stored, not dequantized)."""
    src = gi.weight_source(t) if t else None
    if src is None:
        return None
    try:
        return numpy_helper.to_array(src)
    except Exception:  # an element type numpy cannot hold: no statistics, nothing worse
        return None


def _params(gi: GraphIndex, i: int) -> dict | None:
    """Scale, zero point and axis of a Q or DQ node."""
    node = gi.nodes[i]
    scale = const_array(gi, node.input[1]) if len(node.input) > 1 else None
    if scale is None:
        return None
    zp = const_array(gi, node.input[2]) if len(node.input) > 2 and node.input[2] else None
    scale = scale.astype(np.float64).reshape(-1)
    zp = np.zeros(scale.size, np.int64) if zp is None else zp.astype(np.int64).reshape(-1)
    return {"scale": scale, "zero_point": zp, "axis": int(gi.attr(i, "axis", 1))}


def tensor_quant(gi: GraphIndex, t: str) -> dict | None:
    """Quantization of an integer tensor, from the QuantizeLinear that writes it or a DequantizeLinear that
    reads it; None for a tensor nobody quantizes."""
    i = gi.producer.get(t)
    cands = ([i] if i is not None and gi.nodes[i].op_type == Q else [])
    cands += [c for c in gi.consumers.get(t, []) if gi.nodes[c].op_type == DQ and gi.nodes[c].input[0] == t]
    for j in cands:
        if (p := _params(gi, j)) is not None:
            return p
    return None


def quant_record(p: dict | None) -> dict | None:
    """JSON-ready: per tensor ``{"scale": float, "zero_point": int}``; per channel lists and their axis."""
    if p is None:
        return None
    if p["scale"].size == 1:
        return {"scale": float(p["scale"][0]), "zero_point": int(p["zero_point"][0])}
    return {"scale": [float(s) for s in p["scale"]], "zero_point": [int(z) for z in p["zero_point"]],
            "axis": p.get("axis")}


def quant_text(p: dict | None) -> tuple[str, str]:
    """(scale, zero point) as the table shows them; per channel: "per-channel (N)"."""
    if p is None:
        return "", ""
    n = p["scale"].size
    if n > 1:
        return f"per-channel ({n})", f"per-channel ({n})"
    return f"{p['scale'][0]:.6g}", str(int(p["zero_point"][0]))


def node_output_quant(gi: GraphIndex, storage: Storage, i: int) -> tuple[str, dict | None]:
    """(dtype, quantization) of what node ``i`` writes: for a Q or DQ node its own output and parameters,
    for any other node the tensor that really holds its first output."""
    node = gi.nodes[i]
    out = node.output[0] if node.output else ""
    if node.op_type in (Q, DQ):
        return gi.dtype(out) or "", _params(gi, i)
    s = storage.resolve(out)
    return gi.dtype(s) or "", tensor_quant(gi, s)


# the inspector ------------------------------------------------------------------------------------
def find_nodes(analysis, text: str, limit: int = 500) -> list[str]:
    """Node names containing ``text`` (case-insensitive), in execution order."""
    needle = text.strip().lower()
    if not needle:
        return []
    return [n for n in analysis.index.names if needle in n.lower()][:limit]


def _attr_text(a: onnx.AttributeProto) -> str:
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, onnx.TensorProto):
        arr = numpy_helper.to_array(v)
        return f"tensor {arr.dtype} {list(arr.shape)}" + (f" = {arr.reshape(-1)[:8].tolist()}" if arr.size else "")
    if isinstance(v, onnx.GraphProto):
        return f"graph '{v.name}' ({len(v.node)} nodes)"
    if isinstance(v, list):
        return "[" + ", ".join(x.decode() if isinstance(x, bytes) else str(x) for x in v) + "]"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _stats(a: np.ndarray) -> dict:
    a = a.astype(np.float64)
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()), "std": float(a.std())}


def weight_facts(gi: GraphIndex, t: str) -> dict | None:
    """Shape, dtype and statistics of the constant behind ``t``; for a quantized weight (an integer
    initializer behind a DequantizeLinear) its scale and zero point and the statistics of its real values."""
    arr = const_array(gi, t)
    if arr is None:
        return None
    src = gi.weight_source(t)
    out = {"name": src.name or t, "shape": list(arr.shape), "dtype": arr.dtype.name, "size": int(arr.size),
           "stats": _stats(arr) if arr.size and arr.dtype.kind in "biuf" else None, "quantization": None,
           "real_stats": None}
    i = gi.producer.get(t)
    if i is not None and gi.nodes[i].op_type == DQ and (p := _params(gi, i)) is not None and arr.size:
        out["quantization"] = p
        shape = [1] * arr.ndim
        if p["scale"].size > 1 and arr.ndim:
            shape[p["axis"] % arr.ndim] = -1
        real = (arr.astype(np.float64) - p["zero_point"].reshape(shape or [-1])) * p["scale"].reshape(shape or [-1])
        out["real_stats"] = _stats(real)
    return out


def node_facts(analysis, name: str) -> dict:
    """Everything the inspector shows about one node (``analysis``: a core.analysis.Analysis)."""
    gi = analysis.index
    i = gi.index[name]
    node = gi.nodes[i]
    storage = _storage_of(analysis)

    def tensor(t: str) -> dict:
        s = storage.resolve(t)
        held = gi.dtype(s) if s != t else None
        src = gi.producer.get(t)
        return {"name": t, "shape": list(gi.shape(t)) if gi.shape(t) is not None else None,
                "dtype": gi.dtype(t) or "?", "held_as": held,
                "quantization": tensor_quant(gi, s),
                "constant": t in gi.constants, "graph_input": t in gi.graph_inputs,
                "producer": gi.names[src] if src is not None else None,
                "consumers": [gi.names[c] for c in gi.consumers.get(t, [])]}

    nc = analysis.costs.by_name.get(name)
    block = analysis.blocks.node_block.get(name)
    dtype, q = node_output_quant(gi, storage, i)
    return {
        "name": name, "op_type": node.op_type, "domain": node.domain or "ai.onnx",
        "block": analysis.blocks.blocks[block].name if block is not None else None,
        "doc": node.doc_string or "",
        "attributes": [(a.name, _attr_text(a)) for a in node.attribute],
        "inputs": [tensor(t) for t in node.input if t],
        "outputs": [tensor(t) for t in node.output if t],
        "weights": _weights(gi, node),
        "output_dtype": dtype, "output_quantization": q,
        "costs": None if nc is None else {"params": analysis.costs.params(nc), "macs": nc.macs,
                                          "activation_bytes": nc.activation_bytes,
                                          "live_bytes": getattr(nc, "live_bytes", 0)},
    }


def _weights(gi: GraphIndex, node) -> list[dict]:
    """The node's constant inputs with more than one value (a scalar's statistics say nothing), each once."""
    out, seen = [], set()
    for t in node.input:
        if t and t in gi.constants and (w := weight_facts(gi, t)) is not None and w["size"] > 1:
            if w["name"] not in seen:  # an integer function reads a weight and its DequantizeLinear both
                seen.add(w["name"])
                out.append(w)
    return out


def _storage_of(analysis) -> Storage:
    """One Storage per analysis (the cost report keeps the one it measured peak memory with)."""
    s = getattr(analysis.costs, "storage", None)
    return s if s is not None else Storage(analysis.index)


# the source file ----------------------------------------------------------------------------------
def source_io(m: LoadedModel) -> dict:
    """Inputs, outputs and operators as the source file defines them: an importer's ``source`` record
    (a TFLite file's names, dtypes, shapes and quantization), else the ONNX graph's own (no quantization)."""
    if m.source:
        return m.source
    io = [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape), "layout": s.layout, "quantization": None}
          for s in m.inputs]
    oo = [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape), "layout": s.layout, "quantization": None}
          for s in m.outputs]
    return {"format": m.source_format, "inputs": io, "outputs": oo, "operators": None}


def scale_text(scale) -> str:
    """0.0078125 -> '0.0078125 (1/128)'; a per-channel list -> 'per-channel (N)'."""
    if isinstance(scale, list):
        return f"per-channel ({len(scale)})"
    return f"{scale:.6g} (1/{1 / scale:.6g})" if scale else f"{scale:g}"


def zero_point_text(zp) -> str:
    return f"per-channel ({len(zp)})" if isinstance(zp, list) else str(zp)


def describe_io(d: dict) -> str:
    """'input: uint8 [1x128x128x3] NHWC, scale 0.0078125 (1/128), zero point 128'."""
    dims = "x".join(str(v) for v in d["shape"])
    text = f"{d['name']}: {d['dtype']} [{dims}]" + (f" {d['layout']}" if d.get("layout") else "")
    q = d.get("quantization")
    if q:
        text += f", scale {scale_text(q['scale'])}, zero point {zero_point_text(q['zero_point'])}"
    return text


def operators_text(ops: dict[str, int] | None) -> str:
    """'31 operators: CONV_2D 15, DEPTHWISE_CONV_2D 13, ...' (most frequent first)."""
    if not ops:
        return ""
    items = sorted(ops.items(), key=lambda kv: -kv[1])
    return f"{sum(ops.values())} operators: " + ", ".join(f"{k} {v}" for k, v in items)
