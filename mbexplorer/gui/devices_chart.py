"""The Devices tab's chart: throughput (images/s, left axis) and latency (ms per batch, right axis) against batch
size, for measured runs and published references, redrawn at a bounded rate as measurements stream in.

The x axis is log2(batch size) with ticks labelled 1, 2, 4, ... 64, so each doubling takes the same width. The
latency axis is a second ViewBox stacked on the plot's and linked on x (pyqtgraph's MultiplePlotAxes recipe).

What a number means is never left to the reader's guess. Each series says in its legend whether its time is
the device's own compute time or the host's end-to-end time (or that its source does not say); the symbol's
shape says the same (circle: end to end, square: device compute, diamond: unknown), published series are drawn
dashed with hollow symbols, and a note under the chart warns when series of different meanings are shown
together. Hovering a point shows the series, the batch size and its numbers.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPoint, QRect, Qt, QTimer
from PySide6.QtGui import QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from mbexplorer.devices.api import DEVICE_COMPUTE, END_TO_END

from .flow_layout import FlowLayout

REDRAW_MS = 150  # streamed measurements redraw at most ~7 times a second
MAX_LOG2 = 6  # the x axis shows batch 1..64 at least
LOG_SPAN = 20  # shown values further apart than this: both y axes go log (until the user chooses)
UNKNOWN = "unknown"
SUFFIX = {END_TO_END: "end to end", DEVICE_COMPUTE: "device compute", UNKNOWN: "meaning not stated"}
EXPLAIN = {END_TO_END: "end to end = host wall time per call, copies included",
           DEVICE_COMPUTE: "device compute = the device's own time as its tool reports it, no host copies",
           UNKNOWN: "not stated = the source does not say"}
SYMBOL = {END_TO_END: "o", DEVICE_COMPUTE: "s", UNKNOWN: "d"}
# distinct, print-safe colours (Tableau 10), in the order series are shown
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22"]
CSV_COLUMNS = ["series", "kind", "meaning", "device", "precision", "tool", "batch_size", "throughput_img_s",
               "latency_mean_ms", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_published_ms",
               "source"]


@dataclass(frozen=True)
class ChartPoint:
    batch: int
    throughput: float | None = None  # images per second
    mean: float | None = None  # latency per batch, ms (measured: statistics of the per-iteration times)
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    published_ms: float | None = None  # a published latency whose statistic the source does not name

    @property
    def latency(self) -> float | None:
        """What the latency axis draws: the median of a measurement (its mean where the tool reports no
        percentiles), or the published figure."""
        for v in (self.p50, self.mean, self.published_ms):
            if v is not None:
                return v
        return None


@dataclass
class ChartSeries:
    key: str  # unique: "run:12", "ref:Ascend 310"
    label: str  # for the legend, before the meaning suffix
    meaning: str  # END_TO_END, DEVICE_COMPUTE or UNKNOWN
    published: bool = False
    points: list[ChartPoint] = field(default_factory=list)
    device: str = ""
    precision: str = ""
    tool: str = ""
    source: str = ""  # a published series' page; a run's model and settings

    @property
    def title(self) -> str:
        return f"{self.label}{' — published' if self.published else ''} ({SUFFIX.get(self.meaning, self.meaning)})"


def series_from_measurements(key: str, label: str, measurements, *, source: str = "") -> list[ChartSeries]:
    """One series per meaning among ``measurements`` (a run normally has one), points sorted by batch size."""
    groups: dict[str, list] = {}
    for m in measurements:
        groups.setdefault(m.meaning if m.meaning in SUFFIX else UNKNOWN, []).append(m)
    out = []
    for meaning, ms in groups.items():
        first = ms[0]
        pts = [ChartPoint(m.batch_size, m.throughput, m.latency_ms.mean, m.latency_ms.p50, m.latency_ms.p90,
                          m.latency_ms.p99) for m in sorted(ms, key=lambda m: m.batch_size)]
        out.append(ChartSeries(key if len(groups) == 1 else f"{key}:{meaning}", label, meaning, False, pts,
                               first.device_name or first.device, first.precision,
                               f"{first.tool} {first.tool_version}".strip(), source))
    return out


def point_from_measurement(m) -> ChartPoint:
    lat = m.latency_ms
    return ChartPoint(m.batch_size, m.throughput, lat.mean, lat.p50, lat.p90, lat.p99)


def series_from_reference(ref) -> ChartSeries:
    """A published series (``devices.references.Series``)."""
    pts = [ChartPoint(p.batch_size, p.throughput, published_ms=p.latency_ms) for p in ref.points]
    return ChartSeries(f"ref:{ref.label}", ref.label, ref.meaning if ref.meaning in SUFFIX else UNKNOWN, True, pts,
                       ref.device, ref.precision, ref.tool, ref.source)


def x_of(batch: int) -> float:
    return math.log2(batch)


def _num(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    return f"{v:,.4g}{unit}" if v < 1e4 else f"{v:,.0f}{unit}"


def tip_text(series: ChartSeries, p: ChartPoint) -> str:
    """What hovering a point shows."""
    lines = [series.title, f"batch {p.batch}", f"throughput {_num(p.throughput, ' img/s')}"]
    if p.p50 is not None:
        lines.append(f"latency p50 {_num(p.p50, ' ms')} · p90 {_num(p.p90, ' ms')} · p99 {_num(p.p99, ' ms')}")
        lines.append(f"latency mean {_num(p.mean, ' ms')}")
    elif p.published_ms is not None:
        lines.append(f"latency {_num(p.published_ms, ' ms')} (as published; statistic not stated)")
    else:
        lines.append("latency —")
    detail = " · ".join(x for x in (series.device, series.precision, series.tool) if x)
    if detail:
        lines.append(detail)
    if series.published:
        lines.append("published, not measured here")
    return "\n".join(lines)


class _Drawn:
    """The plot items of one series."""

    def __init__(self, color: str, series: ChartSeries):
        dashed = series.published
        symbol = SYMBOL.get(series.meaning, "d")
        fill = pg.mkBrush("w") if dashed else pg.mkBrush(color)
        self.tp_line = pg.PlotDataItem(pen=pg.mkPen(color, width=2, style=Qt.DashLine if dashed else Qt.SolidLine),
                                       symbol=symbol, symbolSize=8, symbolPen=pg.mkPen(color, width=1.5),
                                       symbolBrush=fill)
        self.tp_dots = pg.ScatterPlotItem(size=9, pen=None, brush=pg.mkBrush(0, 0, 0, 0), hoverable=True,
                                          hoverSize=13, hoverBrush=pg.mkBrush(color), tip=lambda x, y, data: data)
        lat_pen = pg.mkPen(color, width=1.5, style=Qt.DashDotLine if dashed else Qt.DotLine)
        self.lat_line = pg.PlotDataItem(pen=lat_pen, symbol="t", symbolSize=8, symbolPen=pg.mkPen(color),
                                        symbolBrush=pg.mkBrush("w"))
        self.lat_dots = pg.ScatterPlotItem(size=9, pen=None, brush=pg.mkBrush(0, 0, 0, 0), hoverable=True,
                                           hoverSize=13, hoverBrush=pg.mkBrush(color), tip=lambda x, y, data: data)
        empty = np.zeros(0)
        self.band = pg.ErrorBarItem(x=empty, y=empty, height=empty, beam=0.08, pen=pg.mkPen(color, width=1))


class DevicesChart(QWidget):
    """Series in, a chart out. ``set_series`` replaces what is shown; ``add_point`` streams one point in."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.plot = pg.PlotWidget(background="w")
        for w in (self.plot, self.plot.viewport()):
            w.setAcceptDrops(False)  # a model dropped on the chart goes to the window
        pi = self.plot.plotItem
        pi.setLabel("left", "throughput", units="img/s")
        pi.setLabel("bottom", "batch size")
        pi.showGrid(x=True, y=True, alpha=0.25)
        pi.getAxis("left").enableAutoSIPrefix(False)
        pi.setMenuEnabled(False)
        pi.hideButtons()
        # latency: a second ViewBox on the right axis, linked on x
        self.lat_view = pg.ViewBox()
        self.lat_view.setMouseEnabled(False, False)  # drags and wheel go to the main view (x is linked)
        pi.showAxis("right")
        pi.scene().addItem(self.lat_view)
        right = pi.getAxis("right")
        right.linkToView(self.lat_view)
        right.setLabel("latency per batch", units="ms")
        right.enableAutoSIPrefix(False)
        self.lat_view.setXLink(pi)
        pi.vb.sigResized.connect(self._sync_views)
        pi.getAxis("bottom").setTicks([[(float(i), str(2 ** i)) for i in range(MAX_LOG2 + 1)], []])
        lay.addWidget(self.plot, 1)
        self.legend_box = QWidget()
        self.legend = FlowLayout(self.legend_box, spacing=14)
        self.legend.setContentsMargins(4, 0, 4, 0)
        lay.addWidget(self.legend_box)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.PlainText)
        self.note.setStyleSheet("color: #92400e; background: #fef3c7; padding: 3px 6px;")
        self.note.hide()
        lay.addWidget(self.note)
        self.key_label = QLabel("● end to end  ■ device compute  ◆ not stated  ·  ━ img/s (left)  ┄△ ms (right, "
                                "bar p90–p99)  ·  ╍○ published")
        self.key_label.setStyleSheet("color: #6b7280; font-size: 8pt;")
        self.key_label.setWordWrap(True)
        self.log_box = QCheckBox("log scale")
        self.log_box.setToolTip("Both y axes on a log scale: series of very different speeds side by side")
        self.log_box.toggled.connect(self.set_log)
        self._log_auto = True
        keys = QHBoxLayout()
        keys.setContentsMargins(4, 0, 4, 0)
        keys.addWidget(self.key_label, 1)
        keys.addWidget(self.log_box)
        lay.addLayout(keys)
        self.series: list[ChartSeries] = []
        self._drawn: dict[str, _Drawn] = {}
        self._colors: dict[str, str] = {}
        self._dirty: set[str] = set()
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self.flush)
        self._sync_views()
        self._fit()

    def _sync_views(self) -> None:
        vb = self.plot.plotItem.vb
        self.lat_view.setGeometry(vb.sceneBoundingRect())
        self.lat_view.linkedViewChanged(vb, self.lat_view.XAxis)

    # series ----------------------------------------------------------------------------------------
    def color(self, key: str) -> str:
        """A series keeps its colour while it is shown; a new one takes the first colour no shown one uses."""
        if key not in self._colors:
            used = {self._colors[s.key] for s in self.series if s.key in self._colors}
            free = [c for c in PALETTE if c not in used] or PALETTE
            self._colors[key] = free[0]
        return self._colors[key]

    def set_series(self, series: list[ChartSeries]) -> None:
        """Show exactly these series (in this order), now."""
        keys = {s.key for s in series}
        for key in list(self._drawn):
            if key not in keys:
                self._remove(key)
        for key in list(self._colors):
            if key not in keys:
                del self._colors[key]
        self.series = list(series)
        for s in self.series:
            self._draw(s)
        self._relegend()
        self._auto_log()
        self._fit()
        self._update_note()

    def series_by_key(self, key: str) -> ChartSeries | None:
        return next((s for s in self.series if s.key == key), None)

    def add_point(self, key: str, point: ChartPoint, make: ChartSeries | None = None) -> None:
        """A streamed measurement: added now, drawn at the next redraw (at most every REDRAW_MS). ``make``: the
        series to start when ``key`` is not shown yet."""
        s = self.series_by_key(key)
        if s is None:
            if make is None:
                return
            s = make
            self.series.append(s)
        s.points = sorted([p for p in s.points if p.batch != point.batch] + [point], key=lambda p: p.batch)
        self._dirty.add(key)
        if not self._redraw.isActive():
            self._redraw.start()

    def flush(self) -> None:
        """Draw what streamed in since the last redraw."""
        self._redraw.stop()
        dirty, self._dirty = self._dirty, set()
        fresh = False
        for s in self.series:
            if s.key in dirty:
                fresh |= s.key not in self._drawn
                self._draw(s)
        if fresh:
            self._relegend()
            self._update_note()
        if dirty:
            self._auto_log()
            self._fit()

    def _remove(self, key: str) -> None:
        d = self._drawn.pop(key)
        pi = self.plot.plotItem
        for item in (d.tp_line, d.tp_dots):
            pi.removeItem(item)
        for item in (d.lat_line, d.lat_dots, d.band):
            self.lat_view.removeItem(item)

    def _draw(self, s: ChartSeries) -> None:
        d = self._drawn.get(s.key)
        if d is None:
            d = self._drawn[s.key] = _Drawn(self.color(s.key), s)
            pi = self.plot.plotItem
            pi.addItem(d.tp_line)
            pi.addItem(d.tp_dots)
            for item in (d.band, d.lat_line, d.lat_dots):
                self.lat_view.addItem(item)
        y = self.y_of
        tp = [p for p in s.points if p.throughput is not None]
        xs, ys = [x_of(p.batch) for p in tp], [y(p.throughput) for p in tp]
        d.tp_line.setData(xs, ys)
        d.tp_dots.setData(x=xs, y=ys, data=[tip_text(s, p) for p in tp])
        lat = [p for p in s.points if p.latency is not None]
        lx, ly = [x_of(p.batch) for p in lat], [y(p.latency) for p in lat]
        d.lat_line.setData(lx, ly)
        d.lat_dots.setData(x=lx, y=ly, data=[tip_text(s, p) for p in lat])
        band = [p for p in lat if p.p90 is not None and p.p99 is not None]
        # p90..p99 as a bar around each median: how far the slow tail reaches
        d.band.setData(x=np.array([x_of(p.batch) for p in band], float),
                       y=np.array([(y(p.p90) + y(p.p99)) / 2 for p in band], float),
                       height=np.array([y(p.p99) - y(p.p90) for p in band], float))
        for item, shown in ((d.tp_line, tp), (d.tp_dots, tp), (d.lat_line, lat), (d.lat_dots, lat), (d.band, band)):
            item.setVisible(bool(shown))

    def _relegend(self) -> None:
        """The legend, under the plot (never over the points): one entry per series, wrapping between entries."""
        while self.legend.count():
            w = self.legend.takeAt(0).widget()
            w.deleteLater()
        for s in self.series:
            if s.key not in self._drawn:
                continue
            color, sym = self.color(s.key), SYMBOL.get(s.meaning, "d")
            glyph = ({"o": "○", "s": "□", "d": "◇"} if s.published else {"o": "●", "s": "■", "d": "◆"})[sym]
            parts = []
            if any(p.throughput is not None for p in s.points):
                parts.append(f"{'╍╍' if s.published else '━━'}{glyph}&nbsp;img/s")
            if any(p.latency is not None for p in s.points):
                parts.append(f"{'╌╌' if s.published else '┄┄'}△&nbsp;{'ms' if s.published else 'p50&nbsp;ms'}")
            entry = QLabel(f'<span style="color:{color}; font-weight:bold">{"&nbsp;".join(parts)}</span>&nbsp;'
                           + html.escape(s.title))
            entry.setTextFormat(Qt.RichText)
            entry.setToolTip(s.source)
            entry.setStyleSheet("font-size: 8pt;")
            self.legend.addWidget(entry)
        self.legend_box.setVisible(self.legend.count() > 0)

    def legend_texts(self) -> list[str]:
        """The legend's entries as plain text (what a reader sees)."""
        return [re.sub(r"<[^>]+>", "", self.legend.itemAt(i).widget().text()).replace("&nbsp;", " ")
                for i in range(self.legend.count())]

    def _fit(self) -> None:
        pi = self.plot.plotItem
        batches = [p.batch for s in self.series for p in s.points]
        top = max([MAX_LOG2] + [math.ceil(x_of(b)) for b in batches])
        pi.getAxis("bottom").setTicks([[(float(i), str(2 ** i)) for i in range(top + 1)], []])
        pi.setXRange(-0.3, top + 0.3, padding=0)
        tps = [p.throughput for s in self.series for p in s.points if p.throughput is not None]
        lats = [v for s in self.series for p in s.points for v in (p.latency, p.p90, p.p99) if v is not None]
        for side, view, values in (("left", pi.vb, tps), ("right", self.lat_view, lats)):
            axis = pi.getAxis(side)
            if self.log:  # whole decades, ticks as plain numbers: 10, 20, 50, 100, ... (the other 3..9 unlabelled)
                lo, hi = (math.log10(min(values)), math.log10(max(values))) if values else (0.0, 1.0)
                lo, hi = math.floor(lo - 0.05), math.ceil(hi + 0.05)
                view.setYRange(lo - 0.06, hi + 0.06, padding=0)  # a margin: a label on the edge would be hidden
                axis.setTicks([[(math.log10(m) + e, f"{m * 10.0 ** e:,g}") for e in range(lo, hi + 1)
                                for m in (1, 2, 5) if m == 1 or e < hi],
                               [(math.log10(m) + e, "") for e in range(lo, hi) for m in (3, 4, 6, 7, 8, 9)]])
            else:  # from zero (ratios read true), a little headroom above
                axis.setTicks(None)
                view.setYRange(0, (max(values) if values else 1.0) * 1.12, padding=0)

    # log scale --------------------------------------------------------------------------------------
    @property
    def log(self) -> bool:
        return self.log_box.isChecked()

    def y_of(self, v: float) -> float:
        """Where a value goes on either y axis: log10 on a log scale (the ticks say the values), else itself."""
        return math.log10(v) if self.log else v

    def set_log(self, on: bool, by_user: bool = True) -> None:
        """Both y axes on a log scale (or not). Until the user chooses, the chart chooses by itself: log when the
        shown values span more than LOG_SPAN (a CPU beside a published NPU figure would lie flat on zero)."""
        if by_user:
            self._log_auto = False
        self.log_box.blockSignals(True)
        self.log_box.setChecked(on)
        self.log_box.blockSignals(False)
        for s in self.series:
            if s.key in self._drawn:
                self._draw(s)
        self._fit()

    def _auto_log(self) -> None:
        if not self._log_auto:
            return
        spans = []
        for values in ([p.throughput for s in self.series for p in s.points if p.throughput],
                       [p.latency for s in self.series for p in s.points if p.latency]):
            if values:
                spans.append(max(values) / min(values))
        want = any(span > LOG_SPAN for span in spans)
        if want != self.log:
            self.set_log(want, by_user=False)

    def meanings_shown(self) -> list[str]:
        return sorted({s.meaning for s in self.series if s.points})

    def _update_note(self) -> None:
        shown = self.meanings_shown()
        if len(shown) > 1:
            self.note.setText("Not the same measure (compare like with like): " + "; ".join(EXPLAIN[m] for m in shown)
                              + ".")
        self.note.setVisible(len(shown) > 1)

    # exports ----------------------------------------------------------------------------------------
    def csv_text(self) -> str:
        """Every shown point, numbers in full (Python's repr: the stored value, exactly)."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for s in self.series:
            for p in s.points:
                w.writerow([s.label, "published" if s.published else "measured", s.meaning, s.device, s.precision,
                            s.tool, p.batch] + ["" if v is None else repr(v) for v in
                                                (p.throughput, p.mean, p.p50, p.p90, p.p99, p.published_ms)]
                           + [s.source])
        return out.getvalue()

    def png_bytes(self) -> bytes:
        self.flush()
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        if not self.grab().save(buf, "PNG"):  # the plot with its legend and note
            raise OSError("cannot encode the chart as PNG")
        buf.close()
        return bytes(data)

    def svg_bytes(self) -> bytes:
        """The chart as drawn (both view boxes, the axes and the legend) as vector SVG. Qt's own SVG generator
        paints it: pyqtgraph's SVGExporter cannot parse the closing 'Z' newer Qt writes into paths
        (pyqtgraph issue #3485) and fails on any plot."""
        self.flush()
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        gen = QSvgGenerator()
        gen.setOutputDevice(buf)
        gen.setSize(self.size())
        gen.setViewBox(QRect(QPoint(0, 0), self.size()))
        gen.setTitle("mbexplorer: throughput and latency by batch size")
        painter = QPainter(gen)
        try:
            self.render(painter, QPoint(0, 0))  # the plot with its legend and note
        finally:
            painter.end()
        buf.close()
        return bytes(data)
