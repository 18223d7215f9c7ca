"""The Layers tab: conventions, filters, totals, numeric sorting, copy and CSV export; and the Model tab."""

import csv
import io
import os

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
