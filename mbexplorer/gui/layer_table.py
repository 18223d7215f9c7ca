"""The "Layers" tab: the per-layer table with filters, a counting-convention switch, totals of the rows
shown, copy as TSV and CSV export."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QStyledItemDelegate,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mbexplorer.core.conventions import CONVENTIONS, DEFAULT_CONVENTION
from mbexplorer.core.formatting import si, size_bytes, thousands

from .layer_model import COL, COLUMNS, KEYS, NUMERIC, LayerFilterProxy, LayerTableModel
from .totals_row import TotalsRow

ALL_OPS = "All op types"
ALL_BLOCKS = "All blocks"
# Initial widths: sample text per column, measured with the table's font (ResizeToContents would measure
# every row, which is slow for 10,000 of them). Long shapes elide at the end, long names in the middle (the
# model's prefix and the distinguishing tail stay visible); tooltips carry the full text.
WIDTH_SAMPLES = ("features.10.conv.0.0xxxx", "BatchNormalizationx", "block 10", "1×144×56×56, w 24×144",
                 "1×144×56×56x", "00,000,000", "000,000,000", "000,000,000", "Activation bytes",
                 "Weight bytes")


class MiddleElide(QStyledItemDelegate):
    """Names elide in the middle: "MobilenetV3/expand…/depthwise/Relu" tells rows apart."""

    def initStyleOption(self, option, index) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.ElideMiddle


class LayerTablePanel(QWidget):
    conventionChanged = Signal(str)
    nodeSelected = Signal(str)  # the current row's node, when the user picks a row

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = LayerTableModel(self)
        self.proxy = LayerFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self._syncing = False
        self._build()

    # widgets -------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 6)
        lay.setSpacing(6)

        bar = QHBoxLayout()
        bar.setSpacing(6)
        self.filter_edit = QLineEdit(placeholderText="Filter by name, op or block…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setAcceptDrops(False)  # a dropped model file opens it (main window), not pasted text
        self.filter_edit.textChanged.connect(self._on_text)
        self.op_combo = QComboBox(minimumContentsLength=12)
        self.op_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.op_combo.setToolTip("Show one op type")
        self.op_combo.currentIndexChanged.connect(self._on_op)
        self.block_combo = QComboBox(minimumContentsLength=14)
        self.block_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.block_combo.setToolTip("Show one block")
        self.block_combo.currentIndexChanged.connect(self._on_block)
        self.convention_combo = QComboBox()
        for name, conv in CONVENTIONS.items():
            self.convention_combo.addItem(name, name)
            self.convention_combo.setItemData(self.convention_combo.count() - 1,
                                              f"{conv.title}: {conv.description}", Qt.ToolTipRole)
        self.convention_combo.setCurrentIndex(list(CONVENTIONS).index(DEFAULT_CONVENTION))
        self.convention_combo.currentIndexChanged.connect(self._on_convention)
        bar.addWidget(self.filter_edit, 3)
        bar.addWidget(self.op_combo, 1)
        bar.addWidget(self.block_combo, 1)
        bar.addSpacing(8)
        bar.addWidget(QLabel("Convention:"))
        bar.addWidget(self.convention_combo)
        lay.addLayout(bar)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.AscendingOrder)  # execution order until the user sorts
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.ElideRight)
        self.table.setItemDelegateForColumn(COL["name"], MiddleElide(self.table))
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setAcceptDrops(False)
        self.table.viewport().setAcceptDrops(False)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(False)
        header.setSectionsMovable(True)
        fm = self.table.fontMetrics()
        for col, sample in enumerate(WIDTH_SAMPLES):
            self.table.setColumnWidth(col, fm.horizontalAdvance(sample) + 18)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        copy = QAction("Copy rows", self.table)
        copy.setShortcut(QKeySequence.Copy)
        copy.setShortcutContext(Qt.WidgetWithChildrenShortcut)
        copy.triggered.connect(self.copy_selection)
        self.table.addAction(copy)
        self.table.setContextMenuPolicy(Qt.ActionsContextMenu)
        lay.addWidget(self.table, 1)
        self.totals_row = TotalsRow(self.table)
        lay.addWidget(self.totals_row)

        foot = QHBoxLayout()
        foot.setSpacing(8)
        texts = QVBoxLayout()
        texts.setSpacing(2)
        self.totals_label = QLabel()
        self.totals_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.totals_label.setObjectName("totals")
        self.totals_label.setWordWrap(True)
        self.totals_label.setTextFormat(Qt.RichText)  # wraps rather than forcing the window wider
        self.not_counted_label = QLabel()
        self.not_counted_label.setWordWrap(True)
        self.not_counted_label.setTextFormat(Qt.PlainText)  # op type names come from the file
        self.not_counted_label.setStyleSheet("color: #b45309;")
        texts.addWidget(self.totals_label)
        texts.addWidget(self.not_counted_label)
        foot.addLayout(texts, 1)
        self.copy_button = QToolButton(text="Copy")
        self.copy_button.setToolTip("Copy the selected rows as tab-separated text (Ctrl+C)")
        self.copy_button.clicked.connect(self.copy_selection)
        self.export_button = QToolButton(text="Export CSV…")
        self.export_button.setPopupMode(QToolButton.MenuButtonPopup)
        menu = QMenu(self.export_button)
        menu.addAction("All layers…", lambda: self.export_csv_dialog(shown_only=False))
        menu.addAction("Shown rows only…", lambda: self.export_csv_dialog(shown_only=True))
        self.export_button.setMenu(menu)
        self.export_button.clicked.connect(lambda: self.export_csv_dialog(shown_only=self.proxy.is_filtered()))
        self.export_button.setToolTip("Export the table as CSV: all layers, or only the rows the filters show")
        foot.addWidget(self.copy_button, 0, Qt.AlignTop)
        foot.addWidget(self.export_button, 0, Qt.AlignTop)
        lay.addLayout(foot)
        self.setEnabled(False)
        self._update_totals()

    # content -------------------------------------------------------------------------------------
    @property
    def convention(self) -> str:
        return self.convention_combo.currentData() or DEFAULT_CONVENTION

    def set_convention(self, name: str) -> None:
        self.convention_combo.setCurrentIndex(list(CONVENTIONS).index(name))

    def set_report(self, report, index=None) -> None:
        self._syncing = True
        try:
            # Clear filters and sorting before the new rows arrive, so nothing is filtered or sorted twice.
            self.proxy.clear_filters_quietly()
            self.filter_edit.clear()
            self.table.horizontalHeader().setSortIndicator(-1, Qt.AscendingOrder)
            self.model.set_report(report, self.convention, index)
            ops: dict[str, int] = {}
            for n in report.nodes:
                ops[n.op_type] = ops.get(n.op_type, 0) + 1
            self.op_combo.clear()
            self.op_combo.addItem(ALL_OPS, None)
            for op in sorted(ops):
                self.op_combo.addItem(f"{op} ({ops[op]})", op)
            self.block_combo.clear()
            self.block_combo.addItem(ALL_BLOCKS, None)
            for b in report.blocks.blocks:
                self.block_combo.addItem(b.name, b.index)
                self.block_combo.setItemData(self.block_combo.count() - 1, b.name, Qt.ToolTipRole)
        finally:
            self._syncing = False
        self.setEnabled(True)
        self._update_totals()

    def set_op_filter(self, op: str | None) -> None:
        i = self.op_combo.findData(op) if op else 0
        if i >= 0:
            self.op_combo.setCurrentIndex(i)

    def set_block_filter(self, block: int | None) -> None:
        i = self.block_combo.findData(block) if block is not None else 0
        if i >= 0:
            self.block_combo.setCurrentIndex(i)

    def set_text_filter(self, text: str) -> None:
        self.filter_edit.setText(text)

    def shown_rows(self) -> list[int]:
        return self.proxy.source_rows()

    # filters and convention ----------------------------------------------------------------------
    def _on_text(self, text: str) -> None:
        if not self._syncing:
            self.proxy.set_text(text)
            self._update_totals()

    def _on_op(self, _i: int) -> None:
        if not self._syncing:
            self.proxy.set_op_type(self.op_combo.currentData())
            self._update_totals()

    def _on_block(self, _i: int) -> None:
        if not self._syncing:
            self.proxy.set_block(self.block_combo.currentData())
            self._update_totals()

    def _on_convention(self, _i: int) -> None:
        self.model.set_convention(self.convention)
        self._update_totals()
        self.conventionChanged.emit(self.convention)

    def totals(self) -> dict:
        """Sums over the rows shown (what the footer displays)."""
        m = self.model
        rows = self.shown_rows() if self.model.report else []
        t = {"rows": len(rows), "params": 0, "macs": 0, "flops": 0, "activation_bytes": 0, "weight_bytes": 0,
             "not_counted_rows": 0}
        for r in rows:
            n = m.node(r)
            t["params"] += m.params_at(r)
            t["macs"] += n.macs or 0
            f = m.flops_at(r)
            if f is None:
                t["not_counted_rows"] += 1
            else:
                t["flops"] += f
            t["activation_bytes"] += n.activation_bytes
            t["weight_bytes"] += n.weight_bytes
        return t

    def _update_totals(self) -> None:
        if self.model.report is None:
            self.totals_plain = "No model open."
            self.totals_label.setText("<span style='color:#6b7280'>No model open.</span>")
            self.not_counted_label.hide()
            self.totals_row.set_values([""] * len(COLUMNS), NUMERIC)
            return
        t = self.totals()
        self._fill_totals_row(t)
        total_rows = self.model.rowCount()
        scope = (f"<b>All {total_rows:,} layers</b>" if t["rows"] == total_rows
                 else f"<b>{t['rows']:,} of {total_rows:,} layers shown</b>")
        parts = [scope, f"params <b>{thousands(t['params'])}</b>", f"MACs <b>{si(t['macs'])}</b>",
                 f"FLOPs <b>{si(t['flops'])}</b>", f"activations <b>{size_bytes(t['activation_bytes'])}</b>",
                 f"weights <b>{size_bytes(t['weight_bytes'])}</b>"]
        self.totals_plain = "  · ".join(p.replace("<b>", "").replace("</b>", "") for p in parts)
        # non-breaking spaces inside each figure: a narrow window wraps between figures, never inside one
        self.totals_label.setText("&nbsp;&nbsp;· ".join(p.replace(" ", "&nbsp;") for p in parts))
        conv = CONVENTIONS[self.convention]
        self.totals_label.setToolTip(f"Totals of the rows shown under the '{self.convention}' convention.\n"
                                     f"FLOPs: {conv.flops_label}")
        missing = self.model.not_counted_ops()
        if missing:
            self.not_counted_label.setText(f"Not counted under '{self.convention}': {', '.join(missing)}")
            self.not_counted_label.show()
        else:
            self.not_counted_label.setText("")
            self.not_counted_label.hide()

    def _fill_totals_row(self, t: dict) -> None:
        total_rows = self.model.rowCount()
        texts = [""] * len(COLUMNS)
        texts[COL["name"]] = (f"Total, {t['rows']:,} layers" if t["rows"] == total_rows
                              else f"Total, {t['rows']:,} of {total_rows:,} shown")
        for key in ("params", "macs", "activation_bytes", "weight_bytes"):
            texts[COL[key]] = thousands(t[key])
        texts[COL["flops"]] = thousands(t["flops"]) + ("+" if t["not_counted_rows"] else "")
        tip = (f"Sums of the rows shown ({self.convention} convention)" +
               (f"; FLOPs leave out {t['not_counted_rows']} not-counted rows" if t["not_counted_rows"] else ""))
        self.totals_row.set_values(texts, NUMERIC, tip)

    # selection -----------------------------------------------------------------------------------
    def _on_selection(self, *_):
        if self._syncing:
            return
        cur = self.table.selectionModel().currentIndex()
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        idx = cur if cur.isValid() and self.table.selectionModel().isRowSelected(cur.row()) else rows[0]
        src = self.proxy.mapToSource(idx)
        self.nodeSelected.emit(self.model.node(src.row()).name)

    def select_nodes(self, names: list[str]) -> int:
        """Select the rows of these nodes (those the filters show) without emitting; returns how many."""
        sel = QItemSelection()
        first = None
        last_col = self.proxy.columnCount() - 1
        for name in names:
            r = self.model.row_of(name)
            if r is None:
                continue
            p = self.proxy.mapFromSource(self.model.index(r, 0))
            if not p.isValid():
                continue
            sel.select(p, self.proxy.index(p.row(), last_col))
            if first is None or p.row() < first.row():
                first = p
        self._syncing = True
        try:
            sm = self.table.selectionModel()
            sm.select(sel, QItemSelectionModel.ClearAndSelect)
            if first is not None:
                sm.setCurrentIndex(first, QItemSelectionModel.NoUpdate)
                self.table.scrollTo(first, QAbstractItemView.PositionAtCenter)
        finally:
            self._syncing = False
        return len(sel.indexes()) // max(1, self.proxy.columnCount())

    def select_block(self, index: int) -> int:
        if self.model.report is None:
            return 0
        return self.select_nodes(self.model.report.blocks.blocks[index].nodes)

    def selected_nodes(self) -> list[str]:
        rows = sorted(self.table.selectionModel().selectedRows(), key=lambda i: i.row())
        return [self.model.node(self.proxy.mapToSource(i).row()).name for i in rows]

    # copy and export -----------------------------------------------------------------------------
    def selection_tsv(self) -> str:
        rows = sorted(self.table.selectionModel().selectedRows(), key=lambda i: i.row())
        lines = ["\t".join(KEYS)]
        for i in rows:
            r = self.proxy.mapToSource(i).row()
            vals = []
            for col in range(len(COLUMNS)):
                v = self.model.raw(r, col)
                vals.append("not counted" if v is None else str(v))
            lines.append("\t".join(vals))
        return "\n".join(lines) + "\n"

    def copy_selection(self) -> None:
        if not self.table.selectionModel().selectedRows():
            return
        QApplication.clipboard().setText(self.selection_tsv())

    def csv_text(self, shown_only: bool = False) -> str:
        """``costs.to_csv`` for the whole model; with ``shown_only``, the same columns for the rows shown."""
        report = self.model.report
        full = report.to_csv(self.convention)
        if not shown_only:
            return full
        rows = list(csv.reader(io.StringIO(full)))
        keep = sorted(self.model.exec_index(r) for r in self.shown_rows())  # execution order, like the full file
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(rows[0])
        for r in keep:
            w.writerow(rows[r + 1])
        return buf.getvalue()

    def export_csv(self, path: str | Path, shown_only: bool = False) -> Path:
        path = Path(path)
        path.write_text(self.csv_text(shown_only), encoding="utf-8")
        return path

    def export_csv_dialog(self, shown_only: bool = False) -> None:
        if self.model.report is None:
            return
        name = self.model.report.model.name + ("_shown" if shown_only else "") + f"_{self.convention}.csv"
        path, _ = QFileDialog.getSaveFileName(self, "Export layers as CSV", name, "CSV files (*.csv)")
        if path:
            try:
                self.export_csv(path, shown_only)
            except OSError as exc:
                self.window().show_error(f"Cannot write {path}: {exc.strerror or exc}")
                return
            self.window().statusBar().showMessage(f"Wrote {path}", 5000)
