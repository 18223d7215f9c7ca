"""The Classify tab's table view: every image with each model's top-1, its score and (comparing) whether the
two agree, sortable by any column. The panel makes the rows (``core.overview.image_row``) and hands them over
whole (``set_rows``) or one at a time as results stream in (``set_row``)."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from mbexplorer.core.overview import Row

from .topk_view import AGREE, DIFFER, MUTED

SORT_ROLE = Qt.UserRole + 1
# (title, Row field, kind); the compare columns only when comparing
COLUMNS = [("Image", "image", "text"), ("Top-1", "label", "text"), ("Score", "score", "score")]
COMPARE = [("Compared: top-1", "other_label", "text"), ("Score", "other_score", "score"), ("Agree", "agree", "agree")]
NOTE = [("Note", "note", "text")]


class OverviewModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[Row] = []
        self.compare = False
        self.columns = COLUMNS + NOTE
        self._at: dict = {}  # path -> row number

    def set_rows(self, rows: list[Row], compare: bool) -> None:
        """All rows. The same images in the same order only refresh in place: the selection and sort stay."""
        rows = list(rows)
        if compare == self.compare and [r.path for r in rows] == [r.path for r in self.rows]:
            self.rows = rows
            if rows:
                self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, len(self.columns) - 1))
            return
        self.beginResetModel()
        self.rows, self.compare = rows, compare
        self.columns = COLUMNS + (COMPARE if compare else []) + NOTE
        self._at = {r.path: i for i, r in enumerate(rows)}
        self.endResetModel()

    def set_row(self, row: Row) -> None:
        """One image's row changed (a result arrived)."""
        i = self._at.get(row.path)
        if i is not None:
            self.rows[i] = row
            self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.columns) - 1))

    def rowCount(self, parent=None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.rows)

    def columnCount(self, parent=None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.columns)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return self.columns[section][0]
        if orientation == Qt.Horizontal and role == Qt.ToolTipRole and self.rows:
            field = self.columns[section][1]
            model = self.rows[0].other_model if field.startswith("other_") else self.rows[0].model
            return model or None
        return None

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        _, field, kind = self.columns[index.column()]
        value = getattr(row, field)
        if role == Qt.DisplayRole:
            if kind == "score":
                return "" if value is None else f"{value:.3f}"
            if kind == "agree":
                return "" if value is None else ("✓ same" if value else "≠ differs")
            return value
        if role == SORT_ROLE:  # numbers sort as numbers; what is not known sorts first going up
            if kind == "score":
                return -1.0 if value is None else value
            if kind == "agree":
                return -1 if value is None else int(value)
            return value.lower()
        if role == Qt.ForegroundRole:
            if kind == "agree" and value is not None:
                return AGREE if value else DIFFER
            if field == "note":
                return MUTED
        if role == Qt.TextAlignmentRole and kind == "score":
            return int(Qt.AlignRight | Qt.AlignVCenter)
        if role == Qt.ToolTipRole:
            index_of = {"label": row.index, "other_label": row.other_index}
            if field in index_of and index_of[field] is not None:
                return f"{value}\noutput index {index_of[field]}"
            return str(row.path) if field == "image" else (value or None) if kind == "text" else None
        return None


class OverviewTable(QTableView):
    """The rows, sortable; choosing a row selects its image, double-click (or Enter) opens it in the strip."""

    imageChosen = Signal(int)  # the image's position in the panel's list
    imageOpened = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows = OverviewModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.rows)
        self.proxy.setSortRole(SORT_ROLE)
        self.setModel(self.proxy)
        # the panel's order until a header is clicked; a third click on it goes back to that order
        self.horizontalHeader().setSortIndicator(-1, Qt.AscendingOrder)
        self.horizontalHeader().setSortIndicatorClearable(True)
        self.setSortingEnabled(True)
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.horizontalHeader().setStretchLastSection(True)
        self.rows.modelReset.connect(self._fit_columns)
        self.selectionModel().currentRowChanged.connect(
            lambda current, _: current.isValid() and self.imageChosen.emit(self.proxy.mapToSource(current).row()))
        self.activated.connect(lambda index: self.imageOpened.emit(self.proxy.mapToSource(index).row()))

    def select_image(self, i: int) -> None:
        """Make the image at position ``i`` current (when the strip's selection changes)."""
        index = self.proxy.mapFromSource(self.rows.index(i, 0)) if 0 <= i < len(self.rows.rows) else QModelIndex()
        if index != self.currentIndex().siblingAtColumn(0):
            self.setCurrentIndex(index)

    def shown_rows(self) -> list[Row]:
        """The rows in the order shown (sorted as the user sorted them)."""
        return [self.rows.rows[self.proxy.mapToSource(self.proxy.index(i, 0)).row()]
                for i in range(self.proxy.rowCount())]

    def _fit_columns(self) -> None:
        header = self.horizontalHeader()
        for c, (_, _, kind) in enumerate(self.rows.columns):
            header.resizeSection(c, {"score": 70, "agree": 90}.get(kind, 200))
