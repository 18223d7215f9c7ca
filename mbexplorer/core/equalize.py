"""Cross-layer equalization (CLE; Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization and
Bias Correction"): a float-to-float rewrite that keeps the model's outputs and evens out per-channel weight ranges,
so that one scale per tensor fits every channel better.

For two convs in a row, conv1 → act → conv2, with ``act`` positive-homogeneous (act(a·x) = a·act(x) for a > 0),
output channel i of conv1 is divided by s_i and input channel i of conv2 multiplied by s_i; the product is
unchanged. With s_i = sqrt(r1_i / r2_i) (r: the channel's largest |weight|) both channels end with the range
sqrt(r1_i·r2_i). A depthwise conv sits in two pairs (expand → dw, dw → project), so the pass is repeated.

ReLU6 (Clip 0..6), the activation of every MobileNet here, is *not* positive-homogeneous: after scaling, channel i
must clip at 6/s_i, and ONNX Clip takes only one scalar bound. Two choices (``relu6=``):

* ``"bound"`` (default): the Clip becomes Relu → Min(x, bound) with a per-channel bound [C,1,1] = 6/s_i. Exact in
  float, but one more elementwise op per pair, which onnxruntime's quantizer leaves in float, and the activation
  tensor's per-tensor range grows to the largest bound. (No "s <= 1 only" shortcut exists: any s_i != 1 moves the
  clip point, one way or the other, for inputs that reach it.)
* ``"skip"``: ReLU6 pairs are left alone and counted in the report; only Relu and linear (no activation) pairs
  are equalized. On MobileNets that leaves only V2's project → expand convs without a residual.

BatchNormalization right after a conv is folded into it first (what the quantizer's optimiser does anyway).
The price, measured by ``whatif``: a channel scaled down by s gets s times the (per-tensor) activation
quantization noise relative to its values, and the next layer's larger weight carries it on; bias absorption
would temper the activation ranges, but is not done here: it needs pre-activation statistics (BN's β, γ),
which folded TFLite models no longer have.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import GraphIndex
from .model import LoadedModel, from_proto

RELU6_MODES = ("bound", "skip")
# None: the paper's scales. A bound (2, 4) limits how far any channel moves in total; it trades weight evenness
# for activation noise (a channel scaled down by s gets s times the per-tensor activation noise, relatively).
MAX_SCALE: float | None = None
DEAD = 1e-6  # a channel below this share of its tensor's largest range counts as dead


@dataclass
class Report:
    pairs: int = 0  # equalized
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    folded_bn: int = 0


@dataclass
class _Pair:
    conv1: onnx.NodeProto
    act: onnx.NodeProto | None  # Relu / Clip between them, or None
    clip_max: float | None  # a ReLU6's 6
    conv2: onnx.NodeProto


def equalize(model: LoadedModel, relu6: str = "bound", iterations: int = 4,
             max_scale: float | None = MAX_SCALE) -> LoadedModel:
    """``model`` with cross-layer-equalized weights (see the module notes); the report: :func:`equalize_report`."""
    return equalize_report(model, relu6, iterations, max_scale)[0]


def equalize_report(model: LoadedModel, relu6: str = "bound", iterations: int = 4,
                    max_scale: float | None = MAX_SCALE) -> tuple[LoadedModel, Report]:
    if relu6 not in RELU6_MODES:
        raise ValueError(f"relu6 must be one of {RELU6_MODES}")
    proto = onnx.ModelProto()
    proto.CopyFrom(model.model)
    report = Report(folded_bn=_fold_bn(proto))
    inits = {t.name: t for t in proto.graph.initializer}
    weights = {n: numpy_helper.to_array(t).astype(np.float64) for n, t in inits.items()}
    pairs = _find_pairs(proto, inits, report, relu6)
    # the factor each conv's output channels have been multiplied by: a ReLU6 after it clips at 6 * that
    gain = {p.conv1.name: np.ones(weights[p.conv1.input[1]].shape[0]) for p in pairs}
    for _ in range(iterations):
        for p in pairs:
            w1, w2 = weights[p.conv1.input[1]], weights[p.conv2.input[1]]
            depthwise = _group(p.conv2) > 1
            r1 = np.abs(w1).reshape(w1.shape[0], -1).max(1)
            r2 = np.abs(w2).reshape(w2.shape[0], -1).max(1) if depthwise else \
                np.abs(w2).transpose(1, 0, 2, 3).reshape(w2.shape[1], -1).max(1)
            s = np.ones_like(r1)
            # a dead channel (all ~0: a float twin's zero-point weights leave 1e-13s) stays as it is
            ok = (r1 > DEAD * r1.max()) & (r2 > DEAD * r2.max())
            s[ok] = np.sqrt(r1[ok] / r2[ok])
            if max_scale:  # bound the total change of each channel, over all iterations
                g = gain[p.conv1.name]
                s = np.clip(s, g / max_scale, g * max_scale)
            w1 /= s.reshape(-1, 1, 1, 1)
            if len(p.conv1.input) > 2 and p.conv1.input[2]:
                weights[p.conv1.input[2]] /= s
            w2 *= s.reshape(-1, 1, 1, 1) if depthwise else s.reshape(1, -1, 1, 1)
            gain[p.conv1.name] /= s
    for p in pairs:
        for name in p.conv1.input[1:3] + p.conv2.input[1:2]:
            if name:
                inits[name].CopyFrom(numpy_helper.from_array(weights[name].astype(np.float32), name))
        g = gain[p.conv1.name]
        if p.clip_max is not None and not np.allclose(g, 1.0):
            _per_channel_clip(proto, p.act, p.clip_max * g)
    report.pairs = len(pairs)
    out = from_proto(proto, name=f"{model.name}_cle", source_format=model.source_format)
    out.preprocessing, out.labels = model.preprocessing, model.labels
    return out, report


def _group(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def _find_pairs(proto: onnx.ModelProto, inits: dict, report: Report, relu6: str) -> list[_Pair]:
    gi = GraphIndex(from_proto(proto, name="cle", source_format="onnx"))
    uses = Counter(t for n in proto.graph.node for t in n.input)
    outputs = set(gi.graph_outputs)

    def single_user(t: str) -> onnx.NodeProto | None:
        users = gi.consumers.get(t, [])
        return gi.nodes[users[0]] if len(users) == 1 and t not in outputs else None

    pairs = []
    for conv1 in gi.nodes:
        if conv1.op_type != "Conv":
            continue
        nxt = single_user(conv1.output[0])
        if nxt is None:
            if gi.consumers.get(conv1.output[0]):
                report.skipped["output used by more than one node"] += 1
            continue
        act, clip_max = None, None
        if nxt.op_type in ("Relu", "Clip"):
            act = nxt
            if nxt.op_type == "Clip":
                lo, hi = _clip_bounds(nxt, inits)
                if lo != 0.0:
                    report.skipped["Clip not starting at 0 (not positive-homogeneous)"] += 1
                    continue
                if hi is not None and relu6 == "skip":
                    report.skipped["ReLU6 (relu6='skip')"] += 1
                    continue
                clip_max = hi
            nxt = single_user(act.output[0])
            if nxt is None:
                report.skipped["output used by more than one node"] += 1
                continue
        if nxt.op_type != "Conv":
            report.skipped[f"followed by {nxt.op_type}, not a conv"] += 1
            continue
        conv2 = nxt
        w1, w2 = (inits.get(conv1.input[1]), inits.get(conv2.input[1]))
        if w1 is None or w2 is None or len(w1.dims) != 4 or len(w2.dims) != 4:
            report.skipped["weight not a 4-d initializer"] += 1
            continue
        g1, g2 = _group(conv1), _group(conv2)
        if not (g1 == 1 or g1 == w1.dims[0]) or not (g2 == 1 or (g2 == w2.dims[0] and w2.dims[1] == 1)):
            report.skipped["grouped conv, neither dense nor depthwise"] += 1
            continue
        shared = [t for t in (conv1.input[1:3] + conv2.input[1:2]) if t and uses[t] > 1]
        if shared or conv1.input[1] == conv2.input[1]:
            report.skipped["weight shared with another node"] += 1
            continue
        pairs.append(_Pair(conv1, act, clip_max, conv2))
    # the nodes in ``pairs`` belong to gi's sorted copy: map them back to ``proto``'s own nodes to edit them
    own = {n.name: n for n in proto.graph.node}
    return [_Pair(own[p.conv1.name], p.act and own[p.act.name], p.clip_max, own[p.conv2.name]) for p in pairs]


def _scalar(name: str, inits: dict) -> float | None:
    return float(numpy_helper.to_array(inits[name]).reshape(-1)[0]) if name in inits else None


def _clip_bounds(node: onnx.NodeProto, inits: dict) -> tuple[float | None, float | None]:
    """A Clip's (min, max): inputs since opset 11, attributes before; None where unbounded. A bound computed at
    run time reads as nan, which no pair accepts."""
    attrs = {a.name: a.f for a in node.attribute}
    lo, hi = attrs.get("min"), attrs.get("max")
    if len(node.input) > 1 and node.input[1]:
        lo = _scalar(node.input[1], inits)
        lo = float("nan") if lo is None else lo
    if len(node.input) > 2 and node.input[2]:
        hi = _scalar(node.input[2], inits)
        hi = float("nan") if hi is None else hi
    return lo, hi


def _per_channel_clip(proto: onnx.ModelProto, clip: onnx.NodeProto, bound: np.ndarray) -> None:
    """Clip(x, 0, m) -> Min(Relu(x), bound) with a [C,1,1] bound: ONNX Clip takes scalar bounds only."""
    bname = f"{clip.name}/cle_bound"
    proto.graph.initializer.append(numpy_helper.from_array(bound.astype(np.float32).reshape(-1, 1, 1), bname))
    x, y = clip.input[0], clip.output[0]
    relu = helper.make_node("Relu", [x], [f"{y}/cle_relu"], name=f"{clip.name}/cle_relu")
    mn = helper.make_node("Min", [relu.output[0], bname], [y], name=f"{clip.name}/cle_min")
    nodes = list(proto.graph.node)
    k = next(i for i, n in enumerate(nodes) if n.name == clip.name)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes[:k] + [relu, mn] + nodes[k + 1:])


def _fold_bn(proto: onnx.ModelProto) -> int:
    """Fold each BatchNormalization that alone reads a conv's output into the conv (a bias made if missing)."""
    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    users = Counter(t for n in g.node for t in n.input)
    producer = {o: n for n in g.node for o in n.output}
    outputs = {o.name for o in g.output}
    drop, folded = [], 0
    for bn in g.node:
        conv = producer.get(bn.input[0])
        if (bn.op_type != "BatchNormalization" or conv is None or conv.op_type != "Conv" or len(bn.output) > 1
                and any(bn.output[1:]) or users[bn.input[0]] != 1 or bn.input[0] in outputs
                or not all(t in inits for t in bn.input[1:5]) or conv.input[1] not in inits
                or users[conv.input[1]] != 1):
            continue
        if (conv.input[2:3] or [""])[0] and (conv.input[2] not in inits or users[conv.input[2]] != 1):
            continue  # a bias computed or shared: not ours to rewrite
        gamma, beta, mean, var = (numpy_helper.to_array(inits[t]).astype(np.float64) for t in bn.input[1:5])
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        k = gamma / np.sqrt(var + eps)
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        has_bias = len(conv.input) > 2 and bool(conv.input[2])
        b = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if has_bias else np.zeros(w.shape[0])
        inits[conv.input[1]].CopyFrom(numpy_helper.from_array((w * k.reshape(-1, 1, 1, 1)).astype(np.float32),
                                                              conv.input[1]))
        bname = conv.input[2] if has_bias else f"{conv.name}/bn_folded_bias"
        bias = numpy_helper.from_array(((b - mean) * k + beta).astype(np.float32), bname)
        if has_bias:
            inits[bname].CopyFrom(bias)
        else:
            g.initializer.append(bias)
            inits[bname] = bias
            del conv.input[2:]
            conv.input.append(bname)
        conv.output[0] = bn.output[0]
        drop.append(bn.name)
        folded += 1
    if drop:
        kept = [n for n in g.node if n.name not in set(drop)]
        del g.node[:]
        g.node.extend(kept)
        used = {t for n in g.node for t in n.input}  # the BNs' own parameters go with them
        left = [t for t in g.initializer if t.name in used]
        del g.initializer[:]
        g.initializer.extend(left)
    return folded
