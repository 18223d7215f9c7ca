"""The Layers tab: conventions, filters, totals, numeric sorting, copy and CSV export; and the Model tab."""

import csv
import io
import os

import pytest
from onnx import numpy_helper

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from mbexplorer.gui.layer_model import COL  # noqa: E402


def shown_column(panel, col):
    return [panel.proxy.index(r, col).data(Qt.DisplayRole) for r in range(panel.proxy.rowCount())]


def test_convention_switch_changes_params_total(v2_window):
    w = v2_window
    lay = w.layers
    assert lay.convention == "paper"
    assert lay.totals()["params"] == 3_470_760
    assert "3,470,760" in lay.totals_plain
    lay.set_convention("torchvision")
    assert lay.totals()["params"] == 3_504_872
    assert "3,504,872" in lay.totals_plain
    assert "3,504,872" in w.summary_label.text()
    w.tabs.setCurrentWidget(w.info)  # the Model tab fills itself when shown
    assert "3,504,872" in w.info.totals["params"].text()
    assert "torchvision" in w.info.totals_box.title()
    # the per-layer column follows: BN layers get their gamma/beta under torchvision
    bn = next(n.name for n in w.analysis.costs.nodes if n.op_type == "BatchNormalization")
    row = lay.model.row_of(bn)
    assert lay.model.index(row, COL["params"]).data() == "64"  # 2 x 32 channels


def test_flops_not_counted(v2_window):
    lay = v2_window.layers
    lay.set_convention("fvcore")
    lay.set_op_filter("Clip")
    assert set(shown_column(lay, COL["flops"])) == {"not counted"}
    assert not lay.not_counted_label.isHidden()
    assert "Clip" in lay.not_counted_label.text() and "Add" in lay.not_counted_label.text()
    lay.set_convention("paper")
    assert lay.not_counted_label.isHidden()
    assert "not counted" not in shown_column(lay, COL["flops"])


def test_filter_by_op_type_block_and_text(v2_window):
    lay = v2_window.layers
    total = lay.proxy.rowCount()
    assert total == 153
    lay.set_op_filter("Conv")
    assert lay.proxy.rowCount() == 52
    assert set(shown_column(lay, COL["op_type"])) == {"Conv"}
    t = lay.totals()
    assert t["rows"] == 52 and t["macs"] == 300_774_272 - 1_280_000  # every conv MAC; only the FC is left out
    assert "52 of 153 layers" in lay.totals_plain
    row = lay.totals_row  # the totals row under the columns follows the filter
    assert row.item(0, COL["name"]).text() == "Total, 52 of 153 shown"
    assert row.item(0, COL["macs"]).text() == f"{300_774_272 - 1_280_000:,}"
    assert row.item(0, COL["op_type"]).text() == ""
    lay.table.setColumnWidth(COL["macs"], 171)
    assert row.columnWidth(COL["macs"]) == 171  # widths follow the table's header
    lay.set_block_filter(3)
    assert lay.proxy.rowCount() == 3  # expand, depthwise and project convs of block 3
    lay.set_op_filter(None)
    lay.set_block_filter(None)
    lay.set_text_filter("features.3.")
    assert lay.proxy.rowCount() == 9
    lay.set_text_filter("RESIDUAL")  # matches block names, case-insensitive
    assert lay.proxy.rowCount() == 10 * 9  # the ten residual blocks, nine ops each
    lay.set_text_filter("")
    assert lay.proxy.rowCount() == total
    assert "All 153 layers" in lay.totals_plain
    assert lay.totals_row.item(0, COL["params"]).text() == "3,470,760"


def test_numeric_sort(v2_window):
    lay = v2_window.layers
    lay.table.sortByColumn(COL["macs"], Qt.DescendingOrder)
    macs = [lay.proxy.index(r, COL["macs"]).data(Qt.UserRole + 2) for r in range(lay.proxy.rowCount())]
    macs = [m or 0 for m in macs]
    assert macs == sorted(macs, reverse=True)
    assert macs[0] > 10_000_000  # a string sort would put "9,..." first
    lay.table.sortByColumn(COL["params"], Qt.AscendingOrder)
    params = [lay.model.params_at(lay.proxy.mapToSource(lay.proxy.index(r, 0)).row())
              for r in range(lay.proxy.rowCount())]
    assert params == sorted(params)
    # selection still maps to the right nodes after sorting
    lay.select_nodes(["features.0.0"])
    assert lay.selected_nodes() == ["features.0.0"]


