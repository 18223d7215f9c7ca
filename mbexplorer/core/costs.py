"""Per-layer costs: params, MACs, FLOPs, activation and weight memory, under several counting conventions.

Each node is measured once into convention-free *terms* (conv MACs, bias adds, BN elements, activation
elements, pooling reads, element-wise adds, ...). A convention is a recipe over those terms, so switching
conventions is instant and the difference between two published figures can be shown term by term.

``macs`` is always conv (group-aware) + fully-connected multiply-accumulates, at batch 1: what the MobileNet
papers call mult-adds. An op with no rule here is reported as *not counted*, never as zero.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import onnx

from .blocks import BlockGraph, group_blocks
from .conventions import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    FLOP_GROUPS,
    PARAM_GROUP_OF,
    PARAM_GROUPS,
    Convention,
)
from .graph import GraphIndex
from .inspect import Storage, live_bytes, source_io
from .model import LoadedModel
from .outputs import write_atomically

# Ops that cost nothing in every convention: they move or relabel data.
FREE_OPS = {
    "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Dropout", "Shape", "Size", "Gather",
    "Concat", "Constant", "Pad", "Slice", "Split", "Cast", "ConstantOfShape", "Expand", "Tile",
}
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
_ACT_TERMS = {
    "Relu": "relu", "Clip": "relu6", "LeakyRelu": "relu", "PRelu": "relu", "HardSwish": "hswish",
    "HardSigmoid": "hsigmoid", "Sigmoid": "sigmoid", "Tanh": "other_act", "Elu": "other_act", "Selu": "other_act",
    "Mish": "other_act", "Gelu": "other_act", "Softmax": "softmax", "LogSoftmax": "softmax",
}


@dataclass
class NodeCost:
    name: str
    op_type: str
    block: int
    input_shapes: list[list[int] | None]
    output_shapes: list[list[int] | None]
    macs: int | None
    terms: dict[str, int] = field(default_factory=dict)  # FLOP terms, see conventions.FLOP_TERMS
    param_terms: dict[str, int] = field(default_factory=dict)  # see conventions.PARAM_TERMS
    activation_bytes: int = 0  # what this node writes
    weight_bytes: int = 0
    live_bytes: int = 0  # every activation alive while this node runs (see inspect.live_bytes)
    known: bool = True  # False: no cost rule for this op at all


class CostReport:
    """Costs of one model; values per convention are computed on demand from the stored terms."""

    def __init__(self, loaded: LoadedModel, blocks: BlockGraph, nodes: list[NodeCost], storage: Storage | None = None):
        self.model = loaded
        self.blocks = blocks
        self.nodes = nodes
        self.by_name = {n.name: n for n in nodes}
        self.storage = storage  # where each activation is held (Q/DQ folded): the inspector and table reuse it

    # per node ------------------------------------------------------------------------------------
    def params(self, node: NodeCost, convention: str = DEFAULT_CONVENTION) -> int:
        conv = CONVENTIONS[convention]
        return sum(v for k, v in node.param_terms.items() if k in conv.param_terms)

    def flops(self, node: NodeCost, convention: str = DEFAULT_CONVENTION) -> int | None:
        """The convention's figure for a node, or None when that counter does not count this op."""
        if not node.known:
            return None
        conv = CONVENTIONS[convention]
        total = 0.0
        for term, value in node.terms.items():
            if term not in conv.flop_factors:
                if value:
                    return None
                continue
            total += conv.flop_factors[term] * value
        return int(round(total))

    # aggregates ----------------------------------------------------------------------------------
    def _sum(self, nodes, convention):
        params = sum(self.params(n, convention) for n in nodes)
        macs = sum(n.macs or 0 for n in nodes)
        flops = sum(f for n in nodes if (f := self.flops(n, convention)) is not None)
        act = sum(n.activation_bytes for n in nodes)
        wb = sum(n.weight_bytes for n in nodes)
        # a peak, not a sum: the most memory alive at once while any of these nodes runs
        peak = max((n.live_bytes for n in nodes), default=0)
        # the sums leave out ops the convention does not count; say which, so a total is never read as complete
        return {"params": params, "macs": macs, "flops": flops, "activation_bytes": act, "weight_bytes": wb,
                "peak_activation_bytes": peak,
                "not_counted": self._not_counted(nodes, convention),
                "macs_complete": all(n.macs is not None for n in nodes)}

    def totals(self, convention: str = DEFAULT_CONVENTION) -> dict:
        return self._sum(self.nodes, convention)

    def block_totals(self, convention: str = DEFAULT_CONVENTION) -> list[dict]:
        out = []
        for b in self.blocks.blocks:
            members = [self.by_name[n] for n in b.nodes if n in self.by_name]
            out.append({"index": b.index, "name": b.name, "kind": b.kind, "nodes": len(members),
                        "residual": b.residual, **self._sum(members, convention)})
        return out

    def not_counted(self, convention: str = DEFAULT_CONVENTION) -> list[str]:
        """Op types present whose cost this convention's counter does not count (or nothing counts)."""
        return self._not_counted(self.nodes, convention)

    def _not_counted(self, nodes, convention) -> list[str]:
        ops = []
        for n in nodes:
            if self.flops(n, convention) is None and n.op_type not in ops:
                ops.append(n.op_type)
        return ops

    def breakdown(self, convention: str) -> dict:
        """The convention's totals split into term groups (conv/FC, bias, BN, activations, ...)."""
        conv = CONVENTIONS[convention]
        flops: dict[str, float] = {g: 0 for g in FLOP_GROUPS}
        for n in self.nodes:
            if self.flops(n, convention) is None:
                continue
            for term, value in n.terms.items():
                flops[FLOP_GROUPS_OF[term]] += conv.flop_factors.get(term, 0) * value
        params = {g: 0 for g in PARAM_GROUPS}
        for n in self.nodes:
            for term, value in n.param_terms.items():
                if term in conv.param_terms:
                    params[PARAM_GROUP_OF[term]] += value
        return {"flops": {k: int(round(v)) for k, v in flops.items()}, "params": params,
                "not_counted": self.not_counted(convention)}

    def comparison(self) -> list[dict]:
        """Every convention side by side, for explaining why published numbers differ."""
        rows = []
        for name, conv in CONVENTIONS.items():
            t = self.totals(name)
            rows.append({"convention": name, "title": conv.title, "flops_label": conv.flops_label,
                         "params": t["params"], "flops": t["flops"], **{"breakdown": self.breakdown(name)}})
        return rows

    # export --------------------------------------------------------------------------------------
    def layer_rows(self, convention: str = DEFAULT_CONVENTION) -> list[dict]:
        rows = []
        for n in self.nodes:
            rows.append({
                "name": n.name, "op_type": n.op_type, "block": self.blocks.blocks[n.block].name,
                "input_shapes": n.input_shapes, "output_shapes": n.output_shapes,
                "params": self.params(n, convention), "macs": n.macs, "flops": self.flops(n, convention),
                "activation_bytes": n.activation_bytes, "weight_bytes": n.weight_bytes,
            })
        return rows

    def to_dict(self, convention: str = DEFAULT_CONVENTION) -> dict:
        m = self.model
        t = self.totals(convention)
        src = source_io(m)
        return {
            "model": {"name": m.name, "source_format": m.source_format,
                      "path": str(m.source_path) if m.source_path else None, "sha256": m.sha256,
                      "file_size": m.file_size, "opset": m.opset,
                      # as the source file defines them (a uint8 TFLite's output is uint8); the ONNX view beside
                      "inputs": src["inputs"], "outputs": src["outputs"], "operators": src["operators"],
                      "onnx_inputs": [vars(s) | {"shape": list(s.shape)} for s in m.inputs],
                      "onnx_outputs": [vars(s) | {"shape": list(s.shape)} for s in m.outputs]},
            "convention": convention,
            "totals": {"params": t["params"], "macs": t["macs"], "flops": t["flops"],
                       "activation_bytes": t["activation_bytes"], "peak_activation_bytes": t["peak_activation_bytes"],
                       "weight_bytes": t["weight_bytes"]},
            "blocks": [{"name": b["name"], "kind": b["kind"], "nodes": b["nodes"], "params": b["params"],
                        "macs": b["macs"], "flops": b["flops"], "residual": b["residual"],
                        "peak_activation_bytes": b["peak_activation_bytes"], "not_counted": b["not_counted"]}
                       for b in self.block_totals(convention)],
            "layers": [row | {"live_bytes": n.live_bytes} for row, n in zip(self.layer_rows(convention), self.nodes)],
            "not_counted": self.not_counted(convention),
            "conventions": self.comparison(),
        }

    def to_csv(self, convention: str = DEFAULT_CONVENTION) -> str:
        buf = io.StringIO()
        cols = ["name", "op_type", "block", "input_shapes", "output_shapes", "params", "macs", "flops",
                "activation_bytes", "weight_bytes"]
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for row in self.layer_rows(convention):
            row = dict(row)
            for k in ("input_shapes", "output_shapes"):
                row[k] = " ".join("x".join(map(str, s)) if s else "?" for s in row[k])
            for k in ("macs", "flops"):
                if row[k] is None:
                    row[k] = "not counted"
            w.writerow(row)
        return buf.getvalue()

    def write_csv(self, path, convention: str = DEFAULT_CONVENTION) -> None:
        """``to_csv`` into a file, whole or not at all (``outputs.write_atomically``); OSError on a write error."""
        write_atomically(path, self.to_csv(convention))


