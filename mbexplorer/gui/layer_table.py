"""The "Layers" tab: the per-layer table with filters, a counting-convention switch, overlay columns (any
registered overlay, from the Columns button or the header's context menu), totals of the rows shown, copy
as TSV and CSV export.

The panel shows the window's :class:`~mbexplorer.core.state.State`: a new analysis or convention arrives as a
state event, and the convention combo sets the state's convention (every other panel follows from there).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from PySide6.QtCore import QEvent, QItemSelection, QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
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

from mbexplorer.core.conventions import CONVENTIONS
from mbexplorer.core.errors import MbxError
from mbexplorer.core.formatting import plural, si, size_bytes, thousands
from mbexplorer.core.outputs import check_output, write_atomically
from mbexplorer.core.state import State

from .layer_model import COL, KEYS, NUMERIC, QUANT, LayerFilterProxy, LayerTableModel
from .totals_row import TotalsRow

ALL_OPS = "All op types"
ALL_BLOCKS = "All blocks"
# Initial widths: sample text per column, measured with the table's font (ResizeToContents would measure
# every row, which is slow for 10,000 of them). Long shapes elide at the end, long names in the middle (the
# model's prefix and the distinguishing tail stay visible); tooltips carry the full text.
WIDTH_SAMPLES = ("features.10.conv.0.0xxxx", "BatchNormalizationx", "block 10", "1×144×56×56, w 24×144",
                 "1×144×56×56x", "00,000,000", "000,000,000", "000,000,000", "Activation bytes",
                 "Live bytesxx", "Weight bytes", "Out dtypex", "per-channel (1280)", "Out zero point")


class MiddleElide(QStyledItemDelegate):
    """Names elide in the middle: "MobilenetV3/expand…/depthwise/Relu" tells rows apart."""

    def initStyleOption(self, option, index) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.ElideMiddle


class LayerTablePanel(QWidget):
    conventionChanged = Signal(str)
    nodeSelected = Signal(str)  # the current row's node, when the user picks a row

    def __init__(self, state: State | None = None, parent=None):
        super().__init__(parent)
        self.state = state if state is not None else State()
        self.model = LayerTableModel(self)
        self.proxy = LayerFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self._syncing = False
        self._overlay_names: list[str] = []  # overlay columns the user chose; kept from model to model
        self._stretching = False
        self.proxy.set_show_qdq(self.state.show_qdq)
        self._build()
        self.state.on("analysis", self._on_analysis)
        self.state.on("show_qdq", self._follow_qdq)
        self.state.on("convention", self._follow_convention)
        self.state.on("overlays", lambda _names: self._drop_unavailable_columns())

    # widgets -------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 6)
        lay.setSpacing(6)
        lay.addLayout(self._build_bar())
        lay.addWidget(self._build_table(), 1)
        self.totals_row = TotalsRow(self.table)
        lay.addWidget(self.totals_row)
        lay.addLayout(self._build_footer())
        self.setEnabled(False)
        self._update_totals()

    def _build_bar(self) -> QVBoxLayout:
        """Filters, overlay columns and the counting convention."""
        bar = QHBoxLayout()
        bar.setSpacing(6)
        self.filter_edit = QLineEdit(placeholderText="Filter by name, op or block…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setAcceptDrops(False)  # a dropped model file opens it (main window), not pasted text
        self.filter_edit.textChanged.connect(self._on_text)
        self.op_combo = QComboBox(minimumContentsLength=10)
        self.op_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.op_combo.setToolTip("Show one op type")
        self.op_combo.currentIndexChanged.connect(self._on_op)
        self.block_combo = QComboBox(minimumContentsLength=10)
        self.block_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.block_combo.setToolTip("Show one block")
        self.block_combo.currentIndexChanged.connect(self._on_block)
        self.convention_combo = QComboBox()
        for name, conv in CONVENTIONS.items():
            self.convention_combo.addItem(name, name)
            self.convention_combo.setItemData(self.convention_combo.count() - 1,
                                              f"{conv.title}: {conv.description}", Qt.ToolTipRole)
        self.convention_combo.setCurrentIndex(list(CONVENTIONS).index(self.state.convention))
        self.convention_combo.currentIndexChanged.connect(self._on_convention)
        self.columns_button = QToolButton(text="Columns")
        self.columns_button.setToolTip("Add or remove overlay columns (also: right-click the header)")
        self.columns_button.setPopupMode(QToolButton.InstantPopup)
        self.columns_menu = QMenu(self.columns_button)
        self.columns_menu.setToolTipsVisible(True)
        self.columns_menu.aboutToShow.connect(self._fill_columns_menu)
        self.columns_button.setMenu(self.columns_menu)
        self.qdq_check = QCheckBox("Show Q/DQ")
        self.qdq_check.setToolTip("Show the QuantizeLinear / DequantizeLinear ops of a quantized model as rows of "
                                  "their own (folded away by default; the totals count them either way)")
        self.qdq_check.setChecked(self.state.show_qdq)
        self.qdq_check.toggled.connect(lambda on: setattr(self.state, "show_qdq", on))
        self.qdq_check.hide()  # only for models that have Q/DQ ops
        # Two rows: filters, then what is shown and how it is counted. One row needed ~730 px, which with the
        # graph beside it made the window wider than a 1280 px screen.
        bar.addWidget(self.filter_edit, 3)
        bar.addWidget(self.op_combo, 1)
        bar.addWidget(self.block_combo, 1)
        second = QHBoxLayout()
        second.setSpacing(6)
        second.addWidget(self.columns_button)
        second.addWidget(self.qdq_check)
        second.addStretch(1)
        second.addWidget(QLabel("Convention:"))
        second.addWidget(self.convention_combo)
        rows = QVBoxLayout()
        rows.setSpacing(4)
        rows.addLayout(bar)
        rows.addLayout(second)
        return rows

    def _build_table(self) -> QTableView:
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
        header.setContextMenuPolicy(Qt.CustomContextMenu)
        header.customContextMenuRequested.connect(
            lambda pos: (self._fill_columns_menu(), self.columns_menu.popup(header.mapToGlobal(pos))))
        fm = self.table.fontMetrics()
        for col, sample in enumerate(WIDTH_SAMPLES):
            self.table.setColumnWidth(col, fm.horizontalAdvance(sample) + 18)
        # the Name column takes the width the others leave: long names are what users read
        self._name_min = self.table.columnWidth(COL["name"])
        header.sectionResized.connect(lambda i, _old, _new: i != COL["name"] and self._stretch_name())
        header.sectionCountChanged.connect(lambda *_: self._stretch_name())
        self.table.viewport().installEventFilter(self)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        copy = QAction("Copy rows", self.table)
        copy.setShortcut(QKeySequence.Copy)
        copy.setShortcutContext(Qt.WidgetWithChildrenShortcut)
        copy.triggered.connect(self.copy_selection)
        self.table.addAction(copy)
        self.table.setContextMenuPolicy(Qt.ActionsContextMenu)
        return self.table

    def _build_footer(self) -> QHBoxLayout:
        """What the rows shown add up to, what is not counted, and Copy / Export CSV."""
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
        return foot

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Resize and obj is self.table.viewport():
            self._stretch_name()
        return super().eventFilter(obj, event)

    def _stretch_name(self) -> None:
        """Name gets the table's spare width, never less than its sample's width (a user who drags it keeps
        that width until the table or another column changes size)."""
        if self._stretching:
            return
        head, name = self.table.horizontalHeader(), COL["name"]
        others = sum(head.sectionSize(c) for c in range(head.count()) if c != name and not head.isSectionHidden(c))
        width = max(self._name_min, self.table.viewport().width() - others)
        if width != head.sectionSize(name):
            self._stretching = True
            try:
                head.resizeSection(name, width)
            finally:
                self._stretching = False

    # content -------------------------------------------------------------------------------------
    @property
    def convention(self) -> str:
        return self.state.convention

    def set_convention(self, name: str) -> None:
        self.state.convention = name

    def _on_analysis(self, analysis) -> None:
        if analysis is None:
            return
        report = analysis.costs
        available = self.state.available_overlays()
        self._overlay_names = [n for n in self._overlay_names if n in available]
        overlays = [ov for n in self._overlay_names if (ov := self.state.overlay_for(n)) is not None]
        self._syncing = True
        try:
            # Clear filters and sorting before the new rows arrive, so nothing is filtered or sorted twice.
            self.proxy.clear_filters_quietly()
            self.filter_edit.clear()
            self.table.horizontalHeader().setSortIndicator(-1, Qt.AscendingOrder)
            self.model.set_report(report, self.convention, analysis.index, overlays)
            for ov in overlays:
                self._size_overlay_column(ov.name)
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
        self.qdq_check.setVisible(self.model.qdq_rows() > 0)
        for col in QUANT:  # a float model's columns would say float32 on every row and nothing else
            self.table.setColumnHidden(col, not self.model.quantized)
        self.setEnabled(True)
        self._update_totals()

    def _follow_qdq(self, on: bool) -> None:
        if self.qdq_check.isChecked() != on:
            self.qdq_check.blockSignals(True)
            self.qdq_check.setChecked(on)
            self.qdq_check.blockSignals(False)
        self.proxy.set_show_qdq(on)
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
        self.state.convention = self.convention_combo.currentData()  # the state tells every panel, this one too

    def _follow_convention(self, conv: str) -> None:
        if self.convention_combo.currentData() != conv:
            self.convention_combo.blockSignals(True)
            self.convention_combo.setCurrentIndex(list(CONVENTIONS).index(conv))
            self.convention_combo.blockSignals(False)
        self.model.set_convention(conv)
        for name in self._overlay_names:  # the state recomputed those that depend on the convention
            if (ov := self.state.overlay_for(name)) is not None:
                self.model.set_overlay(ov)
        self._update_totals()
        self.conventionChanged.emit(conv)

    # overlay columns -----------------------------------------------------------------------------
    @property
    def overlay_columns(self) -> list[str]:
        return list(self._overlay_names)

    def set_overlay_column(self, name: str, on: bool = True) -> None:
        """Show (or hide) an overlay of the state's registry as a column; chosen before a model is open, it
        appears with the model."""
        if on and name not in self._overlay_names:
            if name not in self.state.available_overlays():
                raise KeyError(f"no overlay {name!r} for this model")
            self._overlay_names.append(name)
            ov = self.state.overlay_for(name)
            if ov is not None:
                col = self.model.add_overlay(ov)
                self._size_overlay_column(name)
                # it is the last column, often right of the view: bring it in once the table has laid it out
                # (the scroll range grows then), leaving the rows where they are
                QTimer.singleShot(0, self.table, lambda c=col: self._scroll_to_column(c))
        elif not on and name in self._overlay_names:
            self._overlay_names.remove(name)
            self.model.remove_overlay(name)
        self._update_totals()

    def _scroll_to_column(self, col: int) -> None:
        if col < self.proxy.columnCount() and self.proxy.rowCount():
            top = max(0, self.table.rowAt(0))
            self.table.scrollTo(self.proxy.index(top, col), QAbstractItemView.EnsureVisible)

    def _size_overlay_column(self, name: str) -> None:
        col = self.model.overlay_column(name)
        if col is not None:
            fm = self.table.fontMetrics()
            text = max(fm.horizontalAdvance(name), fm.horizontalAdvance("000.0 %"))
            self.table.setColumnWidth(col, text + 40)  # room for the sort arrow

    def _drop_unavailable_columns(self) -> None:
        available = self.state.available_overlays()
        for name in [n for n in self._overlay_names if n not in available]:
            self.set_overlay_column(name, False)

    def _fill_columns_menu(self) -> None:
        menu = self.columns_menu
        menu.clear()
        menu.addSection("Overlay columns")
        for name in self.state.available_overlays():
            a = menu.addAction(name)
            a.setCheckable(True)
            a.setChecked(name in self._overlay_names)
            spec = self.state.overlays.spec(name)
            if spec is not None and spec.description:
                a.setToolTip(spec.description)
            a.toggled.connect(lambda on, n=name: self.set_overlay_column(n, on))

    def totals(self) -> dict:
        """Sums over the rows the filters pass (what the footer displays). Folded Q/DQ rows count: folding is
        display only. Live bytes is a peak, the largest of those rows, not a sum."""
        m = self.model
        rows = self.proxy.counted_rows() if self.model.report else []
        t = {"rows": len(rows), "params": 0, "macs": 0, "flops": 0, "activation_bytes": 0, "weight_bytes": 0,
             "live_bytes": 0, "not_counted_rows": 0, "overlays": {},
             "folded": len(rows) - self.proxy.rowCount() if self.model.report else 0}
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
            t["live_bytes"] = max(t["live_bytes"], n.live_bytes)
        # each overlay by its own rule over the rows shown: a share adds up, an SQNR takes the worst
        for ov in self.model.overlays:
            vals = (ov.node_values.get(m.node(r).name) for r in rows)
            t["overlays"][ov.name] = ov.combine(v for v in vals if v is not None)
        return t

    def _update_totals(self) -> None:
        if self.model.report is None:
            self.totals_plain = "No model open."
            self.totals_label.setText("<span style='color:#6b7280'>No model open.</span>")
            self.not_counted_label.hide()
            self.totals_row.set_values([""] * self.model.columnCount(), NUMERIC)
            return
        t = self.totals()
        self._fill_totals_row(t)
        total_rows = self.model.rowCount()
        scope = (f"<b>All {plural(total_rows, 'layer', spec=',')}</b>" if t["rows"] == total_rows
                 else f"<b>{t['rows']:,} of {total_rows:,} layers shown</b>")
        if t["folded"]:
            scope += f" ({t['folded']:,} Q/DQ folded)"
        parts = [scope, f"params <b>{thousands(t['params'])}</b>", f"MACs <b>{si(t['macs'])}</b>",
                 f"FLOPs <b>{si(t['flops'])}</b>", f"peak activations <b>{size_bytes(t['live_bytes'])}</b>",
                 f"sum of all activations <b>{size_bytes(t['activation_bytes'])}</b>",
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
        texts = [""] * self.model.columnCount()
        texts[COL["name"]] = (f"Total, {plural(t['rows'], 'layer', spec=',')}" if t["rows"] == total_rows
                              else f"Total, {t['rows']:,} of {total_rows:,} shown")
        for key in ("params", "macs", "activation_bytes", "live_bytes", "weight_bytes"):
            texts[COL[key]] = thousands(t[key])
        texts[COL["flops"]] = thousands(t["flops"]) + ("+" if t["not_counted_rows"] else "")
        tip = (f"Sums of the rows shown ({self.convention} convention)" +
               (f"; FLOPs leave out {t['not_counted_rows']} not-counted rows" if t["not_counted_rows"] else ""))
        tips, numeric = {COL["live_bytes"]: "the peak: the most activation memory alive while any of these rows "
                                            "runs (not a sum)"}, set(NUMERIC)
        for ov in self.model.overlays:
            col = self.model.overlay_column(ov.name)
            texts[col] = ov.format(t["overlays"][ov.name])
            tips[col] = f"{ov.name}: the {ov.aggregate} over the rows shown"
            numeric.add(col)
        self.totals_row.set_values(texts, numeric, tip, tips)

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
        lines = ["\t".join(KEYS + [ov.name for ov in self.model.overlays])]
        for i in rows:
            r = self.proxy.mapToSource(i).row()
            vals = []
            for col in range(self.model.columnCount()):
                v = self.model.raw(r, col)
                if v is None:  # a fixed column's None is a cost nobody counts; an overlay's, no value
                    v = "" if self.model.overlay_at(col) is not None else "not counted"
                vals.append(str(v))
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
        """Write the CSV whole or not at all, never over the model's own file; replacing any other file is allowed
        (the save dialog has asked). MbxError for a path that cannot take it, OSError on a write error."""
        source = self.model.report.model.source_path
        path = check_output(path, inputs=[source] if source else [], force=True, input_name="the open model")
        write_atomically(path, self.csv_text(shown_only))
        return path

    def export_csv_dialog(self, shown_only: bool = False) -> None:
        if self.model.report is None:
            return
        name = self.model.report.model.name + ("_shown" if shown_only else "") + f"_{self.convention}.csv"
        path, _ = QFileDialog.getSaveFileName(self, "Export layers as CSV", name, "CSV files (*.csv)")
        if path:
            try:
                self.export_csv(path, shown_only)
            except MbxError as exc:
                self.window().show_error(str(exc))
                return
            except OSError as exc:
                self.window().show_error(f"Cannot write {path}: {exc.strerror or exc}")
                return
            self.window().statusBar().showMessage(f"Wrote {path}", 5000)
