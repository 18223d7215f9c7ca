"""The "Model" tab: what the file is (format, path, size, sha256, opset, producer), its inputs and outputs,
totals under the current convention, per-block totals, and every convention side by side so a user can
see which terms make published figures differ.

The panel shows the window's :class:`~mbexplorer.core.state.State` and fills itself when it is shown: comparing
every convention walks all nodes six times, which a 10,000-node graph should not pay for before the tab is
opened. A new convention redoes only what depends on it, from the state's cached totals.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QFrame,
    QGroupBox,
    QLabel,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mbexplorer.core.conventions import CONVENTIONS, FLOP_GROUPS, PARAM_GROUPS
from mbexplorer.core.formatting import (
    kind_title,
    percent,
    plural,
    shape,
    si,
    size_bytes,
    thousands,
)
from mbexplorer.core.inspect import operators_text, scale_text, zero_point_text
from mbexplorer.core.state import State

BLOCK_ROWS_MAX = 14  # taller per-block tables scroll inside their box
FORMAT_TITLES = {"tflite": "TensorFlow Lite"}
PARAM_TITLES = {"weight": "weights", "bias": "biases", "bn_affine": "BN γ/β", "bn_stats": "BN stats"}


def _table(headers: list[str], numeric_from: int) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().hide()
    t.setEditTriggers(QAbstractItemView.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectRows)
    t.setAlternatingRowColors(True)
    t.setWordWrap(False)
    t.setFocusPolicy(Qt.NoFocus)
    t.verticalHeader().setDefaultSectionSize(t.fontMetrics().height() + 8)
    h = t.horizontalHeader()
    h.setHighlightSections(False)
    for c in range(numeric_from, len(headers)):
        item = t.horizontalHeaderItem(c)
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    t.setProperty("numeric_from", numeric_from)
    return t


def _fill(t: QTableWidget, rows: list[list], tips: list[str] | None = None, max_rows: int | None = None,
          caps: dict[int, int] | None = None, text_cols: set[int] = frozenset()) -> None:
    """Fill a read-only table and size it to its contents (``caps``: column -> widest it may get)."""
    t.setSortingEnabled(False)
    t.setRowCount(len(rows))
    numeric_from = t.property("numeric_from")
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            item = QTableWidgetItem(str(v))
            if c >= numeric_from and c not in text_cols:
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            if tips:
                item.setToolTip(tips[r])
            t.setItem(r, c, item)
    t.resizeColumnsToContents()
    for c in range(t.columnCount()):
        t.setColumnWidth(c, min(t.columnWidth(c) + 14, (caps or {}).get(c, 10_000)))
    shown = len(rows) if max_rows is None else min(len(rows), max_rows)
    height = t.horizontalHeader().height() + shown * t.verticalHeader().defaultSectionSize() + 2 * t.frameWidth()
    if max_rows is not None and len(rows) > max_rows:
        t.setVerticalScrollBarPolicy(Qt.ScrollBarAsNeeded)
    else:
        t.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    t.setFixedHeight(height + (t.horizontalScrollBar().sizeHint().height() if _needs_hscroll(t) else 0))
    # as wide as its columns (no empty band on the right), narrower with a scroll bar if it must
    width = sum(t.columnWidth(c) for c in range(t.columnCount())) + 2 * t.frameWidth()
    if t.verticalScrollBarPolicy() != Qt.ScrollBarAlwaysOff:
        width += t.verticalScrollBar().sizeHint().width()
    t.setMaximumWidth(width)


def _needs_hscroll(t: QTableWidget) -> bool:
    return sum(t.columnWidth(c) for c in range(t.columnCount())) > t.viewport().width() > 100


def _value(text: str = "") -> QLabel:
    lab = QLabel(text)
    lab.setTextFormat(Qt.PlainText)  # names, paths and producers come from the file: never markup
    lab.setTextInteractionFlags(Qt.TextSelectableByMouse)
    lab.setWordWrap(True)
    return lab


class ModelInfoPanel(QScrollArea):
    def __init__(self, state: State | None = None, parent=None):
        super().__init__(parent)
        self.state = state if state is not None else State()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        # Bold section titles; their contents keep the normal weight.
        self.setStyleSheet("QGroupBox { font-weight: bold; } QGroupBox * { font-weight: normal; }")
        self._model_dirty = False  # the file, inputs and every-convention table need redoing
        self._convention_dirty = False  # the totals and per-block table need redoing
        self._comparison: list[dict] = []  # every convention side by side: once per model
        body = QWidget()
        self.setWidget(body)
        lay = QVBoxLayout(body)
        lay.setContentsMargins(12, 10, 12, 12)
        lay.setSpacing(10)

        self.title = QLabel("No model open")
        self.title.setTextFormat(Qt.PlainText)
        f = QFont(self.title.font())
        f.setPointSizeF(f.pointSizeF() + 4)
        f.setBold(True)
        self.title.setFont(f)
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.subtitle = QLabel("")
        self.subtitle.setStyleSheet("color: #4b5563;")
        lay.addWidget(self.title)
        lay.addWidget(self.subtitle)
        for box in (self._file_box(), self._source_box(), self._io_box(), self._totals_box(), self._blocks_box(),
                    self._conventions_box()):
            lay.addWidget(box)
        lay.addStretch(1)
        self.state.on("analysis", self._on_analysis)
        self.state.on("convention", self._on_convention)

    def _file_box(self) -> QGroupBox:
        file_box = QGroupBox("File")
        form = QFormLayout(file_box)
        form.setLabelAlignment(Qt.AlignRight)
        form.setHorizontalSpacing(14)
        self.fields: dict[str, QLabel] = {}
        for key, label in (("format", "Source format"), ("path", "Path"), ("size", "File size"),
                           ("sha256", "SHA-256"), ("opset", "ONNX opset"), ("producer", "Producer")):
            self.fields[key] = _value()
            form.addRow(label + ":", self.fields[key])
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.Monospace)
        mono.setPointSizeF(max(7.0, self.font().pointSizeF() - 1))
        self.fields["sha256"].setFont(mono)
        return file_box

    def _source_box(self) -> QGroupBox:
        """What a non-ONNX file itself says: its inputs and outputs (names, dtypes, quantization) and operators."""
        self.source_box = QGroupBox("Source file")
        lay = QVBoxLayout(self.source_box)
        self.source_format = _value()
        self.source_table = _table(["", "Name", "Type", "Shape", "Scale", "Zero point"], 4)
        self.source_ops = _value()
        for w in (self.source_format, self.source_table, self.source_ops):
            lay.addWidget(w)
        self.source_box.hide()
        return self.source_box

    def _io_box(self) -> QGroupBox:
        self.io_box = QGroupBox("Inputs and outputs")
        io_lay = QVBoxLayout(self.io_box)
        self.io_table = _table(["", "Name", "Type", "Shape", "Layout"], 99)
        io_lay.addWidget(self.io_table)
        return self.io_box

    def _totals_box(self) -> QGroupBox:
        self.totals_box = QGroupBox("Totals")
        tform = QFormLayout(self.totals_box)
        tform.setLabelAlignment(Qt.AlignRight)
        tform.setHorizontalSpacing(14)
        self.totals: dict[str, QLabel] = {}
        self.totals_labels: dict[str, QLabel] = {}
        for key, label in (("params", "Params"), ("macs", "MACs"), ("flops", "FLOPs"),
                           ("peak_activation_bytes", "Peak activation memory"),
                           ("activation_bytes", "Sum of all activations"), ("weight_bytes", "Weight memory"),
                           ("not_counted", "Not counted")):
            self.totals[key] = _value()
            self.totals_labels[key] = QLabel(label + ":")
            tform.addRow(self.totals_labels[key], self.totals[key])
        return self.totals_box

    def _blocks_box(self) -> QGroupBox:
        blocks_box = QGroupBox("Per-block totals")
        b_lay = QVBoxLayout(blocks_box)
        self.block_table = _table(["Block", "Kind", "Ops", "Params", "MACs", "MACs share", "FLOPs"], 2)
        b_lay.addWidget(self.block_table)
        return blocks_box

    def _conventions_box(self) -> QGroupBox:
        conv_box = QGroupBox("Counting conventions: why published numbers differ")
        c_lay = QVBoxLayout(conv_box)
        note = QLabel("Every counter starts from the same convolution and FC multiply-adds (MACs) but adds "
                      "different terms: biases, BatchNorm, activations, pooling, element-wise ops. Params differ "
                      "by whether BatchNorm's affine weights and running statistics count. Hover a row for the "
                      "counter's rules.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #4b5563;")
        c_lay.addWidget(note)
        self.conv_table = _table(["Convention", "Params", "FLOPs", "Not counted"], 1)
        c_lay.addWidget(self.conv_table)
        self.conv_desc = QLabel()
        self.conv_desc.setTextFormat(Qt.RichText)
        self.conv_desc.setWordWrap(True)
        self.conv_desc.setStyleSheet("color: #374151;")
        c_lay.addWidget(self.conv_desc)
        return conv_box

    # content -------------------------------------------------------------------------------------
    @property
    def analysis(self):
        return self.state.analysis

    @property
    def convention(self) -> str:
        return self.state.convention

    def _on_analysis(self, analysis) -> None:
        self._model_dirty = self._convention_dirty = analysis is not None
        self._comparison = []
        if self.isVisible():
            self.refresh()

    def _on_convention(self, _conv: str) -> None:
        self._convention_dirty = self.analysis is not None
        if self.isVisible():
            self.refresh()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        """Bring every section up to date with the model and convention (a no-op when already current)."""
        if self.analysis is None:
            return
        if self._model_dirty:
            self._model_dirty = False
            self._show_model()
        if self._convention_dirty:
            self._convention_dirty = False
            self._show_convention()

    def _show_model(self) -> None:
        analysis = self.analysis
        # Every convention side by side does not depend on the current one: compute it once per model.
        self._comparison = analysis.costs.comparison()
        m = analysis.model
        self.title.setText(m.name)
        n_nodes = len(analysis.costs.nodes)
        self.subtitle.setText(f"{plural(len(analysis.blocks.blocks), 'block')} · {plural(n_nodes, 'op', spec=',')}")
        self.fields["format"].setText(m.source_format)
        self.fields["path"].setText(str(m.source_path) if m.source_path else "— (built in memory, not saved)")
        self.fields["size"].setText(f"{size_bytes(m.file_size)} ({m.file_size:,} bytes)" if m.file_size else "—")
        self.fields["sha256"].setText(m.sha256 or "—")
        self.fields["opset"].setText(str(m.opset))
        self.fields["producer"].setText(m.producer or "—")
        rows = [["input", s.name, s.dtype, shape(s.shape), s.layout or "—"] for s in m.inputs]
        rows += [["output", s.name, s.dtype, shape(s.shape), s.layout or "—"] for s in m.outputs]
        _fill(self.io_table, rows)
        self._show_source(m.source)

    def _show_source(self, src: dict | None) -> None:
        self.source_box.setVisible(bool(src))
        self.io_box.setTitle("Inputs and outputs: the ONNX graph the app runs" if src else "Inputs and outputs")
        if not src:
            return
        self.source_box.setTitle(f"Source file: {FORMAT_TITLES.get(src['format'], src['format'])}")
        desc = f"schema version {src.get('version', '?')}" + (f", “{src['description']}”" if src.get("description")
                                                               else "")
        self.source_format.setText(desc)
        rows = []
        for kind in ("input", "output"):
            for d in src[kind + "s"]:
                q = d.get("quantization")
                rows.append([kind, d["name"], d["dtype"], shape(d["shape"]),
                             scale_text(q["scale"]) if q else "—", zero_point_text(q["zero_point"]) if q else "—"])
        _fill(self.source_table, rows, caps={1: 320})
        self.source_ops.setText(operators_text(src.get("operators")))

    def _show_convention(self) -> None:
        convention = self.convention
        conv = CONVENTIONS[convention]
        t = self.state.totals
        self.totals_box.setTitle(f"Totals — convention: {convention} ({conv.title})")
        self.totals["params"].setText(f"{thousands(t['params'])}  ({si(t['params'])})")
        self.totals["macs"].setText(f"{thousands(t['macs'])}  ({si(t['macs'])})")
        self.totals["flops"].setText(f"{thousands(t['flops'])}  ({si(t['flops'])})")
        self.totals["flops"].setToolTip(conv.flops_label)
        self.totals_labels["flops"].setToolTip(conv.flops_label)
        self.totals["peak_activation_bytes"].setText(size_bytes(t["peak_activation_bytes"]))
        self.totals["peak_activation_bytes"].setToolTip(
            "the most activation memory alive at once, from tensor lifetimes in execution order, each at the dtype "
            "that holds it (a quantized model's Q/DQ pairs as integers)")
        self.totals["activation_bytes"].setText(size_bytes(t["activation_bytes"]))
        self.totals["activation_bytes"].setToolTip("every op's output added up: never all alive at once")
        self.totals["weight_bytes"].setText(size_bytes(t["weight_bytes"]))
        nc = t["not_counted"]
        self.totals["not_counted"].setText(", ".join(nc) if nc else "nothing: every op has a rule")

        total_macs = t["macs"] or 1
        brows = [[b["name"], kind_title(b["kind"]), b["nodes"], thousands(b["params"]), si(b["macs"]),
                  percent(100.0 * b["macs"] / total_macs), si(b["flops"])] for b in self.state.block_totals]
        _fill(self.block_table, brows, max_rows=BLOCK_ROWS_MAX, caps={0: 300})

        # FLOPs split into term groups; groups that are zero under every convention are left out. What a
        # counter does not count comes before the split: it is what explains the largest gaps.
        groups = [g for g in FLOP_GROUPS if any(r["breakdown"]["flops"][g] for r in self._comparison)]
        # params split the same way: which parameters each counter includes
        pgroups = [g for g in PARAM_GROUPS if any(r["breakdown"]["params"][g] for r in self._comparison)]
        headers = (["Convention", "Params", "FLOPs", "Not counted"] + [f"FLOPs: {g}" for g in groups]
                   + [f"params: {PARAM_TITLES.get(g, g)}" for g in pgroups])
        self.conv_table.setColumnCount(len(headers))
        self.conv_table.setHorizontalHeaderLabels(headers)
        for c in range(1, len(headers)):
            self.conv_table.horizontalHeaderItem(c).setTextAlignment(
                (Qt.AlignLeft if c == 3 else Qt.AlignRight) | Qt.AlignVCenter)
        crows, tips = [], []
        for row in self._comparison:
            fl = row["breakdown"]["flops"]
            crows.append([row["convention"], thousands(row["params"]), thousands(row["flops"]),
                          ", ".join(row["breakdown"]["not_counted"]) or "—"]
                         + [si(fl[g]) if fl[g] else "0" for g in groups]
                         + [thousands(row["breakdown"]["params"][g]) for g in pgroups])
            tips.append(f"{row['title']}: {CONVENTIONS[row['convention']].description}")
        _fill(self.conv_table, crows, tips, text_cols={3})
        for r, row in enumerate(crows):
            if row[0] == convention:
                for c in range(self.conv_table.columnCount()):
                    item = self.conv_table.item(r, c)
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
        self.conv_desc.setText(f"<b>{html.escape(convention)}</b> — {html.escape(conv.title)}: "
                               f"{html.escape(conv.description)}")
