"""The Quantization tab's what-if pane: quantize the float model another way and see what changes, measured.

The float side of the tab's comparison is quantized again by onnxruntime (``quantize_job``) with the user's
choices: per-tensor or per-channel weights, the calibration method, cross-layer equalization, layers kept in
float (picked from the comparison's table). It is calibrated and compared on the comparison's images
(``compare_job``), in one job of its own lane, and shown beside the comparison it started from: the tab draws its
per-layer SQNR over the baseline's, a table sets output SQNR, top-1 / top-5 agreement and the worst layer side by
side with the change, and one chosen image's top-5 from the float model, the comparison's quantized model and the
what-if model (each with its own preprocessing) sit in three columns.

"Try each change" runs ``whatif_job`` (each of ``whatif.SETTINGS``, plus the layers kept in float) and names the
change with the highest output SQNR: the one that helps most on this model, as measured. Choosing a row puts its
setting in the controls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from mbexplorer.core.errors import MbxError
from mbexplorer.core.formatting import plural
from mbexplorer.core.inference import Classifier
from mbexplorer.core.jobs import Job, Progress
from mbexplorer.core.model import LoadedModel
from mbexplorer.core.onnx_write import save_model
from mbexplorer.core.outputs import check_output
from mbexplorer.core.quantize import METHODS
from mbexplorer.core.whatif import BASELINE, SETTINGS, Setting, trial_job, whatif_job, worst_layer

from .job_status import JobStatus
from .tasks import Tasks
from .workers import JobHandle

LANE = "quantization-whatif"
TOPK_LANE = "quantization-whatif-topk"  # its own lane: choosing another image must not cancel a re-quantization
TOP = 5
BETTER, WORSE, BEST = QColor("#15803d"), QColor("#b91c1c"), QColor("#dcfce7")
SUMMARY_COLUMNS = ("", "output SQNR", "top-1 agree", "top-5 agree", "worst layer")
SUMMARY_TIPS = ("SQNR of the output scores against the float model's",
                "Share of the images whose top-1 class is the float model's",
                "Share of the images whose float top-1 class is in the top 5",
                "SQNR of the worst Conv/Gemm layer (its name in the cell's tip)")
TRY_COLUMNS = ("setting", "output dB", "Δ dB", "top-1", "top-5", "worst layer")
TRY_TIPS = ("", "Output SQNR against the float model", "Output SQNR less the baseline row's",
            "Top-1 agreement with the float model", "Top-5 agreement (the float top-1 in the top 5)",
            "The Conv/Gemm layer with the lowest SQNR, and that SQNR (the full name in the cell's tip)")


@dataclass(frozen=True)
class Choice:
    """What the what-if quantizes with."""
    per_channel: bool = False
    method: str = "minmax"
    cle: bool = False
    keep: tuple[str, ...] = ()  # nodes of the float model kept in float

    def describe(self) -> str:
        parts = ["per-channel" if self.per_channel else "per-tensor", self.method] + ["CLE"] * self.cle
        if self.keep:
            parts.append(f"{plural(len(self.keep), 'layer')} in float")
        return " · ".join(parts)


@dataclass
class Outcome:
    """A what-if's result: its quantized model and its comparison with the float model it was made from."""
    choice: Choice
    model: LoadedModel
    comparison: dict  # Comparison.to_dict() against the float model it was quantized from
    output: dict  # sqnr_db, top1_agreement, top5_agreement against the comparison's float model, as the baseline's
    images: int  # compared on
    calibration: int  # calibrated on
    worst: tuple[str, str, float] | None  # whatif.worst_layer of the what-if
    baseline_worst: tuple[str, str, float] | None  # and of the comparison it started from


