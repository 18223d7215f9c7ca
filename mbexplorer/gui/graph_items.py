"""Items of the block graph: block boxes, op boxes inside an expanded block, edges and residual arcs.

Items paint themselves from a few cached strings and colours: a 10,000-node graph has about a thousand
blocks, so nothing here may do per-paint work beyond drawing. Below a zoom level where text is
unreadable, boxes skip their text altogether (level of detail).
"""

from __future__ import annotations

import html
from functools import lru_cache

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import (
    QApplication,
    QGraphicsItem,
    QGraphicsPathItem,
    QStyleOptionGraphicsItem,
)

from mbexplorer.core.formatting import kind_title, plural, si, size_bytes
from mbexplorer.core.overlays import format_value

from . import colors

# Geometry in scene units (pixels at zoom 1). The layout is plain arithmetic over these.
BOX_W = 380.0
BOX_H = 74.0
GAP = 34.0  # vertical space between blocks, where the flow arrow runs
OP_H = 24.0
OP_GAP = 8.0
OP_TOP = BOX_H  # ops start below the header
OP_LEFT = 18.0
OP_W = BOX_W - 84.0  # leave a lane on the right for arcs between non-adjacent ops
EXPANDER = 22.0
ARC_LANE = 46.0  # how far residual arcs run right of the boxes
TEXT_LOD = 0.35  # below this zoom, skip text
CARD_LABELS = {"macs": "MACs", "params": "params", "flops": "FLOPs"}


@lru_cache(maxsize=1)  # fonts are built once: paint() runs for every visible item on every repaint
def _fonts():
    base = QFont(QApplication.font())
    title = QFont(base)
    title.setBold(True)
    small = QFont(base)
    small.setPointSizeF(max(7.0, base.pointSizeF() - 0.5))
    mono = QFont("DejaVu Sans Mono")
    mono.setStyleHint(QFont.Monospace)
    mono.setPointSizeF(max(7.0, base.pointSizeF() - 1.0))
    return base, title, small, mono


@lru_cache(maxsize=1)
def _narrow_title():
    """The title font for names that do not fit: condensed and a little smaller, so "block 5: expand x6,
    dw 5x5 s1, SE, h-swish, residual" reads whole instead of losing its last words."""
    title = QFont(_fonts()[1])
    title.setStretch(QFont.SemiCondensed)
    title.setPointSizeF(max(7.0, title.pointSizeF() - 1.0))
    return title


