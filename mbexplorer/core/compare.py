"""Comparing a float model with a quantized one, layer by layer: where does quantization lose accuracy?

The pipeline is onnxruntime's ``qdq_loss_debug`` (expose tensors, collect, match, measure), with one change:
nothing is kept per image. Each matched tensor has six float64 running sums (Σf², Σ(f−q)², Σf·q, Σq², max |f−q|,
count), so memory stays flat however many images are run, and a partial result can be shown after every image.

* :func:`pair` matches the float model's activations with the quantized model's: by name first (a TFLite import's
  QDQ model and its float twin share names; an onnxruntime QDQ model keeps ``X`` as the value before its
  QuantizeLinear, so ``X`` is followed through Q→DQ to the value the next layer sees), then by position (the k-th
  output of each op type in execution order) for two separately converted files.
* :func:`compare_job` runs both models on the images, each with its own exact input (``for_model``).
* Weights: each matched Conv/Gemm's dequantized weight against the float one, whole and per output channel.

Isolated error (one layer quantized, its inputs taken from the float model) is not computed yet:
``isolated_sqnr_db`` is None.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from onnx import numpy_helper

from .blocks import group_blocks
from .errors import MbxError
from .graph import GraphIndex
from .jobs import Job, Progress, checkpoint, warn
from .model import LoadedModel
from .preprocess import for_model
from .runtime import Session, intermediate_tensors

_QDQ = {"QuantizeLinear", "DequantizeLinear"}
# Ops that only pass a value on: the quantized model has extra ones (TFLite's input quantize is an Identity),
# so counting them would shift every position after them
_SKIP = _QDQ | {"Identity"}
_FLOATS = {"float32", "float64", "float16"}
_WEIGHT_OPS = {"Conv", "Gemm", "MatMul"}


@dataclass
class Pair:
    name: str  # the float model's tensor
    quant_name: str  # the quantized model's tensor holding the same real value
    node: str  # the float node producing it
    op_type: str
    block: str | None
    by: str  # "name" or "position"


@dataclass
class Pairing:
    pairs: list[Pair]
    unmatched: list[str]  # float tensors with no counterpart


def _dq_of(gi: GraphIndex, t: str) -> str:
    """``t``, or the DequantizeLinear output when ``t`` goes through a Q→DQ pair: the value the next layer sees."""
    users = gi.consumers.get(t, [])
    if len(users) == 1 and gi.nodes[users[0]].op_type == "QuantizeLinear":
        q = gi.nodes[users[0]].output[0]
        dq = [i for i in gi.consumers.get(q, []) if gi.nodes[i].op_type == "DequantizeLinear"]
        if dq:
            return gi.nodes[dq[0]].output[0]
    return t


def _positions(gi: GraphIndex) -> dict[str, list[str]]:
    """Op type -> its nodes' first outputs, in execution order (Q/DQ and pass-through ops left out)."""
    out = defaultdict(list)
    for i in gi.activation_nodes:
        n = gi.nodes[i]
        if n.op_type not in _SKIP and n.output and n.output[0]:
            out[n.op_type].append(n.output[0])
    return out


def _shape_ok(a: LoadedModel, ta: str, b: LoadedModel, tb: str) -> bool:
    """Both shapes known: equal where both dims are fixed (a symbolic batch matches anything)."""
    sa, sb = a.shapes.get(ta), b.shapes.get(tb)
    if sa is None or sb is None:
        return True
    return len(sa) == len(sb) and all(not (isinstance(x, int) and isinstance(y, int)) or x == y
                                      for x, y in zip(sa, sb))


def _comparable(gq: GraphIndex, qt: str) -> bool:
    """Not the raw output of a model-local function (``tflite_int``): that is TFLite's integer kernel's result with
    the fused activation already applied, so its ``_preact`` name holds no pre-activation value to compare."""
    i = gq.producer.get(qt)
    return i is None or gq.nodes[i].domain in ("", "ai.onnx")


