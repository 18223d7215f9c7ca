"""The graph's legend, a strip under the view: what box colours mean (the overlay ramp and its range), the
residual arc, and the op-family colours once a block is expanded. It sits beside the graph rather than
over it, so it never hides a block however narrow the panel is."""

from __future__ import annotations

import html

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from . import colors


class RampBar(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFixedSize(QSize(120, 12))

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        r = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        p.setPen(QPen(QColor("#9ca3af"), 1))
        p.setBrush(colors.ramp_gradient(r.left(), 0, r.right(), 0))
        p.drawRect(r)
        p.end()


def _muted(text: str = "") -> QLabel:
    lab = QLabel(text)
    lab.setTextFormat(Qt.RichText)  # values like "<0.1 %" must not be mistaken for markup: callers escape
    lab.setStyleSheet("color: #374151;")
    return lab


class Legend(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("legend")
        self.setStyleSheet("#legend { background: #ffffff; border-top: 1px solid #d1d5db; }")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 5, 10, 6)
        lay.setSpacing(3)
        row = QHBoxLayout()
        row.setSpacing(6)
        self.title = QLabel()
        self.title.setTextFormat(Qt.PlainText)
        self.title.setStyleSheet("font-weight: bold; color: #111827;")
        self.low = _muted("0 %")
        self.ramp = RampBar()
        self.high = _muted()
        res = colors.RESIDUAL.name()
        self.residual = QLabel(f"<span style='color:{res}; font-weight:bold'>━━</span>"
                               "<span style='color:#374151'> residual (skip)</span>")
        row.addWidget(self.title)
        row.addSpacing(4)
        row.addWidget(self.low)
        row.addWidget(self.ramp)
        row.addWidget(self.high)
        row.addStretch(1)
        row.addWidget(self.residual)
        lay.addLayout(row)
        self.families = QLabel()
        self.families.setTextFormat(Qt.RichText)
        self.families.setWordWrap(True)
        self.families.hide()
        lay.addWidget(self.families)
        self.top = 0.0
        self.family_names: list[str] = []

    def set_overlay(self, overlay) -> None:
        """The ramp's ends in the overlay's unit: light is the least (or, where higher is better, the best),
        dark the most (the worst)."""
        lo, hi = overlay.ramp_range()
        light, dark = (hi, lo) if overlay.higher_is_better else (lo, hi)
        self.top = hi
        self.title.setText(overlay.name)
        self.low.setText(html.escape(overlay.format(light)))
        which = "worst block" if overlay.higher_is_better else "largest block"
        self.high.setText(f"{html.escape(overlay.format(dark))} <span style='color:#6b7280'>({which})</span>")
        tip = f"Boxes are coloured by {overlay.name}" + (f": {overlay.description}" if overlay.description else "")
        self.setToolTip(f"{tip}\nA block's value is the {overlay.aggregate} of its ops' (source: {overlay.source}).")

    def set_families(self, families: list[str] | None) -> None:
        """Op families to list (those in expanded blocks); empty hides the row."""
        self.family_names = list(families or [])
        if not self.family_names:
            self.families.hide()
            return
        parts = []
        for fam in self.family_names:
            c = colors.family_color(fam)
            parts.append(f"<span style='color:{c.name()}; font-size:13pt'>■</span>&nbsp;"
                         f"<span style='color:#374151'>{colors.FAMILY_TITLES.get(fam, fam)}</span>")
        self.families.setText("<span style='font-weight:bold; color:#111827'>Ops:</span>&nbsp;&nbsp;"
                              + "&nbsp;&nbsp; ".join(parts))
        self.families.show()
