"""The "Quantization" tab: where does quantization lose accuracy, layer by layer?

It compares the open model with its float twin (a quantized TFLite's) or with a second model file (the one with
Quantize/DequantizeLinear nodes is the quantized one) on a folder of images or the Classify tab's, in the
"quantization" lane of the window's task registry. ``compare_job`` streams a partial result after every image;
the views (a per-layer SQNR chart along depth, a sortable table, the output agreement, the worst weights) and a
tensor-keyed overlay "quantization SQNR" on the block graph follow it, redrawn at most every 200 ms.

A finished comparison is the what-if pane's baseline (``whatif_panel``, a third tab beside the tables): its float
model quantized again another way, with layers picked from the table kept in float ("Keep in float", or the
table's context menu); the chart draws the what-if's per-layer SQNR over the comparison's, tensor by tensor.

Choosing a tensor (a row or a chart point) fills the detail pane below: both models' value histograms, a
float-vs-quantized scatter, the quantization range against the observed one, and a weight-bearing node's
per-channel weight SQNR, computed by ``layer_detail`` on a few of the run's images in the "quantization-detail"
lane (its own: a detail must not cancel the comparison).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFrame,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from mbexplorer.core.compare import Partial, compare_job, strict_json
from mbexplorer.core.decoding import image_files
from mbexplorer.core.drilldown import layer_detail
from mbexplorer.core.errors import MbxError
from mbexplorer.core.formats import MODEL_FILTER
from mbexplorer.core.jobs import Progress
from mbexplorer.core.loading import load
from mbexplorer.core.outputs import write_atomically
from mbexplorer.core.overlays import Overlay
from mbexplorer.core.state import State

from .flow_layout import FlowLayout, tool_group
from .job_status import JobStatus
from .tasks import Tasks
from .topk_view import menu_button
from .whatif_panel import WhatIfPanel
from .workers import JobHandle

LANE = "quantization"
DETAIL_LANE = "quantization-detail"
DETAIL_IMAGES = 8  # every value of the tensor is kept: a few images show its distribution well enough
OVERLAY = "quantization SQNR"
HEADROOM_DB = 40  # the chart's top: this far above the median; higher (an exact stem) is drawn at the top
REDRAW_MS = 200  # partial results redraw at most 5 times a second: a small model finishes an image in ~10 ms
COLUMNS = [("#", "#"), ("tensor", "name"), ("op", "op_type"), ("block", "block"), ("SQNR dB", "sqnr_db"),
           ("cosine", "cosine"), ("MSE", "mse"), ("max abs", "max_abs"), ("rel L2", "rel_l2"),
           ("isolated SQNR dB", "isolated_sqnr_db")]
# (key, legend name, colour): the comparison's series, then the what-if's
CURVES = (("sqnr_db", "accumulated", "#2563eb"), ("isolated_sqnr_db", "isolated", "#dc2626"),
          ("sqnr_db", "what-if accumulated", "#16a34a"), ("isolated_sqnr_db", "what-if isolated", "#d97706"))
WEIGHT_COLUMNS = [("#", "#"), ("weight", "name"), ("node", "node"), ("SQNR dB", "sqnr_db"),
                  ("worst channel", "worst_channel"), ("worst channel SQNR dB", "worst_channel_sqnr_db")]
_QDQ = {"QuantizeLinear", "DequantizeLinear"}


def is_quantized(model) -> bool:
    return any(n.op_type in _QDQ for n in model.graph.node)


def finite(v) -> float | None:
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "inf" if v == math.inf else "-inf" if v == -math.inf else f"{v:.4g}"
    return str(v)


class _Item(QTableWidgetItem):
    """Sorts by value (numbers as numbers, empty cells last) rather than by the text shown."""

    def __init__(self, value):
        super().__init__(_text(value))
        if isinstance(value, str):
            self.setToolTip(value)  # long tensor names are elided
        self.value = value
        if isinstance(value, (int, float)):
            self.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)

    def __lt__(self, other) -> bool:
        a, b = self.value, getattr(other, "value", None)
        if a is None or b is None:
            return a is not None and b is None
        if isinstance(a, str) != isinstance(b, str):
            return isinstance(a, str)
        return a < b


class _Setup:
    """The job's first event: which model is the float one (the other file is loaded on the worker)."""

    def __init__(self, float_model, quant_model, other):
        self.float_model, self.quant_model, self.other = float_model, quant_model, other


