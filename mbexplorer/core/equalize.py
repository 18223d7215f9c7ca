"""Cross-layer equalization (CLE) with bias absorption (Nagel et al. 2019, "Data-Free Quantization Through Weight
Equalization and Bias Correction", sections 4.1-4.2): a float-to-float rewrite that evens out per-channel weight
ranges, so that one scale per tensor fits every channel better, keeping the model's outputs; then bias absorption
takes the always-present part out of each activation, so that one scale per tensor fits the activations better too.

**Equalization.** For two convs in a row, conv1 → act → conv2, with ``act`` positive-homogeneous
(act(a·x) = a·act(x) for a > 0), output channel i of conv1 is divided by s_i and input channel i of conv2
multiplied by s_i; the product is unchanged. With s_i = sqrt(r1_i / r2_i) (r: the channel's largest |weight|) both
channels end with the range sqrt(r1_i·r2_i). A depthwise conv sits in two pairs (expand → dw, dw → project), so the
pass is repeated. The price: a channel scaled up widens its activation tensor's per-tensor range, and a channel
scaled down gets a larger share of that tensor's quantization noise.

**ReLU6** (Clip 0..6), the activation of every MobileNet here, is *not* positive-homogeneous: after scaling, channel
i must clip at 6·g_i (g_i: the product of the 1/s_i it got), and ONNX Clip takes only one scalar bound. Two
choices (``relu6=``):

* ``"bound"`` (default): the Clip becomes Clip(x, 0, max_i bound_i) → Min(x, bound) with a per-channel bound
  [C,1,1]. Exact in float. The scalar Clip comes first, not a Relu, because onnxruntime's quantizer fuses it into
  the conv's output quantization: after a Relu that range would run up to the largest *unclipped* pre-activation,
  far above 6 in a ReLU6 network (measured when this was written, MobileNetV1 0.25 per-channel + CLE on 4 images
  it was not calibrated on: 12.3 dB output SQNR with a Relu there, 17.1 dB with the Clip). The Min is quantized
  once more. (No "s <= 1 only" shortcut exists: any s_i != 1 moves the clip point, one way or the other, for
  inputs that reach it.)
* ``"skip"``: ReLU6 pairs are left alone and counted in the report; only Relu and linear (no activation) pairs
  are equalized. On MobileNets that leaves only V2's project → expand convs without a residual.

**Bias absorption** (``absorb=``, section 4.1). When channel i's pre-activation x_i (conv1's output) never falls
below some c_i > 0, ReLU(x − c) = ReLU(x) − c, so c moves from conv1's bias into conv2's: b1 −= c,
b2 += Σ_{i,kernel} W2·c, and the activation loses c of its range. For a ReLU6 the clip point moves down with the
values, bound_i − c_i: min(max(x−c, 0), B−c) = min(x, B) − c whenever x >= c >= 0, so a Clip(0, 6) that
equalization left unscaled needs the per-channel Min as well. c_i = max(0, floor_i)·g_i, the floor from

* the BatchNormalization after conv1, before it is folded (data-free, the paper's way): β_i − 3·|γ_i|, the
  pre-activation taken as N(β_i, γ_i²), exact for ~99.87 % of it;
* otherwise the calibration ``images`` (the model's own preprocessing, one image at a time): the channel's
  minimum over every image and position, exact on those images. Not the paper's mean − 3·std of the measured
  values (``sigmas=3``): real pre-activations are skewed, not Gaussian; on inputs the statistics did not come
  from, that rule left the float outputs of MobileNetV1 0.25 20 dB output SQNR from the original's (V2's twin:
  28 dB), the minimum 33 dB (39 dB; ``bench/bench_whatif.py``);
* neither (a BN-folded model without images): no absorption for that pair.

Zero padding: a conv2 that pads sees zeros where the shifted activation's "zero" is −c, so its border outputs move
by the padded taps' Σ W2·c. The paper accepts that; measured here it is no small price: absorbing into the padded
depthwise convs too left MobileNetV1 0.25's float outputs 11-15 dB output SQNR from the original's (a 7x7 map is
half border; top-1 agreement 0.88-0.94 before any quantization). So ``absorb="unpadded"`` (default) absorbs only
where conv2 does not pad (the pointwise convs after a depthwise one); ``"all"`` is the paper's way; ``"off"``
absorbs nothing. Pairs without an activation are left as they are: the rule is for a clipping activation.

What it buys, measured (``bench/bench_whatif.py``): little. On MobileNetV1 0.25 and V2's twin the quantized
output SQNR moved by −1.2 to +1.5 dB against equalization alone, within what another calibration set moves it: a
per-tensor range is set by the channels that reach furthest, and c shortens only those whose floor is above 0.

BatchNormalization right after a conv is folded into it first (what the quantizer's optimiser does anyway).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import GraphIndex
from .jobs import Job, Progress, checkpoint, run
from .model import LoadedModel, from_proto

RELU6_MODES = ("bound", "skip")
ABSORB_MODES = ("unpadded", "all", "off")
# None: the paper's scales. A bound (2, 4) limits how far any channel moves in total; it trades weight evenness
# for activation noise (a channel scaled down by s gets s times the per-tensor activation noise, relatively).
MAX_SCALE: float | None = None
DEAD = 1e-6  # a channel below this share of its tensor's largest range counts as dead
BN_SIGMAS = 3.0  # data-free: the floor of a BatchNormalization's output is β − BN_SIGMAS·|γ|


@dataclass
class Report:
    pairs: int = 0  # equalized
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    folded_bn: int = 0
    absorbed: dict = field(default_factory=dict)  # conv1 name -> c taken from its bias (equalized scale), [C]
    absorbed_from: Counter = field(default_factory=Counter)  # "batch norm" / "images" -> pairs
    not_absorbed: Counter = field(default_factory=Counter)  # reason -> pairs


@dataclass
class _Pair:
    conv1: onnx.NodeProto
    act: onnx.NodeProto | None  # Relu / Clip between them, or None
    clip_max: float | None  # a ReLU6's 6
    conv2: onnx.NodeProto


def equalize(model: LoadedModel, relu6: str = "bound", iterations: int = 4, max_scale: float | None = MAX_SCALE,
             images: Sequence[str | Path] | None = None, absorb: str = "unpadded") -> LoadedModel:
    """``model`` with cross-layer-equalized weights and absorbed biases (see the module notes); the report:
    :func:`equalize_report`; with progress and cancel: :func:`equalize_job`."""
    return equalize_report(model, relu6, iterations, max_scale, images, absorb)[0]


def equalize_report(model: LoadedModel, relu6: str = "bound", iterations: int = 4,
                    max_scale: float | None = MAX_SCALE, images: Sequence[str | Path] | None = None,
                    absorb: str = "unpadded") -> tuple[LoadedModel, Report]:
    return run(equalize_job(model, images, relu6=relu6, iterations=iterations, max_scale=max_scale, absorb=absorb))


def equalize_job(model: LoadedModel, images: Sequence[str | Path] | None = None, *, relu6: str = "bound",
                 iterations: int = 4, max_scale: float | None = MAX_SCALE, absorb: str = "unpadded",
                 sigmas: float | None = None) -> Job:
    """Equalize ``model`` and absorb biases where conv1 had a BatchNormalization or ``images`` give statistics
    (``sigmas``: the floor is mean − sigmas·std of the measured values instead of their minimum). Returns
    (the equalized LoadedModel, :class:`Report`). Only the statistics take time: one run per image."""
    if relu6 not in RELU6_MODES:
        raise ValueError(f"relu6 must be one of {RELU6_MODES}")
    if absorb not in ABSORB_MODES:
        raise ValueError(f"absorb must be one of {ABSORB_MODES}")
    proto = onnx.ModelProto()
    proto.CopyFrom(model.model)
    bn = _fold_bn(proto)
    report = Report(folded_bn=len(bn))
    inits = {t.name: t for t in proto.graph.initializer}
    weights = {n: numpy_helper.to_array(t).astype(np.float64) for n, t in inits.items()}
    pairs = _find_pairs(proto, inits, report, relu6)

    # each absorbed pair's pre-activation floor per channel, before any scaling
    floor, measure = {}, []
    for p in pairs if absorb != "off" else ():
        if p.act is None:
            report.not_absorbed["no activation between the convs"] += 1
        elif absorb == "unpadded" and _pads(p.conv2, weights[p.conv2.input[1]]):
            report.not_absorbed["conv2 pads with zeros (absorb='all' takes it, inexact at borders)"] += 1
        elif p.conv1.name in bn:
            beta, gamma = bn[p.conv1.name]
            floor[p.conv1.name] = beta - BN_SIGMAS * np.abs(gamma)
        elif images:
            measure.append(p)
        else:
            report.not_absorbed["no BatchNormalization and no images for statistics"] += 1
    if measure:
        # act.input[0] is the same tensor in ``model``: a folded conv took its BatchNormalization's output name
        stats = yield from _channel_stats(model, [p.act.input[0] for p in measure], images)
        for p in measure:
            mean, std, low = stats[p.act.input[0]]
            floor[p.conv1.name] = low if sigmas is None else mean - sigmas * std
    yield Progress(0.95, "equalizing")

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
            if _bias_name(p.conv1):
                weights[p.conv1.input[2]] /= s
            w2 *= s.reshape(-1, 1, 1, 1) if depthwise else s.reshape(1, -1, 1, 1)
            gain[p.conv1.name] /= s

    changed = {t for p in pairs for t in p.conv1.input[1:3] + p.conv2.input[1:2] if t}
    for p in pairs:  # after every scale is final: conv2's bias may be the next pair's conv1 bias, scaled there
        g = gain[p.conv1.name]
        c = np.maximum(floor[p.conv1.name], 0.0) * g if p.conv1.name in floor else np.zeros_like(g)
        if p.clip_max is not None:
            c = np.minimum(c, p.clip_max * g)  # a channel always at its clip point: all of it moves
        if c.any():
            w2 = weights[p.conv2.input[1]]
            b1, b2 = _bias(proto, inits, weights, p.conv1), _bias(proto, inits, weights, p.conv2)
            weights[b1] -= c
            # conv2 sees x − c: its bias adds back W2 applied to a constant c, summed over the kernel
            weights[b2] += w2.sum((1, 2, 3)) * c if _group(p.conv2) > 1 else w2.sum((2, 3)) @ c
            changed |= {b1, b2}
            report.absorbed[p.conv1.name] = c
            report.absorbed_from["batch norm" if p.conv1.name in bn else "images"] += 1
        if p.clip_max is not None:
            bound = p.clip_max * g - c
            if not np.allclose(bound, p.clip_max):
                _per_channel_clip(proto, p.act, bound)
    for name in changed:
        inits[name].CopyFrom(numpy_helper.from_array(weights[name].astype(np.float32), name))
    report.pairs = len(pairs)
    out = from_proto(proto, name=f"{model.name}_cle", source_format=model.source_format)
    out.preprocessing, out.labels = model.preprocessing, model.labels
    yield Progress(1.0, "equalized")
    return out, report


def _channel_stats(model: LoadedModel, tensors: list[str], images: Sequence[str | Path]) -> Job:
    """{tensor: (mean, std, min)} per channel (axis 1) over every image and position, from float64 running sums:
    one image at a time, so memory stays flat."""
    from .preprocess import for_model
    from .runtime import Session

    session, pre = Session(model, extra_outputs=tensors), for_model(model)
    acc: dict[str, np.ndarray] = {}  # tensor -> [Σx, Σx², min] x channels
    count = dict.fromkeys(tensors, 0)
    for k, path in enumerate(images):
        yield Progress(0.95 * k / len(images), f"activation statistics: {Path(path).name}")
        out = session.run({session.input_names[0]: pre.tensor(path)}, tensors)
        checkpoint()
        for t, a in out.items():
            a = np.moveaxis(a, 1, 0).reshape(a.shape[1], -1).astype(np.float64)
            s = np.stack([a.sum(1), np.square(a).sum(1), a.min(1)])
            if t in acc:
                acc[t][:2] += s[:2]
                np.minimum(acc[t][2], s[2], out=acc[t][2])
            else:
                acc[t] = s
            count[t] += a.shape[1]
    stats = {}
    for t in tensors:
        mean = acc[t][0] / count[t]
        stats[t] = mean, np.sqrt(np.maximum(acc[t][1] / count[t] - mean ** 2, 0.0)), acc[t][2]
    return stats


def _pads(conv: onnx.NodeProto, w: np.ndarray) -> bool:
    """Whether ``conv`` pads its input (explicit pads, or SAME with a kernel larger than 1x1)."""
    attrs = {a.name: a for a in conv.attribute}
    auto = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return any(k > 1 for k in w.shape[2:])
    return "pads" in attrs and any(attrs["pads"].ints)


def _group(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def _bias_name(conv: onnx.NodeProto) -> str:
    return conv.input[2] if len(conv.input) > 2 else ""


def _bias(proto: onnx.ModelProto, inits: dict, weights: dict, conv: onnx.NodeProto) -> str:
    """The name of ``conv``'s bias in ``weights``, a zero one made first if it has none."""
    name = _bias_name(conv)
    if name:
        return name
    w = weights[conv.input[1]]
    name = f"{conv.name}/cle_bias"
    weights[name] = np.zeros(w.shape[0])
    inits[name] = numpy_helper.from_array(weights[name].astype(np.float32), name)
    proto.graph.initializer.append(inits[name])
    inits[name] = proto.graph.initializer[-1]  # the copy the graph holds, rewritten at the end
    del conv.input[2:]
    conv.input.append(name)
    return name


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
        biases = [_bias_name(conv1), _bias_name(conv2)]
        if any(b and b not in inits for b in biases):
            report.skipped["bias computed, not an initializer"] += 1
            continue
        shared = [t for t in (conv1.input[1:2] + conv2.input[1:2] + biases) if t and uses[t] > 1]
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
    """Clip(x, 0, m) -> Min(Clip(x, 0, max(bound)), bound) with a [C,1,1] bound: ONNX Clip takes scalar bounds
    only; the scalar Clip keeps the quantizer's range of its output at max(bound) (see the module notes)."""
    bname, top = f"{clip.name}/cle_bound", float(np.float32(bound.max()))
    proto.graph.initializer.append(numpy_helper.from_array(bound.astype(np.float32).reshape(-1, 1, 1), bname))
    x, y = clip.input[0], clip.output[0]
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 11)
    if opset >= 11:  # bounds as inputs
        lo_hi = [f"{clip.name}/cle_lo", f"{clip.name}/cle_hi"]
        proto.graph.initializer.extend(numpy_helper.from_array(np.array(v, np.float32), n)
                                       for n, v in zip(lo_hi, (0.0, top)))
        first = helper.make_node("Clip", [x, *lo_hi], [f"{y}/cle_clip"], name=f"{clip.name}/cle_clip")
    else:
        first = helper.make_node("Clip", [x], [f"{y}/cle_clip"], name=f"{clip.name}/cle_clip", min=0.0, max=top)
    mn = helper.make_node("Min", [first.output[0], bname], [y], name=f"{clip.name}/cle_min")
    nodes = list(proto.graph.node)
    k = next(i for i, n in enumerate(nodes) if n.name == clip.name)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes[:k] + [first, mn] + nodes[k + 1:])


def _fold_bn(proto: onnx.ModelProto) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fold each BatchNormalization that alone reads a conv's output into the conv (a bias made if missing);
    returns {conv name: (β, γ)} of the folded ones."""
    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    users = Counter(t for n in g.node for t in n.input)
    producer = {o: n for n in g.node for o in n.output}
    outputs = {o.name for o in g.output}
    drop, folded = [], {}
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
        folded[conv.name] = beta, gamma
    if drop:
        kept = [n for n in g.node if n.name not in set(drop)]
        del g.node[:]
        g.node.extend(kept)
        used = {t for n in g.node for t in n.input}  # the BNs' own parameters go with them
        left = [t for t in g.initializer if t.name in used]
        del g.initializer[:]
        g.initializer.extend(left)
    return folded
