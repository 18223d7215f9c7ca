"""The block graph: boxes, residual arcs, expanding, overlays, zoom, and selection in both directions."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QPointF, Qt  # noqa: E402

from mbexplorer.core.formatting import si, size_bytes  # noqa: E402
from mbexplorer.gui.graph_items import BOX_H, OpItem  # noqa: E402
from mbexplorer.gui.graph_view import FIT_MIN_ZOOM  # noqa: E402


def test_builds_v2_on_the_worker(qtbot, window):
    with qtbot.waitSignal(window.model_shown, timeout=30_000):
        job = window.build_model(family="mobilenet_v2")
        assert job.is_running() or job.state == "finished"  # the call returned while the job ran
    assert len(window.graph.block_items) == 19
    assert len(window.graph.residual_items) == 10
    assert {a.block_index for a in window.graph.residual_items} == {3, 5, 6, 8, 9, 10, 12, 13, 15, 16}
    assert "mobilenet_v2_1_224" in window.windowTitle()
    assert window.analysis.model.name == "mobilenet_v2_1_224"
    assert not window.job_status.isVisible()
    # blocks run top to bottom without overlapping
    ys = [(i.y(), i.y() + i.height) for i in window.graph.block_items]
    assert all(a[1] < b[0] for a, b in zip(ys, ys[1:]))


def test_expand_shows_ops_and_collapse_hides_them(v2_window):
    g = v2_window.graph
    block = v2_window.analysis.blocks.blocks[3]
    below = g.block_items[4].y()
    g.expand(3)
    ops = g.block_items[3].op_items
    assert [o.name for o in ops] == sorted(block.nodes, key=v2_window.analysis.index.index.get)
    assert {o.op_type for o in ops} >= {"Conv", "BatchNormalization", "Clip", "Add"}
    assert any(o.family == "depthwise" for o in ops)
    assert g.block_items[4].y() > below  # later blocks moved down to make room
    assert g.block_items[3].add_y is not None  # the residual arc now ends at the Add row
    assert v2_window.graph.legend.family_names  # the legend lists op families once ops are visible
    g.expand(3, False)
    assert g.block_items[3].op_items == [] and g.block_items[3].height == BOX_H
    assert g.block_items[4].y() == below
    assert not v2_window.graph.legend.family_names


def test_double_click_and_expander_toggle(qtbot, v2_window):
    g = v2_window.graph
    item = g.block_items[1]
    g.select_block(1)  # centres it, so it is on screen
    header = g.mapFromScene(item.mapToScene(QPointF(40, 20)))
    qtbot.mouseDClick(g.viewport(), Qt.LeftButton, pos=header)
    assert g.is_expanded(1)
    expander = g.mapFromScene(item.mapToScene(item.expander_rect().center()))
    qtbot.mouseClick(g.viewport(), Qt.LeftButton, pos=expander)
    assert not g.is_expanded(1)


def test_table_row_selects_block_and_op(qtbot, v2_window):
    w = v2_window
    name = w.analysis.blocks.blocks[5].nodes[0]
    row = w.layers.model.row_of(name)
    w.layers.table.selectRow(w.layers.proxy.mapFromSource(w.layers.model.index(row, 0)).row())
    assert w.graph.selected_block() == 5  # collapsed block stands for its op
    assert w.graph.visible_scene_rect().contains(w.graph.block_items[5].sceneBoundingRect().center())
    w.graph.expand(5)
    w.layers.table.clearSelection()
    w.layers.table.selectRow(w.layers.proxy.mapFromSource(w.layers.model.index(row, 0)).row())
    assert w.graph.selected_node() == name
    assert isinstance(w.graph.graph.selectedItems()[0], OpItem)


def test_graph_selection_selects_table_rows(v2_window):
    w = v2_window
    w.graph.block_items[7].setSelected(True)
    assert w.layers.selected_nodes() == sorted(w.analysis.blocks.blocks[7].nodes,
                                               key=w.layers.model.row_of)
    w.graph.graph.clearSelection()
    w.graph.expand(2)
    op = w.graph.block_items[2].op_items[3]
    op.setSelected(True)
    assert w.layers.selected_nodes() == [op.name]


def test_overlay_colours_and_legend(v2_window):
    w = v2_window
    items = w.graph.block_items
    macs_fill = [i.fill.name() for i in items]
    assert w.graph.legend.title.text() == "MACs share"
    top = max(items, key=lambda i: w.analysis.costs.block_totals()[i.index]["macs"])
    assert top.fill.lightness() == min(i.fill.lightness() for i in items)  # most MACs, darkest box
    w.graph_panel.set_overlay_name("params share")
    assert w.overlay_actions["params share"].isChecked()
    assert w.graph.legend.title.text() == "params share"
    assert [i.fill.name() for i in items] != macs_fill
    assert items[-1].value_text.endswith("%")


def test_zoom_and_fit(v2_window):
    g = v2_window.graph
    z = g.zoom()
    g.zoom_in()
    assert g.zoom() > z
    g.zoom_out()
    g.zoom_out()
    assert g.zoom() < z
    g.fit()
    # the column of blocks across the width, from the top, at a readable zoom: not the whole model in one view
    assert FIT_MIN_ZOOM <= g.zoom() <= 1.0
    assert g.graph.sceneRect().width() * g.zoom() <= g.viewport().width() or g.zoom() == FIT_MIN_ZOOM
    seen = g.visible_scene_rect()
    assert seen.contains(g.block_items[0].sceneBoundingRect())
    assert not seen.contains(g.block_items[-1].sceneBoundingRect().center())  # 19 blocks: the rest scroll
    assert g.verticalScrollBar().value() == g.verticalScrollBar().minimum()


def test_fit_keeps_a_long_model_readable(qtbot, analyses):
    """A narrow view and a long model: Fit stops at FIT_MIN_ZOOM (text is drawn from TEXT_LOD up) rather than
    shrinking 19 blocks, or 150, to specks; it starts at the top."""
    from mbexplorer.core.overlays import mac_share
    from mbexplorer.gui.graph_items import TEXT_LOD
    from mbexplorer.gui.graph_view import GraphView

    a = analyses("mobilenet_v2")
    g = GraphView()
    qtbot.addWidget(g)
    g.resize(200, 500)
    g.show()
    qtbot.waitExposed(g)
    g.set_analysis(a, a.costs.block_totals(), mac_share(a.costs))
    g.zoom_out()
    g.fit()
    assert g.zoom() == FIT_MIN_ZOOM > TEXT_LOD
    assert g.visible_scene_rect().top() <= g.block_items[0].y()
    g.resize(800, 500)
    g.fit()
    assert g.zoom() == 1.0  # never larger than life


def test_block_cards_show_the_coloured_metric(v2_window):
    w = v2_window
    items = w.graph.block_items
    stats = w.state.block_totals
    assert items[5].card_text == f"MACs {si(stats[5]['macs'])}"
    w.graph_panel.set_overlay_name("params share")
    assert items[5].card_text == f"params {si(stats[5]['params'])}"
    assert all(i.card_text.startswith("params ") for i in items)
    w.graph_panel.set_overlay_name("activation memory share")
    assert items[5].card_text == f"activations written {size_bytes(stats[5]['activation_bytes'])}"
    w.graph_panel.set_overlay_name("params share")
    w.layers.set_convention("torchvision")  # params follow the convention: so does the card
    assert items[0].card_text == f"params {si(w.state.block_totals[0]['params'])}"


@pytest.mark.shared
def test_qdq_ops_folded_in_expanded_blocks(window, shared_dir):
    from mbexplorer.core.analysis import open_model

    a = open_model(shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite")
    window.show_analysis(a, {"path": "x"})
    g = window.graph
    assert not window.act_qdq.isChecked()
    g.expand(1)
    item = g.block_items[1]
    assert [o.op_type for o in item.op_items] == ["Conv", "Clip", "Conv", "Clip"]
    assert item.n_ops == 4 and item.folded == 8
    assert len(item.inner_edges._heads) == 4  # entry + conv→clip→conv→clip, through the folded Q/DQ pairs
    below = g.block_items[2].y()
    window.act_qdq.trigger()  # View ▸ Show Q/DQ ops: the same setting as the table's Show Q/DQ
    assert window.state.show_qdq and window.layers.qdq_check.isChecked() and window.act_qdq.isChecked()
    assert g.is_expanded(1) and len(item.op_items) == 12
    assert {"QuantizeLinear", "DequantizeLinear"} <= {o.op_type for o in item.op_items}
    assert g.block_items[2].y() > below  # laid out again
    window.layers.qdq_check.setChecked(False)
    assert not window.act_qdq.isChecked()
    assert len(item.op_items) == 4 and g.block_items[2].y() == below


def test_ctrl_wheel_zooms_and_plain_wheel_scrolls(qtbot, v2_window):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    g = v2_window.graph
    centre = QPointF(g.viewport().width() / 2, g.viewport().height() / 2)

    def wheel(delta, mods):
        ev = QWheelEvent(centre, QPointF(g.viewport().mapToGlobal(centre.toPoint())), QPoint(0, 0),
                         QPoint(0, delta), Qt.NoButton, mods, Qt.NoScrollPhase, False)
        QApplication.sendEvent(g.viewport(), ev)

    z = g.zoom()
    wheel(120, Qt.ControlModifier)
    assert g.zoom() > z
    wheel(-240, Qt.ControlModifier)
    assert g.zoom() < z
    z = g.zoom()
    top = g.verticalScrollBar().value()
    wheel(-120, Qt.NoModifier)
    assert g.zoom() == z and g.verticalScrollBar().value() > top


def test_menus(v2_window):
    titles = {a.text().replace("&", ""): a.menu() for a in v2_window.menuBar().actions()}
    assert {"File", "View", "Help"} <= set(titles)
    file_items = [a.text().replace("&", "") for a in titles["File"].actions()]
    for item in ("Open model…", "Open Recent", "New from builder…", "Export layers CSV…", "Quit"):
        assert item in file_items
    view_items = [a.text().replace("&", "") for a in titles["View"].actions()]
    assert {"Zoom in", "Zoom out", "Fit"} <= set(view_items)
    box = v2_window.show_about()
    assert box.isVisible() and "mbexplorer" in box.text()
