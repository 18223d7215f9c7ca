"""The left side of the window: a slim tool row (colour-by overlay, zoom, fit, collapse) over the graph.

The panel shows the window's :class:`~mbexplorer.core.state.State`: the model, the block totals under the
convention and the overlay come from state events; the colour-by combo sets the state's overlay.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mbexplorer.core.state import State

from .graph_view import GraphView


class GraphPanel(QWidget):
    def __init__(self, state: State | None = None, parent=None):
        super().__init__(parent)
        self.state = state if state is not None else State()
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
        self.overlay_combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self._fill_overlays()
        self.overlay_combo.currentTextChanged.connect(self._on_combo)
        tools.addWidget(self.overlay_combo)
        tools.addStretch(1)
        self.view = GraphView()
        self.zoom_label = QLabel("100 %")
        self.zoom_label.setMinimumWidth(44)
        self.zoom_label.setStyleSheet("color: #4b5563;")
        for text, tip, slot in (("−", "Zoom out (Ctrl+-)", self.view.zoom_out),
                                ("+", "Zoom in (Ctrl++)", self.view.zoom_in),
                                ("Fit", "Fit the column of blocks to the width, from the top (Ctrl+0)",
                                 self.view.fit),
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
        self.state.on("analysis", self._on_analysis)
        self.state.on("convention", self._on_convention)
        self.state.on("overlay", self._on_overlay)
        self.state.on("overlays", lambda _names: self._fill_overlays())
        self.state.on("show_qdq", self._on_show_qdq)
        self.view.graph.show_qdq = self.state.show_qdq

    @property
    def overlay_name(self) -> str:
        return self.state.overlay_name

    def set_overlay_name(self, name: str) -> None:
        self.state.overlay_name = name

    def _on_analysis(self, analysis) -> None:
        if analysis is not None:
            self._fill_overlays()
            self.view.set_analysis(analysis, self.state.block_totals, self.state.overlay)

    def _on_show_qdq(self, on: bool) -> None:
        """Q/DQ ops in expanded blocks follow the state (the table's Show Q/DQ, View ▸ Show Q/DQ ops)."""
        self.view.set_show_qdq(on)

    def _on_convention(self, _conv: str) -> None:
        if self.state.analysis is not None:
            self.view.set_block_stats(self.state.block_totals)

    def _on_combo(self, name: str) -> None:
        if name and name != self.state.overlay_name:
            self.state.overlay_name = name

    def _on_overlay(self, overlay) -> None:
        self._select(self.state.overlay_name)
        if self.state.analysis is not None:
            self.view.set_overlay(overlay)

    def _fill_overlays(self) -> None:
        """The combo lists what the state offers for the open model (a comparison adds to it)."""
        self.overlay_combo.blockSignals(True)
        self.overlay_combo.clear()
        self.overlay_combo.addItems(self.state.available_overlays())
        self.overlay_combo.blockSignals(False)
        self._select(self.state.overlay_name)

    def _select(self, name: str) -> None:
        self.overlay_combo.blockSignals(True)
        self.overlay_combo.setCurrentText(name)
        self.overlay_combo.blockSignals(False)

    def collapse_all(self) -> None:
        for item in self.view.block_items:
            if item.expanded:
                self.view.expand(item.index, False)
