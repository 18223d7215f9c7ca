"""The "Devices" tab: profile a model on the devices the plugins offer, and compare runs with each other and with
published figures.

Plugins are found and their devices listed when the tab is first shown (each plugin's listing is its own job, in
a lane of its own, so a slow plugin holds up no other); a plugin or device that cannot be used says why. Compile
and Profile run through ``devices.host`` in the "devices-run" lane: the plugin's call runs in a child process,
each measurement is stored as it arrives (``devices.store``) and streamed to the chart, and Cancel ends the
child. Past runs come from the store: tick them to show them (several: compare), delete them. Published
references (``devices.references``) are ticked the same way and drawn as "published", never as measured.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mbexplorer.core.errors import MbxError
from mbexplorer.core.jobs import Progress, nested
from mbexplorer.core.model import LoadedModel
from mbexplorer.core.outputs import write_atomically
from mbexplorer.core.overlays import Overlay
from mbexplorer.core.quantize import is_quantized
from mbexplorer.core.state import State
from mbexplorer.devices import host, node_timings
from mbexplorer.devices.api import Artifact, CompileRequest, Device, LogRequest, Measurement, ProfileRequest
from mbexplorer.devices.references import published
from mbexplorer.devices.store import Run, Store, data_home

from .devices_chart import (
    ChartSeries,
    DevicesChart,
    point_from_measurement,
    series_from_measurements,
    series_from_reference,
)
from .flow_layout import FlowLayout, tool_group
from .job_status import JobStatus
from .tasks import Tasks
from .topk_view import menu_button
from .workers import JobHandle

LANE = "devices-run"
LIST_LANE = "devices-list:"  # + the plugin's name: each plugin's listing runs on its own
LIST_TIMEOUT_S = 30.0  # a plugin whose devices() takes longer is listed as failing
BATCHES = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_BATCHES = (1, 2, 4, 8)
SHOWN_AT_START = 3  # the newest runs with measurements ticked when the tab opens
MAX_LOG_LINES = 5000
DEVICE_ROLE = Qt.UserRole
RUN_ROLE = Qt.UserRole + 1
_OPTION = re.compile(r"^([A-Za-z_][\w.-]*)=(.*)$")


@dataclass(frozen=True)
class _Compiled:
    """A compile step finished (an event of the run job): its artifact, for the model with this hash."""

    artifact: Artifact
    sha: str
    key: tuple


def _safe(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("_") or "model"


def _prepare_model(source) -> tuple[str, str, str]:
    """(ONNX path the plugin takes, the file the user opened, its sha256). ``source``: a Path chosen in the
    tab, or the open LoadedModel, whose ONNX is written under the data folder when the file is not ONNX (an
    imported TFLite, a built model)."""
    if isinstance(source, Path):
        if not source.is_file():
            raise MbxError(f"{source} does not exist or is not a file.")
        return str(source), str(source), host.model_sha256(source)
    m = source
    if m.source_format == "onnx" and m.source_path is not None and Path(m.source_path).is_file():
        return str(m.source_path), str(m.source_path), host.model_sha256(m.source_path)
    out = data_home() / "models" / f"{_safe(m.name)}-{m.sha256[:12]}.onnx"
    if not out.is_file():  # written once per model (named by its hash)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(out, m.model.SerializeToString())
    return str(out), str(m.source_path or ""), m.sha256


def _run_job(info: host.PluginInfo, device: Device, source, precision: str, batches: tuple[int, ...],
             iterations: int, warmup: int, options: tuple, do_compile: bool, do_profile: bool,
             artifact: tuple[str, Artifact] | None, store: Store | None):
    """Compile and/or profile. Yields progress, log lines, a _Compiled and each Measurement; returns the Run (or
    the Artifact when only compiling)."""
    yield Progress(0.0, "preparing the model")
    model_path, source_path, sha = _prepare_model(source)
    workdir = data_home() / "work" / _safe(f"{info.name}-{device.id}-{precision}-{sha[:12]}")
    workdir.mkdir(parents=True, exist_ok=True)
    art = artifact[1] if artifact is not None and artifact[0] == sha else None  # a compile of this very model
    split = 0.3 if do_compile and do_profile else 1.0
    if do_compile:
        req = CompileRequest(model_path, device.id, precision, batches, str(workdir), source_path, options)
        art = yield from nested(host.compile_job(info, req), 0.0, split)
        yield _Compiled(art, sha, (info.name, device.id, precision, batches))
        if not do_profile:
            return art
    req = ProfileRequest(model_path, device.id, precision, batches, iterations, warmup, str(workdir), source_path,
                         art, sha, options)
    return (yield from nested(host.profile_job(info, req, store, device.name), split if do_compile else 0.0, 1.0))


LATENCY_OVERLAY = "measured latency"


def _logs_job(info: host.PluginInfo, device: Device, source, paths: tuple[str, ...], batch: int | None,
              precision: str, store: Store | None):
    """Read logs the vendor tool wrote elsewhere into a stored run (of the chosen model, when there is one)."""
    model_path, sha = "", ""
    if source is not None:
        yield Progress(0.0, "preparing the model")
        model_path, _, sha = _prepare_model(source)
    req = LogRequest(paths, sha, batch, precision, device.id)
    return (yield from host.logs_job(info, req, store, model_path=model_path, device_name=device.name))


def parse_options(text: str) -> tuple[tuple[str, str], ...]:
    """``key=value`` pairs separated by spaces or commas (a plugin's own settings: soc_version, host, ...)."""
    out = []
    for part in (p for p in re.split(r"[\s,]+", text.strip()) if p):
        m = _OPTION.match(part)
        if m is None:
            raise MbxError(f"'{part}' is not an option: write key=value (several separated by spaces).")
        out.append((m.group(1), m.group(2)))
    return tuple(out)


def run_label(run: Run) -> str:
    status = "" if run.status == "done" else f" [{run.status}]"
    return f"#{run.id} {run.device_name or run.device} · {run.precision} · {run.plugin}{status}"


def run_tooltip(run: Run) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started))
    s = run.settings or {}
    lines = [run_label(run), f"device: {run.device_name or run.device}", f"model: {run.model_path}",
             f"sha256: {run.model_sha256[:16]}…" if run.model_sha256 else "", f"started {when}; {run.status}",
             f"batch sizes {s.get('batch_sizes', '?')}, {s.get('iterations', '?')} iterations, "
             f"{s.get('warmup', '?')} warm-up" if run.source == "measured" else f"from logs: {s.get('logs', '')}",
             f"{len(run.measurements)} measurements"]
    if run.error:
        lines.append("error: " + run.error.splitlines()[0])
    return "\n".join(line for line in lines if line)