class BlockItem(QGraphicsItem):
    """One block: a rounded box with name, kind and the figure the overlay colours it by (MACs, params,
    activation bytes), filled by the overlay; expandable to its ops."""

    TYPE = QGraphicsItem.UserType + 1

    def __init__(self, block, stats: dict, n_ops: int, folded: int = 0):
        super().__init__()
        self.block = block
        self.index = block.index
        self.stats = stats
        self.n_ops = n_ops  # ops shown when expanded
        self.folded = folded  # Quantize/Dequantize ops folded away
        self.metric: str | None = "macs"  # the block total the card shows (the overlay's ``stat``)
        self.metric_title = ""  # an overlay that is no block total (SQNR, latency): its name instead
        self.expanded = False
        self.height = BOX_H
        self.fill = QColor("#ffffff")
        self.ink = QColor("#1b1b1b")
        self.value_text = ""
        self.add_y: float | None = None  # where the residual add sits (an op row once expanded)
        self.op_items: list[OpItem] = []
        self.inner_edges: InnerEdgesItem | None = None
        self.setFlag(QGraphicsItem.ItemIsSelectable, True)
        self.setAcceptHoverEvents(True)
        self.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        self._texts()

    def type(self) -> int:
        return self.TYPE

    def _texts(self) -> None:
        _, title, small, _ = _fonts()
        b = self.block
        room = BOX_W - 24 - EXPANDER
        self._title_font = title if QFontMetricsF(title).horizontalAdvance(b.name) <= room else _narrow_title()
        self._title = QFontMetricsF(self._title_font).elidedText(b.name, Qt.ElideRight, room)
        info = b.info or {}
        chans = ""
        if info.get("channels_in") and info.get("channels_out"):
            chans = f"  ·  {info['channels_in']} → {info['channels_out']} ch"
        self._kind = QFontMetricsF(small).elidedText(kind_title(b.kind) + chans, Qt.ElideRight, BOX_W - 90)
        self._ops = plural(self.n_ops, "op") + (f" +{self.folded} Q/DQ" if self.folded else "")
        self.card_text = self._card_text()
        self.setToolTip(self._tooltip())

    def _card_text(self) -> str:
        """The block's own figure of what colours it: params when the overlay is params share, and so on."""
        if self.metric is None:
            return self.metric_title
        v = self.stats.get(self.metric, 0)
        if self.metric == "activation_bytes":
            return f"activations written {size_bytes(v)}"  # a sum of writes, not a peak
        return f"{CARD_LABELS.get(self.metric, self.metric)} {si(v)}"

    def set_metric(self, stat: str | None, title: str = "") -> None:
        self.metric, self.metric_title = stat, title
        self._texts()
        self.update()

    def set_op_count(self, n_ops: int, folded: int) -> None:
        self.n_ops, self.folded = n_ops, folded
        self._texts()
        self.update()

    def refresh_tooltip(self) -> None:
        self.setToolTip(self._tooltip())

    def _tooltip(self) -> str:
        s = self.stats
        kind = kind_title(self.block.kind) + (", residual" if self.block.residual else "")
        ops = plural(self.n_ops, "op") + (f" ({self.folded} Quantize/Dequantize folded)" if self.folded else "")
        lines = [f"<b>{html.escape(self.block.name)}</b>", kind, ops,
                 f"params {s.get('params', 0):,}", f"MACs {s.get('macs', 0):,}", f"FLOPs {s.get('flops', 0):,}"]
        if self.value_text:
            lines.append(f"overlay {self.value_text}")
        lines.append("<i>double-click to expand</i>" if not self.expanded else "<i>double-click to collapse</i>")
        return "<br>".join(lines)

    def set_stats(self, stats: dict) -> None:
        self.stats = stats
        self._texts()
        self.update()

    def set_fill(self, fill: QColor, value_text: str) -> None:
        self.fill = fill
        self.ink = colors.text_color_on(fill)
        self.value_text = value_text
        self.setToolTip(self._tooltip())
        self.update()

    # geometry ------------------------------------------------------------------------------------
    def boundingRect(self) -> QRectF:
        return QRectF(-2, -2, BOX_W + 4, self.height + 4)

    def expander_rect(self) -> QRectF:
        return QRectF(BOX_W - EXPANDER - 8, 8, EXPANDER, EXPANDER)

    def set_height(self, h: float) -> None:
        if h != self.height:
            self.prepareGeometryChange()
            self.height = h

    # painting ------------------------------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        selected = self.isSelected()
        rect = QRectF(0, 0, BOX_W, self.height)
        painter.setRenderHint(QPainter.Antialiasing, True)
        pen = QPen(colors.SELECTION if selected else colors.BOX_BORDER, 3.0 if selected else 1.0)
        painter.setPen(pen)
        painter.setBrush(self.fill)
        painter.drawRoundedRect(rect.adjusted(0.5, 0.5, -0.5, -0.5), 8, 8)
        if self.expanded:  # a lighter body so op colours read against it
            painter.setPen(Qt.NoPen)
            painter.setBrush(QColor(255, 255, 255, 215))
            painter.drawRoundedRect(QRectF(4, OP_TOP - 6, BOX_W - 8, self.height - OP_TOP + 2), 6, 6)
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        if lod < TEXT_LOD:
            return
        base, title, small, _ = _fonts()
        painter.setPen(self.ink)
        painter.setFont(self._title_font)
        painter.drawText(QRectF(12, 6, BOX_W - 24 - EXPANDER, 22), Qt.AlignLeft | Qt.AlignVCenter, self._title)
        painter.setFont(small)
        muted = QColor(self.ink)
        muted.setAlpha(190)
        painter.setPen(muted)
        painter.drawText(QRectF(12, 28, BOX_W - 24, 18), Qt.AlignLeft | Qt.AlignVCenter, self._kind)
        painter.drawText(QRectF(12, 28, BOX_W - 24, 18), Qt.AlignRight | Qt.AlignVCenter, self._ops)
        painter.setPen(self.ink)
        painter.setFont(base)
        painter.drawText(QRectF(12, 47, BOX_W - 24, 20), Qt.AlignLeft | Qt.AlignVCenter, self.card_text)
        if self.value_text:
            painter.drawText(QRectF(12, 47, BOX_W - 24, 20), Qt.AlignRight | Qt.AlignVCenter, self.value_text)
        self._paint_expander(painter)

    def _paint_expander(self, painter: QPainter) -> None:
        r = self.expander_rect()
        light_ink = self.ink.lightness() > 128
        painter.setPen(QPen(self.ink, 1.0))
        # a chip that contrasts with the ink: darkened on light-text boxes, whitened on dark-text ones
        painter.setBrush(QColor(0, 0, 0, 70) if light_ink else QColor(255, 255, 255, 150))
        painter.drawRoundedRect(r, 4, 4)
        c = r.center()
        s = 4.5
        if self.expanded:  # pointing down: "collapse"
            tri = QPolygonF([QPointF(c.x() - s, c.y() - s / 2), QPointF(c.x() + s, c.y() - s / 2),
                             QPointF(c.x(), c.y() + s / 1.2)])
        else:  # pointing right: "expand"
            tri = QPolygonF([QPointF(c.x() - s / 2, c.y() - s), QPointF(c.x() - s / 2, c.y() + s),
                             QPointF(c.x() + s / 1.2, c.y())])
        painter.setBrush(self.ink)
        painter.setPen(Qt.NoPen)
        painter.drawPolygon(tri)

    # interaction ---------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.LeftButton and self.expander_rect().contains(event.pos()):
            self.scene().toggle_block(self.index)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:
        if event.pos().y() <= OP_TOP:  # on the header; double-clicks on op rows select ops
            self.scene().toggle_block(self.index)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def hoverMoveEvent(self, event) -> None:
        self.setCursor(Qt.PointingHandCursor if self.expander_rect().contains(event.pos()) else Qt.ArrowCursor)


