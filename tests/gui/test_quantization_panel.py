"""The Quantization tab: a float twin vs its quantized TFLite on shared images, through the window."""

import csv
import json

import pytest
from PySide6.QtGui import QImage

from mbexplorer.core.compare import compare_job
from mbexplorer.core.decoding import image_files
from mbexplorer.core.jobs import run
from mbexplorer.gui.quantization_panel import OVERLAY

MODEL = "mobilenet_v1_0.25_128_quant.tflite"


@pytest.fixture(scope="module")
def images(shared_dir):
    return image_files([shared_dir / "images"])[:3]


@pytest.fixture(scope="module")
def direct(shared_dir, images):
    """compare_job run directly, for the figures the tab must show."""
    from mbexplorer.core.loading import load

    q = load(shared_dir / "models" / MODEL)
    return run(compare_job(q.float_twin, q, images)).to_dict()


@pytest.fixture
def quant_window(window, open_and_wait, shared_dir, images):
    open_and_wait(window, shared_dir / "models" / MODEL)
    window.quantization.set_images(images)
    return window


def _run(qtbot, panel):
    with qtbot.waitSignal(panel.runFinished, timeout=60_000):
        assert panel.run() is not None


def test_comparison_fills_table_chart_and_overlay(qtbot, quant_window, direct, tmp_path):
    w, panel = quant_window, quant_window.quantization
    partials = []
    panel.job_status.bar.valueChanged.connect(partials.append)
    assert not panel.legend.isVisible()  # no series yet: no legend of empty samples
    _run(qtbot, panel)
    assert panel.legend.isVisible()
    rows = direct["tensors"]
    assert panel.table.rowCount() == len(rows) == 31  # 27 fused ReLU6 pre-activations are not compared
    shown = {panel.table.item(r, 1).value: panel.table.item(r, 4).value for r in range(panel.table.rowCount())}
    assert shown == {t["name"]: t["sqnr_db"] for t in rows}
    line, dots = panel.curves["sqnr_db"]
    assert len(dots.points()) == len(rows)  # an exact tensor (inf dB) too, drawn at the top
    isolated = sum(t["isolated_sqnr_db"] is not None for t in rows)
    assert len(panel.curves["isolated_sqnr_db"][1].points()) == isolated  # null: not drawn
    assert "top-1 agreement" in panel.output.text()
    assert panel.weights.rowCount() == len(direct["weights"])
    # the overlay: offered by the state, the menu and the combo, and the graph coloured by it
    assert OVERLAY in w.state.available_overlays() and OVERLAY in w.overlay_actions
    assert w.graph_panel.overlay_combo.findText(OVERLAY) >= 0
    assert w.state.overlay_name == OVERLAY and w.state.overlay.source == "compare"
    assert w.state.overlay.block_values
    # a row selects its node in the graph
    got = []
    panel.nodeSelected.connect(got.append)
    panel.table.selectRow(0)
    name = panel.table.item(0, 1).value
    assert got == [next(t["node"] for t in rows if t["name"] == name)]
    # a chart point too, and its tip names the tensor
    got.clear()
    dots.sigClicked.emit(dots, [dots.points()[3]], None)
    assert got == [rows[3]["node"]] and dots.points()[3].data().startswith(rows[3]["name"] + "\n")
    # exports
    assert panel.export_csv(tmp_path / "q.csv")
    with open(tmp_path / "q.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and {r["tensor"] for r in table} == {t["name"] for t in rows}
    assert panel.export_json(tmp_path / "q.json")
    saved = json.loads((tmp_path / "q.json").read_text())["tensors"]
    # strict JSON as the CLI writes it (compare.strict_json): the exact input tensor's inf is null, said identical
    assert len(saved) == len(rows) and saved[0]["sqnr_db"] is None and saved[0]["identical"] is True
    assert panel.export_png(tmp_path / "q.png") and not QImage(str(tmp_path / "q.png")).isNull()


def test_compare_with_a_second_file(qtbot, window, open_and_wait, shared_dir, images):
    """A float model open, its quantized version as the other file: the one with Q/DQ nodes is the quantized one."""
    open_and_wait(window, shared_dir / "models" / "mobilenet_v1_0.25_224_1_default_1.tflite")
    panel = window.quantization
    panel.set_images(images[:2])
    panel.compare_with_path(shared_dir / "models" / "mobilenet_v1_0.25_224_quant.tflite")
    _run(qtbot, panel)
    assert panel.table.rowCount() == 31 and panel.other is not None
    assert window.state.overlay_for(OVERLAY).block_values


def test_cancel_stops_it(qtbot, quant_window, images):
    panel = quant_window.quantization
    panel.set_images(images * 20)
    job = panel.run()
    with qtbot.waitSignal(job.cancelled, timeout=30_000):
        panel.cancel()
    assert panel.job is None and job.state == "cancelled"


def test_screenshot_of_the_quantization_tab(qapp, tmp_path, shared_dir, images, monkeypatch):
    from mbexplorer.gui.app import run_gui
    from mbexplorer.gui.quantization_panel import QuantizationPanel

    seen = {}
    original = QuantizationPanel._on_end

    def record(panel, job, comparison, error=None):
        original(panel, job, comparison, error)
        seen.update(rows=panel.table.rowCount(), tab=panel.window().tabs.currentWidget() is panel, error=error)

    monkeypatch.setattr(QuantizationPanel, "_on_end", record)
    out = tmp_path / "quant.png"
    assert run_gui(model_path=shared_dir / "models" / MODEL, screenshot=out, images=images, tab="quantization") == 0
    assert seen == {"rows": 31, "tab": True, "error": None}
    assert not QImage(str(out)).isNull()


def test_selecting_a_row_shows_its_detail(qtbot, quant_window):
    """A row chosen after a comparison: its histograms, scatter and quantization range, off the UI thread."""
    panel = quant_window.quantization
    _run(qtbot, panel)
    r = next(r for r in range(panel.table.rowCount()) if panel.table.item(r, 2).value == "Clip")
    panel.table.selectRow(r)
    job = panel.tasks.current("quantization-detail")
    assert job is not None
    with qtbot.waitSignal(job.finished, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: "scale" in panel.detail_text.text(), timeout=5_000)
    assert len(panel.hist_plot.listDataItems()) > 0
    assert panel.table.item(r, 1).value in panel.detail_text.text() and "clipped" in panel.detail_text.text()
    # a Conv: its per-channel weight SQNR as bars
    r = next(r for r in range(panel.table.rowCount()) if panel.table.item(r, 2).value == "Conv")
    panel.table.selectRow(r)
    with qtbot.waitSignal(panel.tasks.current("quantization-detail").finished, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: not panel.channel_plot.isHidden(), timeout=5_000)  # the tab itself may be hidden
    assert panel.channel_plot.getPlotItem().items
