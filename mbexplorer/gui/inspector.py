"""The node inspector, as Netron's: a node's attributes, inputs and outputs (shape, dtype, quantization), weight
statistics and costs, with a search box that finds nodes by name.

It shows the window's :class:`~mbexplorer.core.state.State`'s model; the facts come from ``core.inspect``. A node
picked from the search (Enter, or a click on a match) is emitted as ``nodeChosen`` for the graph and the table
to select; a folded Quantize/Dequantize node turns Q/DQ display on first, so it has a row and a box.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QTextOption
from PySide6.QtWidgets import QLabel, QLineEdit, QListWidget, QTextBrowser, QVBoxLayout, QWidget

from mbexplorer.core.formatting import plural, shape, si, size_bytes, thousands
from mbexplorer.core.inspect import QDQ_OPS, find_nodes, node_facts, quant_text
from mbexplorer.core.state import State

MATCHES_SHOWN = 200
EMPTY = "<p style='color:#6b7280'>Click a node in the graph or a row in the table, or find one by name above.</p>"


def _esc(v) -> str:
    return html.escape(str(v))


def _pairs(rows: list[tuple[str, str]]) -> str:
    """A two-column key/value table (values are HTML already: callers escape what comes from the file)."""
    body = "".join(f"<tr><td style='color:#4b5563'>{_esc(k)}</td><td>{v}</td></tr>" for k, v in rows)
    return f"<table cellspacing='0' cellpadding='2'>{body}</table>"


def _quant(q: dict | None) -> str:
    if q is None:
        return ""
    scale, zp = quant_text(q)
    if q["scale"].size > 1:
        s = q["scale"]
        return (f"{scale} on axis {q['axis']}: scale {s.min():.3g} … {s.max():.3g}, zero point "
                f"{int(q['zero_point'].min())} … {int(q['zero_point'].max())}")
    return f"scale {scale}, zero point {zp}"


def _stats(st: dict | None) -> str:
    if not st:
        return ""
    return f"min {st['min']:.4g} · max {st['max']:.4g} · mean {st['mean']:.4g} · std {st['std']:.4g}"


def _tensor(t: dict, inputs: bool) -> str:
    kind = " <i>weight</i>" if t["constant"] else " <i>graph input</i>" if t["graph_input"] else ""
    held = f" (held as {t['held_as']})" if t["held_as"] and t["held_as"] != t["dtype"] else ""
    lines = [f"<b>{_esc(t['name'])}</b>{kind}", _esc(f"{shape(t['shape'])} · {t['dtype']}{held}")]
    if t["quantization"] is not None:
        lines.append(_esc(_quant(t["quantization"])))
    link = t["producer"] if inputs else ", ".join(t["consumers"][:4]) + (" …" if len(t["consumers"]) > 4 else "")
    if link:
        lines.append(f"<span style='color:#4b5563'>{'from' if inputs else 'to'}</span> {_esc(link)}")
    return "<p>" + "<br>".join(lines) + "</p>"


def facts_html(f: dict) -> str:
    """One node's facts, top to bottom, for a narrow side panel."""
    parts = [f"<h3 style='margin:0'>{_esc(f['name'])}</h3>",
             f"<p><b>{_esc(f['op_type'])}</b> · {_esc(f['domain'])}" + (f" · {_esc(f['block'])}" if f["block"] else "")
             + "</p>"]
    if f["doc"]:
        parts.append(f"<p style='color:#4b5563'>{_esc(f['doc'])}</p>")
    if f["output_quantization"] is not None or f["output_dtype"] not in ("", "float32"):
        parts.append(f"<p>writes <b>{_esc(f['output_dtype'])}</b>, {_esc(_quant(f['output_quantization']))}</p>")
    if f["attributes"]:
        parts.append("<h4>Attributes</h4>" + _pairs([(k, _esc(v)) for k, v in f["attributes"]]))
    parts.append("<h4>Inputs</h4>" + "".join(_tensor(t, True) for t in f["inputs"]))
    parts.append("<h4>Outputs</h4>" + "".join(_tensor(t, False) for t in f["outputs"]))
    if f["weights"]:
        parts.append("<h4>Weights</h4>")
        for w in f["weights"]:
            lines = [f"<b>{_esc(w['name'])}</b>", _esc(f"{shape(w['shape'])} · {w['dtype']}")]
            lines += [_esc(_stats(w["stats"]))] if w["stats"] else []
            if w["quantization"] is not None:
                lines += [_esc(_quant(w["quantization"])), "real values: " + _esc(_stats(w["real_stats"]))]
            parts.append("<p>" + "<br>".join(lines) + "</p>")
    c = f["costs"]
    if c:
        parts.append("<h4>Costs</h4>" + _pairs([
            ("params", thousands(c["params"])), ("MACs", si(c["macs"])), ("writes", size_bytes(c["activation_bytes"])),
            ("live while it runs", size_bytes(c["live_bytes"]))]))
    return "".join(parts)


