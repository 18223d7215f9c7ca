"""How predictions read: ties and zero tails in a top-k, the random-weights warning, the overview's rows and CSV,
and the all-or-nothing CSV write."""

import csv
import io
import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from mbexplorer.core.classify import SlotResult
from mbexplorer.core.inference import Prediction, top_k
from mbexplorer.core.overview import (
    RANDOM_WEIGHTS,
    csv_text,
    image_row,
    random_weights,
    rank_text,
    ranking,
    zeros_text,
)


def ranked(scores, k):
    scores = np.asarray(scores, np.float32)
    return ranking(scores, top_k(scores, k, None))


def test_zero_tail_is_dropped_and_counted():
    # a quantized model's output: three non-zero classes, the rest exactly 0
    scores = np.zeros(1001, np.float32)
    scores[[20, 14, 7]] = [0.9, 0.06, 0.02]
    r = ranked(scores, 5)
    assert [e.top.index for e in r.entries] == [20, 14, 7]
    assert r.zeros == 998 and zeros_text(r) == "998 more classes at 0.000"
    # JSON keeps every entry asked for
    full = ranking(scores, top_k(scores, 5, None), drop_zeros=False)
    assert len(full.entries) == 5 and full.zeros == 0 and all(e.tied for e in full.entries[3:])


def test_all_zero_and_one_zero():
    assert zeros_text(ranked(np.zeros(4), 3)) == "all 4 classes at 0.000"
    assert zeros_text(ranked([0.5, 0.0], 2)) == "1 more class at 0.000"


def test_ties_share_a_rank_and_are_marked():
    r = ranked([0.1, 0.4, 0.2, 0.2, 0.05, 0.05], 5)
    assert [(e.rank, e.top.index, e.tied) for e in r.entries] == [(1, 1, False), (2, 2, True), (2, 3, True),
                                                                  (4, 0, False), (5, 4, True)]
    # index 4 is tied with index 5, which is not listed: still a tie, its place is by index only
    assert [rank_text(e) for e in r.entries] == ["1.", "2=", "2=", "4.", "5="]
    assert r.zeros == 0


def test_a_zero_before_negative_logits_is_not_a_tail():
    r = ranked([1.0, 0.0, -2.0], 3)
    assert [e.top.index for e in r.entries] == [0, 1, 2] and r.zeros == 0


def test_random_weights(built, tmp_path):
    from mbexplorer.core.loading import load

    model = built("mobilenet_v1", 0.25, 96)
    assert random_weights(model) and RANDOM_WEIGHTS.startswith("random weights")
    path = tmp_path / "m.onnx"  # a saved builder model still says so
    onnx.save(model.model, str(path))
    assert random_weights(load(path))
    proto = onnx.load(str(path))
    for p in proto.metadata_props:
        if p.key == "weights":
            p.value = "supplied"
    onnx.save(proto, str(path))
    assert not random_weights(load(path))


def result(name, scores, labels=None):
    scores = np.asarray(scores, np.float32)
    return SlotResult(("A", 1, None, False), name, "pre", labels,
                      Prediction("x", [], 1.0, scores=scores), top1=int(np.argmax(scores)))


def test_rows_and_agreement_by_label():
    a = result("m1", [0.1, 0.7, 0.2], ["cat", "dog", "fox"])
    b = result("m2", [0.0, 0.2, 0.3, 0.5], ["background", "cat", "dog", "fox"])  # 1+3 outputs
    row = image_row(Path("/p/x.jpg"), a, b, compare=True)
    assert (row.image, row.model, row.label, row.index, row.score) == ("x.jpg", "m1", "dog", 1, pytest.approx(0.7))
    assert (row.other_model, row.other_label, row.other_index) == ("m2", "fox", 3)
    assert row.agree is False and row.note == ""
    same = image_row(Path("/p/x.jpg"), a, result("m3", [0.1, 0.9, 0.0], ["cat", "dog", "fox"]), compare=True)
    assert same.agree is True
    # the user's names relabel
    assert image_row(Path("/p/x.jpg"), a, user=["a", "b", "c"]).label == "b"
    # not comparing: no compare fields, no agreement
    assert image_row(Path("/p/x.jpg"), a, b).other_label == "" and image_row(Path("/p/x.jpg"), a, b).agree is None


def test_rows_say_why_there_is_no_result():
    assert image_row(Path("a.png"), error="broken file").note == "unreadable: broken file"
    assert image_row(Path("a.png"), None, None, compare=True, pending="classifying…").note == "classifying…"
    failed = SlotResult(("A",), "m", "pre", error="out of memory")
    row = image_row(Path("a.png"), result("m", [1.0, 0.0]), failed, compare=True)
    assert row.label == "class 0" and row.note == "out of memory" and row.agree is None


def test_csv_columns_and_values():
    a = result("m1", [0.1, 0.7, 0.2], ["cat", "dog", "fox, red fox"])
    b = result("m2", [0.1, 0.2, 0.7], ["cat", "dog", "fox, red fox"])
    rows = [image_row(Path("/p/x.jpg"), a, b, compare=True), image_row(Path("/p/y.png"), error="bad")]
    lines = list(csv.reader(io.StringIO(csv_text(rows, compare=True))))
    assert lines[0] == ["image", "path", "model", "top1", "index", "score", "compare_model", "compare_top1",
                        "compare_index", "compare_score", "agree", "note"]
    assert lines[1] == ["x.jpg", str(Path("/p/x.jpg")), "m1", "dog", "1", "0.7", "m2", "fox, red fox", "2",
                        "0.7", "no", ""]
    assert lines[2][0] == "y.png" and lines[2][-1] == "unreadable: bad" and lines[2][5] == ""
    plain = list(csv.reader(io.StringIO(csv_text(rows[:1], compare=False))))
    assert plain[0] == ["image", "path", "model", "top1", "index", "score", "note"] and plain[1][3] == "dog"


def test_write_is_all_or_nothing(tmp_path, monkeypatch):
    from mbexplorer.core.outputs import write_atomically

    out = tmp_path / "top1.csv"
    write_atomically(out, "a,b\n")
    assert out.read_text() == "a,b\n" and os.listdir(tmp_path) == ["top1.csv"]

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_atomically(out, "new,text\n")
    assert out.read_text() == "a,b\n" and os.listdir(tmp_path) == ["top1.csv"]  # no partial file, no temporary
    with pytest.raises(OSError):
        write_atomically(tmp_path / "missing" / "x.csv", "x")
    assert os.listdir(tmp_path) == ["top1.csv"]
