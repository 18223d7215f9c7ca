"""A layout that wraps: items left to right, onto another row when the width runs out (Qt's flow layout
example). A toolbar in one is one row on a wide window and two on a 1280 px screen, and never makes the
window's minimum width more than its widest item: the Classify tab's toolbar uses it."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtWidgets import QHBoxLayout, QLayout, QWidget


class FlowLayout(QLayout):
    """Items left to right, wrapping onto another row when the width runs out."""

    def __init__(self, parent=None, spacing: int = 12):
        super().__init__(parent)
        self._items: list = []
        self.setSpacing(spacing)
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, i):
        return self._items[i] if 0 <= i < len(self._items) else None

    def takeAt(self, i):
        return self._items.pop(i) if 0 <= i < len(self._items) else None

    def expandingDirections(self):
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:  # one row
        shown = [i.sizeHint() for i in self._items if not i.isEmpty()]
        w = sum(s.width() for s in shown) + self.spacing() * max(0, len(shown) - 1)
        return QSize(w, max((s.height() for s in shown), default=0))

    def minimumSize(self) -> QSize:  # the widest item alone on its row
        size = QSize()
        for i in self._items:
            size = size.expandedTo(i.minimumSize())
        return size

    def _place(self, rect: QRect, move: bool) -> int:
        """Lay the items out in ``rect`` (only measure unless ``move``); returns the height used."""
        x, y, row_h, row = rect.x(), rect.y(), 0, []
        rows = []
        for item in (i for i in self._items if not i.isEmpty()):
            w = item.sizeHint().width()
            if row and x + w > rect.right() + 1:
                rows.append((y, row_h, row))
                x, y, row_h, row = rect.x(), y + row_h + self.spacing() // 2, 0, []
            row.append((x, item))
            x += w + self.spacing()
            row_h = max(row_h, item.sizeHint().height())
        if row:
            rows.append((y, row_h, row))
        if move:
            for top, h, items in rows:
                for left, item in items:  # each item centred on its row's height
                    hint = item.sizeHint()
                    width = min(hint.width(), rect.right() + 1 - left)
                    item.setGeometry(QRect(left, top + (h - hint.height()) // 2, width, hint.height()))
        return (rows[-1][0] + rows[-1][1] - rect.y()) if rows else 0


def tool_group(*widgets, spacing: int = 6) -> QWidget:
    """Widgets that stay together on one row of a ``FlowLayout`` (a label and its field)."""
    group = QWidget()
    lay = QHBoxLayout(group)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(spacing)
    for w in widgets:
        lay.addWidget(w)
    return group