def pair(float_model: LoadedModel, quant_model: LoadedModel, by_name: bool = True) -> Pairing:
    """Match the float model's intermediate float tensors with the quantized model's (see the module notes).
    ``by_name=False``: by position only (a check that positions agree with names where both work)."""
    gf, gq = GraphIndex(float_model), GraphIndex(quant_model)
    blocks = group_blocks(gf)
    q_float = {t for t, d in quant_model.dtypes.items() if d in _FLOATS}
    q_produced = set(gq.producer) - set(gq.graph_outputs)
    wanted = [t for t in intermediate_tensors(float_model) if float_model.dtypes.get(t) in _FLOATS]

    found: dict[str, tuple[str, str]] = {}
    for t in wanted if by_name else ():
        if t in q_produced:
            qt = _dq_of(gq, t)
            if qt in q_float and _comparable(gq, qt) and _shape_ok(float_model, t, quant_model, qt):
                found[t] = (qt, "name")
    # by position: the k-th output of each op type, where both models have as many of that type
    used = {qt for qt, _ in found.values()}
    pf, pq = _positions(gf), _positions(gq)
    for op, fts in pf.items():
        qts = pq.get(op, [])
        if len(qts) != len(fts):
            continue
        for ft, qt in zip(fts, qts):
            qt = _dq_of(gq, qt)
            if (ft in found or qt in used or ft not in wanted or qt not in q_float or qt in gq.graph_outputs
                    or not _comparable(gq, qt)):
                continue
            if _shape_ok(float_model, ft, quant_model, qt):
                found[ft] = (qt, "position")
                used.add(qt)

    pairs, unmatched = [], []
    for t in wanted:
        if t not in found:
            unmatched.append(t)
            continue
        node = gf.nodes[gf.producer[t]]
        b = blocks.node_block.get(node.name)
        pairs.append(Pair(t, found[t][0], node.name, node.op_type, None if b is None else blocks.blocks[b].name,
                          found[t][1]))
    return Pairing(pairs, unmatched)


# --------------------------------------------------------------------------------------------------
# measuring

F2, E2, FQ, Q2, MAX, N = range(6)


@dataclass
class Accumulators:
    """Running float64 sums per tensor, one row each: Σf², Σ(f−q)², Σf·q, Σq², max |f−q|, count."""
    sums: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> Accumulators:
        return cls(np.zeros((n, 6), np.float64))

    def update(self, row: int, f: np.ndarray, q: np.ndarray) -> None:
        f = np.asarray(f, np.float64).ravel()
        q = np.asarray(q, np.float64).ravel()
        if f.size != q.size:
            raise MbxError(f"the tensors compared in row {row} differ in size ({f.size} and {q.size}).")
        e = f - q
        s = self.sums[row]
        s[F2] += f @ f
        s[E2] += e @ e
        s[FQ] += f @ q
        s[Q2] += q @ q
        s[MAX] = max(s[MAX], float(np.abs(e).max(initial=0.0)))
        s[N] += f.size

    def stats(self, row: int) -> dict:
        s = self.sums[row]
        return {"sqnr_db": sqnr_db(s[F2], s[E2]), "cosine": _cosine(s[FQ], s[F2], s[Q2]),
                "mse": float(s[E2] / s[N]) if s[N] else None, "max_abs": float(s[MAX]),
                "rel_l2": math.sqrt(s[E2] / s[F2]) if s[F2] else (0.0 if s[E2] == 0 else math.inf)}


def sqnr_db(signal: float, noise: float) -> float:
    """10·log10(Σf² / Σ(f−q)²): inf when the two are equal."""
    if noise == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 10 * math.log10(signal / noise)


def _cosine(fq: float, f2: float, q2: float) -> float | None:
    if f2 == 0 or q2 == 0:
        return 1.0 if f2 == q2 else 0.0  # both all zero: the same; one all zero: no direction in common
    return float(fq / math.sqrt(f2 * q2))