def _job(open_model, other, other_path, images):
    """Load the other file (if any), decide the roles, then compare."""
    if other is None and other_path is not None:
        other = load(other_path)
    if other is None:
        if open_model.float_twin is None:
            raise MbxError(f"{open_model.name} has no float twin: compare it with a second model file.")
        fm, qm = open_model.float_twin, open_model
    else:
        qa, qb = is_quantized(open_model), is_quantized(other)
        if qa == qb:
            raise MbxError(f"{'both' if qa else 'neither'} of {open_model.name} and {other.name} "
                           f"{'have' if qa else 'has'} Quantize/DequantizeLinear nodes: open a float model and "
                           "its quantized version.")
        fm, qm = (other, open_model) if qa else (open_model, other)
    yield _Setup(fm, qm, other)
    return (yield from compare_job(fm, qm, images))


def _detail_job(float_model, quant_model, row: dict, images):
    yield Progress(0.0, f"looking at {row['name']}")
    return layer_detail(float_model, quant_model, row, images)


def detail_text(d: dict) -> str:
    lo, hi = d["observed"]
    lines = [f"{d['name']}  ({d['op_type']}, {d['values']} values on {d['images']} images)",
             f"observed range {lo:.4g} .. {hi:.4g}"]
    qp = d["quant"]
    if qp is None:
        lines.append("not quantized here (a float value between quantized ones)")
    else:
        a, b = qp["range"]
        lines += [f"scale {qp['scale']:.4g}  ·  zero point {qp['zero_point']} ({qp['dtype']})",
                  f"representable range {a:.4g} .. {b:.4g}", f"clipped {d['clipped_fraction']:.2%}"]
    return "\n".join(lines)