class OpItem(QGraphicsItem):
    """One op inside an expanded block: op type and output shape, filled by its op family's colour."""

    TYPE = QGraphicsItem.UserType + 2

    def __init__(self, name: str, op_type: str, family: str, out_shape: str, macs_text: str, tooltip: str,
                 parent: BlockItem):
        super().__init__(parent)
        self.name = name
        self.op_type = op_type
        self.family = family
        self.fill = colors.family_color(family)
        self.ink = colors.text_color_on(self.fill)
        base, _, _, mono = _fonts()
        bold = QFont(base)
        bold.setBold(True)
        # The shape keeps its full width when it can; the op type gets the rest (elided only if it must).
        self._shape = QFontMetricsF(mono).elidedText(out_shape, Qt.ElideLeft, OP_W * 0.55)
        self._shape_w = QFontMetricsF(mono).horizontalAdvance(self._shape)
        self._op = QFontMetricsF(bold).elidedText(op_type, Qt.ElideRight, OP_W - self._shape_w - 26)
        self._macs = macs_text
        self.setFlag(QGraphicsItem.ItemIsSelectable, True)
        self.setToolTip(tooltip)

    def type(self) -> int:
        return self.TYPE

    def boundingRect(self) -> QRectF:
        return QRectF(-2, -2, OP_W + 4, OP_H + 4)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        selected = self.isSelected()
        painter.setRenderHint(QPainter.Antialiasing, True)
        painter.setPen(QPen(colors.SELECTION, 2.5) if selected else QPen(self.fill.darker(135), 1.0))
        painter.setBrush(self.fill)
        painter.drawRoundedRect(QRectF(0.5, 0.5, OP_W - 1, OP_H - 1), 5, 5)
        if QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform()) < TEXT_LOD:
            return
        base, _, _, mono = _fonts()
        bold = QFont(base)
        bold.setBold(True)
        painter.setPen(self.ink)
        painter.setFont(bold)
        painter.drawText(QRectF(8, 0, OP_W - self._shape_w - 20, OP_H), Qt.AlignLeft | Qt.AlignVCenter, self._op)
        painter.setFont(mono)
        painter.drawText(QRectF(8, 0, OP_W - 16, OP_H), Qt.AlignRight | Qt.AlignVCenter, self._shape)

    def mouseDoubleClickEvent(self, event) -> None:  # keep double-clicks on an op from collapsing its block
        event.accept()


