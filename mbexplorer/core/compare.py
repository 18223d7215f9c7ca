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

* Isolated error (:func:`isolated_model`): the error a layer adds by itself, that layer quantized and its inputs
  taken from the float model. Each matched tensor's computing subgraph is cut out of the quantized model and all of
  them run side by side in one small model, fed the float model's values of their inputs.

Both models run once per image with every exposed tensor as an output (and the isolated subgraphs once); the sums
are BLAS dot products of the tensors' float32 values in short chunks, added in float64 (:func:`measure`). The
quantized model runs and is measured on a second thread beside the isolated subgraphs, and the next image is read
on a third (``bench/bench_compare.py`` times it against the two models' plain inference, and its memory).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from .blocks import group_blocks
from .errors import MbxError
from .graph import GraphIndex
from .jobs import Job, Progress, checkpoint, warn
from .model import LoadedModel
from .preprocess import Preprocess, for_model
from .runtime import Session, intermediate_tensors

_QDQ = {"QuantizeLinear", "DequantizeLinear"}
# Ops that only pass a value on: the quantized model has extra ones (TFLite's input quantize is an Identity),
# so counting them would shift every position after them
_SKIP = _QDQ | {"Identity"}
_FLOATS = {"float32", "float64", "float16"}
_ACTIVATIONS = {"Relu", "Clip"}  # what onnxruntime folds between a layer and its QuantizeLinear
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
    fused: list[str] = field(default_factory=list)  # float tensors whose counterpart lives inside a fused int8 kernel


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


def _inside_fused_kernel(gq: GraphIndex, qt: str) -> bool:
    """A layer's output that only an activation reads, whose output only QuantizeLinear reads (a TFLite fused
    ReLU6's ``_preact``): onnxruntime folds layer, activation and quantization into one int8 kernel, so the value
    never exists in the quantized model. Exposing it stops that fusion and the model computes otherwise (measured:
    3 of the 8 shared images' outputs change on MobileNetV2 uint8), so it is not compared."""
    cons = gq.consumers.get(qt, [])
    return bool(cons) and qt not in gq.graph_outputs and all(
        gq.nodes[c].op_type in _ACTIVATIONS and gq.consumers.get(gq.nodes[c].output[0])
        and all(gq.nodes[k].op_type == "QuantizeLinear" for k in gq.consumers[gq.nodes[c].output[0]])
        for c in cons)


def pair(float_model: LoadedModel, quant_model: LoadedModel, by_name: bool = True) -> Pairing:
    """Match the float model's intermediate float tensors with the quantized model's (see the module notes).
    ``by_name=False``: by position only (a check that positions agree with names where both work)."""
    gf, gq = GraphIndex(float_model), GraphIndex(quant_model)
    blocks = group_blocks(gf)
    q_float = {t for t, d in quant_model.dtypes.items() if d in _FLOATS}
    q_produced = set(gq.producer) - set(gq.graph_outputs)
    wanted = [t for t in intermediate_tensors(float_model) if float_model.dtypes.get(t) in _FLOATS]
    wanted_set = set(wanted)  # looked up once per position candidate: a list would make matching quadratic

    found: dict[str, tuple[str, str]] = {}
    fused: list[str] = []
    for t in wanted if by_name else ():
        if t in q_produced:
            qt = _dq_of(gq, t)
            if _inside_fused_kernel(gq, qt):
                fused.append(t)
            elif qt in q_float and _comparable(gq, qt) and _shape_ok(float_model, t, quant_model, qt):
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
            if _inside_fused_kernel(gq, qt) and ft not in found:
                fused.append(ft)
                continue
            if (ft in found or qt in used or ft not in wanted_set or qt not in q_float or qt in gq.graph_outputs
                    or not _comparable(gq, qt)):
                continue
            if _shape_ok(float_model, ft, quant_model, qt):
                found[ft] = (qt, "position")
                used.add(qt)

    pairs, unmatched, fused_set = [], [], set(fused)
    fused = [t for t in wanted if t in fused_set]  # once each, in graph order
    for t in wanted:
        if t in fused_set:
            continue
        if t not in found:
            unmatched.append(t)
            continue
        node = gf.nodes[gf.producer[t]]
        b = blocks.node_block.get(node.name)
        pairs.append(Pair(t, found[t][0], node.name, node.op_type, None if b is None else blocks.blocks[b].name,
                          found[t][1]))
    return Pairing(pairs, unmatched, fused)


# --------------------------------------------------------------------------------------------------
# isolated error


@dataclass
class Isolated:
    """Every matched tensor's subgraph side by side in one model. ``feeds``: its input -> the float model's tensor
    (or ``""``: the float model's input) to feed it; ``outputs[k]``: pair k's output there, None where it has none;
    ``why``: pair k -> the reason it has none."""
    model: onnx.ModelProto | None
    feeds: dict[str, str]
    outputs: list[str | None]
    why: dict[int, str]


def _const_nodes(gq: GraphIndex, t: str, nodes: set[int], inits: set[str]) -> bool:
    """Add what computes the constant ``t`` (initializers, nodes); False when it needs an activation (a Shape)."""
    if t in gq.initializers:
        inits.add(t)
        return True
    i = gq.producer.get(t)
    if i is None or not all(x in gq.constants for x in gq.nodes[i].input if x):
        return False
    nodes.add(i)
    return all(_const_nodes(gq, x, nodes, inits) for x in gq.nodes[i].input if x)


def _behind_qdq(gq: GraphIndex, t: str) -> tuple[str, list[int]]:
    """The tensor before the DequantizeLinear that makes ``t`` and the QuantizeLinear before it, and those
    nodes; ``t`` itself and no nodes when no DequantizeLinear makes it."""
    chain: list[int] = []
    i = gq.producer.get(t)
    if i is not None and gq.nodes[i].op_type == "DequantizeLinear":
        chain.append(i)
        t = gq.nodes[i].input[0]
        i = gq.producer.get(t)
        if i is not None and gq.nodes[i].op_type == "QuantizeLinear":
            chain.append(i)
            t = gq.nodes[i].input[0]
    return t, chain


def _subgraph(gq: GraphIndex, qt: str, float_of: dict[str, str]) -> tuple[set[int], set[str], dict[str, str]] | str:
    """The quantized model's nodes computing ``qt`` from float values: the DequantizeLinear making it and its
    QuantizeLinear, the op before them (a model-local function node included), the Q/DQ on the op's activation
    inputs and its constants (weights through their DQ); the inputs are cut where the float model's value of the
    same tensor is known (``float_of``: quantized tensor -> float one). An unpaired input computed by an op that is
    not a Q/DQ belongs to the layer too (TFLite's AveragePool is AveragePool then a rounding Add). Returns (nodes,
    initializers, {cut tensor: float tensor}), or why there is none.

    An op left in float (no Q/DQ on its output, no quantized weight: a node excluded from quantization) takes its
    inputs after their Q→DQ: that Q/DQ is the quantized producer's output quantization, counted there, and a float
    op adds no error of its own."""
    nodes: set[int] = set()
    inits: set[str] = set()
    cuts: dict[str, str] = {}
    t, chain = _behind_qdq(gq, qt)
    nodes.update(chain)
    i = gq.producer.get(t)
    if i is None or gq.nodes[i].op_type in _QDQ:
        return "no op computes it from float values (it is the dequantized model input)"
    quantized = bool(nodes) or any(gq.nodes[gq.producer[x]].op_type == "DequantizeLinear"
                                   for x in gq.nodes[i].input if x in gq.constants and x in gq.producer)

    def take(i: int, depth: int) -> str | None:
        nodes.add(i)
        for x in gq.nodes[i].input:
            if not x or x in gq.constants:
                continue
            u, chain = _behind_qdq(gq, x)  # a quantized layer's input Q→DQ is its own: cut before them
            if not quantized and x in float_of:
                u, chain = x, []
            f = float_of.get(x, float_of.get(u))
            j = gq.producer.get(u)  # with no Q/DQ before x (the only case the branch below takes), x's producer
            if f is not None:
                nodes.update(chain)
                cuts[u] = f
            elif not chain and j is not None and gq.nodes[j].op_type not in _QDQ and depth < 3:
                why = take(j, depth + 1)
                if why:
                    return why
            else:
                return f"its op's input {x} has no float counterpart (not paired)"
        return None

    why = take(i, 0)
    if why:
        return why
    for n in list(nodes):  # weights through their DQ, scales and zero points, other constants
        for x in gq.nodes[n].input:
            if x and x in gq.constants and not _const_nodes(gq, x, nodes, inits):
                return f"{x} is computed from the shape of an activation"
    return nodes, inits, cuts


def isolated_model(float_model: LoadedModel, quant_model: LoadedModel, pairing: Pairing) -> Isolated:
    """One model holding, side by side, each matched tensor's subgraph (:func:`_subgraph`), its inputs named after
    the float tensors fed to them. A tensor whose op reads an input with no float counterpart (an unpaired tensor,
    or the quantized model's integer input) has no isolated error: None, with the reason in ``why``. The float
    model's input counts as the counterpart of the quantized model's float input of the same shape."""
    gq = GraphIndex(quant_model)
    float_of = {p.quant_name: p.name for p in pairing.pairs}
    fin, qins = float_model.inputs[0].name, gq.graph_inputs
    if len(qins) == 1 and quant_model.dtypes.get(qins[0]) in _FLOATS and _shape_ok(float_model, fin, quant_model,
                                                                                   qins[0]):
        float_of[qins[0]] = ""  # "": the float model's input
    nodes, inits, feeds, outputs, why = [], set(), {}, [], {}
    for k, p in enumerate(pairing.pairs):
        sub = _subgraph(gq, p.quant_name, float_of)
        if isinstance(sub, str):
            outputs.append(None)
            why[k] = sub
            continue
        members, used, cuts = sub
        inits |= used
        names = {u: f"float:{f}" for u, f in cuts.items()}
        feeds.update({f"float:{f}": f for f in cuts.values()})

        def rename(t, k=k, names=names):
            return t if not t or t in gq.initializers else names.get(t, f"{k}:{t}")

        for i in sorted(members):  # in the quantized model's execution order
            n = onnx.NodeProto()
            n.CopyFrom(gq.nodes[i])
            n.name = f"{k}:{n.name}"
            n.input[:] = [rename(t) for t in n.input]
            n.output[:] = [rename(t) for t in n.output]
            nodes.append(n)
        outputs.append(rename(p.quant_name))
    if not feeds:
        return Isolated(None, {}, outputs, why)
    ftype = {f: float_model.dtypes.get(f or fin, "float32") for f in feeds.values()}
    from .runtime import _elem_type  # one mapping of dtype names to ONNX types

    graph = onnx.helper.make_graph(
        nodes, "isolated",
        [onnx.helper.make_tensor_value_info(name, _elem_type(ftype[f]), None) for name, f in feeds.items()],
        [onnx.helper.make_tensor_value_info(o, _elem_type(quant_model.dtypes.get(p.quant_name, "float32")), None)
         for o, p in zip(outputs, pairing.pairs) if o],
        [t for t in quant_model.model.graph.initializer if t.name in inits])
    proto = quant_model.model
    model = onnx.helper.make_model(graph, opset_imports=proto.opset_import, functions=proto.functions,
                                   ir_version=proto.ir_version)
    return Isolated(model, feeds, outputs, why)


# --------------------------------------------------------------------------------------------------
# measuring

F2, E2, FQ, Q2, MAX, N = range(6)


# Elements per float32 dot product: one float32 dot of a whole million-element tensor was 4e-6 off its float64
# sum, chunks this short stay near 1e-9; the matmul of stacked vectors calls BLAS's dot on each, as fast as one
# dot of the whole tensor
_CHUNK = 1024


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a·b of two 1-D arrays of one float dtype: BLAS dot products over chunks of ``_CHUNK`` elements, their
    sums and the short remainder's in float64."""
    m = a.size - a.size % _CHUNK
    chunks = a[:m].reshape(-1, 1, _CHUNK) @ b[:m].reshape(-1, _CHUNK, 1)
    return float(chunks.sum(dtype=np.float64) + np.dot(a[m:].astype(np.float64), b[m:].astype(np.float64)))


@dataclass
class Accumulators:
    """Running float64 sums per tensor, one row each: Σf², Σ(f−q)², Σf·q, Σq², max |f−q|, count."""
    sums: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> Accumulators:
        return cls(np.zeros((n, 6), np.float64))

    def update(self, row: int, f: np.ndarray, q: np.ndarray) -> None:
        self.add([row], measure([f], [q]))

    def add(self, rows: Sequence[int], figures: np.ndarray) -> None:
        """Add :func:`measure`'s figures (one line per row) to the rows."""
        rows = list(rows)
        s = self.sums
        s[rows, :MAX] += figures[:, :MAX]
        s[rows, MAX] = np.maximum(s[rows, MAX], figures[:, MAX])
        s[rows, N] += figures[:, N]

    def stats(self, row: int) -> dict:
        s = self.sums[row]
        return {"sqnr_db": sqnr_db(s[F2], s[E2]), "cosine": _cosine(s[FQ], s[F2], s[Q2]),
                "mse": float(s[E2] / s[N]) if s[N] else None, "max_abs": float(s[MAX]),
                "rel_l2": math.sqrt(s[E2] / s[F2]) if s[F2] else (0.0 if s[E2] == 0 else math.inf)}


def measure(fs: Sequence[np.ndarray], qs: Sequence[np.ndarray], full: bool = True,
            scratch: dict | None = None) -> np.ndarray:
    """Each pair of tensors' figures, one line each in :class:`Accumulators`' columns. It reads only its arguments,
    so it can run on another thread. ``full=False``: only Σ(f−q)² and the count, two passes over the values instead
    of six (the isolated error's SQNR takes Σf² from the full measure of the same float tensors). ``scratch``:
    where to keep the buffer f − q is written to, for the next call on the same thread (a fresh buffer per tensor
    costs page faults; one per call made a comparison's memory peak vary from image to image).

    Sums of products are :func:`_dot`'s: float32 BLAS dot products over short chunks, added in float64. On
    MobileNetV2's 101 tensors they are within 7e-8 of numpy's float64 sums of the same float32 values, and
    Σ(f−q)² within 2e-7 (f − q is taken in float32). tests/core/test_compare.py checks 2e-7 on random tensors
    and 1e-6 on the models' figures, far below the two decimals of a dB shown (1e-6 of 30 dB is 3e-5 dB). A
    float64 copy of every tensor, or numpy's float64 sums of float32 products (cast in small buffers), took three
    times as long."""
    out = np.zeros((len(fs), 6), np.float64)
    scratch = {} if scratch is None else scratch  # dtype -> buffer
    for k, (f, q) in enumerate(zip(fs, qs)):
        f, q = np.ravel(f), np.ravel(q)
        if f.size != q.size:
            raise MbxError(f"two tensors compared differ in size ({f.size} and {q.size} values).")
        if f.dtype != q.dtype or f.dtype not in (np.float32, np.float64):  # float16 squares overflow
            f, q = f.astype(np.float64), q.astype(np.float64)
        if f.dtype not in scratch or scratch[f.dtype].size < f.size:
            scratch[f.dtype] = np.empty(max(f.size, *(x.size for x in fs)), f.dtype)
        d = np.subtract(f, q, out=scratch[f.dtype][:f.size])
        out[k, E2], out[k, N] = _dot(d, d), f.size
        if full:
            out[k, F2], out[k, Q2] = _dot(f, f), _dot(q, q)
            # Σf·q = (Σf² + Σq² − Σ(f−q)²) / 2, a pass over two tensors saved; its error is the three sums' own,
            # under 1e-7 of Σf², so a cosine keeps its digits
            out[k, FQ] = (out[k, F2] + out[k, Q2] - out[k, E2]) / 2
            out[k, MAX] = max(float(d.max(initial=0.0)), -float(d.min(initial=0.0)))
    return out


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
    iso_acc: Accumulators | None = None  # rows as ``acc``, Σf², Σ(f−q)², count (for the SQNR); None: not measured
    isolated_rows: list[bool] = field(default_factory=list)  # pair k has an isolated error
    images: int = 0
    top1: int = 0
    top5: int = 0
    failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def isolated(i):
            ok = self.iso_acc is not None and self.isolated_rows[i] and self.images
            return self.iso_acc.stats(i)["sqnr_db"] if ok else None

        tensors = [{"name": p.name, "quant_name": p.quant_name, "node": p.node, "op_type": p.op_type,
                    "block": p.block, **self.acc.stats(i), "isolated_sqnr_db": isolated(i)}
                   for i, p in enumerate(self.pairing.pairs)]
        n = self.images
        output = {"top1_agreement": self.top1 / n if n else None, "top5_agreement": self.top5 / n if n else None,
                  "sqnr_db": self.output_acc.stats(0)["sqnr_db"] if n else None}
        return {"tensors": tensors, "weights": self.weights, "output": output, "unmatched": self.pairing.unmatched,
                "fused": self.pairing.fused}


def strict_json(result: dict) -> dict:
    """:meth:`Comparison.to_dict`'s result, ready for strict JSON (no Infinity, which ``jq`` and most parsers
    refuse): an infinite SQNR (the two values identical) is written None, with ``"identical": true`` added to that
    entry (``"isolated_identical": true`` for the isolated SQNR); any other non-finite figure (-inf: a float tensor
    all zero) is None too."""
    def entry(d: dict) -> dict:
        out = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in d.items()}
        if d.get("sqnr_db") == math.inf:
            out["identical"] = True
        if d.get("isolated_sqnr_db") == math.inf:
            out["isolated_identical"] = True
        return out

    return {"tensors": [entry(t) for t in result["tensors"]], "weights": [entry(w) for w in result["weights"]],
            "output": entry(result["output"]), "unmatched": list(result["unmatched"]),
            "fused": list(result.get("fused", []))}


