"""The "Classify" tab: images in a thumbnail strip, the selected one's top-k per model, live settings.

What is shown follows the settings live. Every result remembers the key (slot, model serial, preset, fast
decode) it was computed for; a change of model, preset or decoding makes results stale and starts a run for
what is stale or missing only, so adding images classifies just those, and a compare model runs alone beside the results
already there. A change of k or of the label file re-slices the stored scores without running anything.
One run at a time (the "classify" lane of the window's task registry): a new request cancels the running one
(its results that still match are kept). Classifiers are cached across runs here, on the UI thread: a run
reads a snapshot and sends back each classifier it builds (``ClassifierReady``).
Stale results of the same model stay on screen, greyed, until the new ones arrive, so nothing jumps.
The Table view lists every image's top-1 (and the compared model's) instead of the strip and details, kept in
step with the results as they stream in; Export CSV… writes it as shown.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mbexplorer.core.classify import (
    ClassifierReady,
    ImageDone,
    ModelReady,
    Slot,
    SlotFailed,
    Task,
    build_model,
    classify_job,
    load_model,
    preprocess_for,
    result_topk,
)
from mbexplorer.core.decoding import image_files
from mbexplorer.core.errors import MbxError
from mbexplorer.core.formats import IMAGE_FILTER, MODEL_FILTER
from mbexplorer.core.labels import label_at, read_label_file
from mbexplorer.core.outputs import write_atomically
from mbexplorer.core.overview import RANDOM_WEIGHTS, Row, csv_text, image_row, random_weights
from mbexplorer.core.preprocess import Preprocess, for_model
from mbexplorer.core.presets_info import AUTO, PRESETS, REFERENCES
from mbexplorer.core.state import State

from .builder_dialog import FAMILY_TITLES, BuilderDialog
from .classify_details import DetailsView, Entry, Labels, Shown
from .classify_overview import OverviewTable
from .flow_layout import FlowLayout, tool_group
from .job_status import JobStatus
from .preprocess_dialog import PreprocessDialog
from .tasks import Tasks
from .topk_view import (
    AGREE,
    DIFFER,
    ThumbStrip,
    badge_icon,
    elide,
    menu_button,
    to_pixmap,
)
from .workers import JobHandle

LANE = "classify"  # this tab's lane in the task registry
CHOICES = [p for p in PRESETS if p != "custom"]
LABELS_TIP = "Class names: a label file, else the model's own, else ImageNet's"
AUTO_TIP = f"auto: the model's source picks the preset ({AUTO})"
COMPARE_TIP = "Classify the same images with a second model, side by side"
FAST_TIP = ("An approximation, off by default. On: large JPEGs decode at 1/2, 1/4 or 1/8 scale, still at least "
            "twice the size the preset resizes from: several times faster, scores within about 0.03 of the exact "
            "pipeline on float models (quantized ones move by as much as one input level of noise moves them). "
            "Off: every image goes through the preset's exact pipeline, as 'mbexplorer predict' does. Presets "
            "that resize as TensorFlow or OpenCV do (tfslim, tfjs, coral, paddle) always decode in full.")


class ClassifyPanel(QWidget):
    errorRaised = Signal(str, str)  # title, message: the window shows it as it shows load errors
    statusMessage = Signal(str, int)
    runFinished = Signal()  # a run classified everything it was asked to

    def __init__(self, parent=None, tasks: Tasks | None = None, state: State | None = None):
        super().__init__(parent)
        self.tasks = tasks if tasks is not None else Tasks(self)  # the window's; a panel alone has its own
        # The window's state: the open model arrives through it, and the model compared with goes into it.
        self.state = state if state is not None else State()
        self.model = None  # the LoadedModel on screen
        self.compare = None  # {"serial", "title", "load", "model"} of the model compared with
        self.serial = {"A": 0, "B": 0}  # bumped whenever a slot's model changes
        self.failed: dict[tuple, str] = {}  # keys whose model could not be made into a classifier
        self.entries: list[Entry] = []
        self.by_path: dict[Path, Entry] = {}
        self.user_labels: list[str] | None = None
        self.labels_path: Path | None = None
        self.cache: dict = {}  # key -> Classifier; only this (the UI) thread touches it
        self.model_pending = False  # a model is loading: hold runs until it is shown
        self._held = False
        self.runs = 0  # runs started (a change of k must not start one)
        self.builder_dialog: BuilderDialog | None = None
        self.custom_dialog: PreprocessDialog | None = None
        self.custom_options: dict | None = None  # the custom preset's fields, once the user has set them
        self._preset_index = 0  # the preset in force (the combo shows 'custom…' while its dialog is open)
        self.job_status = JobStatus()  # the window puts it in its status bar
        self.job_status.follow(self.tasks, LANE)
        self.job_status.cancel_button.setToolTip("Stop classifying; the results so far stay")
        self.job_status.cancelRequested.connect(self.cancel)
        self._build()
        self.state.on("analysis", lambda a: a is not None and self.set_model(a.model))

    # ui ------------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        self.add_button = QPushButton("Add images…")
        self.add_button.clicked.connect(self.add_dialog)
        self.folder_button = QPushButton("Add folder…")
        self.folder_button.clicked.connect(self.add_folder_dialog)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        self.preset = QComboBox()
        for name in (None, *CHOICES):
            self.preset.addItem(name or "auto", name)
        self.preset.addItem("custom…", "custom")
        for i in range(self.preset.count()):  # each item says what it reproduces; auto's follows the model
            name = self.preset.itemData(i)
            self.preset.setItemData(i, REFERENCES[name] if name else AUTO_TIP, Qt.ToolTipRole)
        self.preset.setToolTip("Preprocessing: auto uses the one the model's source implies; custom… sets each step")
        self.preset.setSizeAdjustPolicy(QComboBox.AdjustToContents)  # "auto (torchvision / coral)" reads whole
        self.preset.currentIndexChanged.connect(self._on_preset)
        self.preset.activated.connect(lambda i: self.preset.itemData(i) == "custom" and self.edit_custom())
        # Off by default: the exact pipeline is what the model's own tools feed it; fast is an approximation.
        self.fast = QCheckBox("Fast (approx.)")
        self.fast.setChecked(False)
        self.fast.setToolTip(FAST_TIP)
        self.fast.toggled.connect(lambda _: self.run())
        self.k = QSpinBox()
        self.k.setRange(1, 20)
        self.k.setValue(5)
        self.k.valueChanged.connect(lambda _: self._refresh_details())
        self.labels_button = menu_button("Labels", [("Load labels…", self.labels_dialog),
                                                         ("Use the model's labels", lambda: self.set_labels(None))])
        self.compare_button = menu_button("Compare with…", [("Model file…", self.compare_dialog),
                                                               ("Model from builder…", self.compare_builder),
                                                               ("Stop comparing", self.stop_compare)])
        self.labels_button.setToolTip(LABELS_TIP)
        self.compare_button.setToolTip(COMPARE_TIP)
        self.act_stop_compare = self.compare_button.menu().actions()[-1]
        self.act_stop_compare.setEnabled(False)
        # Strip (thumbnails and the selected image's details) or Table (every image's top-1, sortable)
        self.strip_button, self.table_button = (QToolButton(text=t, checkable=True, autoExclusive=True)
                                                for t in ("Strip", "Table"))
        self.strip_button.setChecked(True)
        self.strip_button.setToolTip("Thumbnails, and the selected image's top-k per model")
        self.table_button.setToolTip("Every image's top-1 and score (and the compared model's), sortable")
        self.table_button.toggled.connect(self.show_table)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setToolTip("Write every image's top-1 (and the compared model's) to a CSV file")
        self.export_button.clicked.connect(self.export_csv_dialog)
        # A flow of groups: one row on a wide window, two on a 1280 px screen (the window never grows for it).
        bar = FlowLayout()
        for group in ((self.add_button, self.folder_button, self.clear_button), (QLabel("Preset:"), self.preset,
                      self.fast), (QLabel("Top-k:"), self.k, self.labels_button), (self.compare_button,),
                      (self.strip_button, self.table_button, self.export_button)):
            bar.addWidget(tool_group(*group))
        lay.addLayout(bar)

        self.strip = ThumbStrip()
        self.strip.currentRowChanged.connect(self._on_current)
        lay.addWidget(self.strip)
        self.overview = OverviewTable()
        self.overview.imageChosen.connect(self.select)
        self.overview.imageOpened.connect(lambda i: (self.select(i), self.show_table(False)))
        self.overview.setVisible(False)
        lay.addWidget(self.overview, 1)
        self.agreement = QLabel()
        self.agreement.setTextFormat(Qt.PlainText)
        self.hint = QLabel()
        self.hint.setTextFormat(Qt.PlainText)
        self.hint.setStyleSheet("color: #6b7280;")
        row = QHBoxLayout()
        row.addWidget(self.hint, 1)
        row.addWidget(self.agreement)
        lay.addLayout(row)

        self.details = DetailsView()
        scroll = QScrollArea()
        scroll.setWidget(self.details)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        lay.addWidget(scroll, 1)
        self.details_scroll = scroll
        self._refresh_all()

    def show_table(self, table: bool) -> None:
        """The table view (True) or the strip and details (False)."""
        self.table_button.setChecked(table)
        self.strip_button.setChecked(not table)
        self.overview.setVisible(table)
        self.strip.setVisible(not table)
        self.details_scroll.setVisible(not table)
        if table:
            self.overview.select_image(self.strip.currentRow())
        elif self.strip.currentItem() is not None:
            self.strip.scrollToItem(self.strip.currentItem())

    def _on_current(self, row: int) -> None:
        self.overview.select_image(row)
        self._refresh_details()

    # inputs --------------------------------------------------------------------------------------
    def set_model(self, model) -> None:
        """The window shows another model: classify the images with it (the compare model stays)."""
        self.model = model
        self.serial["A"] += 1
        self.model_pending = False
        self._update_preset_text()
        self.run()

    def set_model_pending(self, pending: bool) -> None:
        """A model is being opened (True), or its opening failed or was cancelled (False)."""
        self.model_pending = pending
        if not pending and self._held:
            self.run()

    def add_paths(self, paths) -> int:
        """Add image files and folders (searched recursively); returns how many new images."""
        added = 0
        for p in image_files(paths):
            p = Path(p).resolve()
            if p not in self.by_path:
                self.by_path[p] = Entry(p, self.strip.add(p.name))
                self.entries.append(self.by_path[p])
                added += 1
        if added and self.strip.currentRow() < 0:
            self.strip.setCurrentRow(0)
        self.run()
        return added

    def clear(self) -> None:
        self._stop_job()
        self.entries.clear()
        self.by_path.clear()
        self.strip.clear()
        self._refresh_all()

    def set_preset(self, name: str | None) -> None:
        self.preset.setCurrentIndex(max(0, self.preset.findData(name)))

    def set_custom(self, options: dict) -> None:
        """Custom preprocessing (``Preprocess`` fields) for both models; selects 'custom'."""
        self.custom_options = dict(options)
        self._preset_index = self.preset.findData("custom")
        if self.preset.currentData() == "custom":
            self.run()
        else:
            self.preset.setCurrentIndex(self._preset_index)  # runs through _on_preset

    def edit_custom(self) -> PreprocessDialog:
        """Open the custom preprocessing dialog, starting from what model A gets now."""
        choice = self.preset_choice(self._preset_index)
        start = preprocess_for(self.model, choice) if self.model else Preprocess("custom", 224, 224)
        dlg = PreprocessDialog(start, self)
        dlg.accepted.connect(lambda: self.set_custom(dlg.options()))
        dlg.rejected.connect(self._restore_preset)
        dlg.setWindowModality(Qt.WindowModal)
        dlg.open()
        self.custom_dialog = dlg
        return dlg

    def _on_preset(self, index: int) -> None:
        if self.preset.itemData(index) == "custom" and self.custom_options is None:
            return  # nothing to run until the dialog (opened by 'activated') is accepted
        self._preset_index = index
        self.run()

    def _restore_preset(self) -> None:
        if self.preset.currentIndex() != self._preset_index:
            self.preset.setCurrentIndex(self._preset_index)

    def preset_choice(self, index: int | None = None):
        """The current preset as a hashable choice (see ``classify_job.preprocess_for``)."""
        data = self.preset.itemData(self.preset.currentIndex() if index is None else index)
        if data == "custom":
            return ("custom", tuple(sorted((self.custom_options or {}).items())))
        return data

    def set_labels(self, path) -> None:
        """Label names from a file (None: the model's own); only re-labels, nothing runs again."""
        if path is None:
            self.user_labels, self.labels_path = None, None
        else:
            try:
                self.user_labels, self.labels_path = read_label_file(path), Path(path)
            except MbxError as exc:
                self.errorRaised.emit("Cannot read labels", str(exc))
                return
        self.labels_button.setText(elide(f"Labels: {self.labels_path.name}") if self.labels_path else "Labels")
        self.labels_button.setToolTip(str(self.labels_path) if self.labels_path else LABELS_TIP)
        self._refresh_all()  # names only: the strip's tips, the table and the details

    def compare_with_path(self, path) -> None:
        path = Path(path)
        self._set_compare(path.name, load_model(path))

    def compare_with_build(self, values: dict) -> None:
        title = (f"{FAMILY_TITLES.get(values['family'], values['family'])} ×{values.get('width', 1.0):g} "
                 f"{values.get('resolution', 224)} px (builder)")
        self._set_compare(title, build_model(values))

    def _set_compare(self, title: str, loader) -> None:
        self.serial["B"] += 1
        self._compare_with({"serial": self.serial["B"], "title": title, "load": loader, "model": None})
        self.statusMessage.emit(f"Comparing with {title}.", 5000)

    def stop_compare(self) -> None:
        self._compare_with(None)

    def _compare_with(self, compare: dict | None) -> None:
        self.compare = compare
        self.state.comparison = compare["model"] if compare else None
        for e in self.entries:
            e.results.pop("B", None)
        self.act_stop_compare.setEnabled(compare is not None)
        self.compare_button.setText(elide(f"Compare: {compare['title']}") if compare else "Compare with…")
        self.compare_button.setToolTip(f"Comparing with {compare['title']}" if compare else COMPARE_TIP)
        self._update_preset_text()
        self.run()

    # dialogs (interactive) -----------------------------------------------------------------------
    def add_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add images", "", IMAGE_FILTER)
        if paths:
            self.add_paths(paths)

    def add_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a folder of images")
        if path:
            self.add_paths([path])

    def export_csv_dialog(self) -> None:
        name = f"{self.model.name if self.model else 'images'}_top1.csv"
        path, _ = QFileDialog.getSaveFileName(self, "Export the overview as CSV", name, "CSV files (*.csv)")
        if path:
            self.export_csv(path)

    def labels_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load labels", "", "Label files (*.txt);;All files (*)")
        if path:
            self.set_labels(path)

    def compare_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Compare with model", "", MODEL_FILTER)
        if path:
            self.compare_with_path(path)

    def compare_builder(self) -> BuilderDialog:
        dlg = BuilderDialog(self)
        dlg.setWindowTitle("Compare with a model from the builder")
        dlg.accepted.connect(lambda: self.compare_with_build(dlg.values()))
        dlg.setWindowModality(Qt.WindowModal)
        dlg.open()
        self.builder_dialog = dlg
        return dlg

    # running -------------------------------------------------------------------------------------
    @property
    def job(self) -> JobHandle | None:
        """The running classification, if any."""
        return self.tasks.current(LANE)

    def key(self, slot: str) -> tuple:
        return (slot, self.serial[slot], self.preset_choice(self._preset_index), self.fast.isChecked())

    def slots(self) -> list[Slot]:
        preset = self.preset_choice(self._preset_index)
        out = []
        if self.model is not None:
            out.append(Slot("A", self.key("A"), preset, self.model, title=self.model.name))
        if self.compare is not None:
            c = self.compare
            out.append(Slot("B", self.key("B"), preset, c["model"], None if c["model"] else c["load"], c["title"]))
        return [s for s in out if s.key not in self.failed]

    def run(self) -> JobHandle | None:
        """Start a run for whatever is missing or stale (cancelling the running one); None: nothing to do."""
        if self.model_pending:
            self._held = True  # the model being opened would make this run's results stale at once
            self._refresh_all()
            return None
        self._held = False
        slots = self.slots()
        tasks = []
        for e in self.entries:
            if e.error:
                continue
            todo = tuple(s.name for s in slots if (r := e.results.get(s.name)) is None or r.key != s.key)
            if e.thumb is None or todo:
                tasks.append(Task(e.path, e.thumb is None, todo))
        current = self._shown_models()
        for k in [k for k in self.cache if k[:2] not in current]:
            del self.cache[k]  # sessions of models no longer shown: their memory goes
        self._stop_job()
        if not tasks and all(s.model is not None for s in slots):
            self._refresh_all()
            return None
        # The job reads a frozen copy: the worker thread never touches self.cache, which this thread prunes.
        cache = MappingProxyType(dict(self.cache))
        fast = self.fast.isChecked()
        label = f"Classifying {len(tasks)} image{'s' * (len(tasks) != 1)}…"
        job = JobHandle(lambda: classify_job(tasks, slots, cache, fast), label)
        job.event.connect(self._on_event)
        job.on_end(lambda _result, error, j=job: self._on_end(j, error))
        self.runs += 1
        self.tasks.start(LANE, job)  # cancels the running one (stopped above already)
        self._refresh_all()
        return job

    def cancel(self) -> None:
        if self.tasks.cancel(LANE):
            self.job_status.cancelling()

    def _stop_job(self) -> None:
        self.tasks.retire(LANE)

    def shutdown(self) -> None:
        """Stop every run and wait for its thread (the window's closeEvent does it for all lanes at once)."""
        self.tasks.shutdown(LANE)

    def _shown_models(self) -> set[tuple]:
        """(slot, model serial) of the models on screen: what cached classifiers may stay for."""
        return {s.key[:2] for s in self.slots()}

    def _on_end(self, job: JobHandle, error: str | None = None) -> None:
        if not self.tasks.is_current(job):
            return  # a retired run
        self._refresh_all()
        if error:
            self.errorRaised.emit("Cannot classify", error)
        elif job.state == "finished":
            self.runFinished.emit()

    def _on_event(self, ev) -> None:
        # Events of a run cancelled for a newer one still arrive: keep what matches the current keys.
        if isinstance(ev, ImageDone):
            entry = self.by_path.get(ev.path)
            if entry is None:
                return  # cleared meanwhile
            if ev.thumb is not None and entry.thumb is None:
                entry.thumb = to_pixmap(ev.thumb)
            entry.error = entry.error or ev.error
            if ev.size is not None:
                entry.size, entry.decoded, entry.decode_ms = ev.size, ev.decoded, ev.decode_ms
            for name, result in ev.results.items():
                if name in ("A", "B") and result.key == self.key(name):
                    entry.results[name] = result
            self._update_item(entry)
            self.overview.rows.set_row(self.overview_row(entry))
            self._update_agreement()
            if entry is self.current():
                self._refresh_details()
        elif isinstance(ev, ClassifierReady):
            if ev.key[:2] in self._shown_models():  # not for a model replaced meanwhile: its memory goes
                self.cache[ev.key] = ev.classifier
        elif isinstance(ev, ModelReady):
            if self.compare is not None and ev.key[:2] == ("B", self.compare["serial"]):
                self.compare["model"] = ev.model
                self.state.comparison = ev.model
                self._update_preset_text()
                self._refresh_details()
        elif isinstance(ev, SlotFailed) and ev.key in (self.key("A"), self.key("B")):
            self.failed[ev.key] = ev.message
            if ev.slot == "B":
                title = self.compare["title"] if self.compare else "the model"
                self.stop_compare()
                self.errorRaised.emit("Cannot compare", f"Cannot compare with {title}: {ev.message}")
            else:
                self.errorRaised.emit("Cannot classify", ev.message)
                self._refresh_details()

    # the overview --------------------------------------------------------------------------------
    def overview_row(self, entry: Entry) -> Row:
        """The table's row of an image: the results on screen (not stale ones), as the strip's marks use."""
        results = {}
        for slot in ("A", "B"):
            r, stale = self.result(entry, slot)
            results[slot] = None if stale else r
        return image_row(entry.path, results["A"], results["B"], self.compare is not None, self.user_labels,
                         entry.error, "classifying…" if self.job else "not classified yet")

    def export_csv(self, path) -> bool:
        """Write the table (in the order shown) as CSV; all or nothing. False: it could not be written (said)."""
        try:
            write_atomically(path, csv_text(self.overview.shown_rows(), self.compare is not None))
        except OSError as exc:
            self.errorRaised.emit("Cannot export", f"Cannot write {path}: {exc.strerror or exc}")
            return False
        self.statusMessage.emit(f"Wrote {path}", 5000)
        return True

    # showing -------------------------------------------------------------------------------------
    def current(self) -> Entry | None:
        row = self.strip.currentRow()
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def select(self, index: int) -> None:
        self.strip.setCurrentRow(index)

    def result(self, entry: Entry, slot: str):
        """The result to show for a slot, and whether it is stale; (None, False) when there is none."""
        r = entry.results.get(slot)
        key = self.key(slot)
        if r is None or r.key[:2] != key[:2]:
            return None, False  # another model's result is never shown, not even greyed
        return r, r.key != key

    def top1(self, entry: Entry, slot: str) -> str | None:
        """The top-1 class by name: a 1001-output model (background at 0) and a 1000-output one agree when
        both say "macaw", although their indices are 89 and 88. Models without names compare "class i"."""
        r, stale = self.result(entry, slot)
        if r is None or stale or r.top1 is None:
            return None
        return label_at(r.top1, r.prediction.scores.size, r.embedded, self.user_labels)

    def agreement_of(self, entry: Entry) -> str | None:
        if entry.error:
            return "error"
        if self.compare is None:
            return None
        a, b = self.top1(entry, "A"), self.top1(entry, "B")
        if a is None or b is None:
            return None
        return "agree" if a == b else "differ"

    def agreement_counts(self) -> tuple[int, int]:
        marks = [self.agreement_of(e) for e in self.entries]
        return marks.count("agree"), marks.count("agree") + marks.count("differ")

    def _update_item(self, entry: Entry) -> None:
        look = (entry.thumb is not None, self.agreement_of(entry))
        if look != entry.look:  # repaint only what changed: a folder of thousands refreshes often
            entry.look = look
            entry.item.setIcon(badge_icon(entry.thumb, look[1]))
        tip = [str(entry.path)]
        if entry.error:
            tip.append(entry.error)
        for slot in ("A", "B"):
            r, stale = self.result(entry, slot)
            if r is not None and r.prediction is not None and not stale:
                t = result_topk(r, 1, self.user_labels)[0]
                tip.append(f"{r.model_name}: {t.label} ({t.score:.3f})")
        entry.item.setToolTip("\n".join(tip))

    def _update_agreement(self) -> None:
        if self.compare is None or not self.entries:
            self.agreement.setText("")
            return
        agree, n = self.agreement_counts()
        pending = sum(1 for e in self.entries if not e.error) - n
        text = f"{agree}/{n} agree on top-1" + (f"  ·  {pending} to go" if pending else "")
        color = AGREE if agree == n else DIFFER
        self.agreement.setText(text)
        self.agreement.setStyleSheet(f"color: {color.name()}; font-weight: bold;")

    def _update_preset_text(self) -> None:
        names = [for_model(m).name for m in (self.model, self.compare and self.compare["model"]) if m is not None]
        picked = list(dict.fromkeys(names))
        self.preset.setItemText(0, f"auto ({' / '.join(picked)})" if picked else "auto")
        self.preset.setItemData(0, "\n".join([AUTO_TIP] + [f"{n}: {REFERENCES[n]}" for n in picked]), Qt.ToolTipRole)

    def _refresh_all(self) -> None:
        for e in self.entries:
            self._update_item(e)
        self.overview.rows.set_rows([self.overview_row(e) for e in self.entries], self.compare is not None)
        self.export_button.setEnabled(bool(self.entries))
        self._update_agreement()
        if not self.entries:
            hint = "Drop images or a folder on the window, or use Add images…"
        elif self.model is None and self.compare is None:
            hint = "Open a model (File ▸ Open model…, or drop one) to classify these images."
        else:
            errors = sum(1 for e in self.entries if e.error)
            hint = f"{len(self.entries)} image{'s' * (len(self.entries) != 1)}" + \
                (f", {errors} unreadable" if errors else "") + ("  ·  classifying…" if self.job else "")
        self.hint.setText(hint)
        self._refresh_details()

    def _refresh_details(self) -> None:
        entry = self.current()
        if entry is None:
            self.details.show_nothing(self.compare is not None)
            return
        shown = {"A": self._shown(entry, "A")}
        if self.compare is not None:
            shown["B"] = self._shown(entry, "B")
        self.details.show_entry(entry, shown, self.agreement_of(entry), self.k.value(),
                                Labels(self.user_labels, self.labels_path.name if self.labels_path else ""))

    def _shown(self, entry: Entry, slot: str) -> Shown:
        if slot == "A" and self.model is None:
            return Shown("No model", note="Open a model to classify the images.")
        model = self.model if slot == "A" else self.compare["model"]
        title = model.name if model is not None else self.compare["title"]
        warning = RANDOM_WEIGHTS if model is not None and random_weights(model) else ""
        if self.key(slot) in self.failed:
            return Shown(title, note=self.failed[self.key(slot)], error=True, warning=warning)
        if entry.error:
            return Shown(title, note="Not classified: the image could not be read.", error=True, warning=warning)
        r, stale = self.result(entry, slot)
        if r is None:
            return Shown(title, note="Classifying…" if self.job else "Not classified yet.", warning=warning)
        return Shown(title, r, stale, warning=warning)

