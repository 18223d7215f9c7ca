"""The main window: menus, the graph / tables split, the status bar, and the life of a loading job.

The window owns the task registry (``tasks.Tasks``) its panels run their jobs through, and runs its own
loading jobs in the "model" lane: opening something while a job runs there cancels that job; a job that is
no longer current may still report, and is ignored. A job that fails leaves the model on screen as it was,
so a bad file never costs the user what they were looking at.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTabWidget,
)

from mbexplorer.core.analysis import build_job, open_job
from mbexplorer.core.conventions import CONVENTIONS
from mbexplorer.core.dropping import route_drop
from mbexplorer.core.errors import InputShapeError
from mbexplorer.core.formats import IMAGE_FILTER, MODEL_FILTER
from mbexplorer.core.formatting import plural, si, size_bytes, thousands
from mbexplorer.core.state import State

from .builder_dialog import BuilderDialog
from .classify_panel import ClassifyPanel
from .devices_panel import DevicesPanel
from .graph_panel import GraphPanel
from .inspector import InspectorPanel
from .job_status import JobStatus
from .layer_table import LayerTablePanel
from .model_info import ModelInfoPanel
from .quantization_panel import QuantizationPanel
from .recent import RecentFiles, settings
from .tasks import Tasks
from .workers import JobHandle

APP_TITLE = "mbexplorer"
LANE = "model"  # the window's loading jobs in the task registry
_SHAPE_HINT = re.compile(r"input '(?P<name>[^']+)'.*?--input-shape \S+?=(?P<example>[0-9,]+)", re.S)


class MainWindow(QMainWindow):
    model_shown = Signal()  # the analysis is on screen: graph, table and info populated
    load_failed = Signal(str)  # a load or build failed (message); the previous model is still shown
    job_cancelled = Signal()

    def __init__(self, interactive: bool = True, parent=None):
        super().__init__(parent)
        # interactive=False (screenshots, benchmarks): never prompt, and leave saved geometry alone.
        self.interactive = interactive
        self.source = None  # {"path": ..., "input_shapes": ...} or {"build": {...}} of what is shown
        self.last_error: QMessageBox | None = None
        self.shape_dialog: QInputDialog | None = None
        self.builder_dialog: BuilderDialog | None = None
        self.recent = RecentFiles()
        self.tasks = Tasks(self)  # every job of this window and its panels
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self._build_central()
        self._build_menus()
        self._build_status()
        if interactive:
            self._restore_state()

    # ui ------------------------------------------------------------------------------------------
    def _build_central(self) -> None:
        # What is shown (model, convention, overlay) lives in the state; the panels observe it and set it.
        self.state = State()
        self.graph_panel = GraphPanel(self.state)
        self.graph = self.graph_panel.view
        self.layers = LayerTablePanel(self.state)
        self.info = ModelInfoPanel(self.state)
        self.classify = ClassifyPanel(tasks=self.tasks, state=self.state)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.layers, "Layers")
        self.tabs.addTab(self.info, "Model")
        self.tabs.addTab(self.classify, "Classify")
        # the Classify tab's images are one of its image sources
        self.quantization = QuantizationPanel(tasks=self.tasks, state=self.state, classify_images=lambda: [
            e.path for e in self.classify.entries if not e.error])
        self.tabs.addTab(self.quantization, "Quantization")
        self.devices = DevicesPanel(tasks=self.tasks, state=self.state)  # profiling on device plugins
        self.tabs.addTab(self.devices, "Devices")
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(self.graph_panel)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([500, 940])  # the graph column needs ~490 px at zoom 1
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)

        self.graph.blockSelected.connect(lambda i: self.layers.select_block(i))
        self.graph.nodeSelected.connect(lambda n: self.layers.select_nodes([n]))
        self.layers.nodeSelected.connect(lambda n: self.graph.select_node(n, center=True))
        # the node inspector: a dock on the right (View ▸ Inspector), following clicks in the graph and the table
        self.inspector = InspectorPanel(self.state)
        self.inspector_dock = QDockWidget("Inspector", self)
        self.inspector_dock.setObjectName("inspector")
        self.inspector_dock.setWidget(self.inspector)
        self.addDockWidget(Qt.RightDockWidgetArea, self.inspector_dock)
        self.inspector_dock.hide()
        self.graph.nodeSelected.connect(self.inspector.show_node)
        self.layers.nodeSelected.connect(self.inspector.show_node)
        self.inspector.nodeChosen.connect(lambda n: (self.graph.reveal_node(n), self.layers.select_nodes([n])))
        self.state.on("analysis", self._on_analysis)
        self.state.on("convention", lambda _c: self._update_summary())
        self.state.on("overlay", self._on_overlay)
        self.state.on("overlays", lambda _names: self._fill_overlay_menu())
        self.classify.errorRaised.connect(lambda title, message: self.show_error(message, title))
        self.classify.statusMessage.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        self.quantization.nodeSelected.connect(lambda n: self.graph.select_node(n, center=True))
        self.quantization.errorRaised.connect(lambda title, message: self.show_error(message, title))
        self.quantization.statusMessage.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        self.devices.errorRaised.connect(lambda title, message: self.show_error(message, title))
        self.devices.statusMessage.connect(lambda text, ms: self.statusBar().showMessage(text, ms))

    def tab(self, name: str):
        """A tab's panel by its --tab name: layers, model, classify, quantization, devices."""
        return {"layers": self.layers, "model": self.info, "classify": self.classify,
                "quantization": self.quantization, "devices": self.devices}[name]

    def _build_menus(self) -> None:
        mb = self.menuBar()
        file = mb.addMenu("&File")
        self.act_open = self._action(file, "&Open model…", self.open_dialog, QKeySequence.Open)
        self.recent_menu = file.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        self.act_builder = self._action(file, "&New from builder…", self.builder_dialog_open, QKeySequence.New)
        self._action(file, "Open &images…", self.open_images_dialog, "Ctrl+I")
        file.addSeparator()
        self.act_export = self._action(file, "&Export layers CSV…", lambda: self.layers.export_csv_dialog(False),
                                       "Ctrl+E")
        self.act_export.setEnabled(False)
        file.addSeparator()
        self._action(file, "&Quit", self.close, QKeySequence.Quit)

        view = mb.addMenu("&View")
        self._action(view, "Zoom &in", self.graph.zoom_in, QKeySequence.ZoomIn)
        self._action(view, "Zoom &out", self.graph.zoom_out, QKeySequence.ZoomOut)
        self._action(view, "&Fit", self.graph.fit, "Ctrl+0")
        self._action(view, "&Collapse all blocks", self.graph_panel.collapse_all)
        view.addSeparator()
        # Quantize/Dequantize ops: folded away by default, in the graph and the table alike (the state's setting)
        self.act_qdq = self._action(view, "Show &Q/DQ ops", lambda: setattr(self.state, "show_qdq",
                                                                             self.act_qdq.isChecked()))
        self.act_qdq.setCheckable(True)
        self.state.on("show_qdq", self.act_qdq.setChecked)
        self.act_inspector = self.inspector_dock.toggleViewAction()
        self.act_inspector.setText("&Inspector (find node)")
        self.act_inspector.setShortcut(QKeySequence("Ctrl+Shift+I"))
        view.addAction(self.act_inspector)
        self.overlay_menu = view.addMenu("&Overlay (colour by)")
        self.overlay_group = QActionGroup(self)
        self.overlay_actions: dict[str, QAction] = {}
        self._fill_overlay_menu()

        model = mb.addMenu("&Model")
        self.act_shape = self._action(model, "Set &input shape…", self.ask_input_shape_again)
        self.act_shape.setEnabled(False)

        help_ = mb.addMenu("&Help")
        self._action(help_, "&About mbexplorer", self.show_about)

    def _action(self, menu, text, slot, shortcut=None) -> QAction:
        a = menu.addAction(text)
        a.triggered.connect(lambda _=False: slot())
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        return a

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.job_status = JobStatus()
        self.job_status.follow(self.tasks, LANE)
        self.job_status.cancelRequested.connect(self.cancel_job)
        self.summary_label = QLabel()
        self.summary_label.setTextFormat(Qt.PlainText)
        self.summary_label.setStyleSheet("color: #374151; padding: 0 6px;")
        sb.addPermanentWidget(self.job_status)
        sb.addPermanentWidget(self.classify.job_status)
        sb.addPermanentWidget(self.summary_label)
        sb.showMessage("Open a model (Ctrl+O), drop one on the window, or build one (Ctrl+N).")

    # opening -------------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        start = str(Path(self.source["path"]).parent) if self.source and self.source.get("path") else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open model", start, MODEL_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path, input_shapes: dict | None = None) -> JobHandle:
        path = Path(path)
        return self.start_job(lambda: open_job(path, input_shapes), f"Opening {path.name}…",
                              {"path": str(path), "input_shapes": input_shapes})

    def build_model(self, **kwargs) -> JobHandle:
        label = f"Building {kwargs.get('family', 'model')} ×{kwargs.get('width', 1.0):g}…"
        return self.start_job(lambda: build_job(**kwargs), label, {"build": dict(kwargs)})

    def builder_dialog_open(self) -> BuilderDialog:
        dlg = BuilderDialog(self, self.source.get("build") if self.source and self.source.get("build") else None)
        dlg.accepted.connect(lambda: self.build_model(**dlg.values()))
        dlg.setWindowModality(Qt.WindowModal)
        dlg.open()
        self.builder_dialog = dlg
        return dlg

    @property
    def job(self) -> JobHandle | None:
        """The running loading job, if any."""
        return self.tasks.current(LANE)

    def start_job(self, factory, label: str, context: dict) -> JobHandle:
        """Run a job that returns an Analysis; it replaces the current one (which is cancelled)."""
        job = JobHandle(factory, label)
        job.context = context
        job.finished.connect(lambda result, j=job: self._on_finished(j, result))
        job.failed.connect(lambda msg, j=job: self._on_failed(j, msg))
        job.cancelled.connect(lambda j=job: self._on_cancelled(j))
        self.classify.set_model_pending(True)  # its images wait for the model rather than run twice
        self.statusBar().clearMessage()
        return self.tasks.start(LANE, job)  # the status bar follows the lane: label, progress, end

    def cancel_job(self) -> None:
        if self.tasks.cancel(LANE):
            self.job_status.cancelling()

    def _on_finished(self, job: JobHandle, analysis) -> None:
        if self.tasks.is_current(job):
            self.show_analysis(analysis, job.context)

    def _on_failed(self, job: JobHandle, message: str) -> None:
        if not self.tasks.is_current(job):
            return
        self.classify.set_model_pending(False)
        if isinstance(job.exception, InputShapeError) and self.interactive and job.context.get("path"):
            self.ask_input_shape(job.context["path"], message, job.context.get("input_shapes"))
            return
        box = self.show_error(message)
        details = job.details()  # the job's log, and the traceback of an internal error (for a bug report)
        if details:
            box.setDetailedText(details)
        self.load_failed.emit(message)

    def _on_cancelled(self, job: JobHandle) -> None:
        if not self.tasks.is_current(job):
            return
        self.classify.set_model_pending(False)
        self.statusBar().showMessage("Cancelled." + (" The previous model is still open." if self.analysis else ""),
                                     8000)
        self.job_cancelled.emit()

    # showing -------------------------------------------------------------------------------------
    @property
    def analysis(self):
        """The analysis on screen (the state holds it)."""
        return self.state.analysis

    def show_analysis(self, analysis, context: dict | None = None) -> None:
        self.source = context or {}
        self.state.set_analysis(analysis)  # every panel, the summary and the overlay menu follow its event
        m = analysis.model
        self.setWindowTitle(f"{m.name} — {APP_TITLE}")
        self.act_export.setEnabled(True)
        self.act_shape.setEnabled(bool(self.source.get("path")))
        if self.source.get("path"):
            self.recent.add(self.source["path"])
        where = (f" from {self.source['path']}" if self.source.get("path")
                 else " from the builder" if self.source.get("build") else "")
        self.statusBar().showMessage(f"Opened {m.name}{where}: {plural(len(analysis.blocks.blocks), 'block')}, "
                                     f"{plural(len(analysis.costs.nodes), 'op', spec=',')}.", 10000)
        self.model_shown.emit()

    def _update_summary(self) -> None:
        t, conv = self.state.totals, self.state.convention
        if t is None:
            self.summary_label.setText("")
            return
        self.summary_label.setText(f"params {thousands(t['params'])}  ·  MACs {si(t['macs'])}  ·  "
                                   f"FLOPs {si(t['flops'])}  ·  peak activations "
                                   f"{size_bytes(t['peak_activation_bytes'])}  ({conv})")
        self.summary_label.setToolTip(CONVENTIONS[conv].flops_label)

    def _fill_overlay_menu(self) -> None:
        """View ▸ Overlay lists what the state offers for the open model (a comparison adds to it)."""
        for a in self.overlay_actions.values():
            self.overlay_group.removeAction(a)
        self.overlay_menu.clear()
        self.overlay_actions = {}
        for name in self.state.available_overlays():
            a = self.overlay_menu.addAction(name)
            a.setCheckable(True)
            a.setChecked(name == self.state.overlay_name)
            a.triggered.connect(lambda _=False, n=name: self.graph_panel.set_overlay_name(n))
            self.overlay_group.addAction(a)
            self.overlay_actions[name] = a

    def _on_analysis(self, _analysis) -> None:
        self._fill_overlay_menu()  # the new model may offer other overlays
        self._update_summary()

    def _on_overlay(self, _overlay) -> None:
        a = self.overlay_actions.get(self.state.overlay_name)
        if a is not None:
            a.setChecked(True)

    # messages ------------------------------------------------------------------------------------
    def show_error(self, message: str, title: str = "Cannot open model") -> QMessageBox:
        """Non-blocking: the box is window-modal and opened with open(), so the event loop keeps running."""
        if self.last_error is not None:
            self.last_error.close()
        box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, self)
        box.setTextFormat(Qt.PlainText)  # the message quotes file and input names
        if self.analysis is not None:
            box.setInformativeText(f"{self.analysis.model.name} is still open.")
        box.setWindowModality(Qt.WindowModal)
        box.open()
        self.last_error = box
        self.statusBar().showMessage(message, 15000)
        return box

    def show_about(self) -> QMessageBox:
        box = QMessageBox(QMessageBox.Information, "About mbexplorer",
                          "<b>mbexplorer</b><br>Look inside MobileNet image classifiers: blocks, parameters, "
                          "MACs and memory, layer by layer, under the counting conventions papers and tools use.",
                          QMessageBox.Ok, self)
        box.setWindowModality(Qt.WindowModal)
        box.open()
        self.about_box = box
        return box

    def ask_input_shape(self, path: str, message: str, given: dict | None = None) -> QInputDialog:
        """The file has an input without a fixed size: ask for one (non-blocking) and open it again."""
        m = _SHAPE_HINT.search(message)
        name = m.group("name") if m else None
        example = m.group("example") if m else "1,3,224,224"
        dlg = QInputDialog(self)
        dlg.setWindowTitle("Input size needed")
        dlg.setInputMode(QInputDialog.TextInput)
        first = message.split(" Give one:")[0]
        if name:
            dlg.setLabelText(f"{first}\n\nShape of input '{name}' (comma-separated, batch first):")
            dlg.setTextValue(example)
        else:
            dlg.setLabelText(f"{first}\n\nInput shape as NAME=D0,D1,… (batch first):")
            dlg.setTextValue(f"input={example}")
        dlg.setWindowModality(Qt.WindowModal)

        def retry(text: str) -> None:
            # "1,3,224,224" for the named input, or "NAME=1,3,224,224" when the name is not known
            key, _, dims_text = text.rpartition("=")
            key = key.strip() or name
            try:
                dims = [int(d) for d in re.split(r"[,x× ]+", dims_text.strip()) if d]
                if not dims or min(dims) <= 0 or not key:
                    raise ValueError
            except ValueError:
                hint = example if name else f"input={example}"
                self.show_error(f"'{text}' is not a shape; write positive sizes like {hint}.", "Input size")
                return
            shapes = dict(given or {})
            shapes[key] = dims
            self.open_path(path, shapes)

        dlg.textValueSelected.connect(retry)
        dlg.rejected.connect(lambda: self.statusBar().showMessage("Not opened: no input size given.", 8000))
        dlg.open()
        self.shape_dialog = dlg
        return dlg

    def ask_input_shape_again(self) -> None:
        if self.analysis is None or not self.source or not self.source.get("path"):
            return
        spec = self.analysis.model.inputs[0]
        example = ",".join(str(d) if isinstance(d, int) else "1" for d in spec.shape)
        self.ask_input_shape(self.source["path"], f"Open with input '{spec.name}' set to a size. "
                             f"Give one: --input-shape {spec.name}={example}", None)

    # recent files --------------------------------------------------------------------------------
    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        paths = self.recent.paths()
        for i, p in enumerate(paths):
            label = f"&{i + 1 if i < 9 else 0}  {Path(p).name}"
            a = self.recent_menu.addAction(label)
            a.setToolTip(p)
            a.setStatusTip(p)
            a.triggered.connect(lambda _=False, path=p: self.open_path(path))
        if not paths:
            a = self.recent_menu.addAction("No recent models")
            a.setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", lambda: (self.recent.clear(), self._fill_recent_menu()))

    # drag and drop -------------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        md = event.mimeData()
        if md.hasUrls() and any(u.isLocalFile() for u in md.urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        md = event.mimeData()
        paths = [Path(u.toLocalFile()) for u in md.urls() if u.isLocalFile()] if md.hasUrls() else []
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        plan = route_drop(paths)
        if plan.message:
            self.show_error(plan.message, "Nothing to open")
            return
        if plan.model is not None:
            self.open_path(plan.model)  # first: the images then wait for it (see start_job)
        if plan.images:
            self.classify_images(plan.images)
        if plan.skipped:
            self.statusBar().showMessage("Skipped (neither an image nor a model): "
                                         + ", ".join(p.name for p in plan.skipped[:5]), 10000)

    def classify_images(self, paths) -> None:
        self.tabs.setCurrentWidget(self.classify)
        self.classify.add_paths(paths)

    def open_images_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open images", "", IMAGE_FILTER)
        if paths:
            self.classify_images(paths)

    # window state --------------------------------------------------------------------------------
    def _restore_state(self) -> None:
        s = settings()
        geo = s.value("window/geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            self.restoreGeometry(geo)
        split = s.value("window/splitter")
        if isinstance(split, QByteArray) and not split.isEmpty():
            self.splitter.restoreState(split)

    def closeEvent(self, event) -> None:
        self.tasks.shutdown()  # every lane: cancel and wait, so no job reports to a closed window
        if self.interactive:
            s = settings()
            s.setValue("window/geometry", self.saveGeometry())
            s.setValue("window/splitter", self.splitter.saveState())
        super().closeEvent(event)
