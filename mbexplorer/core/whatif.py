"""What-if: quantize one float model under several settings and measure each against the float model.

Each :class:`Setting` changes one thing from the baseline (per-tensor, minmax): per-channel weights, another
calibration method, cross-layer equalization with bias absorption (``equalize``, its statistics taken on the
calibration images), or the worst layer of the baseline kept in float. The change that helps most is the one with
the highest output SQNR, as measured here, not as expected.

A CLE row's figures: the output SQNR and top-1/top-5 agreement against the float model as given (absorption is not
exact everywhere: its own drift is the row's ``float_drift_sqnr_db``), the per-layer comparison and worst layer
against the equalized float model, whose tensors are the quantized model's (channels rescaled inside).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .compare import Accumulators, agreement, compare_job
from .equalize import equalize_job
from .errors import MbxError
from .graph import GraphIndex
from .jobs import Job, Progress, checkpoint, nested, run
from .model import LoadedModel
from .preprocess import for_model
from .quantize import quantize_job
from .runtime import Session

_LAYER_OPS = {"Conv", "Gemm", "MatMul"}
_PASS = {"Relu", "Clip", "BatchNormalization", "Min"}  # between a layer and the tensor compared for it


@dataclass(frozen=True)
class Setting:
    label: str
    per_channel: bool = False
    method: str = "minmax"
    cle: bool = False
    keep_worst: bool = False  # the baseline's worst layer stays float
    absorb: bool = True  # with cle: bias absorption (equalize's default); False shows what equalization alone does


BASELINE = Setting("per-tensor minmax")
SETTINGS = (BASELINE, Setting("per-channel", per_channel=True), Setting("entropy", method="entropy"),
            Setting("percentile", method="percentile"), Setting("CLE", cle=True),
            Setting("worst layer float", keep_worst=True), Setting("per-channel + CLE", per_channel=True, cle=True))
# not in SETTINGS (one more quantization): what bias absorption adds, for ``bench/bench_whatif.py``
CLE_ONLY = (Setting("CLE, no absorption", cle=True, absorb=False),
            Setting("per-channel + CLE, no absorption", per_channel=True, cle=True, absorb=False))


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


@dataclass
class Trial:
    """One setting tried: the quantized model and what it measured."""
    setting: Setting
    quantized: LoadedModel
    base: LoadedModel  # the float model it was quantized from (the equalized one under CLE)
    comparison: dict  # Comparison.to_dict() of ``quantized`` against ``base``
    images: int  # compared on (readable ones)
    output: tuple  # (output SQNR, top-1, top-5 agreement) against the float model as given
    drift: float | None  # a CLE float model's output SQNR against the model as given; None without CLE
    excluded: list[str]


def trial_job(model: LoadedModel, setting: Setting, calibration: Sequence[str | Path], images: Sequence[str | Path],
              exclude: Sequence[str] = (), equalized: tuple[LoadedModel, float | None] | None = None) -> Job:
    """Quantize ``model`` (float) as ``setting`` says (``exclude``: nodes kept in float), calibrated on
    ``calibration``, and compare on ``images``; returns a :class:`Trial`. ``equalized``: a CLE model (and its drift,
    if known) made earlier for the same model and calibration, so several CLE settings equalize once."""
    calibration = list(calibration)
    base, drift = model, None
    if setting.cle:
        if equalized is None:
            e, _ = yield from nested(equalize_job(model, calibration, absorb="unpadded" if setting.absorb else "off"),
                                     0.0, 0.2)
            equalized = e, None
        base, drift = equalized
    q = yield from nested(quantize_job(base, calibration, per_channel=setting.per_channel, method=setting.method,
                                       exclude=list(exclude)), 0.2, 0.55)
    # against its own float model: CLE keeps the outputs but rescales channels inside, so its tensors only match
    # the equalized float model's
    comparison = yield from nested(compare_job(base, q, images), 0.55, 0.85)
    c = comparison.to_dict()
    out = c["output"]
    output = (out["sqnr_db"], out["top1_agreement"], out["top5_agreement"])
    if setting.cle:  # the outputs against the model as given: the drift of absorption counts too
        against = [q] + ([base] if drift is None else [])
        output, *rest = yield from nested(output_agreement_job(model, against, images), 0.85, 1.0)
        if rest:
            drift = rest[0][0]
    return Trial(setting, q, base, c, comparison.images, output, drift, list(exclude))


def whatif_job(model: LoadedModel, images: Sequence[str | Path], settings: Sequence[Setting] = SETTINGS,
               calibration: Sequence[str | Path] | None = None, exclude: Sequence[str] = ()) -> Job:
    """Quantize ``model`` (float) under each setting, calibrated on ``calibration`` (default ``images``), and
    compare on ``images``; the nodes in ``exclude`` stay float in every setting. Returns {"settings": [row per
    setting], "best": label or None, "best_gain_db"}; each row: label, options, excluded nodes, output_sqnr_db,
    top1, top5 (against ``model``), float_drift_sqnr_db (a CLE float model's outputs against ``model``'s; None
    without CLE), worst_tensor, worst_node, worst_sqnr_db, and comparison (``Comparison.to_dict()`` against the
    setting's own float model)."""
    calibration = list(calibration or images)
    cle_models: dict[bool, tuple[LoadedModel, float | None]] = {}  # absorb -> (equalized model, its drift)
    worst, rows = None, []
    order = sorted(settings, key=lambda s: s != BASELINE)  # the baseline first: keep_worst needs its worst layer
    if BASELINE not in order and any(s.keep_worst for s in order):
        order.insert(0, BASELINE)
    for k, s in enumerate(order):
        lo, hi = k / len(order), (k + 1) / len(order)
        yield Progress(lo, f"what-if: {s.label}")
        kept = list(dict.fromkeys([*exclude, *([worst[1]] if s.keep_worst and worst else [])]))
        t = yield from nested(trial_job(model, s, calibration, images, kept, cle_models.get(s.absorb) if s.cle
                                        else None), lo, hi)
        if s.cle:
            cle_models[s.absorb] = t.base, t.drift
        w = worst_layer(t.base, t.comparison)
        if s == BASELINE:
            worst = w
        sqnr, top1, top5 = t.output
        rows.append({"label": s.label, "per_channel": s.per_channel, "method": s.method, "cle": s.cle,
                     "absorb": s.cle and s.absorb, "excluded": kept, "output_sqnr_db": sqnr, "top1": top1,
                     "top5": top5, "float_drift_sqnr_db": t.drift, "worst_tensor": w and w[0],
                     "worst_node": w and w[1], "worst_sqnr_db": w and w[2], "comparison": t.comparison})
    rows = [r for s in settings for r in rows if r["label"] == s.label]  # back in the order asked
    base = next((r for r in rows if r["label"] == BASELINE.label), None)
    changes = [r for r in rows if r is not base and r["output_sqnr_db"] is not None]
    best = max(changes, key=lambda r: r["output_sqnr_db"], default=None)
    gain = best["output_sqnr_db"] - base["output_sqnr_db"] if best and base else None
    yield Progress(1.0, "what-if done")
    return {"settings": rows, "best": best and best["label"], "best_gain_db": gain}


def output_agreement_job(reference: LoadedModel, models: Sequence[LoadedModel],
                         images: Sequence[str | Path]) -> Job:
    """[(output SQNR, top-1, top-5 agreement)] of each of ``models`` against ``reference`` on ``images``, as
    ``compare_job`` measures them (top-5: the reference's top-1 among the model's top 5); an unreadable image is
    left out (``compare_job`` warns of it)."""
    sessions = [Session(m) for m in (reference, *models)]
    pres = [for_model(m) for m in (reference, *models)]
    acc, top1, top5, n = Accumulators.zeros(len(models)), [0] * len(models), [0] * len(models), 0
    for k, path in enumerate(images):
        yield Progress(k / max(len(images), 1), f"outputs against {reference.name}: {Path(path).name}")
        try:
            feeds = [pre.tensor(path) for pre in pres]
        except MbxError:
            continue
        ref, *outs = (s.run({s.input_names[0]: x}, [s.output_names[0]])[s.output_names[0]].ravel()
                      for s, x in zip(sessions, feeds))
        checkpoint()
        for j, o in enumerate(outs):
            acc.update(j, ref, o)
            one, five = agreement(ref, o)
            top1[j] += one
            top5[j] += five
        n += 1
    return [(acc.stats(j)["sqnr_db"] if n else None, top1[j] / n if n else None, top5[j] / n if n else None)
            for j in range(len(models))]


def whatif(model: LoadedModel, images: Sequence[str | Path], settings: Sequence[Setting] = SETTINGS,
           calibration: Sequence[str | Path] | None = None, exclude: Sequence[str] = ()) -> dict:
    """:func:`whatif_job`, run to its end (no progress shown)."""
    return run(whatif_job(model, images, settings, calibration, exclude))


def format_table(result: dict) -> str:
    """The rows as a plain-text table, the best change named under it."""
    def f(x, spec):
        return "-".rjust(int(spec.split(".")[0])) if x is None else format(x, spec)

    width = max([20, *(len(r["label"]) for r in result["settings"])])
    lines = [f"{'setting':<{width}} {'out SQNR dB':>11} {'top1':>5} {'top5':>5} {'CLE drift':>9} {'worst SQNR':>10}"
             "  worst layer"]
    for r in result["settings"]:
        lines.append(f"{r['label']:<{width}} {f(r['output_sqnr_db'], '11.2f')} {f(r['top1'], '5.2f')} "
                     f"{f(r['top5'], '5.2f')} {f(r.get('float_drift_sqnr_db'), '9.2f')} "
                     f"{f(r['worst_sqnr_db'], '10.2f')}  {r['worst_node'] or '-'}")
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