@dataclass
class Partial:
    """A job event after every image: the comparison so far, for a UI to show results arriving."""
    images: int
    result: dict


@dataclass
class Comparison:
    pairing: Pairing
    acc: Accumulators
    output_acc: Accumulators
    weights: list[dict]
    images: int = 0
    top1: int = 0
    top5: int = 0
    failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        tensors = [{"name": p.name, "quant_name": p.quant_name, "node": p.node, "op_type": p.op_type,
                    "block": p.block, **self.acc.stats(i), "isolated_sqnr_db": None}
                   for i, p in enumerate(self.pairing.pairs)]
        n = self.images
        output = {"top1_agreement": self.top1 / n if n else None, "top5_agreement": self.top5 / n if n else None,
                  "sqnr_db": self.output_acc.stats(0)["sqnr_db"] if n else None}
        return {"tensors": tensors, "weights": self.weights, "output": output, "unmatched": self.pairing.unmatched}


def compare_job(float_model: LoadedModel, quant_model: LoadedModel, images: Sequence[str | Path],
                preset: str | None = None) -> Job:
    """Run both models on every image and measure each matched tensor; returns a :class:`Comparison`.

    Top-1 agreement: the share of images whose two top-1 classes are the same; top-5 agreement: the share whose
    float top-1 class is among the quantized model's top 5 (the float model taken as the ground truth)."""
    yield Progress(0.0, "matching tensors")
    pairing = pair(float_model, quant_model)
    weights = weight_errors(float_model, quant_model)
    fo, qo = float_model.outputs[0].name, quant_model.outputs[0].name
    fs = Session(float_model, extra_outputs=[p.name for p in pairing.pairs])
    qs = Session(quant_model, extra_outputs=[p.quant_name for p in pairing.pairs])
    fpre, qpre = for_model(float_model, preset), for_model(quant_model, preset)
    c = Comparison(pairing, Accumulators.zeros(len(pairing.pairs)), Accumulators.zeros(1), weights)
    fnames, qnames = [fo] + [p.name for p in pairing.pairs], [qo] + [p.quant_name for p in pairing.pairs]
    for k, path in enumerate(images):
        yield Progress(k / max(len(images), 1), f"comparing on {Path(path).name}")
        try:
            fx, qx = fpre.tensor(path), qpre.tensor(path)
        except MbxError as exc:  # one unreadable picture does not stop the others
            c.failed.append(str(path))
            yield warn(f"{Path(path).name}: {exc}")
            continue
        fr = fs.run({fs.input_names[0]: fx}, fnames)
        checkpoint()
        qr = qs.run({qs.input_names[0]: qx}, qnames)
        checkpoint()
        for i, p in enumerate(pairing.pairs):
            c.acc.update(i, fr[p.name], qr[p.quant_name])
        f_out, q_out = fr[fo].ravel(), qr[qo].ravel()
        if f_out.size != q_out.size:
            raise MbxError(f"the models' outputs differ in size ({f_out.size} and {q_out.size}); compare two "
                           "versions of one classifier.")
        c.output_acc.update(0, f_out, q_out)
        best = int(np.argmax(f_out))
        c.top1 += best == int(np.argmax(q_out))
        c.top5 += best in np.argsort(-q_out, kind="stable")[:5]
        c.images += 1
        yield Partial(c.images, c.to_dict())
        checkpoint()
    yield Progress(1.0, "done")
    return c


# --------------------------------------------------------------------------------------------------
# weights


