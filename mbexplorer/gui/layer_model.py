"""The per-layer cost table as a Qt model, and the filter/sort proxy in front of it.

Display strings of the convention-free columns are formatted once per model; params and FLOPs are kept as
per-convention arrays, so switching conventions is one pass and a ``dataChanged`` on two columns. Overlays
(``core.overlays``) the user picks follow the fixed columns, one column each, formatted with their unit.

Sorting happens here, in the source model, on raw numbers (never the formatted text): one Python
``sorted`` over a key list and a layout change. Letting QSortFilterProxyModel sort would call ``data()``
twice per comparison, which takes most of a second for 10,000 rows. The proxy only filters.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QFont

from mbexplorer.core.formatting import (
    NOT_COUNTED,
    shape,
    shapes,
    short_block_name,
    thousands,
)
from mbexplorer.core.inspect import QDQ_OPS, Storage, node_output_quant, quant_text

SORT_ROLE = Qt.UserRole + 1
RAW_ROLE = Qt.UserRole + 2

# key, header, numeric: the fixed columns; overlay columns come after them
COLUMNS = (
    ("name", "Name", False),
    ("op_type", "Op type", False),
    ("block", "Block", False),
    ("input_shapes", "Input shapes", False),
    ("output_shapes", "Output shapes", False),
    ("params", "Params", True),
    ("macs", "MACs", True),
    ("flops", "FLOPs", True),
    ("activation_bytes", "Activation bytes", True),
    ("live_bytes", "Live bytes", True),
    ("weight_bytes", "Weight bytes", True),
    ("out_dtype", "Out dtype", False),
    ("out_scale", "Out scale", False),
    ("out_zero_point", "Out zero point", False),
)
KEYS = [c[0] for c in COLUMNS]
COL = {k: i for i, k in enumerate(KEYS)}
NUMERIC = {i for i, c in enumerate(COLUMNS) if c[2]}
QUANT = {COL["out_dtype"]: 0, COL["out_scale"]: 1, COL["out_zero_point"]: 2}  # column -> place in a row's _quant
TIPS = {
    "activation_bytes": "bytes this op writes; the totals row sums them: the sum of all activations, not the "
                        "memory needed at once (that is Live bytes)",
    "live_bytes": "activation memory alive while this op runs (its inputs and outputs and every tensor still "
                  "waiting for a later reader; Q/DQ pairs held as integers); the totals row shows the peak",
    "out_dtype": "dtype of the tensor that really holds this op's output (a quantized model's activations are "
                 "integers)",
    "out_scale": "quantization scale of the op's output tensor (per-channel: how many channels)",
    "out_zero_point": "quantization zero point of the op's output tensor",
}
_ROOT = QModelIndex()  # the table's (invalid) parent index


class LayerTableModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.report = None
        self.convention = "paper"
        self._nodes = []
        self._block_names: list[str] = []
        self._text: list[tuple[str, ...]] = []  # per row: formatted text of the fixed columns
        self._haystack: list[str] = []  # per row: lowercase name / op / block, for the text filter
        self._row_of: dict[str, int] = {}
        self._exec: list[int] = []
        self._full_inputs: list[str] = []  # every input's shape, for tooltips, copy and export
        self._params: list[int] = []
        self._flops: list[int | None] = []
        self._quant: list[tuple[str, str, str]] = []  # per row: output dtype, scale, zero point (text)
        self._overlays: list = []  # Overlay per extra column, in column order
        self._grey = QColor("#9ca3af")
        self._mono = QFont("DejaVu Sans Mono")
        self._mono.setStyleHint(QFont.Monospace)

    # data in -------------------------------------------------------------------------------------
    def set_report(self, report, convention: str, index=None, overlays=()) -> None:
        """``index`` (the GraphIndex) lets the input-shapes column show data inputs and the weight only,
        not every BatchNorm statistic and Clip bound; without it all inputs are listed. ``overlays``: the
        overlay columns, computed for this report's model."""
        self.beginResetModel()
        self.report = report
        self.convention = convention
        self._overlays = list(overlays)
        self._nodes = list(report.nodes) if report else []
        self._block_names = [b.name for b in report.blocks.blocks] if report else []
        self._text, self._haystack, self._full_inputs = [], [], []
        self._row_of = {n.name: r for r, n in enumerate(self._nodes)}
        self._exec = list(range(len(self._nodes)))  # per row: position in execution order
        for n in self._nodes:
            bname = self._block_names[n.block] if 0 <= n.block < len(self._block_names) else str(n.block)
            self._text.append((n.name, n.op_type, short_block_name(bname), _input_text(n, index),
                               shapes(n.output_shapes)))
            self._full_inputs.append(shapes(n.input_shapes))
            self._haystack.append(f"{n.name}\n{n.op_type}\n{bname}".lower())
        self._quant = _quant_texts(report, index, self._nodes)
        self._compute_convention()
        self.endResetModel()

    @property
    def quantized(self) -> bool:
        """Whether any op's output carries quantization parameters (the quantization columns say something)."""
        return any(q[1] for q in self._quant)

    def qdq_rows(self) -> int:
        return sum(1 for n in self._nodes if n.op_type in QDQ_OPS)

    def set_convention(self, convention: str) -> None:
        if convention == self.convention:
            return
        self.convention = convention
        self._compute_convention()
        if self._nodes:
            self.dataChanged.emit(self.index(0, COL["params"]), self.index(len(self._nodes) - 1, COL["flops"]))
        self.headerDataChanged.emit(Qt.Horizontal, COL["params"], COL["flops"])

    # overlay columns -------------------------------------------------------------------------------
    @property
    def overlays(self) -> list:
        return list(self._overlays)

    def overlay_at(self, col: int):
        """The overlay shown in a column, or None for the fixed columns."""
        i = col - len(COLUMNS)
        return self._overlays[i] if 0 <= i < len(self._overlays) else None

    def overlay_column(self, name: str) -> int | None:
        for i, ov in enumerate(self._overlays):
            if ov.name == name:
                return len(COLUMNS) + i
        return None

    def add_overlay(self, overlay) -> int:
        """Show an overlay as the last column (or refresh its column if shown); returns the column."""
        col = self.overlay_column(overlay.name)
        if col is not None:
            self.set_overlay(overlay)
            return col
        col = self.columnCount()
        self.beginInsertColumns(QModelIndex(), col, col)
        self._overlays.append(overlay)
        self.endInsertColumns()
        return col

    def remove_overlay(self, name: str) -> None:
        col = self.overlay_column(name)
        if col is None:
            return
        self.beginRemoveColumns(QModelIndex(), col, col)
        del self._overlays[col - len(COLUMNS)]
        self.endRemoveColumns()

    def set_overlay(self, overlay) -> None:
        """A shown overlay recomputed (e.g. params share under another convention): new values, same column."""
        col = self.overlay_column(overlay.name)
        if col is None or self._overlays[col - len(COLUMNS)] is overlay:
            return
        self._overlays[col - len(COLUMNS)] = overlay
        if self._nodes:
            self.dataChanged.emit(self.index(0, col), self.index(len(self._nodes) - 1, col))
        self.headerDataChanged.emit(Qt.Horizontal, col, col)

    def is_numeric(self, col: int) -> bool:
        return col in NUMERIC or col >= len(COLUMNS)

    def _compute_convention(self) -> None:
        r, c = self.report, self.convention
        self._params = [r.params(n, c) for n in self._nodes] if r else []
        self._flops = [r.flops(n, c) for n in self._nodes] if r else []

    def sort(self, column: int, order=Qt.AscendingOrder) -> None:
        """Reorder rows by a column's raw values (column < 0: execution order); selections follow."""
        n = len(self._nodes)
        if n < 2:
            return
        if column < 0:
            perm = sorted(range(n), key=self._exec.__getitem__)
        else:
            keys = self._sort_keys(column)
            # ties keep execution order in both directions
            perm = sorted(range(n), key=lambda r: self._exec[r])
            perm.sort(key=keys.__getitem__, reverse=order == Qt.DescendingOrder)
        # only now: an error above must not leave the views waiting for a layoutChanged (Qt would crash)
        self.layoutAboutToBeChanged.emit()
        new_row = [0] * n
        for new, old in enumerate(perm):
            new_row[old] = new
        for attr in ("_nodes", "_text", "_haystack", "_full_inputs", "_params", "_flops", "_quant", "_exec"):
            seq = getattr(self, attr)
            setattr(self, attr, [seq[i] for i in perm])
        self._row_of = {node.name: r for r, node in enumerate(self._nodes)}
        old_list = self.persistentIndexList()
        self.changePersistentIndexList(old_list, [self.index(new_row[i.row()], i.column()) for i in old_list])
        self.layoutChanged.emit()

    def _sort_keys(self, col: int) -> list:
        if col >= len(COLUMNS):  # overlay values may be negative (dB): rows without one sort below all
            return [-math.inf if v is None else v for v in (self.raw(r, col) for r in range(len(self._nodes)))]
        if KEYS[col] == "block":
            return [node.block for node in self._nodes]
        if col < 5:
            return [t[col].lower() for t in self._text]
        if col in QUANT:
            return [q[QUANT[col]] for q in self._quant]
        return [-1 if v is None else v for v in (self.raw(r, col) for r in range(len(self._nodes)))]

    # raw access (totals, copy, export, filters) ------------------------------------------------------
    def node(self, row: int):
        return self._nodes[row]

    def haystack(self, row: int) -> str:
        return self._haystack[row]

    def raw(self, row: int, col: int):
        n = self._nodes[row]
        if col >= len(COLUMNS):
            return self._overlays[col - len(COLUMNS)].node_values.get(n.name)
        key = KEYS[col]
        if key == "params":
            return self._params[row]
        if key == "flops":
            return self._flops[row]
        if key == "block":
            return self._block_names[n.block] if 0 <= n.block < len(self._block_names) else n.block
        if key == "input_shapes":
            return self._full_inputs[row]
        if key == "output_shapes":
            return self._text[row][col]
        if col in QUANT:
            return self._quant[row][QUANT[col]]
        return getattr(n, key)

    def exec_index(self, row: int) -> int:
        """The row's position in execution order (its row in ``costs.to_csv``)."""
        return self._exec[row]

    def not_counted_ops(self) -> list[str]:
        """Op types the current convention does not count (as ``costs.not_counted``, from the cached column)."""
        ops: list[str] = []
        for r in sorted(range(len(self._nodes)), key=self._exec.__getitem__):
            if self._flops[r] is None and self._nodes[r].op_type not in ops:
                ops.append(self._nodes[r].op_type)
        return ops

    def params_at(self, row: int) -> int:
        return self._params[row]

    def flops_at(self, row: int) -> int | None:
        return self._flops[row]

    def row_of(self, name: str) -> int | None:
        if self.report is None:
            return None
        return self._row_of.get(name)

    # Qt model ------------------------------------------------------------------------------------
    def rowCount(self, parent=_ROOT) -> int:
        return 0 if parent.isValid() else len(self._nodes)

    def columnCount(self, parent=_ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS) + len(self._overlays)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation != Qt.Horizontal:
            return None
        ov = self.overlay_at(section)
        if role == Qt.DisplayRole:
            return ov.name if ov is not None else COLUMNS[section][1]
        if role == Qt.TextAlignmentRole:
            return int((Qt.AlignRight if self.is_numeric(section) else Qt.AlignLeft) | Qt.AlignVCenter)
        if role == Qt.ToolTipRole:
            if ov is not None:
                return (f"{ov.description or ov.name}\nunit: {ov.unit or '—'} · per {ov.key} · a block's value is "
                        f"the {ov.aggregate} of its ops' · from {ov.source}")
            from mbexplorer.core.conventions import CONVENTIONS

            conv = CONVENTIONS.get(self.convention)
            if KEYS[section] == "flops" and conv:
                return f"{conv.flops_label} — {conv.title}"
            if KEYS[section] == "params" and conv:
                return f"params as counted by: {conv.title}"
            if KEYS[section] == "macs":
                return "multiply-accumulates of convolutions and fully connected layers (batch 1)"
            return TIPS.get(KEYS[section])
        return None

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        if role == Qt.DisplayRole:
            if col < 5:
                return self._text[row][col]
            if col in QUANT:
                return self._quant[row][QUANT[col]]
            v = self.raw(row, col)
            if col >= len(COLUMNS):
                return self._overlays[col - len(COLUMNS)].format(v)  # no value: empty, not "not counted"
            if v is None:
                return NOT_COUNTED
            return thousands(v)
        if role == SORT_ROLE:
            if col < 5:
                return self._text[row][col].lower() if col != 2 else self._nodes[row].block
            if col in QUANT:
                return self._quant[row][QUANT[col]]
            v = self.raw(row, col)
            return (-math.inf if col >= len(COLUMNS) else -1) if v is None else v
        if role == RAW_ROLE:
            return self.raw(row, col)
        if role == Qt.TextAlignmentRole:
            return int((Qt.AlignRight if self.is_numeric(col) else Qt.AlignLeft) | Qt.AlignVCenter)
        if role == Qt.ForegroundRole:
            if col in NUMERIC and self.raw(row, col) is None:
                return self._grey
            return None
        if role == Qt.FontRole and col in (3, 4):
            return self._mono
        if role == Qt.ToolTipRole:
            if col == COL["block"]:
                return self.raw(row, col)
            if col == COL["flops"] and self._flops[row] is None:
                return f"the {self.convention} counter does not count {self._nodes[row].op_type}"
            if col == 3:
                return "all inputs: " + self._full_inputs[row]
            if col in (0, 4):
                return self._text[row][col]
        return None