def test_copy_rows_as_tsv(v2_window):
    lay = v2_window.layers
    lay.set_op_filter("Conv")
    lay.table.selectRow(0)
    lay.table.selectionModel().select(lay.proxy.index(1, 0), lay.table.selectionModel().SelectionFlag.Select
                                      | lay.table.selectionModel().SelectionFlag.Rows)
    lay.table.setFocus()
    lay.copy_selection()
    lines = QApplication.clipboard().text().splitlines()
    assert lines[0].split("\t")[:3] == ["name", "op_type", "block"]
    assert len(lines) == 3
    first = lines[1].split("\t")
    assert first[0] == "features.0.0" and first[1] == "Conv" and first[COL["macs"]] == "10838016"


def test_csv_export_all_and_shown(v2_window, tmp_path):
    lay = v2_window.layers
    full = lay.export_csv(tmp_path / "all.csv")
    text = full.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ("name,op_type,block,input_shapes,output_shapes,params,macs,flops,"
                                    "activation_bytes,weight_bytes")
    assert text == v2_window.analysis.costs.to_csv("paper")
    lay.set_op_filter("Conv")
    lay.table.sortByColumn(COL["macs"], Qt.DescendingOrder)
    shown = list(csv.reader(io.StringIO(lay.export_csv(tmp_path / "conv.csv", shown_only=True).read_text())))
    assert len(shown) == 53 and shown[0][0] == "name"
    assert all(r[1] == "Conv" for r in shown[1:])
    assert shown[1][0] == "features.0.0"  # execution order, like the full export


def test_model_tab(v2_window):
    w = v2_window
    w.tabs.setCurrentWidget(w.info)
    info = w.info
    assert info.title.text() == "mobilenet_v2_1_224"
    assert info.fields["opset"].text() == "17"
    assert info.io_table.rowCount() == 2
    assert info.io_table.item(0, 1).text() == "input" and "224×224" in info.io_table.item(0, 3).text()
    assert info.block_table.rowCount() == 19
    assert info.conv_table.rowCount() == 6
    convs = [info.conv_table.item(r, 0).text() for r in range(6)]
    assert convs[:2] == ["paper", "torchvision"]
    assert info.conv_table.item(1, 1).text() == "3,504,872"
    assert info.conv_table.item(0, 1).text() == "3,470,760"
    headers = [info.conv_table.horizontalHeaderItem(c).text() for c in range(info.conv_table.columnCount())]
    bn = headers.index("params: BN γ/β")  # params split by term, as the CLI prints them
    assert info.conv_table.item(0, bn).text() == "0" and info.conv_table.item(1, bn).text() == "34,112"
    assert "601,548,544" in info.totals["flops"].text()


def test_name_column_takes_the_spare_width(qtbot, v2_window):
    w = v2_window
    lay = w.layers
    head = lay.table.horizontalHeader()
    name = COL["name"]

    def others():
        return sum(head.sectionSize(c) for c in range(head.count()) if c != name and not head.isSectionHidden(c))

    w.resize(2600, 800)
    qtbot.waitUntil(lambda: head.sectionSize(name) == lay.table.viewport().width() - others())
    assert head.sectionSize(name) > lay._name_min  # wider than its sample: it took the spare width
    assert head.length() == lay.table.viewport().width()  # no empty band right of the last column
    wide = head.sectionSize(name)
    lay.set_overlay_column("MACs share")  # another column: the name gives it room
    qtbot.waitUntil(lambda: head.sectionSize(name) < wide)
    assert head.length() == lay.table.viewport().width()
    w.resize(900, 800)
    qtbot.waitUntil(lambda: head.sectionSize(name) == lay._name_min)  # never narrower than its sample


def test_live_bytes_column_and_peak_total(v2_window):
    lay = v2_window.layers
    t = v2_window.state.totals
    assert lay.totals()["live_bytes"] == t["peak_activation_bytes"] == 2 * 96 * 112 * 112 * 4
    assert lay.totals_row.item(0, COL["live_bytes"]).text() == f"{t['peak_activation_bytes']:,}"  # a peak, not a sum
    assert "peak activations 9.19 MiB" in lay.totals_plain and "sum of all activations" in lay.totals_plain
    assert "peak" in lay.model.headerData(COL["live_bytes"], Qt.Horizontal, Qt.ToolTipRole)
    assert "peak activations 9.19 MiB" in v2_window.summary_label.text()
    # a float model: no Q/DQ to fold, no quantization columns
    assert lay.qdq_check.isHidden()
    assert all(lay.table.isColumnHidden(COL[k]) for k in ("out_dtype", "out_scale", "out_zero_point"))