class DevicesPanel(QWidget):
    errorRaised = Signal(str, str)  # title, message
    statusMessage = Signal(str, int)
    settled = Signal()  # every plugin's devices are listed (or failed to be)
    runFinished = Signal(object)  # a compile or profile ended: the Run, the Artifact, or None

    def __init__(self, parent=None, tasks: Tasks | None = None, state: State | None = None,
                 plugin_paths: list | None = None, store: Store | None = None):
        super().__init__(parent)
        self.tasks = tasks if tasks is not None else Tasks(self)
        self.state = state if state is not None else State()
        self.plugin_paths = plugin_paths  # None: host.plugin_paths() and entry points
        self._store = store
        self.plugins: list[host.PluginInfo] = []
        self.devices: dict[str, list[Device] | str] = {}  # plugin -> devices, or why they could not be listed
        self.runs: list[Run] = []
        self.references = {r.label: r for r in published()}
        self.artifact: tuple[tuple, str, Artifact] | None = None  # (plugin, device, precision, batches), sha, ...
        self.model_files: list[Path] = []
        self._listing: set[str] = set()
        self._listed_once = False
        self._live = ""  # the running job's series label
        self._picked: tuple[str, str] | None = None  # (plugin, device) the user chose
        self._build()
        for w in self.findChildren(QWidget):  # text fields and spin boxes take drops by default: a model or
            w.setAcceptDrops(False)            # images dropped anywhere on the tab go to the window
        self.state.on("analysis", lambda _a: (self._fill_models(), self._on_device_chosen()))
        self._fill_models()
        self._update_controls()

    # ui --------------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 4)
        lay.setSpacing(4)
        bar = FlowLayout(spacing=10)
        self.model_combo = QComboBox()
        self.model_combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.model_combo.setMaximumWidth(240)
        self.model_combo.setToolTip("What to profile: the open model (written as ONNX when it is not), or a file")
        self.model_combo.currentIndexChanged.connect(lambda _i: self._update_controls())
        choose = QPushButton("File…")
        choose.setToolTip("Profile an ONNX file instead of the open model")
        choose.clicked.connect(self.choose_model_dialog)
        self.precision = QComboBox()
        self._precision_picked = False  # the user chose one: it stays while devices offer it
        self.precision.activated.connect(lambda _i: setattr(self, "_precision_picked", True))
        self.batch_buttons: dict[int, QToolButton] = {}
        batch_box = QWidget()
        bl = QHBoxLayout(batch_box)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.setSpacing(1)
        for b in BATCHES:
            t = QToolButton()
            t.setText(str(b))
            t.setCheckable(True)
            t.setChecked(b in DEFAULT_BATCHES)
            t.setToolTip(f"Profile at batch size {b}")
            t.setMinimumSize(QSize(24, 22))
            t.toggled.connect(lambda _on: self._update_controls())
            bl.addWidget(t)
            self.batch_buttons[b] = t
        self.iterations = QSpinBox()
        self.iterations.setRange(1, 100_000)
        self.iterations.setValue(50)
        self.iterations.setToolTip("Timed iterations per batch size")
        self.warmup = QSpinBox()
        self.warmup.setRange(0, 10_000)
        self.warmup.setValue(5)
        self.warmup.setToolTip("Untimed iterations first, per batch size")
        self.options = QLineEdit()
        self.options.setPlaceholderText("plugin options: key=value …")
        self.options.setToolTip("The plugin's own settings, e.g. soc_version=Ascend310P3 host=192.168.1.10")
        self.options.setMinimumWidth(200)
        self.compile_first = QCheckBox("compile first")
        self.compile_first.setToolTip("Compile for the device, then profile the compiled model")
        self.compile_button = QPushButton("Compile")
        self.compile_button.clicked.connect(lambda: self.start(do_compile=True, do_profile=False))
        self.profile_button = QPushButton("Profile")
        self.profile_button.setDefault(True)
        self.profile_button.clicked.connect(lambda: self.start(do_compile=self.compile_first.isChecked()))
        self.logs_button = QPushButton("Import logs…")
        self.logs_button.setToolTip("Read logs the vendor tool wrote on another machine (a board, a server) into a "
                                    "stored run, charted like a measured one. The batch size: from the log, else "
                                    "the one batch size ticked here.")
        self.logs_button.clicked.connect(self.import_logs_dialog)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button = menu_button("Export", [("Chart as PNG…", lambda: self._save("png")),
                                                    ("Chart as SVG…", lambda: self._save("svg")),
                                                    ("Shown series as CSV…", lambda: self._save("csv"))])
        for group in ((QLabel("Model:"), self.model_combo, choose), (QLabel("Precision:"), self.precision),
                      (QLabel("Batch:"), batch_box), (QLabel("Iterations:"), self.iterations,
                                                      QLabel("Warm-up:"), self.warmup), (self.options,)):
            bar.addWidget(tool_group(*group))
        lay.addLayout(bar)
        # what runs where, beside the buttons that run it
        self.target = QLabel()
        self.target.setTextFormat(Qt.PlainText)
        self.target.setStyleSheet("font-weight: bold;")
        self.target.setMinimumWidth(80)
        self.target.setWordWrap(True)  # a hint after the target takes a second line, never hides the buttons
        row = QHBoxLayout()
        row.addWidget(self.target, 1)
        for w in (self.compile_first, self.compile_button, self.profile_button, self.logs_button,
                  self.cancel_button, self.export_button):
            row.addWidget(w)
        lay.addLayout(row)
        self.job_status = JobStatus()  # shown only while a job runs
        self.job_status.cancel_button.hide()  # the tab's own Cancel
        self.job_status.follow(self.tasks, LANE)
        lay.addWidget(self.job_status)
        self.error = QLabel()
        self.error.setTextFormat(Qt.PlainText)
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error.setStyleSheet("color: #991b1b; background: #fee2e2; padding: 3px 6px;")
        self.error.hide()
        lay.addWidget(self.error)

        left = QSplitter(Qt.Vertical)
        left.addWidget(self._build_devices())
        left.addWidget(self._build_runs())
        left.addWidget(self._build_references())
        left.setSizes([150, 190, 200])
        left.setChildrenCollapsible(False)
        self.chart = DevicesChart()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(MAX_LOG_LINES)
        self.log.setPlaceholderText("The plugin's log appears here while it runs.")
        self.log.setLineWrapMode(QPlainTextEdit.NoWrap)
        right = QSplitter(Qt.Vertical)
        right.addWidget(self.chart)
        right.addWidget(self.log)
        right.setSizes([480, 60])
        right.setStretchFactor(0, 1)
        right.setChildrenCollapsible(False)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([250, 530])
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        lay.addWidget(split, 1)

    def _titled(self, title: str, widget: QWidget, *extra: QWidget) -> QWidget:
        box = QWidget()
        v = QVBoxLayout(box)
        v.setContentsMargins(0, 2, 0, 0)
        v.setSpacing(2)
        head = QHBoxLayout()
        label = QLabel(title)
        label.setStyleSheet("font-weight: bold; color: #374151;")
        label.setWordWrap(True)  # never what sets the column's width
        head.addWidget(label, 1)
        for w in extra:
            head.addWidget(w)
        v.addLayout(head)
        v.addWidget(widget, 1)
        return box

    def _build_devices(self) -> QWidget:
        self.device_tree = QTreeWidget()
        self.device_tree.setHeaderLabels(["plugin / device", "status"])
        self.device_tree.setRootIsDecorated(True)
        self.device_tree.header().setSectionResizeMode(0, QHeaderView.Interactive)
        self.device_tree.header().setStretchLastSection(True)
        self.device_tree.setColumnWidth(0, 150)
        self.device_tree.setTextElideMode(Qt.ElideRight)
        self.device_tree.itemSelectionChanged.connect(self._on_device_chosen)
        self.device_tree.itemClicked.connect(lambda item, _col: self._pick(item.data(0, DEVICE_ROLE)))
        refresh = QToolButton()
        refresh.setText("Refresh")
        refresh.setToolTip("Look for plugins again and list their devices")
        refresh.clicked.connect(self.refresh_plugins)
        return self._titled("Plugins and devices", self.device_tree, refresh)

    def _build_runs(self) -> QWidget:
        self.run_list = QTreeWidget()
        self.run_list.setHeaderLabels(["run", "points"])
        self.run_list.setRootIsDecorated(False)
        self.run_list.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.run_list.header().setStretchLastSection(False)
        self.run_list.header().setSectionResizeMode(0, QHeaderView.Stretch)
        self.run_list.header().setSectionResizeMode(1, QHeaderView.ResizeToContents)
        self.run_list.itemChanged.connect(lambda _item, col: col == 0 and self.redraw())
        self.delete_button = QToolButton()
        self.delete_button.setText("Delete…")
        self.delete_button.setToolTip("Delete the selected runs from the store")
        self.delete_button.clicked.connect(self.delete_selected)
        self.run_list.itemSelectionChanged.connect(
            lambda: self.delete_button.setEnabled(bool(self.run_list.selectedItems())))
        self.delete_button.setEnabled(False)
        return self._titled("Runs (tick to show, several to compare)", self.run_list, self.delete_button)

    def _build_references(self) -> QWidget:
        self.ref_list = QListWidget()
        for r in self.references.values():
            item = QListWidgetItem(f"{r.label} — published")
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Unchecked)
            item.setData(Qt.UserRole, r.label)
            shown = " and ".join(w for w, has in (("throughput", r.has_throughput), ("latency", r.has_latency)) if has)
            item.setToolTip(f"{r.label}: {r.device}, {r.tool}, {r.precision}, {r.model}\n{shown}; time covers: "
                            f"{r.meaning.replace('_', ' ')}\n{r.note}\nsource: {r.source}")
            self.ref_list.addItem(item)
        self.ref_list.itemChanged.connect(lambda _item: self.redraw())
        return self._titled("Published references (not measured)", self.ref_list)

    # plugins and devices -----------------------------------------------------------------------------
    def showEvent(self, event) -> None:
        super().showEvent(event)
        # The store is read and plugins looked for when the tab is first seen, not at start-up: a window that
        # never shows it opens no database and starts no plugin process.
        if not self._listed_once:
            self._listed_once = True
            self.reload_runs()
            QTimer.singleShot(0, self, self.refresh_plugins)

    def refresh_plugins(self) -> None:
        """Find the plugins (manifests only) and list each available one's devices in a job of its own."""
        self._listed_once = True
        for name in list(self._listing):
            self.tasks.retire(LIST_LANE + name)
        self._listing.clear()
        try:
            self.plugins = host.discover(self.plugin_paths)
        except Exception as exc:  # a broken plugin folder must not take the tab down
            self.plugins = []
            self._show_error("Cannot look for plugins", f"{type(exc).__name__}: {exc}")
        self.devices = {}
        for info in self.plugins:
            if not info.available:
                continue
            self._listing.add(info.name)
            job = JobHandle(lambda i=info: host.devices_job(i, timeout=LIST_TIMEOUT_S), f"Listing {info.name}…")
            job.finished.connect(lambda devs, j=job, n=info.name: self._on_listed(j, n, devs))
            job.failed.connect(lambda msg, j=job, n=info.name: self._on_listed(j, n, msg))
            job.cancelled.connect(lambda j=job, n=info.name: self._on_listed(j, n, "listing cancelled"))
            self.tasks.start(LIST_LANE + info.name, job)
        self._fill_devices()
        if not self._listing:
            QTimer.singleShot(0, self, self.settled.emit)

    def _on_listed(self, job: JobHandle, name: str, devices) -> None:
        if not self.tasks.is_current(job):
            return
        self.devices[name] = devices
        self._listing.discard(name)
        self._fill_devices()
        if not self._listing:
            self.settled.emit()

    def _pick(self, key) -> None:
        if key is not None:
            self._picked = tuple(key)

    def _fill_devices(self) -> None:
        # the device the user picked stays chosen; until then, the most likely one: available, its plugin taking
        # the open model's own format (LiteRT for a .tflite), and needing no vendor tool or board (a local runtime)
        keep = self._picked
        model = self.state.analysis.model if self.state.analysis is not None else None
        # every model is ONNX inside the app; only a TFLite source has a file of its own a plugin may prefer
        fmt = "tflite" if model is not None and model.source_format == "tflite" else "onnx"

        def preference(info, d) -> tuple:
            m = info.manifest
            return ((info.name, d.id) == keep, fmt in (m.formats if m else ()), not (m and m.tools))

        best = None
        self.device_tree.blockSignals(True)
        self.device_tree.clear()
        first = None
        for info in self.plugins:
            top = QTreeWidgetItem([info.name])
            top.setToolTip(0, f"{info.name}: {info.manifest.summary if info.manifest else ''}\n{info.origin}: "
                              f"{info.location}")
            listed = self.devices.get(info.name)
            if not info.available:
                self._status(top, False, info.reason)
            elif info.name in self._listing:
                top.setText(1, "listing devices…")
            elif isinstance(listed, str):
                self._status(top, False, listed)
            else:
                top.setText(1, "available")
                for d in listed or []:
                    child = QTreeWidgetItem([d.name])
                    child.setData(0, DEVICE_ROLE, (info.name, d.id))
                    self._status(child, d.available, d.reason)
                    details = "".join(f"\n{k}: {v}" for k, v in d.details)
                    child.setToolTip(0, f"{d.name} ({d.id}, {d.kind}; {', '.join(d.precisions)}){details}")
                    top.addChild(child)
                    if d.available and (best is None or preference(info, d) > best):
                        first, best = child, preference(info, d)
            self.device_tree.addTopLevelItem(top)
            top.setExpanded(True)
        self.device_tree.blockSignals(False)
        if first is not None:
            self.device_tree.setCurrentItem(first)
        self._on_device_chosen()

    def _status(self, item: QTreeWidgetItem, available: bool, reason: str) -> None:
        if available:
            item.setText(1, "available")
            return
        item.setText(1, f"unavailable: {reason}")
        item.setToolTip(1, reason)
        for c in (0, 1):
            item.setForeground(c, Qt.darkGray)

    def chosen(self) -> tuple[host.PluginInfo, Device] | None:
        """The plugin and device chosen in the tree, if any (an unavailable device is shown, not chosen)."""
        items = self.device_tree.selectedItems()
        key = items[0].data(0, DEVICE_ROLE) if items else None
        if key is None:
            return None
        info = next((p for p in self.plugins if p.name == key[0]), None)
        devs = self.devices.get(key[0])
        dev = next((d for d in devs if d.id == key[1]), None) if isinstance(devs, list) else None
        return (info, dev) if info is not None and dev is not None else None

    def choose_device(self, plugin: str, device: str) -> bool:
        for i in range(self.device_tree.topLevelItemCount()):
            top = self.device_tree.topLevelItem(i)
            for j in range(top.childCount()):
                if top.child(j).data(0, DEVICE_ROLE) == (plugin, device):
                    self._picked = (plugin, device)
                    self.device_tree.setCurrentItem(top.child(j))
                    return True
        return False

    def _on_device_chosen(self) -> None:
        chosen = self.chosen()
        current = self.precision.currentText()
        self.precision.clear()
        if chosen is not None:
            info, dev = chosen
            self.precision.addItems(list(dev.precisions))
            # the user's choice where the device offers it, else the model's own: int8 for a quantized model,
            # fp32 for a float one (a plugin refuses to time a float model as int8)
            source = self._model_source()
            natural = "int8" if isinstance(source, LoadedModel) and is_quantized(source) else "fp32"
            for want in ([current] if self._precision_picked else []) + [natural]:
                if want in dev.precisions:
                    self.precision.setCurrentText(want)
                    break
        self._update_controls()

    # models ----------------------------------------------------------------------------------------
    def _fill_models(self) -> None:
        data = self.model_combo.currentData()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        a = self.state.analysis
        self.model_combo.addItem(f"open model: {a.model.name}" if a is not None else "open model: none", "open")
        for p in self.model_files:
            self.model_combo.addItem(p.name, str(p))
            self.model_combo.setItemData(self.model_combo.count() - 1, str(p), Qt.ToolTipRole)
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(data)))
        self.model_combo.blockSignals(False)
        self._update_controls()

    def add_model_file(self, path) -> None:
        path = Path(path)
        if path not in self.model_files:
            self.model_files.append(path)
        self._fill_models()
        self.model_combo.setCurrentIndex(self.model_combo.findData(str(path)))

    def choose_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model to profile", "", "ONNX models (*.onnx);;All files (*)")
        if path:
            self.add_model_file(path)

    def _model_source(self):
        data = self.model_combo.currentData()
        if data == "open" or data is None:
            return self.state.analysis.model if self.state.analysis is not None else None
        return Path(data)

    # running ---------------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store()
        return self._store

    @property
    def job(self) -> JobHandle | None:
        return self.tasks.current(LANE)

    def batch_sizes(self) -> tuple[int, ...]:
        return tuple(b for b, t in self.batch_buttons.items() if t.isChecked())

    def set_batch_sizes(self, sizes) -> None:
        for b, t in self.batch_buttons.items():
            t.setChecked(b in sizes)

    def start(self, do_compile: bool = False, do_profile: bool = True) -> JobHandle | None:
        """Compile and/or profile on the chosen device; None (and a message) when something is missing."""
        chosen, source, batches = self.chosen(), self._model_source(), self.batch_sizes()
        try:
            options = parse_options(self.options.text())
            store = self.store if do_profile else None
        except MbxError as exc:
            self._show_error("Cannot profile", str(exc))
            return None
        problem = ("Choose an available device in the list first." if chosen is None
                   else "Open a model, or choose a model file." if source is None
                   else "Tick at least one batch size." if not batches else "")
        if problem:
            self._show_error("Cannot profile" if do_profile else "Cannot compile", problem)
            return None
        info, dev = chosen
        precision = self.precision.currentText() or dev.precisions[0]
        key = (info.name, dev.id, precision, batches)
        artifact = (self.artifact[1], self.artifact[2]) if self.artifact and self.artifact[0] == key else None
        what = "Compiling" if not do_profile else "Profiling"
        job = JobHandle(lambda: _run_job(info, dev, source, precision, batches, self.iterations.value(),
                                         self.warmup.value(), options, do_compile, do_profile, artifact, store),
                        f"{what} on {info.name}:{dev.id}…")
        return self._launch(job, f"— {what.lower()} {precision}, batch sizes {list(batches)} on {info.name}:"
                                 f"{dev.id} ({dev.name})", f"{info.name}:{dev.id} {precision} (running)")

    def import_logs_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Logs of the vendor tool", "", "Logs (*.log *.txt *.json);;"
                                                "All files (*)")
        if paths:
            self.import_logs(paths)

    def import_logs(self, paths) -> JobHandle | None:
        """Read ``paths`` with the chosen device's plugin into a stored run; None (and a message) when the plugin
        reads no logs."""
        chosen = self.chosen()
        if chosen is None or "from_log" not in (chosen[0].manifest.capabilities if chosen[0].manifest else ()):
            self._show_error("Cannot read logs", "Choose a device of a plugin that reads its tool's logs first.")
            return None
        info, dev = chosen
        batches = self.batch_sizes()
        batch = batches[0] if len(batches) == 1 else None  # for a log that does not say it
        precision = self.precision.currentText() or ""
        paths = tuple(str(p) for p in paths)
        job = JobHandle(lambda: _logs_job(info, dev, self._model_source(), paths, batch, precision, self.store),
                        f"Profiling (from logs) with {info.name}…")
        return self._launch(job, f"— reading {len(paths)} log(s) with {info.name}", f"{info.name}:{dev.id} (from logs)")

    def _launch(self, job: JobHandle, heading: str, live: str) -> JobHandle:
        """Run a compile, profile or log job in the tab's lane: its events draw, its end lists the run."""
        job.event.connect(lambda ev, j=job: self._on_event(j, ev))
        job.log.connect(lambda level, msg, j=job: self.tasks.is_current(j) and self._log(level, msg))
        job.on_end(lambda result, error, j=job: self._on_end(j, result, error))
        self.error.hide()
        self.log.appendPlainText(heading)
        self._live = live
        self.tasks.start(LANE, job)
        self._update_controls()
        return job

    def cancel(self) -> None:
        if self.tasks.cancel(LANE):
            self.job_status.cancelling()

    def _log(self, level: str, message: str) -> None:
        self.log.appendPlainText(f"warning: {message}" if level == "warning" else message)

    def _on_event(self, job: JobHandle, ev) -> None:
        if not self.tasks.is_current(job):
            return
        if isinstance(ev, Measurement):
            s = ChartSeries(f"live:{ev.meaning}", self._live, ev.meaning, False, [], ev.device_name or ev.device,
                            ev.precision, f"{ev.tool} {ev.tool_version}".strip())
            self.chart.add_point(s.key, point_from_measurement(ev), make=s)
            self._timings_overlay(ev)
            lat = ev.latency_ms
            self.log.appendPlainText(f"batch {ev.batch_size}: {ev.throughput:,.1f} img/s, "
                                     + (f"p50 {lat.p50:.3f} ms" if lat.p50 is not None else f"mean {lat.mean:.3f} ms"))
        elif isinstance(ev, _Compiled):
            self.artifact = (ev.key, ev.sha, ev.artifact)
            self.log.appendPlainText(f"compiled: {ev.artifact.path} ({ev.artifact.tool})")

    def _timings_overlay(self, m: Measurement) -> None:
        """A profile with per-node timings (onnxruntime's node_timings=1) of the open model: its times become the
        block graph's latency overlay (View ▸ overlay menu), by node name (unique in every model the app opens)."""
        analysis = self.state.analysis
        data = node_timings(m)
        if data is None or analysis is None or self._model_source() is not analysis.model:
            return
        known = set(analysis.index.names)
        values = {n: float(v) / 1000.0 for n, v in data["nodes"].items() if n in known}
        if not values:
            return
        self.state.add_overlay(Overlay(LATENCY_OVERLAY, "ms", values, aggregate="sum", source=f"profile:{m.plugin}",
                                       description=f"measured time per run, batch {m.batch_size}, {m.tool} "
                                                   f"{m.tool_version} on {m.device_name or m.device} (mean of "
                                                   f"{data.get('runs', '?')} runs)"))
        self.statusMessage.emit(f"Per-node times at batch {m.batch_size}: the graph's '{LATENCY_OVERLAY}' overlay",
                                8000)

    def _on_end(self, job: JobHandle, result, error: str | None = None) -> None:
        if not self.tasks.is_current(job):
            return
        new = result.id if isinstance(result, Run) else None
        if error:
            self.log.appendPlainText(f"failed: {error}")
            self._show_error("Profiling failed" if "Profiling" in job.label else "Compiling failed", error)
        elif job.state == "cancelled":
            self.log.appendPlainText("cancelled")
            self.statusMessage.emit("Cancelled; the measurements taken so far are kept.", 8000)
        elif isinstance(result, Artifact):
            self.statusMessage.emit(f"Compiled: {result.path}", 8000)
        # the run is in the store whatever its outcome (a cancelled one keeps its points): show it
        newest = self._newest_run_id() if job.label.startswith("Profiling") else None
        self.reload_runs(show={new or newest} - {None})
        self._update_controls()
        self.runFinished.emit(result)

    def _newest_run_id(self) -> int | None:
        try:
            runs = self.store.runs()
        except MbxError:
            return None
        return max((r.id for r in runs), default=None)

    # runs ------------------------------------------------------------------------------------------
    def reload_runs(self, show: set[int] | None = None) -> None:
        """Read the runs from the store; those ticked stay ticked, ``show`` are ticked too."""
        ticked = self.ticked_runs() | set(show or ())
        first = not self.runs and self.run_list.topLevelItemCount() == 0
        try:
            self.runs = self.store.runs()
        except MbxError as exc:
            self.runs = []
            self._show_error("Cannot read the stored runs", str(exc))
        if first and not show:
            ticked = {r.id for r in self.runs if r.measurements}
            ticked = set(sorted(ticked, reverse=True)[:SHOWN_AT_START])
        self.run_list.blockSignals(True)
        self.run_list.clear()
        for r in self.runs:
            item = QTreeWidgetItem([run_label(r), str(len(r.measurements))])
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(0, Qt.Checked if r.id in ticked else Qt.Unchecked)
            item.setData(0, RUN_ROLE, r.id)
            item.setToolTip(0, run_tooltip(r))
            if r.status in ("failed", "interrupted"):
                item.setForeground(0, Qt.darkRed)
            self.run_list.addTopLevelItem(item)
        self.run_list.blockSignals(False)
        self.redraw()

    def ticked_runs(self) -> set[int]:
        return {it.data(0, RUN_ROLE) for it in self._run_items() if it.checkState(0) == Qt.Checked}

    def _run_items(self) -> list[QTreeWidgetItem]:
        return [self.run_list.topLevelItem(i) for i in range(self.run_list.topLevelItemCount())]

    def set_run_shown(self, run_id: int, shown: bool) -> None:
        for it in self._run_items():
            if it.data(0, RUN_ROLE) == run_id:
                it.setCheckState(0, Qt.Checked if shown else Qt.Unchecked)

    def set_reference_shown(self, label: str, shown: bool) -> None:
        for i in range(self.ref_list.count()):
            it = self.ref_list.item(i)
            if it.data(Qt.UserRole) == label:
                it.setCheckState(Qt.Checked if shown else Qt.Unchecked)

    def delete_selected(self) -> QMessageBox | None:
        """Ask (non-blocking), then delete the selected runs."""
        ids = [it.data(0, RUN_ROLE) for it in self.run_list.selectedItems()]
        running = [r.id for r in self.runs if r.id in ids and r.status == "running"]
        if running:  # its recorder is still adding to it
            self._show_error("Cannot delete", f"Run {', '.join(f'#{i}' for i in running)} is still running: cancel "
                             "it first (its measurements so far are kept).")
            return None
        if not ids:
            return None
        box = QMessageBox(QMessageBox.Question, "Delete runs",
                          f"Delete {'run' if len(ids) == 1 else f'{len(ids)} runs'} "
                          f"{', '.join(f'#{i}' for i in ids)} and their measurements? This cannot be undone.",
                          QMessageBox.Yes | QMessageBox.Cancel, self)
        box.setDefaultButton(QMessageBox.Cancel)
        box.setWindowModality(Qt.WindowModal)
        box.finished.connect(lambda code: code == QMessageBox.Yes and self.delete_runs(ids))
        box.open()
        self.confirm_box = box
        return box

    def delete_runs(self, ids) -> None:
        running = self.job is not None
        for run_id in ids:
            try:
                self.store.delete(run_id)
            except MbxError as exc:
                self._show_error("Cannot delete", str(exc))
        self.reload_runs()
        if not running:
            self.statusMessage.emit(f"Deleted {len(ids)} run{'s' * (len(ids) != 1)}.", 5000)

    # the chart -------------------------------------------------------------------------------------
    def shown_series(self) -> list[ChartSeries]:
        ticked = self.ticked_runs()
        out = []
        for r in reversed(self.runs):  # oldest first: colours stay put as runs are added
            if r.id in ticked and r.measurements:
                out += series_from_measurements(f"run:{r.id}", run_label(r), r.measurements, source=r.model_path)
        for i in range(self.ref_list.count()):
            it = self.ref_list.item(i)
            if it.checkState() == Qt.Checked:
                out.append(series_from_reference(self.references[it.data(Qt.UserRole)]))
        return out

    def redraw(self) -> None:
        live = [s for s in self.chart.series if s.key.startswith("live:")] if self.job is not None else []
        self.chart.set_series(self.shown_series() + live)
        self._update_controls()

    # exports ---------------------------------------------------------------------------------------
    def _save(self, kind: str) -> None:
        filters = {"png": "PNG images (*.png)", "svg": "SVG images (*.svg)", "csv": "CSV files (*.csv)"}
        path, _ = QFileDialog.getSaveFileName(self, f"Export {kind.upper()}", f"devices.{kind}", filters[kind])
        if path:
            self.export(path, kind)

    def export(self, path, kind: str | None = None) -> bool:
        """Write the chart (png, svg) or the shown series (csv), whole or not at all; False (said) on failure."""
        kind = kind or Path(path).suffix.lower().lstrip(".")
        make = {"png": self.chart.png_bytes, "svg": self.chart.svg_bytes, "csv": self.chart.csv_text}.get(kind)
        if make is None:
            self._show_error("Cannot export", f"{Path(path).name}: export writes .png, .svg or .csv.")
            return False
        try:
            write_atomically(path, make())
        except OSError as exc:
            self._show_error("Cannot export", f"Cannot write {path}: {exc.strerror or exc}")
            return False
        self.statusMessage.emit(f"Wrote {path}", 5000)
        return True

    # state -----------------------------------------------------------------------------------------
    def _show_error(self, title: str, message: str) -> None:
        self.error.setText(f"{title}: {message.splitlines()[0] if message else ''}")
        self.error.setToolTip(message)
        self.error.show()
        self.errorRaised.emit(title, message)

    def _update_controls(self) -> None:
        running = self.job is not None
        chosen = self.chosen()
        caps = chosen[0].manifest.capabilities if chosen and chosen[0].manifest else ()
        ready = chosen is not None and self._model_source() is not None and bool(self.batch_sizes())
        self.profile_button.setEnabled(ready and "profile" in caps and not running)
        self.compile_button.setEnabled(ready and "compile" in caps and not running)
        self.logs_button.setEnabled(chosen is not None and "from_log" in caps and not running)
        self.compile_first.setEnabled("compile" in caps)
        if "compile" not in caps:
            self.compile_first.setChecked(False)
        self.cancel_button.setEnabled(running)
        self.export_button.setEnabled(bool(self.chart.series))
        if chosen is None:
            self.target.setText("No device chosen: pick an available one under Plugins and devices."
                                if self._listed_once else "")
        else:
            info, dev = chosen
            missing = ("  (open a model, or choose a file, to profile)" if self._model_source() is None
                       else "  (tick a batch size)" if not self.batch_sizes() else "")
            self.target.setText(f"Target: {info.name} · {dev.name}{missing}")
            self.target.setToolTip(f"{dev.id} ({dev.kind})")