def _quant_texts(report, index, nodes) -> list[tuple[str, str, str]]:
    """Per row: the dtype, scale and zero point of what the op writes (see ``inspect.node_output_quant``)."""
    if report is None or index is None:
        return [("", "", "")] * len(nodes)
    storage = report.storage or Storage(index)
    out = []
    for n in nodes:
        i = index.index.get(n.name)
        if i is None:
            out.append(("", "", ""))
            continue
        dtype, q = node_output_quant(index, storage, i)
        out.append((dtype, *quant_text(q)))
    return out


_WEIGHTED = {"Conv", "ConvInteger", "Gemm", "MatMul", "MatMulInteger", "ConvTranspose"}


def _input_text(n, index) -> str:
    if index is None or n.name not in index.index:
        return shapes(n.input_shapes)
    node = index.nodes[index.index[n.name]]
    names = [t for t in node.input if t]
    parts = []
    for pos, (t, dims) in enumerate(zip(names, n.input_shapes)):
        if t not in index.constants:
            parts.append(shape(dims))
        elif pos == 1 and n.op_type in _WEIGHTED:
            parts.append("w " + shape(dims))
    return ", ".join(parts) if parts else shapes(n.input_shapes)


class LayerFilterProxy(QSortFilterProxyModel):
    """Text (name, op or block contains it, case-insensitive) AND op type AND block."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._text = ""
        self._op: str | None = None
        self._block: int | None = None
        self._show_qdq = True  # the panel sets the state's choice; False folds Quantize/Dequantize rows away
        self.setDynamicSortFilter(True)

    def sort(self, column: int, order=Qt.AscendingOrder) -> None:
        """Sorting is the source model's job (see the module's docstring); the proxy keeps its order."""
        self.sourceModel().sort(column, order)

    def clear_filters_quietly(self) -> None:
        """Drop every filter without refiltering: for use right before the source model resets."""
        self._text, self._op, self._block = "", None, None

    def set_text(self, text: str) -> None:
        self._refilter("_text", text.strip().lower())

    def set_op_type(self, op: str | None) -> None:
        self._refilter("_op", op or None)

    def set_block(self, block: int | None) -> None:
        self._refilter("_block", block)

    def set_show_qdq(self, on: bool) -> None:
        self._refilter("_show_qdq", bool(on))

    def _refilter(self, attr: str, value) -> None:
        if getattr(self, attr) == value:
            return
        # Qt >= 6.9 wants begin/endFilterChange; older PySide6 only has invalidateRowsFilter.
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            setattr(self, attr, value)
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            setattr(self, attr, value)
            self.invalidateRowsFilter()

    def is_filtered(self) -> bool:
        return bool(self._text or self._op or self._block is not None)

    def filterAcceptsRow(self, source_row: int, source_parent) -> bool:
        return self.accepts(source_row, fold=True)

    def accepts(self, source_row: int, fold: bool) -> bool:
        """The user's filters, and with ``fold`` the Q/DQ fold (display only: totals count folded rows, so they
        do not change when Q/DQ rows are shown or hidden). Picking a Q/DQ op type shows its rows anyway."""
        m: LayerTableModel = self.sourceModel()
        n = m.node(source_row)
        if fold and not self._show_qdq and n.op_type in QDQ_OPS and self._op != n.op_type:
            return False
        if self._op is not None and n.op_type != self._op:
            return False
        if self._block is not None and n.block != self._block:
            return False
        if self._text and self._text not in m.haystack(source_row):
            return False
        return True

    def source_rows(self) -> list[int]:
        """The source rows shown, in display order."""
        return [self.mapToSource(self.index(r, 0)).row() for r in range(self.rowCount())]

    def counted_rows(self) -> list[int]:
        """The source rows the totals add up: those the filters pass, folded Q/DQ rows included."""
        m = self.sourceModel()
        return [r for r in range(m.rowCount()) if self.accepts(r, fold=False)]