def roundtrip_job(float_model: LoadedModel, choice: Choice, calibration: Sequence, images: Sequence,
                  baseline: dict) -> Job:
    """Quantize ``float_model`` as ``choice`` says, calibrated on ``calibration``, and compare on ``images``: one
    of ``whatif_job``'s trials, so the figures are those of its row for the same setting."""
    setting = Setting(choice.describe(), per_channel=choice.per_channel, method=choice.method, cle=choice.cle)
    t = yield from trial_job(float_model, setting, calibration, images, choice.keep)
    sqnr, top1, top5 = t.output
    output = {"sqnr_db": sqnr, "top1_agreement": top1, "top5_agreement": top5}
    return Outcome(choice, t.quantized, t.comparison, output, t.images, len(calibration),
                   worst_layer(t.base, t.comparison), worst_layer(float_model, baseline))


def topk_job(models: list[tuple[LoadedModel, Classifier | None]], image) -> Job:
    """Each model's top-5 for ``image`` with its own preprocessing; returns [(classifier, prediction)]. A model
    without a classifier yet gets one here (an onnxruntime session: off the UI thread)."""
    out = []
    for k, (model, clf) in enumerate(models):
        yield Progress(k / len(models), f"classifying {Path(image).name} with {model.name}")
        clf = clf or Classifier(model)
        prediction = clf.classify(image, k=TOP)
        prediction.tensor = None  # not shown; a large input need not stay in memory
        out.append((clf, prediction))
    return out


def layer_of(float_model: LoadedModel, tensor: str, node: str) -> str:
    """The node to keep in float for a compared tensor: the Conv/Gemm/MatMul behind it (through its activation,
    as ``worst_layer`` finds it for one tensor), else ``node``, the tensor's producer (an Add, a pool)."""
    found = worst_layer(float_model, {"tensors": [{"name": tensor, "sqnr_db": 0.0}]})
    return found[1] if found else node


