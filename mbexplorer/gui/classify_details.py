"""The lower half of the Classify tab: the selected image (preview, name, size) and one column per model
with its top-k, preprocessing (and what it reproduces), timings, labels and the input tensor it was fed; in
compare mode a banner says whether the top-1 agrees.

The panel decides what each column shows (a :class:`Shown` result, possibly stale, or a note); this module
only lays it out and words it."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from mbexplorer.core.classify import SlotResult, result_topk
from mbexplorer.core.formatting import plural
from mbexplorer.core.labels import fits
from mbexplorer.core.overview import ranking

from .topk_view import AGREE, DIFFER, SlotView, badge_icon


class Entry:
    """One image of the strip and what is known about it."""

    def __init__(self, path, item):
        self.path, self.item = path, item  # resolved Path, its QListWidgetItem
        self.thumb = None  # QPixmap, once the worker has made it
        self.size: tuple[int, int] | None = None
        self.decoded: tuple[int, int] | None = None  # set when a JPEG was decoded at a reduced scale
        self.decode_ms: float | None = None
        self.error: str | None = None  # the image could not be read
        self.results: dict[str, SlotResult] = {}  # slot name -> latest result (possibly stale: see its key)
        self.look = None  # (has a thumbnail, badge) the strip icon was painted with


TINTS = {"agree": ("#dcfce7", "#14532d"), "differ": ("#fef3c7", "#78350f")}  # banner: background, text


@dataclass
class Shown:
    title: str
    result: SlotResult | None = None
    stale: bool = False  # computed with the previous preset; the new one is on its way
    note: str = ""  # when there is no result: why
    error: bool = False
    warning: str = ""  # about the model itself, shown whatever the column shows (random weights)


@dataclass
class Labels:
    names: list[str] | None = None  # the user's label file, None: the model's own
    file: str = ""


class DetailsView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 4, 0, 0)
        head = QHBoxLayout()
        self.preview = QLabel()
        self.preview.setFixedSize(180, 180)
        self.preview.setAlignment(Qt.AlignHCenter | Qt.AlignTop)
        self.info = QLabel()
        self.info.setTextFormat(Qt.PlainText)  # file names are never markup
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.info.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        head.addWidget(self.preview)
        head.addWidget(self.info, 1)
        lay.addLayout(head)
        self.banner = QLabel()
        self.banner.setTextFormat(Qt.PlainText)
        self.banner.setWordWrap(True)
        self.banner.setVisible(False)
        lay.addWidget(self.banner)
        cols = QHBoxLayout()
        cols.setSpacing(18)
        self.views = {"A": SlotView("model"), "B": SlotView("compared with")}
        cols.addWidget(self.views["A"], 1)
        cols.addWidget(self.views["B"], 1)
        lay.addLayout(cols)
        lay.addStretch(1)

    def show_nothing(self, compare: bool) -> None:
        self.preview.clear()
        self.info.setText("")
        self.banner.setVisible(False)
        self.views["A"].show_note("", "Select an image to see its top-k.")
        self.views["B"].setVisible(compare)
        self.views["B"].show_note("", "")
        for view in self.views.values():
            view.set_warning("")

    def show_entry(self, entry, shown: dict[str, Shown], mark: str | None, k: int, labels: Labels) -> None:
        """``shown``: slot name -> what to show (B absent: no compare); ``mark``: 'agree' / 'differ' / None."""
        self.preview.setPixmap(entry.thumb if entry.thumb is not None else badge_icon(None, None).pixmap(96))
        lines = [entry.path.name, str(entry.path.parent)]
        if entry.size:
            lines.append(f"{entry.size[0]} × {entry.size[1]} px")
            if entry.decoded:
                lines[-1] += f"  (JPEG decoded at 1/{round(entry.size[0] / entry.decoded[0])} scale)"
        if entry.error:
            lines.append(f"Cannot read this image: {entry.error}")
        self.info.setText("\n".join(lines))
        color = {"agree": AGREE, "differ": DIFFER}.get(mark)
        self.views["B"].setVisible("B" in shown)
        for slot, s in shown.items():
            view = self.views[slot]
            view.set_warning(s.warning)
            r = s.result
            if r is None or r.prediction is None:
                view.show_note(s.title, s.note or (r.error if r else "") or "No result.", s.error or bool(r))
                continue
            p = r.prediction
            decode = f"  ·  decode {entry.decode_ms:.1f} ms" if entry.decode_ms is not None else ""
            timing = (f"latency {p.latency_ms:.1f} ms (model run)  ·  "
                      f"preprocess {p.timings_ms['preprocess']:.1f} ms{decode}")
            view.show_result(r.model_name, r.preprocess, timing, labels_text(r, labels),
                             ranking(p.scores, result_topk(r, k, labels.names)), s.stale, color, r.reference,
                             r.tensor)
        self.banner.setVisible(color is not None)
        if color is not None:
            a, b = (result_topk(shown[s].result, 1, labels.names)[0] for s in ("A", "B"))
            self.banner.setText(f"✓  Same top-1: {_first(a.label)} (#{a.index})" if mark == "agree" else
                                f"≠  Different top-1: {_first(a.label)} (#{a.index}) vs {_first(b.label)} (#{b.index})")
            bg, fg = TINTS[mark]
            self.banner.setStyleSheet(f"background: {bg}; color: {fg}; border-left: 4px solid {color.name()}; "
                                      "padding: 4px 8px; font-weight: bold;")


def labels_text(r: SlotResult, labels: Labels) -> str:
    """Where the names come from, and why a user's file is not used when it does not fit."""
    n = r.prediction.scores.size
    if labels.names and fits(n, labels.names):
        return f"labels: {labels.file}"
    source = ("the model's own" if r.embedded and fits(n, r.embedded) else
              "ImageNet" if n in (1000, 1001) else "class numbers")
    if labels.names:
        return (f"labels: {source} ({labels.file} has {plural(len(labels.names), 'name')} for "
                f"{plural(n, 'output')}: not used)")
    return f"labels: {source}, {plural(n, 'output')}"


def _first(label: str) -> str:
    """'great white shark, white shark, man-eater, …' -> 'great white shark' (the bars show every synonym)."""
    return label.split(",")[0].strip() or label
