"""The block graph view: zoom (Ctrl+wheel, menu), pan (drag the background), fit, selection in and out.

Selection is a conversation with the layer table: a click here emits ``blockSelected`` / ``nodeSelected``;
the table's selection comes back through ``select_block`` / ``select_node``, which do not emit (so the
two views never ping-pong).
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QFrame, QGraphicsView, QLabel

from . import colors
from .graph_items import BOX_W, BlockItem, OpItem
from .graph_scene import BlockGraphScene
from .legend import Legend

MIN_ZOOM, MAX_ZOOM = 0.02, 4.0
FIT_MIN_ZOOM = 0.6  # Fit never shrinks below this: block names stay readable, a long model scrolls instead
STEP = 1.2
PLACEHOLDER = ("<div style='color:#6b7280; font-size:11pt'>"
               "<p style='font-size:14pt; color:#374151'><b>No model open</b></p>"
               "<p>File ▸ Open model… or drop an .onnx file on the window,<br>"
               "or File ▸ New from builder… to build a MobileNet.</p></div>")


class GraphView(QGraphicsView):
    blockSelected = Signal(int)
    nodeSelected = Signal(str)
    selectionCleared = Signal()
    zoomChanged = Signal(float)

    def __init__(self, parent=None):
        self._scene = BlockGraphScene()
        super().__init__(self._scene, parent)
        self._scene.setParent(self)
        self.setRenderHints(QPainter.Antialiasing | QPainter.TextAntialiasing | QPainter.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.SmartViewportUpdate)
        self.setFrameShape(QFrame.NoFrame)
        self.setBackgroundBrush(colors.BACKGROUND)
        # Drops go to the main window, which knows how to open files.
        self.setAcceptDrops(False)
        self.viewport().setAcceptDrops(False)
        self._syncing = False
        self.legend = Legend()  # laid out under the view by the panel; the view keeps it current
        self.legend.hide()
        self.placeholder = QLabel(PLACEHOLDER, self)
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setAttribute(Qt.WA_TransparentForMouseEvents, True)
        self._scene.selectionChanged.connect(self._on_selection)
        self._scene.blockToggled.connect(lambda *_: self._update_families())

    # content -------------------------------------------------------------------------------------
    @property
    def graph(self) -> BlockGraphScene:
        return self._scene

    @property
    def block_items(self) -> list[BlockItem]:
        return self._scene.block_items

    @property
    def residual_items(self):
        return self._scene.residual_items

    def set_analysis(self, analysis, block_stats: list[dict], overlay) -> None:
        self._syncing = True
        try:
            self._scene.populate(analysis, block_stats)
        finally:
            self._syncing = False
        self.placeholder.hide()
        self.legend.show()
        self.set_overlay(overlay)
        self._update_families()
        self.reset_view()

    def set_block_stats(self, block_stats: list[dict]) -> None:
        self._scene.set_block_stats(block_stats)

    def set_overlay(self, overlay) -> None:
        self._scene.apply_overlay(overlay)
        if overlay is not None:
            self.legend.set_overlay(overlay)
        self._place_overlays()

    def expand(self, index: int, on: bool = True) -> None:
        self._scene.set_expanded(index, on)

    def set_show_qdq(self, on: bool) -> None:
        self._scene.set_show_qdq(on)
        self._update_families()

    def reveal_node(self, name: str) -> None:
        """Select an op with its block expanded (a search result: the op itself, not its block, is wanted)."""
        b = self._scene.analysis.blocks.node_block.get(name) if self._scene.analysis is not None else None
        if b is not None:
            self.expand(b)
        self.select_node(name, center=True)

    def is_expanded(self, index: int) -> bool:
        return self._scene.is_expanded(index)

    def _update_families(self) -> None:
        fams: list[str] = []
        for item in self._scene.block_items:
            for op in item.op_items:
                if op.family not in fams:
                    fams.append(op.family)
        order = list(colors.FAMILY_TITLES)
        self.legend.set_families(sorted(fams, key=lambda f: order.index(f) if f in order else len(order)))
        self._place_overlays()

    # zoom and pan --------------------------------------------------------------------------------
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, z: float) -> None:
        z = max(MIN_ZOOM, min(MAX_ZOOM, z))
        cur = self.zoom()
        if cur > 0 and abs(z - cur) > 1e-9:
            self.scale(z / cur, z / cur)
            self.zoomChanged.emit(z)

    def zoom_in(self) -> None:
        self._zoom_about_center(STEP)

    def zoom_out(self) -> None:
        self._zoom_about_center(1 / STEP)

    def _zoom_about_center(self, factor: float) -> None:
        anchor = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.AnchorViewCenter)
        self.set_zoom(self.zoom() * factor)
        self.setTransformationAnchor(anchor)

    def fit(self) -> None:
        """The column of blocks across the view's width, from the top: zoom 1 at most, and never below
        FIT_MIN_ZOOM (a whole 150-block model in one window would be unreadable specks; it scrolls instead)."""
        rect = self._scene.sceneRect()
        if rect.isEmpty():
            return
        vw = max(1, self.viewport().width() - 16)
        z = max(FIT_MIN_ZOOM, min(1.0, vw / max(1.0, rect.width())))
        self.resetTransform()
        self.scale(z, z)
        self.centerOn(rect.center().x(), rect.top() + (self.viewport().height() / 2) / z)
        self.zoomChanged.emit(z)

    def reset_view(self) -> None:
        """Readable start: as Fit."""
        self.fit()

    def wheelEvent(self, event) -> None:
        if event.modifiers() & Qt.ControlModifier:
            delta = event.angleDelta().y()
            if delta:
                self.set_zoom(self.zoom() * (STEP ** (delta / 120.0)))
            event.accept()
            return
        super().wheelEvent(event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_overlays()

    def _place_overlays(self) -> None:
        self.placeholder.setGeometry(self.viewport().geometry())

    # selection -----------------------------------------------------------------------------------
    def _on_selection(self) -> None:
        if self._syncing:
            return
        items = self._scene.selectedItems()
        if not items:
            self.selectionCleared.emit()
            return
        it = items[0]
        if isinstance(it, OpItem):
            self.nodeSelected.emit(it.name)
        elif isinstance(it, BlockItem):
            self.blockSelected.emit(it.index)

    def selected_block(self) -> int | None:
        for it in self._scene.selectedItems():
            if isinstance(it, BlockItem):
                return it.index
        return None

    def selected_node(self) -> str | None:
        for it in self._scene.selectedItems():
            if isinstance(it, OpItem):
                return it.name
        return None

    def select_block(self, index: int, center: bool = True) -> None:
        if not 0 <= index < len(self._scene.block_items):
            return
        self._select(self._scene.block_items[index], center)

    def select_node(self, name: str, center: bool = True) -> None:
        """Highlight an op; if its block is collapsed, the block stands for it (no surprise expanding)."""
        item = self._scene.op_item(name)
        if item is None and self._scene.analysis is not None:
            b = self._scene.analysis.blocks.node_block.get(name)
            if b is not None:
                self.select_block(b, center)
            return
        if item is not None:
            self._select(item, center)

    def _select(self, item, center: bool) -> None:
        self._syncing = True
        try:
            self._scene.clearSelection()
            item.setSelected(True)
        finally:
            self._syncing = False
        if center:
            r = item.sceneBoundingRect()
            # Centre the box, but keep a tall expanded block's header in view.
            visible_h = self.viewport().height() / max(self.zoom(), 1e-6)
            cy = r.center().y() if r.height() < visible_h * 0.8 else r.top() + visible_h * 0.4
            self.centerOn(BOX_W / 2, cy)

    def visible_scene_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()