FLOP_GROUPS_OF = {
    "conv_macs": "conv+fc", "fc_macs": "conv+fc", "conv_bias": "bias", "fc_bias": "bias", "bn": "bn",
    "relu": "activation", "relu6": "activation", "hswish": "activation", "hsigmoid": "activation",
    "sigmoid": "activation", "other_act": "activation", "softmax": "activation",
    "gap_in": "pooling", "gap_out": "pooling", "avgpool_in": "pooling", "avgpool_out": "pooling",
    "maxpool_in": "pooling", "maxpool_out": "pooling", "add": "eltwise", "mul": "eltwise", "quant": "quant",
}


def analyse(loaded: LoadedModel, gi: GraphIndex | None = None, blocks: BlockGraph | None = None) -> CostReport:
    gi = gi or GraphIndex(loaded)
    blocks = blocks or group_blocks(gi)
    nodes = [_measure(gi, i, blocks.node_block.get(gi.names[i], 0)) for i in range(len(gi.nodes))]
    storage = Storage(gi)
    for i, live in live_bytes(gi, storage).items():
        nodes[i].live_bytes = live
    return CostReport(loaded, blocks, nodes, storage)


def _numel(shape) -> int:
    return math.prod(shape) if shape is not None else 0


def _measure(gi: GraphIndex, i: int, block: int) -> NodeCost:
    node = gi.nodes[i]
    in_shapes = [list(gi.shape(t)) if gi.shape(t) is not None else None for t in node.input if t]
    out_shapes = [list(gi.shape(t)) if gi.shape(t) is not None else None for t in node.output if t]
    nc = NodeCost(gi.names[i], node.op_type, block, in_shapes, out_shapes, macs=0)
    if i in gi.const_nodes:
        return nc  # computed once from weights and static shapes: neither work nor activation memory
    nc.activation_bytes = sum(gi.nbytes(t) for t in node.output if t)
    if node.op_type in FREE_OPS:
        return nc  # moves or relabels data: memory, no arithmetic
    op = _Op(gi, i, nc)
    rule = _RULES.get(node.op_type)
    if rule is None or rule(op) is False:
        return op.unknown()
    nc.macs = nc.terms.get("conv_macs", 0) + nc.terms.get("fc_macs", 0)
    return nc


