"""What-if: quantize one float model under several settings and measure each against the float model.

Each :class:`Setting` changes one thing from the baseline (per-tensor, minmax): per-channel weights, another
calibration method, cross-layer equalization (``equalize``), or the worst layer of the baseline kept in float.
The change that helps most is the one with the highest output SQNR, as measured here, not as expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .compare import compare_job
from .equalize import equalize
from .graph import GraphIndex
from .jobs import Job, Progress, nested, run
from .model import LoadedModel
from .quantize import quantize_job

_LAYER_OPS = {"Conv", "Gemm", "MatMul"}
_PASS = {"Relu", "Clip", "BatchNormalization", "Min"}  # between a layer and the tensor compared for it


@dataclass(frozen=True)
class Setting:
    label: str
    per_channel: bool = False
    method: str = "minmax"
    cle: bool = False
    keep_worst: bool = False  # the baseline's worst layer stays float


BASELINE = Setting("per-tensor minmax")
SETTINGS = (BASELINE, Setting("per-channel", per_channel=True), Setting("entropy", method="entropy"),
            Setting("percentile", method="percentile"), Setting("CLE", cle=True),
            Setting("worst layer float", keep_worst=True), Setting("per-channel + CLE", per_channel=True, cle=True))


def worst_layer(float_model: LoadedModel, comparison: dict) -> tuple[str, str, float] | None:
    """(tensor, layer node, SQNR) of the compared tensor with the lowest SQNR, isolated where the comparison has
    it, else accumulated, among those a Conv/Gemm/MatMul produces (through its activation): the node to keep in
    float is a layer, not a Softmax or Reshape that only carries the error on."""
    gi = GraphIndex(float_model)
    best = None
    for t in comparison["tensors"]:
        sq = t["isolated_sqnr_db"] if t.get("isolated_sqnr_db") is not None else t["sqnr_db"]
        i = gi.producer.get(t["name"])
        while i is not None and gi.nodes[i].op_type in _PASS:
            i = gi.producer.get(gi.nodes[i].input[0])
        if i is None or gi.nodes[i].op_type not in _LAYER_OPS or sq is None or math.isnan(sq):
            continue
        if best is None or sq < best[2]:
            best = (t["name"], gi.names[i], sq)
    return best


def whatif_job(model: LoadedModel, images: Sequence[str | Path], settings: Sequence[Setting] = SETTINGS,
               calibration: Sequence[str | Path] | None = None) -> Job:
    """Quantize ``model`` (float) under each setting, calibrated on ``calibration`` (default ``images``), and
    compare on ``images``. Returns {"settings": [row per setting], "best": label or None, "best_gain_db"}; each row:
    label, options, excluded nodes, output_sqnr_db, top1, top5, worst_tensor, worst_node, worst_sqnr_db."""
    calibration = list(calibration or images)
    cle_model, worst, rows = None, None, []
    order = sorted(settings, key=lambda s: s != BASELINE)  # the baseline first: keep_worst needs its worst layer
    if BASELINE not in order and any(s.keep_worst for s in order):
        order.insert(0, BASELINE)
    for k, s in enumerate(order):
        lo, hi = k / len(order), (k + 1) / len(order)
        yield Progress(lo, f"what-if: {s.label}")
        base = model
        if s.cle:
            cle_model = cle_model or equalize(model)
            base = cle_model
        exclude = [worst[1]] if s.keep_worst and worst else []
        q = yield from nested(quantize_job(base, calibration, per_channel=s.per_channel, method=s.method,
                                           exclude=exclude), lo, (lo + hi) / 2)
        # against its own float model: CLE keeps the outputs but rescales channels inside, so its tensors
        # only match the equalized float model's
        c = (yield from nested(compare_job(base, q, images), (lo + hi) / 2, hi)).to_dict()
        w = worst_layer(base, c)
        if s == BASELINE:
            worst = w
        rows.append({"label": s.label, "per_channel": s.per_channel, "method": s.method, "cle": s.cle,
                     "excluded": exclude, "output_sqnr_db": c["output"]["sqnr_db"],
                     "top1": c["output"]["top1_agreement"], "top5": c["output"]["top5_agreement"],
                     "worst_tensor": w and w[0], "worst_node": w and w[1], "worst_sqnr_db": w and w[2]})
    rows = [r for s in settings for r in rows if r["label"] == s.label]  # back in the order asked
    base = next((r for r in rows if r["label"] == BASELINE.label), None)
    changes = [r for r in rows if r is not base and r["output_sqnr_db"] is not None]
    best = max(changes, key=lambda r: r["output_sqnr_db"], default=None)
    gain = best["output_sqnr_db"] - base["output_sqnr_db"] if best and base else None
    yield Progress(1.0, "what-if done")
    return {"settings": rows, "best": best and best["label"], "best_gain_db": gain}


def whatif(model: LoadedModel, images: Sequence[str | Path], settings: Sequence[Setting] = SETTINGS,
           calibration: Sequence[str | Path] | None = None) -> dict:
    """:func:`whatif_job`, run to its end (no progress shown)."""
    return run(whatif_job(model, images, settings, calibration))


def format_table(result: dict) -> str:
    """The rows as a plain-text table, the best change named under it."""
    def f(x, spec):
        return "-" if x is None else format(x, spec)

    lines = [f"{'setting':<20} {'out SQNR dB':>11} {'top1':>5} {'top5':>5} {'worst SQNR':>10}  worst layer"]
    for r in result["settings"]:
        lines.append(f"{r['label']:<20} {f(r['output_sqnr_db'], '11.2f')} {f(r['top1'], '5.2f')} "
                     f"{f(r['top5'], '5.2f')} {f(r['worst_sqnr_db'], '10.2f')}  {r['worst_node'] or '-'}")
    if result["best"]:
        lines.append(f"helps most: {result['best']} ({result['best_gain_db']:+.2f} dB output SQNR)")
    return "\n".join(lines)


def augment(images: Sequence[str | Path], folder: Path, count: int = 32) -> list[Path]:
    """``count`` calibration files in ``folder`` from ``images``: each as it is, mirrored, centre-cropped to 80 %,
    and both, taken in turn: a larger calibration set from a few pictures."""
    from PIL import Image, ImageOps

    def crop(im):
        w, h = im.size
        return im.crop((w // 10, h // 10, w - w // 10, h - h // 10))

    variants = (lambda im: im, ImageOps.mirror, crop, lambda im: crop(ImageOps.mirror(im)))
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(count):
        src = Path(images[k % len(images)])
        v = (k // len(images)) % len(variants)
        path = folder / f"{src.stem}_{k}.png"
        with Image.open(src) as im:
            variants[v](im.convert("RGB")).save(path)
        out.append(path)
    return out
