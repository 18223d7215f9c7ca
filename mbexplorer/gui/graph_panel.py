"""The left side of the window: a slim tool row (colour-by overlay, zoom, fit, collapse) over the graph."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mbexplorer.core.overlays import OVERLAYS

from .graph_view import GraphView

DEFAULT_OVERLAY = "MACs share"


class GraphPanel(QWidget):
    overlayChosen = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        row = QWidget()
        row.setObjectName("graphTools")
        row.setStyleSheet("#graphTools { background: #eef0f3; border-bottom: 1px solid #d1d5db; }")
        tools = QHBoxLayout(row)
        tools.setContentsMargins(8, 4, 8, 4)
        tools.setSpacing(4)
        tools.addWidget(QLabel("Colour by:"))
        self.overlay_combo = QComboBox()
        for name in OVERLAYS:
            self.overlay_combo.addItem(name)
        self.overlay_combo.setCurrentText(DEFAULT_OVERLAY)
        self.overlay_combo.currentTextChanged.connect(self.overlayChosen)
        tools.addWidget(self.overlay_combo)
        tools.addStretch(1)
        self.view = GraphView()
        self.zoom_label = QLabel("100 %")
        self.zoom_label.setMinimumWidth(44)
        self.zoom_label.setStyleSheet("color: #4b5563;")
        for text, tip, slot in (("−", "Zoom out (Ctrl+-)", self.view.zoom_out), ("+", "Zoom in (Ctrl++)", self.view.zoom_in),
                                ("Fit", "Fit the whole graph (Ctrl+0)", self.view.fit),
                                ("Collapse all", "Collapse every expanded block", self.collapse_all)):
            b = QToolButton(text=text)
            b.setToolTip(tip)
            b.setAutoRaise(True)
            b.clicked.connect(slot)
            tools.addWidget(b)
            if text == "−":
                tools.addWidget(self.zoom_label)
        self.view.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        lay.addWidget(row)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.view.legend)

    @property
    def overlay_name(self) -> str:
        return self.overlay_combo.currentText()

    def set_overlay_name(self, name: str) -> None:
        self.overlay_combo.setCurrentText(name)

    def collapse_all(self) -> None:
        for item in self.view.block_items:
            if item.expanded:
                self.view.expand(item.index, False)