class _Op:
    """What a cost rule sees of one node: its inputs, first input and output shapes, and the node's cost
    record, whose FLOP terms (``terms``) and parameter terms (``weight``) the rule fills in."""

    def __init__(self, gi: GraphIndex, i: int, nc: NodeCost):
        node = gi.nodes[i]
        self.gi, self.i, self.nc = gi, i, nc
        self.ins = list(node.input)
        self.terms = nc.terms
        self.out = gi.shape(node.output[0]) if node.output else None
        self.x = gi.shape(self.ins[0]) if self.ins and self.ins[0] else None

    def weight(self, t: str | None, kind: str) -> None:
        """Count the initializer behind ``t`` (through DequantizeLinear and friends) as parameters of ``kind``."""
        src = self.gi.weight_source(t) if t else None
        if src is None:
            return
        n = _numel(tuple(src.dims))
        self.nc.param_terms[kind] = self.nc.param_terms.get(kind, 0) + n
        self.nc.weight_bytes += n * max(1, _itemsize(src.data_type))

    def unknown(self) -> NodeCost:
        # No rule, but its constant inputs are still parameters held in memory: count them as weights (we
        # cannot tell kernel from bias), so an op without a rule never shows 0 params or 0 weight bytes.
        for t in self.ins:
            if t in self.gi.constants:
                self.weight(t, "weight")
        return _unknown(self.nc)