def _const(gi: GraphIndex, t: str) -> np.ndarray | None:
    """A constant tensor's real value: an initializer, or a DequantizeLinear of initializers computed here."""
    i = gi.producer.get(t)
    if i is not None and gi.nodes[i].op_type == "DequantizeLinear":
        ins = [gi.initializers.get(x) for x in gi.nodes[i].input]
        if not all(ins):
            return None
        # in float32, as DequantizeLinear computes it: a float twin's weights then compare as identical
        x, scale = numpy_helper.to_array(ins[0]).astype(np.int32), numpy_helper.to_array(ins[1]).astype(np.float32)
        zp = numpy_helper.to_array(ins[2]).astype(np.int32) if len(ins) > 2 else np.zeros(scale.shape, np.int32)
        if scale.ndim == 1 and scale.size > 1:  # per channel, along ``axis``
            shape = [1] * x.ndim
            shape[gi.attr(i, "axis", 1) % x.ndim] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        return ((x - zp).astype(np.float32) * scale).astype(np.float64)
    src = gi.weight_source(t)
    if src is None or (i is not None and gi.nodes[i].op_type != "Constant"):
        return None  # computed (a Transpose of a weight, say): not read here
    return numpy_helper.to_array(src).astype(np.float64)


def _producer_through_qdq(gi: GraphIndex, t: str) -> int | None:
    """The node computing ``t``, looking through Q/DQ pairs after it."""
    for _ in range(4):
        i = gi.producer.get(t)
        if i is None or gi.nodes[i].op_type not in _QDQ:
            return i
        t = gi.nodes[i].input[0]
    return None


def _channel_axis(gi: GraphIndex, i: int) -> int:
    n = gi.nodes[i]
    if n.op_type == "Gemm":
        return 0 if gi.attr(i, "transB", 0) else 1
    return 1 if n.op_type == "MatMul" else 0  # Conv: [out, in/groups, kh, kw]


def _weight_nodes(float_model: LoadedModel, quant_model: LoadedModel) -> list[tuple[GraphIndex, int, GraphIndex, int]]:
    """Matched Conv/Gemm/MatMul nodes: by output name (through Q/DQ), else the k-th of its op type in both."""
    gf, gq = GraphIndex(float_model), GraphIndex(quant_model)
    pf, pq = _positions(gf), _positions(gq)
    out = []
    for op in _WEIGHT_OPS:
        fs, qs = pf.get(op, []), pq.get(op, [])
        for k, ft in enumerate(fs):
            qi = _producer_through_qdq(gq, _dq_of(gq, ft)) if ft in gq.producer else None
            if (qi is None or gq.nodes[qi].op_type != op) and len(fs) == len(qs):
                qi = gq.producer[qs[k]]
            if qi is not None and gq.nodes[qi].op_type == op:
                out.append((gf, gf.producer[ft], gq, qi))
    return sorted(out, key=lambda m: m[1])


def weight_errors(float_model: LoadedModel, quant_model: LoadedModel) -> list[dict]:
    """For each matched Conv/Gemm/MatMul: SQNR of the quantized weight (dequantized) against the float one, and
    per output channel, with the worst channel. One channel whose range dwarfs the others' (a depthwise layer
    under per-tensor scales) shows as a low worst-channel SQNR."""
    out = []
    for gf, fi, gq, qi in _weight_nodes(float_model, quant_model):
        if len(gf.nodes[fi].input) < 2 or len(gq.nodes[qi].input) < 2:
            continue
        fw, qw = _const(gf, gf.nodes[fi].input[1]), _const(gq, gq.nodes[qi].input[1])
        if fw is None or qw is None or fw.shape != qw.shape:
            continue
        axis = _channel_axis(gf, fi)
        other = tuple(a for a in range(fw.ndim) if a != axis)
        sig, noise = (fw * fw).sum(other), ((fw - qw) ** 2).sum(other)
        per = [sqnr_db(s, e) for s, e in zip(sig, noise)]
        worst = int(np.argmin(per))
        out.append({"name": gf.nodes[fi].input[1], "node": gf.names[fi], "sqnr_db": sqnr_db(sig.sum(), noise.sum()),
                    "worst_channel": worst, "worst_channel_sqnr_db": per[worst]})
    return out
