"""The Classify tab's table view: rows in sync as results stream in, compare columns and agreement, sorting,
selection shared with the strip, and Export CSV (all or nothing)."""

import csv
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtWidgets import QFileDialog  # noqa: E402

from mbexplorer.core.classify import result_topk  # noqa: E402

SMALL = ("mobilenet_v1", 0.25, 128)
RUN_MS = 30_000


def write_images(folder, n=5):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    paths = []
    for i in range(n):
        p = folder / f"photo_{i}.png"
        Image.fromarray(rng.integers(0, 256, (90 + 10 * i, 120, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


@pytest.fixture
def panel(qtbot, window, analyses, tmp_path):
    """The Classify tab on screen, five images classified by a small built model."""
    window.show_analysis(analyses(*SMALL), {"build": {"family": SMALL[0]}})
    panel = window.classify
    window.tabs.setCurrentWidget(panel)
    changes = []
    panel.overview.rows.dataChanged.connect(lambda a, b: changes.append(a.row()))
    write_images(tmp_path / "photos")
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.add_paths([tmp_path / "photos"])
    panel.streamed = changes  # rows updated one by one as results arrived
    return panel


def shown(panel, column):
    """The table's column as displayed, top to bottom."""
    table = panel.overview
    c = [t for t, _, _ in table.rows.columns].index(column)
    return [table.proxy.index(r, c).data() for r in range(table.proxy.rowCount())]


def test_rows_follow_the_results(qtbot, panel):
    table = panel.overview
    assert sorted(set(panel.streamed)) == list(range(5))  # each image's row changed as its result came in
    assert [t for t, _, _ in table.rows.columns] == ["Image", "Top-1", "Score", "Note"]
    assert shown(panel, "Image") == [e.path.name for e in panel.entries]
    for entry, label, score in zip(panel.entries, shown(panel, "Top-1"), shown(panel, "Score")):
        top = result_topk(entry.results["A"], 1, None)[0]
        assert (label, score) == (top.label, f"{top.score:.3f}")
    # the table view replaces the strip and the details; the selection is shared
    panel.table_button.click()
    assert table.isVisible() and not panel.strip.isVisible() and not panel.details_scroll.isVisible()
    table.selectRow(3)
    assert panel.strip.currentRow() == 3 and panel.current() is panel.entries[3]
    panel.select(1)
    assert table.currentIndex().row() == 1
    # double-click opens the image in the strip (QTest's double-click is the second click's event only)
    rect = table.visualRect(table.proxy.index(2, 0))
    qtbot.mouseClick(table.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.mouseDClick(table.viewport(), Qt.LeftButton, pos=rect.center())
    assert panel.strip.isVisible() and not table.isVisible() and panel.strip.currentRow() == 2
    # a new label file relabels the rows, nothing runs
    runs = panel.runs
    names = panel.entries[0].path.parent / "names.txt"
    names.write_text("\n".join(f"thing {i}" for i in range(1000)))
    panel.set_labels(names)
    assert panel.runs == runs and all(label.startswith("thing ") for label in shown(panel, "Top-1"))


def test_sorting_and_compare_columns(qtbot, panel):
    table = panel.overview
    panel.table_button.click()
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.compare_with_build({"family": "mobilenet_v3_small", "width": 0.5, "resolution": 96})
    assert [t for t, _, _ in table.rows.columns] == ["Image", "Top-1", "Score", "Compared: top-1", "Score",
                                                     "Agree", "Note"]
    marks = {e.path.name: panel.agreement_of(e) for e in panel.entries}
    agree = {"✓ same": "agree", "≠ differs": "differ"}
    assert {n: agree[a] for n, a in zip(shown(panel, "Image"), shown(panel, "Agree"))} == marks
    # sort by the model's score (as numbers), by a click on its header, then the other way
    header = table.horizontalHeader()

    def scores():
        return [float(s) for s in shown(panel, "Score")]  # the first Score column: model A's

    qtbot.mouseClick(header.viewport(), Qt.LeftButton,
                     pos=QPoint(header.sectionViewportPosition(2) + 10, header.height() // 2))
    assert header.sortIndicatorSection() == 2
    assert scores() == sorted(scores(), reverse=header.sortIndicatorOrder() == Qt.DescendingOrder)
    table.sortByColumn(2, Qt.DescendingOrder)
    assert scores() == sorted(scores(), reverse=True)
    # a selection made in the sorted table picks the right image
    table.selectRow(0)
    assert panel.current().path.name == shown(panel, "Image")[0]
    # comparing stopped: the compare columns go; no sort: the panel's order again
    panel.stop_compare()
    assert [t for t, _, _ in table.rows.columns] == ["Image", "Top-1", "Score", "Note"]
    table.sortByColumn(-1, Qt.AscendingOrder)
    assert shown(panel, "Image") == [e.path.name for e in panel.entries]


def test_export_csv(qtbot, panel, tmp_path, monkeypatch):
    table = panel.overview
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.compare_with_build({"family": SMALL[0], "width": SMALL[1], "resolution": SMALL[2]})
    table.sortByColumn(0, Qt.DescendingOrder)
    out = tmp_path / "out" / "top1.csv"
    out.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), "CSV files (*.csv)"))
    panel.export_button.click()
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert os.listdir(out.parent) == ["top1.csv"]  # written to a temporary and renamed: nothing else left
    assert [r["image"] for r in rows] == sorted((e.path.name for e in panel.entries), reverse=True)  # as shown
    by_name = {e.path.name: e for e in panel.entries}
    for r in rows:
        top = result_topk(by_name[r["image"]].results["A"], 1, None)[0]
        assert (r["top1"], int(r["index"])) == (top.label, top.index)
        assert float(r["score"]) == pytest.approx(top.score, rel=1e-5)  # six significant digits
        assert r["agree"] == "yes" and r["compare_top1"] == r["top1"]  # the same build on both sides
    # a file that cannot be written: said, and nothing is left behind
    errors = []
    panel.errorRaised.connect(lambda title, message: errors.append(message))
    assert not panel.export_csv(tmp_path / "missing" / "x.csv")
    assert errors and "Cannot write" in errors[0] and not (tmp_path / "missing").exists()
    # nothing to export after Clear
    panel.clear()
    assert not panel.export_button.isEnabled() and table.rows.rowCount() == 0