class InspectorPanel(QWidget):
    nodeChosen = Signal(str)  # a search result the user picked: select it in the graph and the table

    def __init__(self, state: State | None = None, parent=None):
        super().__init__(parent)
        self.state = state if state is not None else State()
        self.current: str | None = None
        self.facts: dict | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        self.search = QLineEdit(placeholderText="Find node by name… (Enter selects)")
        self.search.setClearButtonEnabled(True)
        self.search.setAcceptDrops(False)
        self.search.textChanged.connect(self._on_text)
        self.search.returnPressed.connect(self.choose_current)
        self.matches = QListWidget()
        self.matches.setMaximumHeight(self.matches.fontMetrics().height() * 9)
        self.matches.itemActivated.connect(lambda item: self.choose(item.text()))
        self.matches.itemClicked.connect(lambda item: self.choose(item.text()))
        self.matches.hide()
        self.match_label = QLabel()
        self.match_label.setStyleSheet("color: #6b7280;")
        self.match_label.hide()
        self.view = QTextBrowser()
        self.view.setOpenLinks(False)
        self.view.setWordWrapMode(QTextOption.WrapAtWordBoundaryOrAnywhere)  # long node names have no spaces
        self.view.setHtml(EMPTY)
        self.view.setAcceptDrops(False)  # a dropped model file opens it (main window)
        self.view.viewport().setAcceptDrops(False)
        for w in (self.search, self.match_label, self.matches):
            lay.addWidget(w)
        lay.addWidget(self.view, 1)
        self.setMinimumWidth(220)  # with the dock open the window still fits a 1440-px screen
        self.state.on("analysis", self._on_analysis)

    def _on_analysis(self, _analysis) -> None:
        self.current, self.facts = None, None
        self.view.setHtml(EMPTY)
        self._on_text(self.search.text())

    # showing ---------------------------------------------------------------------------------------
    def show_node(self, name: str) -> None:
        a = self.state.analysis
        if a is None or name not in a.index.index:
            return
        self.current = name
        self.facts = node_facts(a, name)
        self.view.setHtml(facts_html(self.facts))

    def text(self) -> str:
        return self.view.toPlainText()

    # searching -------------------------------------------------------------------------------------
    def _on_text(self, text: str) -> None:
        a = self.state.analysis
        found = find_nodes(a, text) if a is not None else []
        if a is not None and not self.state.show_qdq:  # folded Q/DQ nodes last: the ops with rows come first
            found.sort(key=lambda n: a.index.nodes[a.index.index[n]].op_type in QDQ_OPS)
        found = found[:MATCHES_SHOWN + 1]
        self.matches.clear()
        self.matches.addItems(found[:MATCHES_SHOWN])
        if found:
            self.matches.setCurrentRow(0)
        self.matches.setVisible(bool(found))
        self.match_label.setVisible(bool(text.strip()))
        more = len(found) > MATCHES_SHOWN
        self.match_label.setText("no node has that in its name" if not found else
                                 f"first {MATCHES_SHOWN} matches" if more else plural(len(found), "match", "matches"))

    def keyPressEvent(self, event) -> None:
        # Up and Down in the search box move through the matches
        if self.search.hasFocus() and event.key() in (Qt.Key_Up, Qt.Key_Down) and self.matches.count():
            step = -1 if event.key() == Qt.Key_Up else 1
            self.matches.setCurrentRow(max(0, min(self.matches.count() - 1, self.matches.currentRow() + step)))
            return
        super().keyPressEvent(event)

    def choose_current(self) -> None:
        item = self.matches.currentItem() or (self.matches.item(0) if self.matches.count() else None)
        if item is not None:
            self.choose(item.text())

    def choose(self, name: str) -> None:
        """Show a node and ask the graph and the table to select it."""
        a = self.state.analysis
        if a is None or name not in a.index.index:
            return
        if a.index.nodes[a.index.index[name]].op_type in QDQ_OPS:
            self.state.show_qdq = True  # a folded Q/DQ node has no row or box to select
        self.show_node(name)
        self.nodeChosen.emit(name)
