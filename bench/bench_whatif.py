"""What-if table on the real models, what CLE and bias absorption do and where, and the time of one round trip.

For the float MobileNetV1 0.25/224 and the float twin of MobileNetV2 1.0/224 (quant):

1. ``whatif`` calibrated and compared on the 8 shared images: output SQNR and top-1/top-5 agreement against the
   float model, the equalized float model's own drift ("CLE drift"), and the worst layer per setting
   (``whatif.SETTINGS`` and the CLE rows without bias absorption).
2. Bias absorption variants (``equalize_job``'s ``absorb`` and ``sigmas``): the float output drift they cause on
   the inputs the statistics came from (16 made from the first 4 images by ``augment``) and on 16 others (made
   from the other 4), and the quantized model's output SQNR against the float model on those others (calibrated
   on the first 16).
3. Where CLE changes the error: the layers whose isolated SQNR moves most from the baseline (per-tensor minmax)
   to CLE, each with its weights' SQNR (whole tensor and worst channel) and its activation's range in the float
   model (largest value: the per-tensor quantization range; the median channel's largest value beside it).
4. For MobileNetV2, one round trip timed: keep the baseline's worst layer in float, re-quantize with 32 calibration
   images (the 8 mirrored and cropped), re-compare on the 8 (target under 5 s).

    python bench/bench_whatif.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from onnx import numpy_helper

from mbexplorer.core.compare import compare_job
from mbexplorer.core.decoding import image_files
from mbexplorer.core.equalize import equalize_job
from mbexplorer.core.jobs import run
from mbexplorer.core.loading import load
from mbexplorer.core.preprocess import for_model
from mbexplorer.core.quantize import quantize_job
from mbexplorer.core.runtime import Session
from mbexplorer.core.whatif import (
    CLE_ONLY,
    SETTINGS,
    augment,
    format_table,
    output_agreement_job,
    whatif,
    worst_layer,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
# (absorb, sigmas): the default, the paper's rule for the floor, the paper's padding, the paper's way, none
VARIANTS = (("unpadded", None), ("unpadded", 3.0), ("all", None), ("all", 3.0), ("off", None))


def main() -> None:
    images = image_files([SHARED / "images"])
    models = {"MobileNetV1 0.25/224 float": load(SHARED / "models" / "mobilenet_v1_0.25_224_1_default_1.tflite"),
              "MobileNetV2 1.0/224 float twin":
                  load(SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite").float_twin}
    results = {}
    for name, model in models.items():
        t = time.perf_counter()
        e, rep = run(equalize_job(model, images))
        t_cle = time.perf_counter() - t
        t = time.perf_counter()
        results[name] = result = whatif(model, images, SETTINGS + CLE_ONLY)
        channels = sum(int((c > 0).sum()) for c in rep.absorbed.values())
        print(f"\n{name}  ({len(images)} images; what-if {time.perf_counter() - t:.1f} s, CLE with statistics "
              f"{t_cle:.1f} s)\n  CLE: {rep.pairs} pairs, skipped {dict(rep.skipped)}; absorbed in "
              f"{len(rep.absorbed)} pairs ({channels} channels), not absorbed {dict(rep.not_absorbed)}; "
              f"conv weights on a per-tensor 8-bit grid already: {_on_grid(model)}")
        print(format_table(result))
        _variants(model, images)
        _where(model, e, result)

    model = models["MobileNetV2 1.0/224 float twin"]
    worst = results["MobileNetV2 1.0/224 float twin"]["settings"][0]["worst_node"]
    with tempfile.TemporaryDirectory() as tmp:
        calib = augment(images, Path(tmp), 32)
        times = []
        for _ in range(3):  # three times: a shared machine's other work shows as spread, not as the figure
            t = time.perf_counter()
            q = run(quantize_job(model, calib, exclude=[worst]))
            t_q = time.perf_counter() - t
            c = run(compare_job(model, q, images)).to_dict()
            times.append((time.perf_counter() - t, t_q))
    total, t_q = min(times)
    print(f"\nround trip (MobileNetV2, {worst} kept float, 32 calibration images, compare on 8): "
          f"best of 3 {total:.2f} s (quantize {t_q:.2f} s, compare {total - t_q:.2f} s; target < 5 s), "
          f"all {', '.join(f'{t:.2f}' for t, _ in times)} s; output SQNR {c['output']['sqnr_db']:.2f} dB")


def _variants(model, images) -> None:
    """Float drift and quantized output SQNR of each absorption variant: statistics and calibration on 16 inputs
    made from the first 4 images, measured on 16 made from the other 4 (``augment``)."""
    with tempfile.TemporaryDirectory() as tmp:
        seen, other = augment(images[:4], Path(tmp) / "seen", 16), augment(images[4:], Path(tmp) / "other", 16)
        print(f"  {'absorb':<9} {'floor':<13} {'drift: own':>10} {'others':>12}  {'quantized, others: per-tensor':>29} "
              f"{'per-channel':>12}  (output SQNR dB; top-1)")
        for absorb, sigmas in VARIANTS:
            e, _ = run(equalize_job(model, seen, absorb=absorb, sigmas=sigmas))
            qs = [run(quantize_job(e, seen, per_channel=pc)) for pc in (False, True)]
            (own,) = run(output_agreement_job(model, [e], seen))
            drift, *q = run(output_agreement_job(model, [e, *qs], other))
            floor = "-" if absorb == "off" else "minimum" if sigmas is None else f"mean-{sigmas:g}*std"
            print(f"  {absorb:<9} {floor:<13} {own[0]:6.2f};{own[1]:4.2f} {drift[0]:6.2f};{drift[1]:4.2f}  "
                  f"{q[0][0]:23.2f};{q[0][1]:4.2f} {q[1][0]:6.2f};{q[1][1]:4.2f}")
        qs = [run(quantize_job(model, seen, per_channel=pc)) for pc in (False, True)]
        q = run(output_agreement_job(model, qs, other))
        print(f"  {'no CLE':<23} {'':>10} {'':>12}  {q[0][0]:23.2f};{q[0][1]:4.2f} {q[1][0]:6.2f};{q[1][1]:4.2f}")


def _where(model, cle_model, result: dict) -> None:
    """The layers whose isolated SQNR moves most from the baseline to CLE (per-tensor minmax both). A layer's
    SQNR: its worst tensor's (CLE splits a ReLU6 into Clip and Min, two tensors quantized)."""
    rows = {r["label"]: r for r in result["settings"]}
    layers = {k: _layers(m, rows[label]["comparison"])
              for k, m, label in (("base", model, "per-tensor minmax"), ("cle", cle_model, "CLE"))}
    weights = {k: {w["node"]: w for w in rows[label]["comparison"]["weights"]}
               for k, label in (("base", "per-tensor minmax"), ("cle", "CLE"))}
    moved = sorted((layers["cle"][n][0] - sq, n) for n, (sq, _) in layers["base"].items() if n in layers["cle"])
    shown = moved[:4] + moved[-3:]
    ranges = {k: _ranges(m, [layers[k][n][1] for _, n in shown]) for k, m in (("base", model), ("cle", cle_model))}
    print("  where CLE moves the error (isolated SQNR dB, per-tensor minmax; weights SQNR dB: whole / worst channel; "
          "activation range: largest / median channel's largest, float model):")
    for delta, node in shown:
        wb, wc = weights["base"].get(node), weights["cle"].get(node)
        w = (f"{_db(wb, 'sqnr_db')}/{_db(wb, 'worst_channel_sqnr_db')} -> "
             f"{_db(wc, 'sqnr_db')}/{_db(wc, 'worst_channel_sqnr_db')}") if wb and wc else "-"
        (hb, mb), (hc, mc) = ranges["base"][layers["base"][node][1]], ranges["cle"][layers["cle"][node][1]]
        print(f"    {delta:+7.2f}  {layers['base'][node][0]:6.2f} -> {layers['cle'][node][0]:6.2f}  weights {w:<22} "
              f"range {hb:6.2f}/{mb:5.2f} -> {hc:6.2f}/{mc:5.2f}  {node}")