def _db(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return "exact" if v == math.inf else f"{v:.2f}"


def _db_unit(v) -> str:
    text = _db(v)
    return text if text in ("-", "exact") else f"{text} dB"


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def _delta(a, b, scale: float = 1.0, unit: str = "") -> tuple[str, QColor | None]:
    """b - a as text and the colour saying better (higher) or worse; no colour when equal or not comparable."""
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return "-", None
    d = (b - a) * scale
    return f"{d:+.2f}{unit}", None if abs(d) < 5e-3 else BETTER if d > 0 else WORSE


def _item(text: str, tip: str = "", color: QColor | None = None, right: bool = True) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    if tip:
        item.setToolTip(tip)
    if color is not None:
        item.setForeground(QBrush(color))
    if right:
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    return item


def _table(columns: Sequence[str], rows: int = 0) -> QTableWidget:
    t = QTableWidget(rows, len(columns))
    t.setHorizontalHeaderLabels(list(columns))
    t.setEditTriggers(QAbstractItemView.NoEditTriggers)
    t.verticalHeader().setVisible(False)
    t.verticalHeader().setDefaultSectionSize(t.fontMetrics().height() + 6)
    t.setWordWrap(False)
    t.setSelectionBehavior(QAbstractItemView.SelectRows)
    t.setSelectionMode(QAbstractItemView.SingleSelection)
    return t


def _fit_height(t: QTableWidget) -> None:
    """As tall as its rows: the pane scrolls as a whole rather than each small table on its own."""
    h = t.horizontalHeader().sizeHint().height() + t.verticalHeader().defaultSectionSize() * t.rowCount()
    t.setFixedHeight(h + 2 * t.frameWidth() + 2)


class WhatIfPanel(QWidget):
    errorRaised = Signal(str, str)  # title, message
    statusMessage = Signal(str, int)
    outcomeChanged = Signal(object)  # the what-if's comparison (Comparison.to_dict()) to chart, or None
    resultShown = Signal()  # a what-if result is on screen
    triesShown = Signal()  # the "Try each change" table is filled
    topkShown = Signal()  # the top-5 columns show the chosen image

    def __init__(self, tasks: Tasks | None = None, parent=None):
        super().__init__(parent)
        self.tasks = tasks if tasks is not None else Tasks(self)
        self.float_model: LoadedModel | None = None  # the comparison's float side: what is quantized again
        self.quant_model: LoadedModel | None = None  # its quantized side: the baseline
        self.images: list = []  # the comparison's: calibrated and compared on
        self.baseline: dict | None = None  # the comparison's Comparison.to_dict()
        self.outcome: Outcome | None = None
        self.tries: dict | None = None  # whatif_job's result
        self.keep_tensors: dict[str, str] = {}  # node kept in float -> the tensor row it was picked from
        self._keep_model = None  # the float model the kept nodes belong to
        self._classifiers: list[tuple[LoadedModel, Classifier]] = []  # built by top-k jobs, kept for the next
        self._build()
        self._update_controls()

    # ui ------------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        self.job_status = JobStatus()
        self.job_status.follow(self.tasks, LANE)
        self.job_status.cancelRequested.connect(self.cancel)
        lay.addWidget(self.job_status)
        split = QSplitter(Qt.Horizontal)
        split.setChildrenCollapsible(False)
        split.addWidget(self._build_controls())
        self.views = QTabWidget()
        self.views.setDocumentMode(True)
        self.views.addTab(self._build_result(), "Result")
        self.views.addTab(self._build_tries(), "Each change")
        split.addWidget(self.views)
        split.setStretchFactor(1, 1)
        split.setSizes([190, 600])
        lay.addWidget(split, 1)

    def _build_controls(self) -> QWidget:
        """The settings, the layers kept in float and the actions, in one column beside the results."""
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 4, 0)
        lay.setSpacing(4)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.weights = QComboBox()
        self.weights.addItem("per-tensor", False)
        self.weights.addItem("per-channel", True)
        self.weights.setToolTip("One scale per weight tensor, or one per output channel")
        self.method = QComboBox()
        for m in METHODS:
            self.method.addItem(m, m)
        self.method.setToolTip("How the activation ranges are chosen from the calibration images")
        self.cle = QCheckBox("Cross-layer equalization")
        self.cle.setToolTip("CLE before quantizing: a float rewrite that evens out the per-channel weight ranges "
                            "of consecutive convolutions (and absorbs biases), keeping the outputs")
        form.addRow("Weights:", self.weights)
        form.addRow("Calibration:", self.method)
        lay.addLayout(form)
        lay.addWidget(self.cle)
        lay.addWidget(QLabel("Keep in float:"))
        self.keep_list = QListWidget()
        self.keep_list.setSelectionMode(QAbstractItemView.ExtendedSelection)
        # a node's name ends with what tells it apart: elided on the left, never scrolled sideways
        self.keep_list.setTextElideMode(Qt.ElideLeft)
        self.keep_list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.keep_list.setResizeMode(QListView.Adjust)
        self.keep_list.setUniformItemSizes(True)
        self.keep_list.setToolTip("Layers left unquantized. Add them from the Tensors table: select rows, then "
                                  "Keep in float (or its context menu).")
        self.keep_list.setContextMenuPolicy(Qt.CustomContextMenu)
        self.keep_list.customContextMenuRequested.connect(self._keep_menu)
        self.keep_list.itemSelectionChanged.connect(self._update_controls)
        self.keep_list.setMinimumHeight(44)
        lay.addWidget(self.keep_list, 1)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        lay.addWidget(self.remove_button)
        self.apply_button = QPushButton("Re-quantize and compare")
        self.apply_button.setToolTip("Quantize the float model with these settings, calibrated on the comparison's "
                                     "images, and compare it on them")
        self.apply_button.clicked.connect(lambda: self.start())
        self.try_button = QPushButton("Try each change")
        self.try_button.setToolTip("Quantize once per change (per-channel, each calibration method, CLE, the "
                                   "worst layer in float) and measure which helps most")
        self.try_button.clicked.connect(lambda: self.try_each())
        self.save_button = QPushButton("Save model…")
        self.save_button.setToolTip("Save the what-if's quantized model as ONNX")
        self.save_button.clicked.connect(self.save_dialog)
        for b in (self.apply_button, self.try_button, self.save_button):
            lay.addWidget(b)
        box.setMinimumWidth(170)
        return box

    def _build_result(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 4, 0, 0)
        self.caption = QLabel()
        self.caption.setTextFormat(Qt.PlainText)
        self.caption.setWordWrap(True)
        self.caption.setStyleSheet("font-weight: bold;")
        lay.addWidget(self.caption)
        self.summary = _table(SUMMARY_COLUMNS, 3)
        for r, name in enumerate(("baseline", "what-if", "change")):
            self.summary.setItem(r, 0, _item(name, right=False))
        for c, tip in enumerate(SUMMARY_TIPS, 1):
            self.summary.horizontalHeaderItem(c).setToolTip(tip)
        self.summary.setSelectionMode(QAbstractItemView.NoSelection)
        self.summary.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.summary.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        _fit_height(self.summary)
        lay.addWidget(self.summary)
        pick = QHBoxLayout()
        pick.addWidget(QLabel("Top-5 of"))
        self.image = QComboBox()
        self.image.setToolTip("One of the compared images: its top-5 from each model, with that model's "
                              "preprocessing")
        self.image.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.image.currentIndexChanged.connect(lambda _: self.show_topk())
        pick.addWidget(self.image)
        pick.addStretch(1)
        lay.addLayout(pick)
        self.topk = _table(("float", "quantized", "what-if"), TOP)
        self.topk.setSelectionMode(QAbstractItemView.NoSelection)
        self.topk.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.topk.setTextElideMode(Qt.ElideRight)
        _fit_height(self.topk)
        lay.addWidget(self.topk)
        lay.addStretch(1)
        return page

    def _build_tries(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 4, 0, 0)
        self.verdict = QLabel("Try each change to measure which helps most on this model.")
        self.verdict.setTextFormat(Qt.PlainText)
        self.verdict.setWordWrap(True)
        self.verdict.setStyleSheet("font-weight: bold;")
        lay.addWidget(self.verdict)
        self.tries_table = _table(TRY_COLUMNS)
        self.tries_table.setToolTip("Choose a row to put its setting in the controls")
        self.tries_table.setTextElideMode(Qt.ElideMiddle)  # the worst layer: its SQNR and its name's end
        header = self.tries_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(len(TRY_COLUMNS) - 1, QHeaderView.Stretch)  # the rest, elided on the left
        for c, tip in enumerate(TRY_TIPS):
            if tip:
                self.tries_table.horizontalHeaderItem(c).setToolTip(tip)
        self.tries_table.itemSelectionChanged.connect(self._on_try_row)
        lay.addWidget(self.tries_table, 1)
        return page

    # inputs --------------------------------------------------------------------------------------
    def set_baseline(self, float_model, quant_model, images: Sequence, result: dict | None) -> None:
        """The comparison the what-if starts from (None: none yet, while one runs); any what-if shown goes. The
        layers kept in float stay while the float model does (another comparison of it, on more images)."""
        self.tasks.retire(LANE)
        self.tasks.retire(TOPK_LANE)
        self.float_model, self.quant_model = float_model, quant_model
        self.images, self.baseline = list(images), result
        if float_model is not None and float_model is not self._keep_model:  # the kept nodes are another model's
            self.keep_tensors.clear()
            self._keep_model = float_model
            self._fill_keep()
        self._classifiers = [(m, c) for m, c in self._classifiers if m is float_model or m is quant_model]
        self.image.blockSignals(True)
        self.image.clear()
        for p in self.images:
            self.image.addItem(Path(p).name, str(p))
        self.image.blockSignals(False)
        self._show_outcome(None)
        self._show_tries(None)
        self._update_controls()

    def choice(self) -> Choice:
        return Choice(bool(self.weights.currentData()), self.method.currentData(), self.cle.isChecked(),
                      tuple(self.keep_tensors))

    def set_choice(self, choice: Choice) -> None:
        self.weights.setCurrentIndex(self.weights.findData(choice.per_channel))
        self.method.setCurrentIndex(self.method.findData(choice.method))
        self.cle.setChecked(choice.cle)
        self.keep_tensors = {n: self.keep_tensors.get(n, "") for n in choice.keep}
        self._fill_keep()

    def keep(self, rows: Sequence[dict]) -> list[str]:
        """Keep in float the layer behind each compared tensor (rows of the comparison: name and node); returns
        the nodes added."""
        if self.float_model is None:
            return []
        added = []
        for row in rows:
            node = layer_of(self.float_model, row["name"], row["node"])
            if node not in self.keep_tensors:
                self.keep_tensors[node] = row["name"]
                added.append(node)
        self._fill_keep()
        if added:
            self.statusMessage.emit(f"Kept in float for the what-if: {', '.join(added)}", 5000)
        return added

    def remove_selected(self) -> None:
        for item in self.keep_list.selectedItems():
            self.keep_tensors.pop(item.data(Qt.UserRole), None)
        self._fill_keep()

    def _fill_keep(self) -> None:
        self.keep_list.clear()
        for node, tensor in self.keep_tensors.items():
            item = QListWidgetItem(node)
            item.setData(Qt.UserRole, node)
            item.setToolTip(f"{node}\n(picked from tensor {tensor})" if tensor and tensor != node else node)
            self.keep_list.addItem(item)
        self._update_controls()

    def clear(self) -> None:
        """Another model is open: nothing of the last one stays (the kept layers are its nodes)."""
        self.keep_tensors.clear()
        self._keep_model = None
        self._fill_keep()
        self.set_baseline(None, None, [], None)

    def _keep_menu(self, pos) -> None:
        menu = QMenu(self)
        menu.setAttribute(Qt.WA_DeleteOnClose)
        menu.addAction("Remove", self.remove_selected).setEnabled(bool(self.keep_list.selectedItems()))
        menu.addAction("Remove all", lambda: (self.keep_tensors.clear(), self._fill_keep())).setEnabled(
            bool(self.keep_tensors))
        menu.popup(self.keep_list.viewport().mapToGlobal(pos))

    # running -------------------------------------------------------------------------------------
    @property
    def job(self) -> JobHandle | None:
        return self.tasks.current(LANE)

    def _ready(self) -> bool:
        if self.float_model is None or not self.images:
            self.errorRaised.emit("Cannot run the what-if", "Run a comparison first: the what-if quantizes its "
                                  "float model again and compares on its images.")
            return False
        return True

    def start(self, choice: Choice | None = None, calibration: Sequence | None = None) -> JobHandle | None:
        """Re-quantize and compare as ``choice`` (default: the controls) says, calibrated on ``calibration``
        (default: the comparison's images; a script may give a larger set); None when there is no comparison."""
        if not self._ready():
            return None
        choice = choice or self.choice()
        fm, images, baseline = self.float_model, list(self.images), self.baseline
        calibration = list(calibration or images)
        job = JobHandle(lambda: roundtrip_job(fm, choice, calibration, images, baseline),
                        f"What-if: {choice.describe()}…")
        job.finished.connect(lambda o, j=job: self.tasks.is_current(j) and self._on_outcome(o))
        self._connect_end(job)
        return self.tasks.start(LANE, job)

    def try_each(self) -> JobHandle | None:
        """whatif_job over whatif.SETTINGS (the kept layers in float in each) on the comparison's images."""
        if not self._ready():
            return None
        fm, images, keep = self.float_model, list(self.images), tuple(self.keep_tensors)
        job = JobHandle(lambda: whatif_job(fm, images, SETTINGS, images, exclude=keep),
                        f"Trying {len(SETTINGS)} settings…")
        job.finished.connect(lambda r, j=job: self.tasks.is_current(j) and self._show_tries(r, keep))
        self._connect_end(job)
        return self.tasks.start(LANE, job)

    def _connect_end(self, job: JobHandle) -> None:
        job.failed.connect(lambda msg, j=job: self.tasks.is_current(j) and self.errorRaised.emit(
            "What-if failed", msg))
        job.ended.connect(self._update_controls)

    def cancel(self) -> None:
        if self.tasks.cancel(LANE):
            self.job_status.cancelling()

    # showing -------------------------------------------------------------------------------------
    def _update_controls(self) -> None:
        ready = self.float_model is not None and bool(self.images)
        for b in (self.apply_button, self.try_button):
            b.setEnabled(ready)
        self.save_button.setEnabled(self.outcome is not None)
        self.remove_button.setEnabled(bool(self.keep_list.selectedItems()))
        if self.outcome is not None:
            o = self.outcome
            caption = (f"What-if: {o.choice.describe()}  ·  calibrated on {plural(o.calibration, 'image')}, "
                       f"compared on {o.images}")
        elif not ready:
            caption = "Run a comparison first: the what-if quantizes its float model again, on its images."
        else:
            caption = (f"Choose the settings, then Re-quantize and compare: {self.float_model.name} is quantized by "
                       f"onnxruntime, calibrated on the comparison's {plural(len(self.images), 'image')}, and "
                       f"compared on them beside the baseline, {self.quant_model.name}.")
        self.caption.setText(caption)
        self.summary.item(0, 0).setToolTip(self.quant_model.name if self.quant_model else "")

    def _on_outcome(self, outcome: Outcome) -> None:
        self._show_outcome(outcome)
        self.statusMessage.emit(f"What-if ({outcome.choice.describe()}): output SQNR "
                                f"{_db(outcome.output['sqnr_db'])} dB", 5000)
        self.resultShown.emit()
        self.show_topk()

    def _show_outcome(self, outcome: Outcome | None) -> None:
        self.outcome = outcome
        for c in range(1, len(SUMMARY_COLUMNS)):
            for r in range(3):
                self.summary.setItem(r, c, _item(""))
        if outcome is None:
            self.tasks.retire(TOPK_LANE)
            self.topk.clearContents()
        else:
            base, new = self.baseline["output"], outcome.output
            for c, key in enumerate(("sqnr_db", "top1_agreement", "top5_agreement"), 1):
                pct = key != "sqnr_db"
                text, color = _delta(base[key], new[key], 100.0 if pct else 1.0, " pts" if pct else " dB")
                fmt = _pct if pct else _db_unit
                self.summary.setItem(0, c, _item(fmt(base[key])))
                self.summary.setItem(1, c, _item(fmt(new[key])))
                self.summary.setItem(2, c, _item(text, color=color))
            bw, ww = outcome.baseline_worst, outcome.worst  # (tensor, node, SQNR): the node named in the tip
            self.summary.setItem(0, 4, _item(_db_unit(bw and bw[2]), bw[1] if bw else ""))
            self.summary.setItem(1, 4, _item(_db_unit(ww and ww[2]), ww[1] if ww else ""))
            text, color = _delta(bw and bw[2], ww and ww[2], unit=" dB")
            self.summary.setItem(2, 4, _item(text, color=color))
        self._update_controls()
        self.outcomeChanged.emit(outcome.comparison if outcome else None)

    def show_topk(self) -> JobHandle | None:
        """The chosen image's top-5 from the float, the quantized and the what-if model, off the UI thread."""
        image = self.image.currentData()
        if self.outcome is None or image is None:
            return None
        models = [self.float_model, self.quant_model, self.outcome.model]
        known = [next((c for m, c in self._classifiers if m is model), None) for model in models]
        job = JobHandle(lambda: topk_job(list(zip(models, known)), image), f"Top-5 of {Path(image).name}…")
        job.finished.connect(lambda r, j=job: self.tasks.is_current(j) and self._fill_topk(models, r))
        job.failed.connect(lambda msg, j=job: self.tasks.is_current(j) and self._topk_failed(msg))
        return self.tasks.start(TOPK_LANE, job)

    def _fill_topk(self, models: list, results: list) -> None:
        self._classifiers = [(m, c) for m, c in self._classifiers if not any(m is x for x in models)]
        self._classifiers += [(m, clf) for m, (clf, _) in zip(models, results)]
        reference = results[0][1].topk[0].index  # the float model's top-1: where the others agree with it
        for c, ((_, prediction), model) in enumerate(zip(results, models)):
            self.topk.horizontalHeaderItem(c).setToolTip(model.name)
            for r in range(TOP):
                t = prediction.topk[r] if r < len(prediction.topk) else None
                if t is None:
                    self.topk.setItem(r, c, _item("", right=False))
                    continue
                item = _item(f"{t.score:.3f}  {t.label}", f"{t.label}\noutput index {t.index}\nscore {t.score:.5f}",
                             BETTER if t.index == reference else None, right=False)
                if r == 0:
                    f = QFont(self.topk.font())
                    f.setBold(True)
                    item.setFont(f)
                self.topk.setItem(r, c, item)
        self.topkShown.emit()

    def _topk_failed(self, message: str) -> None:
        self.topk.clearContents()
        self.topk.setItem(0, 0, _item(message, message, WORSE, right=False))

    def _show_tries(self, result: dict | None, kept: Sequence[str] = ()) -> None:
        self.tries = result
        t = self.tries_table
        t.blockSignals(True)
        t.clearSelection()
        rows = result["settings"] if result else []
        t.setRowCount(len(rows))
        base = next((r for r in rows if r["label"] == BASELINE.label), None)
        gain = result and result["best_gain_db"]  # whatif_job's verdict: the best change and what it gained
        helped = gain is not None and gain > 0
        # highlighted: the row with the highest output SQNR, the best change when it beat the baseline
        best = result["best"] if helped else base and base["label"]
        for r, row in enumerate(rows):
            change, color = _delta(base["output_sqnr_db"], row["output_sqnr_db"]) if base and row is not base \
                else ("", None)
            values = [_item(row["label"], right=False), _item(_db(row["output_sqnr_db"])),
                      _item(change, color=color), _item(_pct(row["top1"])), _item(_pct(row["top5"])),
                      _item(f"{_db_unit(row['worst_sqnr_db'])}  {row['worst_node'] or ''}", row["worst_node"] or "",
                            right=False)]
            for c, item in enumerate(values):
                if row["label"] == best:
                    item.setBackground(QBrush(BEST))
                    f = QFont(t.font())
                    f.setBold(True)
                    item.setFont(f)
                t.setItem(r, c, item)
        t.blockSignals(False)
        note = f", {plural(len(kept), 'layer')} kept in float in every row" if kept else ""
        if result is None:
            self.verdict.setText("Try each change to measure which helps most on this model.")
        elif helped:
            self.verdict.setText(f"Helps most here: {result['best']} ({gain:+.2f} dB output SQNR over "
                                 f"{BASELINE.label}{note})")
        else:
            self.verdict.setText(f"No change beat the baseline ({BASELINE.label}{note}).")
        if result is not None:
            self.views.setCurrentIndex(1)
            self.triesShown.emit()

    def _on_try_row(self) -> None:
        items = self.tries_table.selectedItems()
        if not items or self.tries is None:
            return
        row = self.tries["settings"][items[0].row()]
        keep = tuple(dict.fromkeys([*self.keep_tensors, *row["excluded"]]))
        self.set_choice(Choice(row["per_channel"], row["method"], row["cle"], keep))

    # saving --------------------------------------------------------------------------------------
    def save_dialog(self) -> None:
        if self.outcome is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save the what-if model", f"{self.outcome.model.name}.onnx",
                                              "ONNX models (*.onnx)")
        if path:
            self.save(path if Path(path).suffix else f"{path}.onnx")

    def save(self, path) -> bool:
        """Write the what-if model as ONNX, whole or not at all; never over a model the comparison uses. False
        when it could not be written (said)."""
        if self.outcome is None:
            return False
        sources = [m.source_path for m in (self.float_model, self.quant_model) if m is not None and m.source_path]
        try:
            check_output(path, inputs=sources, force=True, suffixes=(".onnx",), what="the what-if model",
                         input_name="a model of the comparison")
            save_model(self.outcome.model.model, path)
        except MbxError as exc:
            self.errorRaised.emit("Cannot save", str(exc))
            return False
        except OSError as exc:
            self.errorRaised.emit("Cannot save", f"Cannot write {path}: {exc.strerror or exc}")
            return False
        self.statusMessage.emit(f"Wrote {path}", 5000)
        return True

