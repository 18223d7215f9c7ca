"""One matched tensor pair up close: value histograms, a float-vs-quantized scatter, the quantization parameters and
how much of the float range they clip, and a weight-bearing node's per-output-channel weight SQNR.

Meant for a handful of images (the Quantization tab passes at most 8): every value is kept in memory, unlike
:func:`compare.compare_job`'s running sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from onnx import numpy_helper

from .compare import channel_sums, sqnr_db, weight_nodes
from .errors import MbxError
from .graph import GraphIndex
from .model import LoadedModel
from .preprocess import for_model
from .runtime import Session

SCATTER_POINTS = 5000
SEED = 0  # a fixed subsample: the same layer shows the same scatter every time


def _get(pair, key: str):
    """A :class:`compare.Pair` or a row of ``Comparison.to_dict()["tensors"]``."""
    return pair[key] if isinstance(pair, dict) else getattr(pair, key)


def quant_params(gq: GraphIndex, t: str) -> dict | None:
    """Scale, zero point and integer range of the DequantizeLinear making ``t`` (or the QuantizeLinear taking it);
    None when ``t`` is not quantized or its scale is not one constant."""
    i = gq.producer.get(t)
    if i is None or gq.nodes[i].op_type != "DequantizeLinear":
        users = [u for u in gq.consumers.get(t, []) if gq.nodes[u].op_type == "QuantizeLinear"]
        if not users:
            return None
        i = users[0]
    ins = [gq.initializers.get(x) for x in gq.nodes[i].input[1:3] if x]
    if not ins or not all(ins):
        return None
    scale = numpy_helper.to_array(ins[0])
    zp = numpy_helper.to_array(ins[1]) if len(ins) > 1 else np.zeros((), np.uint8)  # ONNX's default: uint8
    if scale.size != 1 or zp.size != 1:
        return None
    info = np.iinfo(zp.dtype)
    s, z = float(scale.ravel()[0]), int(zp.ravel()[0])
    return {"scale": s, "zero_point": z, "dtype": zp.dtype.name, "qmin": int(info.min), "qmax": int(info.max),
            "range": ((info.min - z) * s, (info.max - z) * s)}


def channel_sqnr(float_model: LoadedModel, quant_model: LoadedModel, node: str, tensor: str) -> list[float] | None:
    """Per output channel SQNR of the quantized (dequantized) weight of the float node ``node`` (making
    ``tensor``) against its float weight; None when it is not a matched Conv/Gemm/MatMul with constant weights.
    An activation's tensor shows the layer behind it: with a fused ReLU6 the quantized model has no value between
    the two (``compare`` compares the activation's output), and the weights are that layer's."""
    gi = GraphIndex(float_model)
    i = gi.producer.get(tensor)
    if i is not None and gi.nodes[i].op_type in ("Relu", "Clip") and gi.nodes[i].input[0] in gi.producer:
        layer = gi.nodes[gi.producer[gi.nodes[i].input[0]]]
        node, tensor = layer.name, layer.output[0]
    for gf, fi, gq, qi in weight_nodes(float_model, quant_model):
        if gf.nodes[fi].name != node and gf.nodes[fi].output[0] != tensor:
            continue
        sums = channel_sums(gf, fi, gq, qi)
        return None if sums is None else [sqnr_db(s, e) for s, e in zip(*sums)]
    return None


def layer_detail(float_model: LoadedModel, quant_model: LoadedModel, pair, images: Sequence[str | Path],
                 preset: str | None = None, bins: int = 64) -> dict:
    """Run both models on ``images`` with the pair's two tensors exposed; see the module notes for what comes back."""
    name, qname = _get(pair, "name"), _get(pair, "quant_name")
    fs, qs = Session(float_model, extra_outputs=[name]), Session(quant_model, extra_outputs=[qname])
    fpre, qpre = for_model(float_model, preset), for_model(quant_model, preset)
    fv, qv = [], []
    for path in images:
        fv.append(fs.run({fs.input_names[0]: fpre.tensor(path)}, [name])[name].ravel())
        qv.append(qs.run({qs.input_names[0]: qpre.tensor(path)}, [qname])[qname].ravel())
    if not fv:
        raise MbxError("no images to look at the layer on.")
    f, q = np.concatenate(fv).astype(np.float64), np.concatenate(qv).astype(np.float64)
    if f.size != q.size:
        raise MbxError(f"{name}: the two tensors differ in size ({f.size} and {q.size}).")
    lo, hi = float(min(f.min(), q.min())), float(max(f.max(), q.max()))
    if lo == hi:  # a constant tensor: np.histogram needs a range with some width
        lo, hi = lo - 0.5, hi + 0.5
    fc, edges = np.histogram(f, bins=bins, range=(lo, hi))
    qc, _ = np.histogram(q, bins=bins, range=(lo, hi))
    rng = np.random.default_rng(SEED)
    pick = np.sort(rng.choice(f.size, size=min(f.size, SCATTER_POINTS), replace=False))
    qp = quant_params(GraphIndex(quant_model), qname)
    clipped = None if qp is None else float(np.mean((f < qp["range"][0]) | (f > qp["range"][1])))
    return {"name": name, "quant_name": qname, "node": _get(pair, "node"), "op_type": _get(pair, "op_type"),
            "values": int(f.size), "images": len(fv), "bin_edges": edges, "float_counts": fc, "quant_counts": qc,
            "scatter_float": f[pick], "scatter_quant": q[pick], "quant": qp,
            "observed": (float(f.min()), float(f.max())), "clipped_fraction": clipped,
            "channel_sqnr_db": channel_sqnr(float_model, quant_model, _get(pair, "node"), name)}