def _layers(model, comparison: dict) -> dict[str, tuple[float, str]]:
    """layer node -> (lowest isolated SQNR among its tensors, that tensor): a tensor's layer as ``worst_layer``
    finds it (the Conv behind a Clip), else its own node."""
    out = {}
    for t in comparison["tensors"]:
        sq = t["isolated_sqnr_db"]
        if sq is None or not np.isfinite(sq):
            continue
        found = worst_layer(model, {"tensors": [t]})
        node = found[1] if found else t["node"]
        if node not in out or sq < out[node][0]:
            out[node] = sq, t["name"]
    return out


def _db(entry: dict | None, key: str) -> str:
    v = entry and entry[key]
    return "-" if v is None else "inf" if v == np.inf else f"{v:.1f}"


def _ranges(model, tensors: list[str]) -> dict[str, tuple[float, float]]:
    """tensor -> (largest value, median over channels of each channel's largest value) on the 8 images."""
    images = image_files([SHARED / "images"])
    s, pre = Session(model, extra_outputs=tensors), for_model(model)
    most: dict[str, np.ndarray] = {}
    for path in images:
        out = s.run({s.input_names[0]: pre.tensor(path)}, tensors)
        for t, a in out.items():
            m = np.abs(a).max(axis=tuple(i for i in range(a.ndim) if i != 1))
            most[t] = np.maximum(most[t], m) if t in most else m
    return {t: (float(m.max()), float(np.median(m))) for t, m in most.items()}


def _on_grid(model) -> str:
    """How many conv weights take values on one evenly spaced grid of at most 256 levels (a dequantized uint8
    per-tensor weight: a float twin's), out of all."""
    convs = [n.input[1] for n in model.graph.node if n.op_type == "Conv"]
    inits = {t.name: t for t in model.graph.initializer}
    hits = 0
    for name in convs:
        w = numpy_helper.to_array(inits[name]).astype(np.float64)
        tiny = 1e-6 * np.abs(w).max()
        w[np.abs(w) < tiny] = 0.0  # a twin's dead channels hold 1e-13s, not zeros
        v = np.unique(w)
        d = np.diff(v)
        step = d[d > tiny].min() if (d > tiny).any() else 1.0
        k = (v - v[0]) / step
        hits += bool(v.size <= 256 and k.max() <= 255.5 and np.abs(k - np.round(k)).max() < 1e-2)
    return f"{hits} of {len(convs)}"


if __name__ == "__main__":
    main()
