"""How predictions read to a person, in the Classify tab and in ``mbexplorer predict``: a top-k with its ties
marked and its zero-score tail left out, the warning for a model with random weights, and the overview of all
images (one row per image, and its CSV).

A quantized model's uint8 output puts most classes at exactly 0 and many at the same small score: their order
in a top-k is by output index only, so ranking them one after another would claim an order that is not there.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .inference import TopK
from .labels import label_at

RANDOM_WEIGHTS = "random weights: predictions are meaningless"


def random_weights(model) -> bool:
    """A builder model whose weights were drawn, not supplied: the builder writes where its weights come from in
    the ONNX metadata ("random(seed=0)"), so a saved file says it too."""
    return any(p.key == "weights" and p.value.startswith("random") for p in model.model.metadata_props)


@dataclass(frozen=True)
class Ranked:
    rank: int  # from 1; tied entries share the rank of the first of them
    top: TopK
    tied: bool  # another class has exactly this score: the order among them is by output index only


@dataclass(frozen=True)
class Ranking:
    entries: list[Ranked]
    zeros: int  # classes at exactly 0 that are not listed


def ranking(scores: np.ndarray, top: list[TopK], drop_zeros: bool = True) -> Ranking:
    """``top`` (``top_k`` of ``scores``) with ties marked; with ``drop_zeros`` the list stops at its last
    non-zero score and ``zeros`` says how many classes at 0 are not listed."""
    scores = np.asarray(scores).ravel()
    counts = {s: int(np.count_nonzero(scores == s)) for s in {t.score for t in top}}
    kept = list(top)
    if drop_zeros:
        while kept and kept[-1].score == 0:
            kept.pop()
    entries, rank = [], 0
    for i, t in enumerate(kept):
        if i == 0 or t.score != kept[i - 1].score:
            rank = i + 1
        entries.append(Ranked(rank, t, counts[t.score] > 1))
    zeros = int(np.count_nonzero(scores == 0)) - sum(t.score == 0 for t in kept)
    return Ranking(entries, zeros if drop_zeros else 0)


def rank_text(r: Ranked) -> str:
    """'3.', or '3=' when tied."""
    return f"{r.rank}{'=' if r.tied else '.'}"


def zeros_text(ranking: Ranking) -> str:
    """'996 more classes at 0.000' (nothing when no zero is left out)."""
    n = ranking.zeros
    if not n:
        return ""
    return f"{f'{n} more' if ranking.entries else f'all {n}'} class{'es' * (n != 1)} at 0.000"


# the overview ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One image of the overview: each model's top-1 and whether they agree; ``note`` when there is none."""
    path: Path
    model: str = ""
    label: str = ""
    index: int | None = None
    score: float | None = None
    other_model: str = ""
    other_label: str = ""
    other_index: int | None = None
    other_score: float | None = None
    agree: bool | None = None  # None: not comparing, or not both known
    note: str = ""  # "unreadable: …", "classifying…", a model's error

    @property
    def image(self) -> str:
        return self.path.name


def _top1(result, user: list[str] | None):
    """(model, label, index, score) of a slot result, or its error."""
    p = result.prediction
    if p is None:
        return None, result.error or "no result"
    i = result.top1
    return (result.model_name, label_at(i, p.scores.size, result.embedded, user), i, float(p.scores[i])), ""


def image_row(path: Path, a=None, b=None, compare: bool = False, user: list[str] | None = None,
              error: str | None = None, pending: str = "not classified yet") -> Row:
    """``a``, ``b``: the SlotResults to show (None: none yet); ``user``: the user's label names; ``error``: the
    image could not be read; ``pending``: the note while a result is missing. Top-1 agreement is by label, as
    the strip's marks are (a 1001-output and a 1000-output model agree on "macaw")."""
    if error:
        return Row(Path(path), note=f"unreadable: {error}")
    fields, notes = {}, []
    for prefix, r in [("", a)] + ([("other_", b)] if compare else []):
        if r is None:
            notes.append(pending)
            continue
        top, note = _top1(r, user)
        if top is None:
            notes.append(note)
            continue
        for name, value in zip(("model", "label", "index", "score"), top):
            fields[prefix + name] = value
    agree = fields["label"] == fields["other_label"] if "label" in fields and "other_label" in fields else None
    return Row(Path(path), **fields, agree=agree, note="; ".join(dict.fromkeys(notes)))


COLUMNS = ["image", "path", "model", "top1", "index", "score"]
COMPARE_COLUMNS = ["compare_model", "compare_top1", "compare_index", "compare_score", "agree"]


def csv_text(rows: list[Row], compare: bool) -> str:
    """The overview as CSV: one line per image; the compare columns only when comparing."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS + (COMPARE_COLUMNS if compare else []) + ["note"])
    for r in rows:
        line = [r.image, str(r.path), r.model, r.label, _num(r.index), _score(r.score)]
        if compare:
            agree = "" if r.agree is None else ("yes" if r.agree else "no")
            line += [r.other_model, r.other_label, _num(r.other_index), _score(r.other_score), agree]
        w.writerow(line + [r.note])
    return buf.getvalue()


def _num(v) -> str:
    return "" if v is None else str(v)


def _score(v) -> str:
    return "" if v is None else f"{v:.6g}"  # significant digits: softmax scores of 0.0017 keep theirs
