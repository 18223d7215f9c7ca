"""run_gui's screenshot mode (used by the CLI and docs) and a 10,000-node graph staying responsive."""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import onnx  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402

from mbexplorer.gui.app import SCREENSHOT_SIZE, run_gui  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_screenshot_of_a_built_model(qapp, tmp_path):
    out = tmp_path / "shot.png"
    assert run_gui(screenshot=out, build={"family": "mobilenet_v1", "width": 0.25, "resolution": 128}) == 0
    assert out.stat().st_size > 10_000
    img = QImage(str(out))
    assert (img.width(), img.height()) == SCREENSHOT_SIZE


def test_screenshot_of_a_file(qapp, tmp_path, built):
    model = tmp_path / "v3s.onnx"
    onnx.save(built("mobilenet_v3_small").model, str(model))
    out = tmp_path / "v3s.png"
    assert run_gui(model_path=model, screenshot=out) == 0
    assert not QImage(str(out)).isNull()


def test_screenshot_with_images_classifies_them_first(qapp, tmp_path, monkeypatch):
    """`gui MODEL --images DIR --screenshot OUT`: the grab waits for the Classify tab to finish."""
    from PIL import Image

    from mbexplorer.gui.classify_panel import ClassifyPanel

    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(3):
        Image.new("RGB", (160, 120), (80 * i, 40, 200 - 60 * i)).save(pics / f"p{i}.png")
    seen = {}
    original = ClassifyPanel._on_event

    def record(panel, ev):
        original(panel, ev)
        seen["results"] = sum(bool(e.results) for e in panel.entries)
        seen["tab"] = panel.window().tabs.currentWidget() is panel

    monkeypatch.setattr(ClassifyPanel, "_on_event", record)
    out = tmp_path / "classify.png"
    assert run_gui(screenshot=out, build={"family": "mobilenet_v1", "width": 0.25, "resolution": 96},
                   images=[pics]) == 0
    assert seen == {"results": 3, "tab": True} and not QImage(str(out)).isNull()


def test_screenshot_of_a_bad_file_fails(qapp, tmp_path, capsys):
    bad = tmp_path / "notes.onnx"
    bad.write_text("not a model")
    out = tmp_path / "never.png"
    assert run_gui(model_path=bad, screenshot=out) != 0
    assert "notes.onnx" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture(scope="module")
def synthetic_analysis():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from synthetic import synthetic_graph
    finally:
        sys.path.remove(str(REPO / "bench"))
    from mbexplorer.core.analysis import analyse_job
    from mbexplorer.core.jobs import run
    from mbexplorer.core.model import from_proto

    return run(analyse_job(from_proto(synthetic_graph(10_000), name="synthetic", source_format="onnx")))


def test_ten_thousand_nodes_stay_responsive(qtbot, window, synthetic_analysis):
    a = synthetic_analysis
    assert len(a.costs.nodes) > 9_900
    t0 = time.perf_counter()
    window.show_analysis(a, {})
    window.repaint()
    shown = time.perf_counter() - t0
    g = window.graph
    assert len(g.block_items) == len(a.blocks.blocks) > 1_000
    assert not any(i.op_items for i in g.block_items)  # collapsed by default: no op items yet
    n_items = len(g.graph.items())
    assert n_items < 4 * len(a.blocks.blocks)
    t0 = time.perf_counter()
    g.expand(len(g.block_items) // 2)
    g.select_block(len(g.block_items) // 2)
    g.viewport().repaint()
    expand = time.perf_counter() - t0
    t0 = time.perf_counter()
    window.layers.set_convention("thop")
    window.layers.set_op_filter("Conv")
    window.layers.table.sortByColumn(6, window.layers.table.horizontalHeader().sortIndicatorOrder())
    table = time.perf_counter() - t0
    # generous bounds (2 slow CI cores): what matters is no per-node Qt work on the UI thread
    assert shown < 4.0, shown
    assert expand < 1.0, expand
    assert table < 3.0, table