def _quant(op: _Op) -> None:
    op.terms["quant"] = _numel(op.out)


def _conv(op: _Op) -> bool | None:
    w_i, b_i = (3, 8) if op.nc.op_type == "QLinearConv" else (1, 2)
    w = op.gi.shape(op.ins[w_i]) if len(op.ins) > w_i else None
    if w is None or op.out is None:
        return False
    op.terms["conv_macs"] = _numel(op.out) * _numel(w[1:])  # per output: (cin / groups) * kh * kw
    op.weight(op.ins[w_i], "weight")
    if len(op.ins) > b_i and op.ins[b_i]:
        op.terms["conv_bias"] = _numel(op.out)
        op.weight(op.ins[b_i], "conv_bias")
    return None


def _fc(op: _Op) -> bool | None:
    a, kind = op.gi.shape(op.ins[0]), op.nc.op_type
    if a is None or op.out is None:
        return False
    k = a[0] if kind == "Gemm" and op.gi.attr(op.i, "transA", 0) else a[-1]
    op.terms["fc_macs"] = _numel(op.out) * k
    if op.ins[1] in op.gi.constants:
        op.weight(op.ins[1], "weight")
    if kind == "Gemm" and len(op.ins) > 2 and op.ins[2]:
        op.terms["fc_bias"] = _numel(op.out)
        op.weight(op.ins[2], "fc_bias")
    return None


def _bn(op: _Op) -> None:
    op.terms["bn"] = _numel(op.x)
    for t in op.ins[1:3]:
        op.weight(t, "bn_affine")
    for t in op.ins[3:5]:
        op.weight(t, "bn_stats")


def _activation(op: _Op) -> None:
    op.terms[_ACT_TERMS[op.nc.op_type]] = _numel(op.out)
    if op.nc.op_type == "PRelu":
        op.weight(op.ins[1], "other")


def _pool(op: _Op) -> None:
    kind = {"GlobalAveragePool": "gap", "ReduceMean": "gap", "AveragePool": "avgpool"}.get(op.nc.op_type, "maxpool")
    op.terms[f"{kind}_in"] = _numel(op.x)
    op.terms[f"{kind}_out"] = _numel(op.out)


def _add(op: _Op) -> None:
    acts = op.gi.activation_inputs(op.i)
    src = op.gi.producer.get(acts[0]) if acts else None
    if len(acts) == 1 and src is not None and op.gi.nodes[src].op_type in ("MatMul", "MatMulInteger"):
        # MatMul + Add(constant) is how exporters write a Linear layer: the constant is its bias
        op.terms["fc_bias"] = _numel(op.out)
        for t in op.ins:
            if t and t in op.gi.constants:
                op.weight(t, "fc_bias")
    else:
        op.terms["add"] = _numel(op.out)


def _mul(op: _Op) -> None:
    op.terms["mul"] = _numel(op.out)


# op type -> cost rule; a rule returns False when shapes it needs are unknown (the node is then not counted)
_RULES = {
    **dict.fromkeys(QUANT_OPS, _quant),
    **dict.fromkeys(("Conv", "ConvInteger", "QLinearConv"), _conv),
    **dict.fromkeys(("Gemm", "MatMul", "MatMulInteger", "QGemm"), _fc),
    "BatchNormalization": _bn,
    **dict.fromkeys(_ACT_TERMS, _activation),
    **dict.fromkeys(("GlobalAveragePool", "ReduceMean", "AveragePool", "MaxPool", "GlobalMaxPool"), _pool),
    **dict.fromkeys(("Add", "Sub", "Sum"), _add),
    "Mul": _mul,
    "Div": _mul,
}


def _unknown(nc: NodeCost) -> NodeCost:
    nc.known = False
    nc.macs = None
    nc.terms.clear()
    return nc


@cache
def _itemsize(data_type: int) -> int:
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return 1


__all__ = ["analyse", "CostReport", "NodeCost", "CONVENTIONS", "Convention", "DEFAULT_CONVENTION"]
