"""A totals row under the layer table: one row whose columns stay under the table's columns.

A row inside the model would sort and filter with the layers; a separate one-row table, kept in step with
the table's header (widths, order, hidden columns) and horizontal scrolling, stays put at the bottom. Columns
added or removed in the table's model (overlay columns) are added or removed here too.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
)


class TotalsRow(QTableWidget):
    def __init__(self, table: QTableView, parent=None):
        super().__init__(1, table.model().columnCount(), parent)
        self.table = table
        self.horizontalHeader().hide()
        self.verticalHeader().hide()
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.NoSelection)
        self.setFocusPolicy(Qt.NoFocus)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.ElideMiddle)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.Fixed)
        self.setStyleSheet("QTableWidget { background: #f3f4f6; }")
        row_h = table.verticalHeader().defaultSectionSize()
        self.verticalHeader().setDefaultSectionSize(row_h)
        self.setFixedHeight(row_h + 2 * self.frameWidth())
        self._bold = QFont(self.font())
        self._bold.setBold(True)
        head = table.horizontalHeader()
        head.sectionResized.connect(lambda i, _old, new: self.setColumnWidth(i, new))
        head.sectionMoved.connect(lambda _i, old, new: self.horizontalHeader().moveSection(old, new))
        table.horizontalScrollBar().valueChanged.connect(self.horizontalScrollBar().setValue)
        model = table.model()
        for sig in (model.columnsInserted, model.columnsRemoved, model.modelReset):
            sig.connect(lambda *_: self.sync_columns())
        self.sync_columns()

    def sync_columns(self) -> None:
        """As many columns as the table, with its widths and its (user-moved) visual order."""
        head, mine = self.table.horizontalHeader(), self.horizontalHeader()
        self.setColumnCount(self.table.model().columnCount())
        for visual in range(self.columnCount()):
            logical = head.logicalIndex(visual)
            mine.moveSection(mine.visualIndex(logical), visual)
            self.setColumnWidth(logical, self.table.columnWidth(logical))

    def set_values(self, texts: list[str], numeric: set[int], tooltip: str = "",
                   tips: dict[int, str] | None = None) -> None:
        """One text per column (in the model's column order); numeric columns align right. ``tips``: a
        tooltip of its own for some columns (an overlay column says its rule)."""
        for col, text in enumerate(texts):
            item = QTableWidgetItem(text)
            item.setFont(self._bold)
            item.setToolTip((tips or {}).get(col, tooltip))
            item.setTextAlignment((Qt.AlignRight if col in numeric else Qt.AlignLeft) | Qt.AlignVCenter)
            self.setItem(0, col, item)
        self.horizontalScrollBar().setValue(self.table.horizontalScrollBar().value())