def _tensors(fpre: Preprocess, qpre: Preprocess, path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The two models' input tensors for one file: decoded once when both decode it alike, made once when both
    take the same (a float model and its onnxruntime QDQ model)."""
    if (fpre.decoder, fpre.alpha) != (qpre.decoder, qpre.alpha):
        return fpre.tensor(path), qpre.tensor(path)
    picture = fpre.picture(path)
    fx = fpre(picture)
    return fx, fx if qpre == fpre else qpre(picture)


def agreement(reference: np.ndarray, output: np.ndarray) -> tuple[bool, bool]:
    """Whether the reference's top-1 class is ``output``'s top-1, and among its top 5 (ties by index, as top_k)."""
    best = int(np.argmax(reference))
    return best == int(np.argmax(output)), best in np.argsort(-output, kind="stable")[:5]


def compare_job(float_model: LoadedModel, quant_model: LoadedModel, images: Sequence[str | Path],
                preset: str | None = None, isolated: bool = True) -> Job:
    """Run both models on every image and measure each matched tensor; returns a :class:`Comparison`.
    ``isolated``: also each tensor's isolated error (:func:`isolated_model`), at the cost of a third run.

    Top-1 agreement: the share of images whose two top-1 classes are the same; top-5 agreement: the share whose
    float top-1 class is among the quantized model's top 5 (the float model taken as the ground truth)."""
    yield Progress(0.0, "matching tensors")
    images = list(images)
    pairing = pair(float_model, quant_model)
    weights = weight_errors(float_model, quant_model)
    pairs = pairing.pairs
    fo, qo = float_model.outputs[0].name, quant_model.outputs[0].name
    # The float model runs alone, then the isolated subgraphs beside the quantized model: those two get half the
    # cores each (one thread each on two cores took 5-8 % less CPU time than onnxruntime's default of two, whose
    # hand-offs cost more than they gain on ops this small); without the isolated subgraphs, the quantized model
    # runs alone too. spin=False: the sessions, the measuring and the reading of images share the cores, which
    # idle onnxruntime threads would otherwise hold spinning.
    threads = max(1, (os.cpu_count() or 2) // 2) if isolated else None
    fs = Session(float_model, extra_outputs=[p.name for p in pairs], spin=False)
    qs = Session(quant_model, extra_outputs=[p.quant_name for p in pairs], threads=threads, spin=False)
    iso = isolated_model(float_model, quant_model, pairing) if isolated else None
    iso_s = None
    if iso is not None and iso.model is not None:
        try:
            iso_s = Session(iso.model, threads=threads, spin=False)
        except Exception as exc:  # onnxruntime refusing a cut-out subgraph must not cost the rest of the comparison
            yield warn(f"the isolated errors could not be computed (onnxruntime: {str(exc).splitlines()[0]})")
    fpre, qpre = for_model(float_model, preset), for_model(quant_model, preset)
    c = Comparison(pairing, Accumulators.zeros(len(pairs)), Accumulators.zeros(1), weights)
    if iso_s is not None:
        c.iso_acc, c.isolated_rows = Accumulators.zeros(len(pairs)), [o is not None for o in iso.outputs]
    iso_rows = [k for k, o in enumerate(iso.outputs) if o] if iso_s is not None else []

    def load(path: str | Path) -> tuple[np.ndarray, np.ndarray] | MbxError:  # on the loader
        try:
            return _tensors(fpre, qpre, path)
        except MbxError as exc:
            return exc

    scratch = {}, {}  # measure's buffers: the runner's, this thread's

    def measured(qx: np.ndarray, fr: dict) -> tuple[dict, np.ndarray]:  # on the runner
        qr = qs.run({qs.input_names[0]: qx})
        return qr, measure([fr[p.name] for p in pairs], [qr[p.quant_name] for p in pairs], scratch=scratch[0])

    # Three threads (onnxruntime, numpy and the decoders release the GIL): this one runs the float model, then the
    # isolated subgraphs, and measures them; the runner runs the quantized model and measures it meanwhile; the
    # loader reads the next image. Only this thread touches ``c``. Memory stays flat only so: one image's tensors
    # are alive at a time (holding them over the next image's runs, to measure them meanwhile, made onnxruntime's
    # arenas fragment and grow with the number of images), and the float and quantized models never run at the
    # same time (that made the process's memory grow over the first 16 images, 15 % on MobileNetV2).
    loader, runner = ThreadPoolExecutor(1), ThreadPoolExecutor(1)
    try:
        ahead = loader.submit(load, images[0]) if images else None
        for k, path in enumerate(images):
            yield Progress(k / max(len(images), 1), f"comparing on {Path(path).name}")
            inputs = ahead.result()
            ahead = loader.submit(load, images[k + 1]) if k + 1 < len(images) else None
            if isinstance(inputs, MbxError):  # one unreadable picture does not stop the others
                c.failed.append(str(path))
                yield warn(f"{Path(path).name}: {inputs}")
                continue
            fx, qx = inputs
            fr = fs.run({fs.input_names[0]: fx})  # every output: the float values feed the isolated subgraphs too
            checkpoint()
            q_job = runner.submit(measured, qx, fr)
            try:
                if iso_s is not None:
                    ir = iso_s.run({name: fx if f == "" else fr[f] for name, f in iso.feeds.items()})
                    iso_figures = measure([fr[pairs[r].name] for r in iso_rows],
                                          [ir[iso.outputs[r]] for r in iso_rows], full=False, scratch=scratch[1])
                    del ir
            finally:
                qr, figures = q_job.result()
            if iso_s is not None:
                iso_figures[:, F2] = figures[iso_rows, F2]  # the same float tensors
                c.iso_acc.add(iso_rows, iso_figures)
            checkpoint()
            f_out, q_out = fr[fo].ravel(), qr[qo].ravel()
            if f_out.size != q_out.size:
                raise MbxError(f"the models' outputs differ in size ({f_out.size} and {q_out.size}); compare two "
                               "versions of one classifier.")
            c.acc.add(range(len(pairs)), figures)
            c.output_acc.update(0, f_out, q_out)
            one, five = agreement(f_out, q_out)
            c.top1 += one
            c.top5 += five
            c.images += 1
            del fr, qr, f_out, q_out
            yield Partial(c.images, c.to_dict())
            checkpoint()
    finally:
        runner.shutdown()
        loader.shutdown(cancel_futures=True)
    yield Progress(1.0, "done")
    return c


# --------------------------------------------------------------------------------------------------
# weights


def constant(gi: GraphIndex, t: str) -> np.ndarray | None:
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


def channel_axis(gi: GraphIndex, i: int) -> int:
    n = gi.nodes[i]
    if n.op_type == "Gemm":
        return 0 if gi.attr(i, "transB", 0) else 1
    return 1 if n.op_type == "MatMul" else 0  # Conv: [out, in/groups, kh, kw]


def weight_nodes(float_model: LoadedModel, quant_model: LoadedModel) -> list[tuple[GraphIndex, int, GraphIndex, int]]:
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


def channel_sums(gf: GraphIndex, fi: int, gq: GraphIndex, qi: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per output channel, sum f^2 and sum (f - q)^2 of a matched layer's float weight f and quantized
    (dequantized) weight q; None when either is not a constant of the same shape."""
    if len(gf.nodes[fi].input) < 2 or len(gq.nodes[qi].input) < 2:
        return None
    fw, qw = constant(gf, gf.nodes[fi].input[1]), constant(gq, gq.nodes[qi].input[1])
    if fw is None or qw is None or fw.shape != qw.shape:
        return None
    other = tuple(a for a in range(fw.ndim) if a != channel_axis(gf, fi))
    return (fw * fw).sum(other), ((fw - qw) ** 2).sum(other)


def weight_errors(float_model: LoadedModel, quant_model: LoadedModel) -> list[dict]:
    """For each matched Conv/Gemm/MatMul: SQNR of the quantized weight (dequantized) against the float one, and
    per output channel, with the worst channel. One channel whose range dwarfs the others' (a depthwise layer
    under per-tensor scales) shows as a low worst-channel SQNR."""
    out = []
    for gf, fi, gq, qi in weight_nodes(float_model, quant_model):
        sums = channel_sums(gf, fi, gq, qi)
        if sums is None:
            continue
        sig, noise = sums
        per = [sqnr_db(s, e) for s, e in zip(sig, noise)]
        worst = int(np.argmin(per))
        out.append({"name": gf.nodes[fi].input[1], "node": gf.names[fi], "sqnr_db": sqnr_db(sig.sum(), noise.sum()),
                    "worst_channel": worst, "worst_channel_sqnr_db": per[worst]})
    return out