@pytest.fixture(scope="module")
def quant_analysis(shared_dir):
    from mbexplorer.core.analysis import open_model

    return open_model(shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite")


@pytest.mark.shared
def test_qdq_rows_folded_with_quantization_columns(window, quant_analysis):
    """Quantize/Dequantize rows are folded away by default; the layers they belong to carry the dtype, scale and
    zero point of what they write; the totals are the same whether the rows are shown or not."""
    w = window
    w.show_analysis(quant_analysis, {"path": "x"})
    lay = w.layers
    m = lay.model
    total = m.rowCount()
    qdq = m.qdq_rows()
    assert qdq == 119 and not w.state.show_qdq
    assert lay.proxy.rowCount() == total - qdq
    assert not set(shown_column(lay, COL["op_type"])) & {"QuantizeLinear", "DequantizeLinear"}
    assert not lay.qdq_check.isHidden()
    folded = lay.totals()
    assert "All 179 layers (119 Q/DQ folded)" in lay.totals_plain
    # the stem conv writes uint8 through its fused Relu6: the TFLite tensor's scale and zero point
    gi = quant_analysis.index
    conv = next(n.name for n in gi.nodes if n.op_type == "Conv")
    row = m.row_of(conv)
    clip = gi.nodes[gi.consumers[gi.nodes[gi.index[conv]].output[0]][0]]
    q = gi.nodes[gi.consumers[clip.output[0]][0]]  # conv -> Clip (Relu6) -> QuantizeLinear
    assert (clip.op_type, q.op_type) == ("Clip", "QuantizeLinear")
    scale = numpy_helper.to_array(gi.initializers[q.input[1]])
    zp = numpy_helper.to_array(gi.initializers[q.input[2]])
    assert [m.index(row, COL[k]).data() for k in ("out_dtype", "out_scale", "out_zero_point")] == \
        ["uint8", f"{float(scale):.6g}", str(int(zp))]
    assert not any(lay.table.isColumnHidden(COL[k]) for k in ("out_dtype", "out_scale", "out_zero_point"))
    lay.qdq_check.setChecked(True)  # the state's setting: the graph follows too
    assert w.state.show_qdq and w.act_qdq.isChecked() and w.graph.graph.show_qdq
    assert lay.proxy.rowCount() == total
    shown = lay.totals()
    assert {k: v for k, v in shown.items() if k != "folded"} == {k: v for k, v in folded.items() if k != "folded"}
    assert shown["folded"] == 0 and "folded" not in lay.totals_plain
    w.state.show_qdq = False
    assert lay.proxy.rowCount() == total - qdq and not lay.qdq_check.isChecked()
    lay.set_op_filter("DequantizeLinear")  # picking a Q/DQ op type shows its rows even while folded
    assert lay.proxy.rowCount() == 88


@pytest.mark.shared
def test_per_channel_quantization_column(window, shared_dir):
    from mbexplorer.core.analysis import open_model

    a = open_model(shared_dir / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite")
    window.show_analysis(a, {"path": "x"})
    lay = window.layers
    window.state.show_qdq = True
    scales = set(shown_column(lay, COL["out_scale"]))
    assert "per-channel (32)" in scales and "per-channel (1280)" in scales  # weight DequantizeLinear rows
    assert "per-channel (32)" in set(shown_column(lay, COL["out_zero_point"]))


@pytest.mark.shared
def test_model_tab_source_file_section(window, quant_analysis, analyses):
    w = window
    w.show_analysis(quant_analysis, {"path": "x"})
    w.tabs.setCurrentWidget(w.info)
    info = w.info
    assert not info.source_box.isHidden()
    t = info.source_table
    rows = [[t.item(r, c).text() for c in range(t.columnCount())] for r in range(t.rowCount())]
    assert rows == [["input", "input", "uint8", "1×128×128×3", "0.0078125 (1/128)", "128"],
                    ["output", "MobilenetV1/Predictions/Reshape_1", "uint8", "1×1001", "0.00390625 (1/256)", "0"]]
    assert "CONV_2D 15" in info.source_ops.text() and "DEPTHWISE_CONV_2D 13" in info.source_ops.text()
    assert "ONNX" in info.io_box.title() and info.io_table.item(1, 2).text() == "float32"
    peak = quant_analysis.costs.totals()["peak_activation_bytes"]
    assert info.totals["peak_activation_bytes"].text() == "240.00 KiB" and peak == 240 * 1024
    assert info.totals["activation_bytes"].text() == "5.51 MiB"
    assert "Sum of all activations" in info.totals_labels["activation_bytes"].text()
    # a built (ONNX) model has no source section
    w.show_analysis(analyses("mobilenet_v2"), {"build": {}})
    assert info.source_box.isHidden() and info.io_box.title() == "Inputs and outputs"
