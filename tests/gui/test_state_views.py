"""Panels follow the window's state: the convention set in the table reaches every view, overlays show as
table columns (with totals by their rule), and an overlay added for the model appears in every list."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QPoint, Qt

from mbexplorer.core.overlays import Overlay
from mbexplorer.gui.layer_model import COLUMNS


def column(panel, col, role=Qt.DisplayRole):
    return [panel.proxy.index(r, col).data(role) for r in range(panel.proxy.rowCount())]


def test_convention_in_the_table_reaches_info_graph_and_summary_through_the_state(v2_window):
    w = v2_window
    w.tabs.setCurrentWidget(w.info)  # the Model tab fills itself when shown
    assert "3,470,760" in w.info.totals["params"].text()
    combo = w.layers.convention_combo
    combo.setCurrentIndex(combo.findData("torchvision"))  # what a user's pick does
    assert w.state.convention == "torchvision"
    expected = w.analysis.costs.block_totals("torchvision")
    assert w.state.block_totals == expected
    assert "3,504,872" in w.info.totals["params"].text() and "torchvision" in w.info.totals_box.title()
    assert [i.stats["params"] for i in w.graph.block_items] == [b["params"] for b in expected]
    assert [i.stats["params"] for i in w.graph.block_items] != [b["params"] for b in
                                                                 w.analysis.costs.block_totals("paper")]
    assert "3,504,872" in w.summary_label.text() and "(torchvision)" in w.summary_label.text()
    # and the other way: the state set from elsewhere moves the combo
    w.state.convention = "thop"
    assert combo.currentData() == "thop" and w.layers.convention == "thop"


def test_overlay_column_from_the_columns_menu(v2_window):
    lay = v2_window.layers
    n_fixed = len(COLUMNS)
    lay._fill_columns_menu()  # what showing the menu does
    actions = {a.text(): a for a in lay.columns_menu.actions() if a.isCheckable()}
    assert list(actions) == ["MACs share", "params share", "activation memory share"]
    actions["MACs share"].trigger()
    assert lay.overlay_columns == ["MACs share"]
    col = n_fixed
    assert lay.model.headerData(col, Qt.Horizontal) == "MACs share"
    assert lay.totals_row.columnCount() == lay.model.columnCount() == n_fixed + 1
    texts = column(lay, col)
    assert texts[0] == "3.6 %" and all(t == "" or t.endswith("%") for t in texts)  # unit; no MACs: empty
    assert lay.totals_row.item(0, col).text() == "100.0 %"  # a share's total is its sum
    # sorted by the overlay's numbers, not its text
    lay.table.sortByColumn(col, Qt.DescendingOrder)
    raw = [v if v is not None else -1 for v in column(lay, col, Qt.UserRole + 2)]
    assert raw == sorted(raw, reverse=True) and raw[0] > 6.0
    lay.set_op_filter("Gemm")
    assert lay.totals_row.item(0, col).text() == column(lay, col)[0]  # the shown rows only
    lay.set_op_filter(None)
    # the header's context menu offers the same list
    lay.table.horizontalHeader().customContextMenuRequested.emit(QPoint(5, 5))
    assert lay.columns_menu.isVisible()
    lay.columns_menu.close()
    lay.set_overlay_column("MACs share", False)
    assert lay.model.columnCount() == lay.totals_row.columnCount() == n_fixed


def test_convention_dependent_column_follows_the_convention(v2_window):
    w = v2_window
    lay = w.layers
    lay.set_overlay_column("params share")
    col = lay.model.overlay_column("params share")
    bn = next(n.name for n in w.analysis.costs.nodes if n.op_type == "BatchNormalization")
    idx = lay.model.index(lay.model.row_of(bn), col)
    assert idx.data() == ""  # paper: BN has no params
    lay.set_convention("torchvision")
    assert idx.data().endswith("%") and idx.data() != ""
    assert lay.selection_tsv().splitlines()[0].endswith("\tparams share")


def test_added_tensor_overlay_shows_everywhere_with_its_rule(v2_window):
    w = v2_window
    gi = w.analysis.index
    values = {t: float(10 + (i % 30)) for i, node in enumerate(gi.nodes) for t in node.output if t}
    err = Overlay("SQNR vs fp32", "dB", values, key="tensor", aggregate="min", source="compare",
                  description="signal to quantization noise of each tensor", higher_is_better=True)
    w.state.add_overlay(err)
    assert "SQNR vs fp32" in w.overlay_actions
    assert w.graph_panel.overlay_combo.findText("SQNR vs fp32") >= 0
    w.overlay_actions["SQNR vs fp32"].trigger()
    assert w.state.overlay is err and w.graph_panel.overlay_combo.currentText() == "SQNR vs fp32"
    legend = w.graph.legend
    assert legend.title.text() == "SQNR vs fp32" and "worst block" in legend.high.text()
    worst = min(err.block_values, key=err.block_values.get)
    items = w.graph.block_items
    assert items[worst].fill.lightness() == min(i.fill.lightness() for i in items)  # lowest SQNR darkest
    assert items[worst].value_text.endswith(" dB")

    lay = w.layers
    lay.set_overlay_column("SQNR vs fp32")
    col = lay.model.overlay_column("SQNR vs fp32")
    lay.set_block_filter(3)
    shown = [v for v in column(lay, col, Qt.UserRole + 2) if v is not None]
    assert lay.totals()["overlays"]["SQNR vs fp32"] == min(shown) == err.block_values[3]  # min, not a sum
    assert lay.totals_row.item(0, col).text() == err.format(min(shown))
    assert "min" in lay.totals_row.item(0, col).toolTip()


def test_a_new_model_drops_the_last_ones_overlays(v2_window, analyses):
    w = v2_window
    err = Overlay("SQNR vs fp32", "dB", {}, aggregate="min", source="compare")
    w.state.add_overlay(err, show=True)
    w.layers.set_overlay_column("SQNR vs fp32")
    w.layers.set_overlay_column("MACs share")
    w.show_analysis(analyses("mobilenet_v1", 0.25, 128))
    assert w.state.overlay_name == "MACs share" and w.graph.legend.title.text() == "MACs share"
    assert "SQNR vs fp32" not in w.overlay_actions
    assert w.graph_panel.overlay_combo.findText("SQNR vs fp32") < 0
    assert w.layers.overlay_columns == ["MACs share"]  # kept: every model has it
    assert w.layers.model.headerData(len(COLUMNS), Qt.Horizontal) == "MACs share"
    with pytest.raises(KeyError):
        w.layers.set_overlay_column("SQNR vs fp32")


def test_the_classify_tab_follows_the_state(qtbot, tmp_path):
    """The open model reaches the Classify tab through the state, and the model it compares with goes into it."""
    from mbexplorer.core.analysis import build_job, run
    from mbexplorer.core.state import State
    from mbexplorer.gui.classify_panel import ClassifyPanel

    state = State()
    panel = ClassifyPanel(state=state)
    qtbot.addWidget(panel)
    seen = []
    state.on("comparison", seen.append)
    a = run(build_job("mobilenet_v1", 0.25, 96))
    state.set_analysis(a)
    assert panel.model is a.model
    b = run(build_job("mobilenet_v1", 0.5, 96))
    panel._set_compare("other", lambda: b.model)
    panel.add_paths([])  # nothing to classify: the compare model still loads, so its errors show at once
    qtbot.waitUntil(lambda: state.comparison is b.model, timeout=30_000)
    panel.stop_compare()
    assert state.comparison is None and seen == [b.model, None]
