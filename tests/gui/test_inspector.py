"""The node inspector: clicks in the graph and the table show a node's facts; the search finds nodes by name and
Enter selects the first in the graph and the table."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402


def test_dock_follows_selection_in_graph_and_table(qtbot, v2_window):
    w = v2_window
    assert w.inspector_dock.isHidden()
    w.act_inspector.trigger()  # View ▸ Inspector
    assert w.inspector_dock.isVisible()
    name = w.analysis.blocks.blocks[3].nodes[0]
    row = w.layers.proxy.mapFromSource(w.layers.model.index(w.layers.model.row_of(name), 0)).row()
    w.layers.table.selectRow(row)
    assert w.inspector.current == name
    assert w.inspector.facts["op_type"] == "Conv" and "kernel_shape" in w.inspector.text()
    w.graph.graph.clearSelection()
    w.graph.expand(5)
    op = next(o for o in w.graph.block_items[5].op_items if o.op_type == "BatchNormalization")
    op.setSelected(True)
    assert w.inspector.current == op.name
    text = w.inspector.text()
    for part in ("Inputs", "Outputs", "Weights", "std", "Costs", "live while it runs", "epsilon"):
        assert part in text


def test_search_and_enter_selects_in_graph_and_table(qtbot, v2_window):
    w = v2_window
    w.inspector_dock.show()
    box = w.inspector.search
    box.setFocus()
    qtbot.keyClicks(box, "FEATURES.7.CONV.1")
    found = [w.inspector.matches.item(i).text() for i in range(w.inspector.matches.count())]
    assert found and all("features.7.conv.1" in n for n in found)
    qtbot.keyClick(box, Qt.Key_Down)  # Up and Down in the box move through the matches
    assert w.inspector.matches.currentRow() == 1
    qtbot.keyClick(box, Qt.Key_Up)
    qtbot.keyClick(box, Qt.Key_Return)
    name = found[0]
    assert w.inspector.current == name
    assert w.layers.selected_nodes() == [name]
    assert w.graph.selected_node() == name  # its block expanded: the op itself is selected
    assert w.graph.is_expanded(w.analysis.blocks.node_block[name])
    box.clear()
    qtbot.keyClicks(box, "no such node")
    assert w.inspector.matches.isHidden() and "no node" in w.inspector.match_label.text()


@pytest.mark.shared
def test_quantized_node_facts_and_folded_qdq_search(qtbot, window, shared_dir):
    from mbexplorer.core.analysis import open_model

    w = window
    w.show_analysis(open_model(shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"), {"path": "x"})
    w.inspector_dock.show()
    insp = w.inspector
    insp.search.setText("conv2d_2_depthwise")
    first = insp.matches.item(0).text()
    assert w.analysis.costs.by_name[first].op_type == "Conv"  # ops with rows come before folded Q/DQ nodes
    insp.choose_current()
    text = insp.text()
    assert "writes uint8, scale" in text and "held as uint8" in text
    assert "real values: min" in text and "zero point" in text
    assert w.layers.selected_nodes() == [first]
    # a folded DequantizeLinear: Q/DQ display turns on so that it has a row and a box to select
    dq = next(insp.matches.item(i).text() for i in range(insp.matches.count())
              if insp.matches.item(i).text().endswith("/dequantize"))
    assert not w.state.show_qdq
    insp.choose(dq)
    assert w.state.show_qdq and w.layers.selected_nodes() == [dq] and w.graph.selected_node() == dq
    shots = os.environ.get("MBX_SHOTS")  # MBX_SHOTS=folder: save what the window looks like, to look at
    if shots:
        w.grab().save(os.path.join(shots, "inspector.png"))
