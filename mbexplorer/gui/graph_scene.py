"""The block graph as a scene: one box per block in execution order, top to bottom, like Netron.

Layout is arithmetic: a block's y is the sum of the heights above it, so laying out or re-laying out a
thousand blocks is a loop of ``setPos`` calls. Op items exist only for expanded blocks (all collapsed at
first), which keeps a 10,000-node graph at a few thousand light items.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QRectF, Signal
from PySide6.QtWidgets import QGraphicsScene

from mbexplorer.core.formatting import shape as fmt_shape
from mbexplorer.core.formatting import shapes as fmt_shapes
from mbexplorer.core.formatting import thousands
from mbexplorer.core.inspect import QDQ_OPS

from . import colors
from .graph_items import (
    ARC_LANE,
    BOX_H,
    BOX_W,
    GAP,
    OP_H,
    OP_LEFT,
    BlockItem,
    FlowEdgeItem,
    InnerEdgesItem,
    OpItem,
    ResidualArcItem,
    expanded_height,
    op_row_y,
    value_text,
)


class BlockGraphScene(QGraphicsScene):
    blockToggled = Signal(int, bool)  # block index, expanded

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackgroundBrush(colors.BACKGROUND)
        self.analysis = None
        self.block_items: list[BlockItem] = []
        self.edge_items: list[FlowEdgeItem] = []
        self.residual_items: list[ResidualArcItem] = []
        self._residual_of: dict[int, ResidualArcItem] = {}
        self._rows: dict[int, list[str]] = {}  # block -> its node names in execution order
        self._long_edges = False
        self.show_qdq = False  # Quantize/Dequantize ops get boxes of their own (else folded away, as in the table)

    # building ------------------------------------------------------------------------------------
    def populate(self, analysis, block_stats: list[dict]) -> None:
        self.clear()
        self.analysis = analysis
        self.block_items, self.edge_items, self.residual_items = [], [], []
        self._residual_of, self._rows = {}, {}
        order = analysis.index.index  # node name -> topological position
        for b in analysis.blocks.blocks:
            self._rows[b.index] = sorted(b.nodes, key=lambda n: order.get(n, 0))
        for b in analysis.blocks.blocks:
            shown = self._shown(b.index)
            item = BlockItem(b, block_stats[b.index], len(shown), len(self._rows[b.index]) - len(shown))
            self.addItem(item)
            self.block_items.append(item)
        for src, dst in analysis.blocks.edges:
            if 0 <= src < len(self.block_items) and 0 <= dst < len(self.block_items):
                e = FlowEdgeItem(src, dst)
                self.addItem(e)
                self.edge_items.append(e)
        for b in analysis.blocks.blocks:
            if b.residual:
                arc = ResidualArcItem(b.index)
                self.addItem(arc)
                self.residual_items.append(arc)
                self._residual_of[b.index] = arc
        self._long_edges = any(e.dst != e.src + 1 for e in self.edge_items)
        self.relayout()

    def set_block_stats(self, block_stats: list[dict]) -> None:
        for item in self.block_items:
            item.set_stats(block_stats[item.index])

    def apply_overlay(self, overlay) -> None:
        """Fill blocks by the overlay's per-block values on the ramp (dark: the most, or the worst where
        higher is better); a block without a value stays at the light end and says nothing."""
        span = overlay.ramp_range() if overlay is not None else None
        for item in self.block_items:
            if overlay is None:
                item.set_fill(colors.ramp_color(0.0), "")
                item.set_metric("macs")
                continue
            v = overlay.block_values.get(item.index)
            item.set_fill(colors.ramp_color(overlay.ramp_position(v, span)), value_text(v, overlay.unit))
            item.set_metric(overlay.stat, overlay.name)

    # layout --------------------------------------------------------------------------------------
    def relayout(self, start: int = 0) -> None:
        y = 0.0
        if start > 0:
            prev = self.block_items[start - 1]
            y = prev.y() + prev.height + GAP
        for item in self.block_items[start:]:
            item.setPos(0.0, y)
            y += item.height + GAP
        for e in self.edge_items:
            if max(e.src, e.dst) >= start - 1:
                e.route(self.block_items[e.src], self.block_items[e.dst])
        for arc in self.residual_items:
            if arc.block_index >= start:
                arc.route(self.block_items[arc.block_index])
        height = max(y - GAP, BOX_H)
        # Margins: the right lane for residual arcs; the left lane only when some edge jumps blocks.
        left = ARC_LANE + 16 if self._long_edges else 16
        right = ARC_LANE + 12
        self.setSceneRect(QRectF(-left, -GAP - 8, left + BOX_W + right, height + 2 * GAP + 16))

    # Q/DQ folding ----------------------------------------------------------------------------------
    def _shown(self, index: int) -> list[str]:
        """A block's ops that get boxes: all, or all but Quantize/Dequantize when they are folded."""
        rows = self._rows[index]
        if self.show_qdq or self.analysis is None:
            return rows
        by_name = self.analysis.costs.by_name
        return [n for n in rows if n not in by_name or by_name[n].op_type not in QDQ_OPS]

    def set_show_qdq(self, on: bool) -> None:
        """Show or fold Quantize/Dequantize ops: op counts change, expanded blocks are laid out again."""
        if on == self.show_qdq:
            return
        self.show_qdq = on
        for item in self.block_items:
            shown = self._shown(item.index)
            item.set_op_count(len(shown), len(self._rows[item.index]) - len(shown))
            if item.expanded:
                self._clear_ops(item)
                self._add_ops(item)
        self.relayout()

    # expanding -----------------------------------------------------------------------------------
    def is_expanded(self, index: int) -> bool:
        return self.block_items[index].expanded

    def toggle_block(self, index: int) -> None:
        self.set_expanded(index, not self.block_items[index].expanded)

    def set_expanded(self, index: int, on: bool) -> None:
        item = self.block_items[index]
        if item.expanded == on:
            return
        if on:
            self._add_ops(item)
        else:
            self._clear_ops(item)
        item.expanded = on
        item.refresh_tooltip()
        item.update()
        self.relayout(index)
        self.blockToggled.emit(index, on)

    def _clear_ops(self, item: BlockItem) -> None:
        for child in list(item.childItems()):
            self.removeItem(child)
        item.op_items, item.inner_edges, item.add_y = [], None, None
        item.set_height(BOX_H)

    def _add_ops(self, item: BlockItem) -> None:
        a = self.analysis
        gi, report = a.index, a.costs
        rows = self._shown(item.index)
        row_of = {name: r for r, name in enumerate(rows)}
        edges: list[tuple[int, int]] = []
        add_row = None
        for r, name in enumerate(rows):
            nc = report.by_name.get(name)
            op_type = nc.op_type if nc else gi.nodes[gi.index[name]].op_type
            item.op_items.append(self._op_item(name, op_type, nc, item))
            item.op_items[-1].setPos(OP_LEFT, op_row_y(r))
            node = gi.nodes[gi.index[name]]
            for t in node.input:
                j = self._visible_producer(t)
                if j is not None and gi.names[j] in row_of:
                    edges.append((row_of[gi.names[j]], r))
            if op_type in ("Add", "Sum"):
                add_row = r  # the residual add is the block's last add
        item.inner_edges = InnerEdgesItem(len(rows), sorted(set(edges)), item)
        item.set_height(expanded_height(len(rows)))
        if item.block.residual and add_row is not None:
            item.add_y = op_row_y(add_row) + OP_H / 2

    def _visible_producer(self, t: str) -> int | None:
        """The node whose box an edge into ``t`` starts from: through folded Q/DQ ops to the op before them."""
        gi = self.analysis.index
        j = gi.producer.get(t)
        for _ in range(8):  # a Q/DQ chain is two or three ops long
            if j is None or self.show_qdq or gi.nodes[j].op_type not in QDQ_OPS or not gi.nodes[j].input:
                return j
            j = gi.producer.get(gi.nodes[j].input[0])
        return j

    @staticmethod
    def _op_item(name: str, op_type: str, nc, parent: BlockItem) -> OpItem:
        out = nc.output_shapes[0] if nc and nc.output_shapes else None
        depthwise = False
        if nc and op_type in ("Conv", "ConvInteger") and len(nc.input_shapes) > 1:
            x, w = nc.input_shapes[0], nc.input_shapes[1]
            depthwise = bool(x and w and len(w) == 4 and w[1] == 1 and len(x) > 1 and x[1] > 1)
        family = colors.op_family(op_type, depthwise)
        macs = nc.macs if nc else None
        tip = [f"<b>{html.escape(name)}</b>", f"{html.escape(op_type)} ({colors.FAMILY_TITLES.get(family, family)})"]
        if nc:
            tip += [f"inputs {fmt_shapes(nc.input_shapes)}", f"outputs {fmt_shapes(nc.output_shapes)}",
                    f"MACs {thousands(macs)}" if macs is not None else "no cost rule for this op"]
        return OpItem(name, op_type, family, fmt_shape(out), thousands(macs) if macs else "", "<br>".join(tip),
                      parent)

    # lookup --------------------------------------------------------------------------------------
    def op_item(self, name: str) -> OpItem | None:
        if self.analysis is None:
            return None
        b = self.analysis.blocks.node_block.get(name)
        if b is None:
            return None
        for op in self.block_items[b].op_items:
            if op.name == name:
                return op
        return None