class ArrowPathItem(QGraphicsPathItem):
    """A path with an arrowhead at its end (the last point, pointing along the last segment)."""

    def __init__(self, color: QColor, width: float = 1.4, parent=None):
        super().__init__(parent)
        self.color = color
        self.setPen(QPen(color, width, Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin))
        self.setBrush(Qt.NoBrush)
        self._head = QPolygonF()
        self.setZValue(-1)  # under the boxes

    def set_route(self, path: QPainterPath, tip: QPointF, direction: QPointF) -> None:
        """``direction``: unit vector the arrow points along."""
        size = 7.0
        back = QPointF(tip.x() - direction.x() * size, tip.y() - direction.y() * size)
        side = QPointF(-direction.y() * size * 0.55, direction.x() * size * 0.55)
        self._head = QPolygonF([tip, back + side, back - side])
        self.setPath(path)

    def boundingRect(self) -> QRectF:
        return super().boundingRect().united(self._head.boundingRect()).adjusted(-2, -2, 2, 2)

    def shape(self) -> QPainterPath:
        p = super().shape()
        p.addPolygon(self._head)
        return p

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.Antialiasing, True)
        painter.setPen(self.pen())
        painter.setBrush(Qt.NoBrush)
        painter.drawPath(self.path())
        painter.setPen(Qt.NoPen)
        painter.setBrush(QBrush(self.color))
        painter.drawPolygon(self._head)


class FlowEdgeItem(ArrowPathItem):
    """Data flow from one block to another: straight down when adjacent, a curve on the left otherwise."""

    def __init__(self, src: int, dst: int):
        super().__init__(colors.EDGE, 1.4)
        self.src, self.dst = src, dst

    def route(self, src_item: BlockItem, dst_item: BlockItem) -> None:
        cx = BOX_W / 2
        y0 = src_item.y() + src_item.height
        y1 = dst_item.y()
        path = QPainterPath(QPointF(cx, y0))
        if self.dst == self.src + 1:
            path.lineTo(cx, y1)
            self.set_route(path, QPointF(cx, y1), QPointF(0, 1))
            return
        x = -ARC_LANE * 0.8  # a long jump runs down the left lane
        y0m = src_item.y() + src_item.height / 2
        y1m = dst_item.y() + min(dst_item.height / 2, BOX_H / 2)
        path = QPainterPath(QPointF(0, y0m))
        path.cubicTo(QPointF(x, y0m), QPointF(x, y0m), QPointF(x, y0m + 20))
        path.lineTo(x, y1m - 20)
        path.cubicTo(QPointF(x, y1m), QPointF(x, y1m), QPointF(0, y1m))
        self.set_route(path, QPointF(0, y1m), QPointF(1, 0))