class QuantizationPanel(QWidget):
    nodeSelected = Signal(str)  # a row or a chart point was chosen: the window selects it in the graph
    errorRaised = Signal(str, str)  # title, message
    statusMessage = Signal(str, int)
    runFinished = Signal()  # a comparison ran over every image

    def __init__(self, parent=None, tasks: Tasks | None = None, state: State | None = None,
                 classify_images: Callable[[], list] | None = None):
        super().__init__(parent)
        self.tasks = tasks if tasks is not None else Tasks(self)
        self.state = state if state is not None else State()
        self.classify_images = classify_images or (lambda: [])
        self.other_path: Path | None = None  # the second model file; None: the float twin
        self.other = None  # its LoadedModel once loaded (kept across runs)
        self.folder_images: list[Path] | None = None
        self.result: dict | None = None  # Comparison.to_dict() so far
        self.images_done = 0
        self._pending: dict | None = None
        self._analysis = None  # the analysis the shown result is for
        self._open_is_quant = True
        self._models = None  # (float, quantized) of the shown result, for the detail pane and the what-if
        self._run_images: list = []  # the images of the shown result
        self._whatif: dict | None = None  # the what-if's comparison drawn over the shown result
        self._top = HEADROOM_DB  # the chart's top (see _show)
        self._show_overlay = False
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self._flush)
        self._build()
        self.state.on("analysis", self._on_analysis)
        self._update_controls()

    # ui ------------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        bar = FlowLayout()  # wraps on a narrow window rather than widening it
        self.against = QComboBox()
        self.against.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.against.setToolTip("The float model compared with the quantized one")
        self.against.currentIndexChanged.connect(lambda _: self._on_against())
        self.compare_button = QPushButton("Compare with…")
        self.compare_button.setToolTip("A second model file: a float model's quantized version, or the reverse")
        self.compare_button.clicked.connect(self.compare_dialog)
        self.images = QComboBox()
        self.images.addItem("Classify tab's images", "classify")
        self.images.currentIndexChanged.connect(lambda _: self._update_controls())
        self.folder_button = QPushButton("Add folder…")
        self.folder_button.clicked.connect(self.folder_dialog)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button = menu_button("Export", [("Table as CSV…", lambda: self._save("csv")),
                                                    ("Results as JSON…", lambda: self._save("json")),
                                                    ("Chart as PNG…", lambda: self._save("png"))])
        for group in ((QLabel("Compare:"), self.against, self.compare_button), (QLabel("Images:"), self.images,
                      self.folder_button), (self.run_button, self.cancel_button, self.export_button)):
            bar.addWidget(tool_group(*group))
        lay.addLayout(bar)
        self.job_status = JobStatus()
        self.job_status.cancel_button.hide()  # the tab's own Cancel
        self.job_status.follow(self.tasks, LANE)
        lay.addWidget(self.job_status)
        self.output = QLabel()
        self.output.setTextFormat(Qt.PlainText)
        self.output.setStyleSheet("font-weight: bold;")
        lay.addWidget(self.output)

        self.plot = pg.PlotWidget(background="w")
        for w in (self.plot, self.plot.viewport()):
            w.setAcceptDrops(False)  # a model or images dropped on the chart go to the window
        self.plot.setLabel("left", "SQNR", units="dB")
        self.plot.setLabel("bottom", "matched tensor (execution order)")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.legend = self.plot.addLegend(offset=(-10, 10), colCount=2, brush=pg.mkBrush(255, 255, 255, 210))
        self.curves = self._add_curves(CURVES[:2], Qt.SolidLine, 7, legend=True)
        # the what-if's series, dashed over the comparison's; in the legend only while a what-if is shown
        self.whatif_curves = self._add_curves(CURVES[2:], Qt.DashLine, 6, legend=False)
        self.legend.setVisible(False)  # until there is a series: an empty one's sample is pyqtgraph's "hidden" mark
        self.table = self._make_table(COLUMNS, 0)  # execution order, as the chart
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)  # several layers to keep in float
        self.table.itemSelectionChanged.connect(self._on_row)
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._table_menu)
        self.weights = self._make_table(WEIGHT_COLUMNS, len(WEIGHT_COLUMNS) - 1)  # the worst channel first
        self.whatif = WhatIfPanel(self.tasks)
        self.whatif.errorRaised.connect(self.errorRaised)
        self.whatif.statusMessage.connect(self.statusMessage)
        self.whatif.outcomeChanged.connect(self._show_whatif)
        scroll = QScrollArea()  # on a 768 px high screen the pane scrolls rather than squeezing its tables
        scroll.setWidget(self.whatif)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        self.views = views = QTabWidget()
        views.setDocumentMode(True)
        views.addTab(self.table, "Tensors")
        views.addTab(self.weights, "Worst weights")
        views.addTab(scroll, "What-if")
        self.keep_button = QPushButton("Keep in float")
        self.keep_button.setToolTip("Keep the layers of the selected tensors in float in the what-if")
        self.keep_button.clicked.connect(self.keep_selected)
        views.setCornerWidget(self.keep_button, Qt.TopRightCorner)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.plot)
        split.addWidget(views)
        self.detail = self._build_detail()
        split.addWidget(self.detail)
        self._whatif_page, self._split, self._detail_height = scroll, split, 0
        views.currentChanged.connect(lambda _: self._on_view())
        split.setSizes([300, 400, 250])
        split.setChildrenCollapsible(False)
        lay.addWidget(split, 1)
        self.hint = QLabel()
        self.hint.setStyleSheet("color: #6b7280;")
        lay.addWidget(self.hint)

    def _on_view(self) -> None:
        """The what-if takes the detail pane's room while it is shown (the detail is of a Tensors row)."""
        whatif = self.views.currentWidget() is self._whatif_page
        if whatif == self.detail.isHidden():
            return
        plot, views, detail = self._split.sizes()
        if whatif:
            self._detail_height = detail
            self.detail.hide()
            self._split.setSizes([plot, views + detail, 0])
        else:
            self.detail.show()
            self._split.setSizes([plot, max(views - self._detail_height, 1), self._detail_height])

    def _add_curves(self, series, style, size: int, legend: bool) -> dict:
        """A line and clickable dots per (key, name, colour); the dots' data is their tip."""
        curves = {}
        for key, name, color in series:
            line = self.plot.plot([], [], pen=pg.mkPen(color, width=1.5, style=style), name=name if legend else None)
            dots = pg.ScatterPlotItem(size=size, brush=pg.mkBrush(color), pen=None, hoverable=True,
                                      hoverSize=size + 4, tip=lambda x, y, data: data)
            dots.sigClicked.connect(self._on_points)
            self.plot.addItem(dots)
            curves[key] = (line, dots)
        return curves

    def _build_detail(self) -> QWidget:
        """The chosen tensor's histograms, scatter, range text and per-channel weight SQNR, side by side."""
        def plot(left: str, bottom: str) -> pg.PlotWidget:
            p = pg.PlotWidget(background="w")
            for w in (p, p.viewport()):
                w.setAcceptDrops(False)
            p.setLabel("left", left)
            p.setLabel("bottom", bottom)
            p.showGrid(x=True, y=True, alpha=0.3)
            return p

        self.hist_plot = plot("count", "value")
        self.hist_plot.addLegend(offset=(-10, 10))
        self.scatter_plot = plot("quantized", "float")
        self.channel_plot = plot("SQNR dB", "output channel")
        self.detail_text = QLabel("Choose a tensor to see its values.")
        self.detail_text.setTextFormat(Qt.PlainText)
        self.detail_text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.detail_text.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.detail_text.setWordWrap(True)
        split = QSplitter(Qt.Horizontal)
        for w in (self.detail_text, self.hist_plot, self.scatter_plot, self.channel_plot):
            split.addWidget(w)
        self.channel_plot.hide()
        return split

    def _make_table(self, columns, sort: int) -> QTableWidget:
        t = QTableWidget(0, len(columns))
        t.setHorizontalHeaderLabels([c for c, _ in columns])
        t.setEditTriggers(QAbstractItemView.NoEditTriggers)
        t.setSelectionBehavior(QAbstractItemView.SelectRows)
        t.setSelectionMode(QAbstractItemView.SingleSelection)
        t.verticalHeader().setVisible(False)
        t.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        t.horizontalHeader().setStretchLastSection(True)
        t.setWordWrap(False)
        t.setTextElideMode(Qt.ElideLeft)  # a tensor's name ends with what tells it apart
        t.verticalHeader().setDefaultSectionSize(t.fontMetrics().height() + 6)
        t.setColumnWidth(0, 36)
        for c in (1, 2, 3):
            t.setColumnWidth(c, 170 if c != 2 else 90)
        t.sortByColumn(sort, Qt.AscendingOrder)
        t.setSortingEnabled(True)
        return t

    # inputs --------------------------------------------------------------------------------------
    def _on_analysis(self, analysis) -> None:
        """Another model: its results would not match; the file compared with stays."""
        self.tasks.retire(LANE)
        self._clear_detail()
        chosen = self.against.currentData()
        self.against.blockSignals(True)
        self.against.clear()
        if analysis is not None and analysis.model.float_twin is not None:
            self.against.addItem("its float twin", None)
        if self.other_path is not None:
            self.against.addItem(self.other_path.name, str(self.other_path))
        self.against.setCurrentIndex(max(0, self.against.findData(chosen)))  # a file chosen stays chosen
        self.against.blockSignals(False)
        self.whatif.clear()
        self._show(None)
        self._update_controls()

    def compare_with_path(self, path) -> None:
        """Compare the open model with a second model file (chosen in the combo)."""
        self.other_path, self.other = Path(path), None
        i = self.against.findData(str(self.other_path))
        if i < 0:
            self.against.addItem(self.other_path.name, str(self.other_path))
            i = self.against.count() - 1
        self.against.setCurrentIndex(i)
        self._update_controls()

    def _on_against(self) -> None:
        data = self.against.currentData()
        if data is not None and Path(data) != self.other_path:
            self.other_path, self.other = Path(data), None
        self._update_controls()

    def set_images(self, paths) -> int:
        """Images from files or folders (searched recursively), used instead of the Classify tab's."""
        self.folder_images = [Path(p) for p in image_files(paths)]
        label = f"{len(self.folder_images)} images" + (f" in {Path(paths[0]).name}" if len(paths) == 1 else "")
        i = self.images.findData("folder")
        if i < 0:
            self.images.addItem(label, "folder")
            i = self.images.count() - 1
        self.images.setItemText(i, label)
        self.images.setCurrentIndex(i)
        return len(self.folder_images)

    def image_list(self) -> list:
        if self.images.currentData() == "folder":
            return list(self.folder_images or [])
        return list(self.classify_images())

    # dialogs -------------------------------------------------------------------------------------
    def compare_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Compare with model", "", MODEL_FILTER)
        if path:
            self.compare_with_path(path)

    def folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Images to compare on")
        if path:
            self.set_images([path])

    def _save(self, kind: str) -> None:
        name = f"{self.state.analysis.model.name if self.state.analysis else 'model'}_quantization.{kind}"
        filters = {"csv": "CSV files (*.csv)", "json": "JSON files (*.json)", "png": "PNG images (*.png)"}
        path, _ = QFileDialog.getSaveFileName(self, f"Export {kind.upper()}", name, filters[kind])
        if path:
            {"csv": self.export_csv, "json": self.export_json, "png": self.export_png}[kind](path)

    # running -------------------------------------------------------------------------------------
    @property
    def job(self) -> JobHandle | None:
        return self.tasks.current(LANE)

    def run(self) -> JobHandle | None:
        """Compare on the chosen images (cancelling a running comparison); None when there is nothing to run."""
        analysis = self.state.analysis
        images = self.image_list()
        if analysis is None or not images:
            self.errorRaised.emit("Cannot compare", "Open a model and choose images first." if analysis is None
                                  else "No images: add a folder, or add images in the Classify tab.")
            return None
        other_path = None if self.against.currentData() is None else self.other_path
        other = self.other if other_path is not None else None
        job = JobHandle(lambda: _job(analysis.model, other, other_path, images),
                        f"Comparing on {len(images)} image{'s' * (len(images) != 1)}…")
        job.event.connect(lambda ev, j=job: self._on_event(j, ev))
        job.on_end(lambda comparison, error, j=job: self._on_end(j, comparison, error))
        self._analysis = analysis
        self._models, self._run_images = None, images
        self.whatif.set_baseline(None, None, [], None)  # a what-if of the last comparison would not match
        self._clear_detail()
        self._show_overlay = True  # the first result of a run colours the graph by it
        self._show(None)
        self.tasks.start(LANE, job)
        self._update_controls()
        return job

    def cancel(self) -> None:
        if self.tasks.cancel(LANE):
            self.job_status.cancelling()

    def _on_event(self, job: JobHandle, ev) -> None:
        if not self.tasks.is_current(job):
            return
        if isinstance(ev, _Setup):
            if ev.other is not None:
                self.other = ev.other  # loaded once: the next run reuses it
            self._open_is_quant = ev.quant_model is self._analysis.model
            self._models = (ev.float_model, ev.quant_model)
        elif isinstance(ev, Partial):
            self.images_done = ev.images
            self._pending = ev.result
            if not self._redraw.isActive():
                self._redraw.start()

    def _flush(self) -> None:
        if self._pending is not None:
            result, self._pending = self._pending, None
            self._show(result)

    def _on_end(self, job: JobHandle, comparison, error: str | None = None) -> None:
        if not self.tasks.is_current(job):
            return
        self._redraw.stop()
        self._pending = None
        if comparison is not None:
            self.images_done = comparison.images
            self._show(comparison.to_dict())
        self._update_controls()
        if error:
            self.errorRaised.emit("Cannot compare", error)
        elif job.state == "finished":
            # the what-if starts from this comparison: its float model, calibrated and compared on its images
            # (those it could read)
            failed = set(comparison.failed)
            self.whatif.set_baseline(*self._models, [p for p in self._run_images if str(p) not in failed],
                                     self.result)
            self._update_keep()
            self.statusMessage.emit(f"Compared on {comparison.images} images.", 5000)
            self.runFinished.emit()

    # showing -------------------------------------------------------------------------------------
    def _update_controls(self) -> None:
        running = self.job is not None
        has_model = self.state.analysis is not None
        self.run_button.setEnabled(has_model and self.against.count() > 0)
        self.cancel_button.setEnabled(running)
        self.export_button.setEnabled(self.result is not None)
        self._update_keep()
        if not has_model:
            hint = "Open a model to compare it with its float version."
        elif self.against.count() == 0:
            hint = "This model has no float twin: Compare with… a float model or its quantized version."
        else:
            hint = f"{len(self.image_list())} images" + ("  ·  comparing…" if running else "")
        self.hint.setText(hint)

    def _show(self, result: dict | None) -> None:
        self.result = result
        tensors = result["tensors"] if result else []
        # An exact tensor (inf dB: a twin's stem) or a nearly exact one would squash the rest into a band: those
        # above the median + HEADROOM_DB are drawn as triangles at that top, their value in the tip.
        known = sorted(v for t in tensors if (v := finite(t["sqnr_db"])) is not None)
        top = (known[len(known) // 2] if known else 0.0) + HEADROOM_DB
        self._top = top
        self._draw(self.curves, tensors)
        self._draw_whatif()
        self._fill(self.table, COLUMNS, tensors)
        self._fill(self.weights, WEIGHT_COLUMNS, result["weights"] if result else [])
        out = result["output"] if result else None
        if out and out["top1_agreement"] is not None:
            self.output.setText(f"{self.images_done} images  ·  top-1 agreement {out['top1_agreement']:.1%}  ·  "
                                f"top-5 agreement {out['top5_agreement']:.1%}  ·  output SQNR "
                                f"{_text(out['sqnr_db'])} dB")
        else:
            self.output.setText("")
        self.export_button.setEnabled(result is not None)
        if result and tensors:
            self._add_overlay(tensors)

    def _points(self, tensors: list[dict], key: str, x_of=None, prefix: str = "") -> tuple:
        """(xs, ys, tips, symbols) of one series: each tensor at its place along depth (``x_of``: by name, for a
        what-if drawn over the comparison; default its index), values above the top as triangles at the top.
        Each point's data is its tip: the tensor's name, then its value."""
        pts = []
        for i, t in enumerate(tensors):
            x = i if x_of is None else x_of.get(t["name"])
            v = t[key]
            if x is None or v is None or math.isnan(v) or v == -math.inf:
                continue
            pts.append((x, min(v, self._top), f"{t['name']}\n{prefix}{_text(v)} dB", "t1" if v > self._top else "o"))
        return [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts], [p[3] for p in pts]

    def _draw(self, curves: dict, tensors: list[dict], x_of=None, prefix: str = "") -> None:
        for key, (line, dots) in curves.items():
            xs, ys, tips, symbols = self._points(tensors, key, x_of, prefix)
            line.setData(xs, ys)
            dots.setData(x=xs, y=ys, data=tips, symbol=symbols)
            line.setVisible(bool(xs))  # a series that does not exist (isolated, on some runs) stays out
            dots.setVisible(bool(xs))
        if curves is self.curves:
            self.legend.setVisible(any(line.isVisible() for line, _ in curves.values()))

    def _show_whatif(self, comparison: dict | None) -> None:
        """The what-if pane's result (or None): its series over the comparison's, matched by tensor name."""
        self._whatif = comparison
        self._draw_whatif()

    def _draw_whatif(self) -> None:
        tensors = self._whatif["tensors"] if self._whatif and self.result else []
        x_of = {t["name"]: i for i, t in enumerate(self.result["tensors"])} if self.result else {}
        self._draw(self.whatif_curves, tensors, x_of, "what-if ")
        for (_, name, _), (line, _) in zip(CURVES[2:], self.whatif_curves.values()):
            listed = any(sample.item is line for sample, _ in self.legend.items)
            if line.isVisible() and not listed:
                self.legend.addItem(line, name)
            elif listed and not line.isVisible():
                self.legend.removeItem(line)

    def _fill(self, table: QTableWidget, columns, rows: list[dict]) -> None:
        """Refill in place; the sort column stays, and the selected tensor stays selected."""
        chosen = table.selectedItems()
        chosen = chosen[0].data(Qt.UserRole) if chosen else None
        table.blockSignals(True)
        table.setSortingEnabled(False)
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, (_, key) in enumerate(columns):
                item = _Item(r if key == "#" else row[key])
                item.setData(Qt.UserRole, row["name"])
                table.setItem(r, c, item)
        table.setSortingEnabled(True)
        if chosen is not None:
            for r in range(table.rowCount()):
                if table.item(r, 0).data(Qt.UserRole) == chosen:
                    table.selectRow(r)
        table.blockSignals(False)

    def _add_overlay(self, tensors: list[dict]) -> None:
        analysis = self.state.analysis
        if analysis is None or analysis is not self._analysis:
            return
        producers = analysis.index.producer
        values = {}
        for t in tensors:
            v = finite(t["sqnr_db"])  # an exact tensor (inf) says nothing about where the error is
            key = t["name"] if not self._open_is_quant or t["name"] in producers else t["quant_name"]
            if v is not None:
                values[key] = v
        self.state.add_overlay(Overlay(OVERLAY, "dB", values, key="tensor", aggregate="min", source="compare",
                                       description="quantized vs float SQNR of each tensor (lowest per block)",
                                       higher_is_better=True), show=self._show_overlay)
        self._show_overlay = False

    def _on_points(self, _item, points, _ev) -> None:
        if len(points):
            self._choose(points[0].data().split("\n")[0])  # the tip's first line: the tensor

    def _on_row(self) -> None:
        items = self.table.selectedItems()
        current = self.table.currentItem()
        if items:  # of several rows selected (to keep in float), the one clicked last
            self._choose((current if current is not None and current.isSelected() else items[0]).data(Qt.UserRole))
        self._update_keep()

    def selected_rows(self) -> list[dict]:
        """The comparison's rows of the tensors selected in the table, in the table's order."""
        if self.result is None:
            return []
        names = {self.table.item(i.row(), 0).data(Qt.UserRole) for i in self.table.selectedIndexes()}
        return [t for t in self.result["tensors"] if t["name"] in names]

    def keep_selected(self) -> list[str]:
        """Keep the layers of the selected tensors in float in the what-if (shown); the nodes added."""
        added = self.whatif.keep(self.selected_rows())
        self.views.setCurrentIndex(self.views.count() - 1)
        return added

    def table_menu(self) -> QMenu:
        """The Tensors table's context menu."""
        menu = QMenu(self)
        menu.setAttribute(Qt.WA_DeleteOnClose)
        action = menu.addAction("Keep in float (what-if)", self.keep_selected)
        action.setEnabled(self.keep_button.isEnabled())
        return menu

    def _table_menu(self, pos) -> None:
        self.table_menu().popup(self.table.viewport().mapToGlobal(pos))

    def _update_keep(self) -> None:
        self.keep_button.setEnabled(self.whatif.float_model is not None and bool(self.table.selectedIndexes()))

    def _choose(self, tensor: str) -> None:
        """A tensor was chosen: select its producing node in the graph, and look at it up close."""
        if self.result is None:
            return
        row = next((t for t in self.result["tensors"] if t["name"] == tensor), None)
        if row is not None:
            self.nodeSelected.emit(row["node"])
            self.show_detail(row)

    # detail --------------------------------------------------------------------------------------
    def show_detail(self, row: dict) -> JobHandle | None:
        """Compute the detail of one tensor row off the UI thread; None when the models are not known yet."""
        if self._models is None or not self._run_images:
            return None
        fm, qm = self._models
        images = list(self._run_images[:DETAIL_IMAGES])
        job = JobHandle(lambda: _detail_job(fm, qm, dict(row), images), f"Looking at {row['name']}…")
        job.finished.connect(lambda d, j=job: self.tasks.is_current(j) and self._draw_detail(d))
        job.failed.connect(lambda msg, j=job: self.tasks.is_current(j) and self.detail_text.setText(msg))
        self.detail_text.setText(f"Looking at {row['name']}…")
        return self.tasks.start(DETAIL_LANE, job)

    def _clear_detail(self) -> None:
        self.tasks.retire(DETAIL_LANE)
        for p in (self.hist_plot, self.scatter_plot, self.channel_plot):
            p.clear()
        self.channel_plot.hide()
        self.detail_text.setText("Choose a tensor to see its values.")

    def _draw_detail(self, d: dict) -> None:
        for p in (self.hist_plot, self.scatter_plot, self.channel_plot):
            p.clear()
        edges = d["bin_edges"]
        self.hist_plot.plot(edges, d["float_counts"], stepMode="center", fillLevel=0, name="float",
                            pen=pg.mkPen("#2563eb", width=1.5), brush=pg.mkBrush(37, 99, 235, 60))
        self.hist_plot.plot(edges, d["quant_counts"], stepMode="center", name="quantized",
                            pen=pg.mkPen("#dc2626", width=1.5))
        if d["quant"] is not None:  # the representable range's ends
            for x in d["quant"]["range"]:
                self.hist_plot.addItem(pg.InfiniteLine(x, pen=pg.mkPen("#6b7280", style=Qt.DashLine)))
        fx, qx = d["scatter_float"], d["scatter_quant"]
        self.scatter_plot.addItem(pg.ScatterPlotItem(fx, qx, size=3, pen=None, brush=pg.mkBrush(37, 99, 235, 90)))
        lo, hi = d["observed"]
        self.scatter_plot.plot([lo, hi], [lo, hi], pen=pg.mkPen("#6b7280", style=Qt.DashLine))  # y = x
        per = d["channel_sqnr_db"]
        if per:
            v = np.array(per, np.float64)
            finite_v = v[np.isfinite(v)]
            # an exact channel (inf) drawn as tall as the best finite one, an all-zero one (-inf) as 0
            v = np.nan_to_num(v, posinf=finite_v.max() if finite_v.size else 0.0, neginf=0.0)
            self.channel_plot.addItem(pg.BarGraphItem(x=np.arange(v.size), height=v, width=0.8,
                                                      brush="#2563eb", pen=None))
        self.channel_plot.setVisible(bool(per))
        self.detail_text.setText(detail_text(d))

    # exports -------------------------------------------------------------------------------------
    def csv_text(self) -> str:
        """The table as shown (its sort order), numbers in full."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow([c for c, _ in COLUMNS])
        for r in range(self.table.rowCount()):
            w.writerow(["" if (v := self.table.item(r, c).value) is None else v for c in range(len(COLUMNS))])
        return out.getvalue()

    def export_csv(self, path) -> bool:
        return self._write(path, lambda: self.csv_text())

    def export_json(self, path) -> bool:
        return self._write(path, lambda: json.dumps(strict_json(self.result), indent=1, allow_nan=False) + "\n")

    def export_png(self, path) -> bool:
        def encode() -> bytes:
            data = QByteArray()
            buf = QBuffer(data)
            buf.open(QIODevice.OpenModeFlag.WriteOnly)
            if not self.plot.grab().save(buf, "PNG"):
                raise OSError("cannot encode the chart as PNG")
            buf.close()
            return bytes(data)

        return self._write(path, encode)

    def _write(self, path, make) -> bool:
        """Whole or not at all; False when it could not be written (said)."""
        if self.result is None:
            return False
        try:
            write_atomically(path, make())
        except OSError as exc:
            self.errorRaised.emit("Cannot export", f"Cannot write {path}: {exc.strerror or exc}")
            return False
        self.statusMessage.emit(f"Wrote {path}", 5000)
        return True