class ResidualArcItem(ArrowPathItem):
    """The skip connection of a residual block: leaves the block's input edge, runs down the right lane
    and enters the box where the residual add happens."""

    def __init__(self, block_index: int):
        super().__init__(colors.RESIDUAL, 2.0)
        self.block_index = block_index
        self.setToolTip("residual (skip) connection: the block's input is added to its output")

    def route(self, item: BlockItem) -> None:
        top = item.y()
        start = QPointF(BOX_W / 2, top - GAP / 2)
        x = BOX_W + ARC_LANE
        end_y = top + (item.add_y if item.add_y is not None else item.height - 14)
        path = QPainterPath(start)
        path.cubicTo(QPointF(x, top - GAP / 2), QPointF(x, top - GAP / 2), QPointF(x, top + 6))
        path.lineTo(x, end_y - 14)
        path.cubicTo(QPointF(x, end_y), QPointF(x, end_y), QPointF(BOX_W + 1, end_y))
        self.set_route(path, QPointF(BOX_W + 1, end_y), QPointF(-1, 0))


class InnerEdgesItem(QGraphicsItem):
    """All op-to-op edges of one expanded block, drawn as one item: straight between adjacent rows,
    arcs in the right lane for edges that skip rows (squeeze-excite scaling, residual add)."""

    def __init__(self, rows: int, edges: list[tuple[int, int]], parent: BlockItem):
        super().__init__(parent)
        self.setZValue(-0.5)
        cx = OP_LEFT + OP_W / 2
        self._lines = QPainterPath()
        self._arcs = QPainterPath()
        self._heads = []
        y_of = lambda r: OP_TOP + r * (OP_H + OP_GAP)  # noqa: E731
        if rows:
            self._lines.moveTo(cx, OP_TOP - 8)  # entry from the header
            self._lines.lineTo(cx, y_of(0))
            self._heads.append(_head(QPointF(cx, y_of(0)), QPointF(0, 1), 5.0))
        lane = 0
        for a, b in edges:
            if b == a + 1:
                self._lines.moveTo(cx, y_of(a) + OP_H)
                self._lines.lineTo(cx, y_of(b))
                self._heads.append(_head(QPointF(cx, y_of(b)), QPointF(0, 1), 5.0))
            else:
                x0 = OP_LEFT + OP_W
                x = x0 + 14 + 10 * (lane % 4)
                lane += 1
                ya, yb = y_of(a) + OP_H / 2, y_of(b) + OP_H / 2
                self._arcs.moveTo(x0, ya)
                self._arcs.cubicTo(QPointF(x, ya), QPointF(x, ya), QPointF(x, ya + 10))
                self._arcs.lineTo(x, yb - 10)
                self._arcs.cubicTo(QPointF(x, yb), QPointF(x, yb), QPointF(x0 + 1, yb))
                self._heads.append(_head(QPointF(x0 + 1, yb), QPointF(-1, 0), 5.0))
        self._rect = self._lines.boundingRect().united(self._arcs.boundingRect()).adjusted(-6, -6, 6, 6)

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.Antialiasing, True)
        painter.setBrush(Qt.NoBrush)
        painter.setPen(QPen(colors.EDGE, 1.2))
        painter.drawPath(self._lines)
        painter.setPen(QPen(colors.EDGE, 1.2, Qt.DashLine))
        painter.drawPath(self._arcs)
        painter.setPen(Qt.NoPen)
        painter.setBrush(colors.EDGE)
        for h in self._heads:
            painter.drawPolygon(h)


def _head(tip: QPointF, d: QPointF, size: float) -> QPolygonF:
    back = QPointF(tip.x() - d.x() * size, tip.y() - d.y() * size)
    side = QPointF(-d.y() * size * 0.55, d.x() * size * 0.55)
    return QPolygonF([tip, back + side, back - side])


def op_row_y(row: int) -> float:
    return OP_TOP + row * (OP_H + OP_GAP)


def expanded_height(rows: int) -> float:
    return OP_TOP + rows * (OP_H + OP_GAP) + 6.0


def value_text(value: float | None, unit: str = "%") -> str:
    return format_value(value, unit)
