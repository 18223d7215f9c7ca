"""Widgets of the Classify tab: horizontal top-k bars, the thumbnail strip with its agreement badges, and a
model's column (its top-k and the input tensor it was fed).

Bars are drawn on an absolute 0..1 score scale over a light track, so a 0.03 score looks small next to a
0.9 one in the other model's column too; the score is printed beside every bar. Agreement is one pair of
colours everywhere (strip badges, the banner, the top-1 marker): green for the same top-1, amber for a
different one; red is kept for images that could not be read.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRect, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QIcon,
    QImage,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QSizePolicy,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from mbexplorer.core.overview import Ranked, Ranking, rank_text, zeros_text

AGREE = QColor("#16a34a")
DIFFER = QColor("#d97706")
ERROR = QColor("#dc2626")
BAR = QColor("#3b82f6")
BAR_STALE = QColor("#cbd5e1")  # results of the previous settings, shown until the new ones arrive
TRACK = QColor("#eef2f7")
MUTED = QColor("#6b7280")
TEXT = QColor("#111827")
BADGES = {"agree": (AGREE, "✓"), "differ": (DIFFER, "≠"), "error": (ERROR, "!")}

ICON = 96  # strip icon size: the thumbnails are made larger (the preview) and scaled down here
TENSOR_SHOWN = 128  # the largest side the input tensor's picture is shown at (a 96 px input shows whole)
ROW_H = 24


def menu_button(text: str, items: list) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setPopupMode(QToolButton.InstantPopup)
    menu = QMenu(button)
    for label, slot in items:
        menu.addAction(label, slot)
    button.setMenu(menu)
    return button


def elide(text: str, n: int = 26) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def to_pixmap(image) -> QPixmap:
    """An RGB PIL image (made on the worker) to a pixmap (only the UI thread may make one)."""
    data = image.tobytes("raw", "RGB")
    qimage = QImage(data, image.width, image.height, 3 * image.width, QImage.Format_RGB888)
    return QPixmap.fromImage(qimage.copy())  # copy: the QImage must not outlive ``data``


def array_pixmap(pixels) -> QPixmap:
    """An HxWx3 uint8 RGB array (made on the worker) to a pixmap."""
    h, w = pixels.shape[:2]
    data = pixels.tobytes()  # C order whatever the array's strides
    return QPixmap.fromImage(QImage(data, w, h, 3 * w, QImage.Format_RGB888).copy())


def badge_icon(thumb: QPixmap | None, badge: str | None) -> QIcon:
    """A strip icon: the thumbnail centred on a square, with a coloured badge in its top-right corner."""
    canvas = QPixmap(ICON, ICON)
    canvas.fill(Qt.transparent)
    p = QPainter(canvas)
    p.setRenderHint(QPainter.Antialiasing)
    p.setRenderHint(QPainter.SmoothPixmapTransform)
    if thumb is not None and not thumb.isNull():
        scaled = thumb.scaled(ICON, ICON, Qt.KeepAspectRatio, Qt.SmoothTransformation)
        p.drawPixmap((ICON - scaled.width()) // 2, (ICON - scaled.height()) // 2, scaled)
    else:
        p.setPen(QPen(QColor("#d1d5db"), 1, Qt.DashLine))
        p.setBrush(QColor("#f3f4f6"))
        p.drawRoundedRect(QRect(8, 8, ICON - 16, ICON - 16), 6, 6)
    if badge in BADGES:
        color, glyph = BADGES[badge]
        r = QRect(ICON - 26, 2, 24, 24)
        p.setPen(QPen(QColor("white"), 2))
        p.setBrush(color)
        p.drawEllipse(r)
        f = QFont(p.font())
        f.setBold(True)
        f.setPixelSize(15)
        p.setFont(f)
        p.setPen(QColor("white"))
        p.drawText(r, Qt.AlignCenter, glyph)
    p.end()
    icon = QIcon(canvas)
    icon.addPixmap(canvas, QIcon.Selected)  # the selection tint would grey the badge's colour out
    return icon


class ThumbStrip(QListWidget):
    """One scrolling row of thumbnails, file names under them.

    Every item gets its fixed size hint (and a placeholder icon) when it is made. With uniform item sizes the
    view measures the first item once, at its first layout, and keeps that size: an item added while the
    strip is visible was measured before its icon existed (a ~14 px line of text), which clipped every
    thumbnail to a sliver and left clicks on the picture outside any item.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setViewMode(QListView.IconMode)
        self.setFlow(QListView.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Static)
        # icon mode turns on dropping onto the list; files dropped here belong to the window's drop handler
        self.setDragDropMode(QAbstractItemView.NoDragDrop)
        self.setAcceptDrops(False)
        self.setResizeMode(QListView.Adjust)
        self.setIconSize(QSize(ICON, ICON))
        self.item_size = QSize(ICON + 24, ICON + self.fontMetrics().height() + 10)  # icon, name, margins
        self.setGridSize(self.item_size + QSize(4, 4))
        self.setUniformItemSizes(True)  # a folder of thousands lays out without measuring each item
        self.setWordWrap(False)
        self.setTextElideMode(Qt.ElideMiddle)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.setFixedHeight(self.gridSize().height() + 2 * self.frameWidth()
                            + self.horizontalScrollBar().sizeHint().height() + 4)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.placeholder = badge_icon(None, None)

    def add(self, name: str) -> QListWidgetItem:
        """A new item, already at its final size (see the class's note)."""
        item = QListWidgetItem(self.placeholder, name)
        item.setSizeHint(self.item_size)
        self.addItem(item)
        return item


class TopKBars(QWidget):
    """Rank, label, output index, a bar and the score, one row per class. Tied scores share a rank marked "="
    (their order is by output index only); a zero-score tail is one line ("996 more classes at 0.000")."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list = []  # TopK
        self.entries: list[Ranked] = []  # the rows with their rank and tie
        self.footer = ""  # the zero-score classes not listed
        self.stale = False
        self.mark: QColor | None = None  # colour of the top-1 marker (compare mode)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setMouseTracking(True)

    def set_rows(self, ranked: Ranking | None, stale: bool = False, mark: QColor | None = None) -> None:
        ranked = ranked or Ranking([], 0)
        self.entries, self.stale, self.mark = list(ranked.entries), stale, mark
        self.rows = [e.top for e in self.entries]
        self.footer = zeros_text(ranked)
        self.setFixedHeight(self._lines() * ROW_H + 4)
        self.updateGeometry()
        self.update()

    def _lines(self) -> int:
        return max(1, len(self.rows) + bool(self.footer))

    def sizeHint(self) -> QSize:
        return QSize(360, self._lines() * ROW_H + 4)

    def text(self) -> str:
        """The rows as text (for copying and tests)."""
        lines = [f"{rank_text(e)} {e.top.label}  #{e.top.index}  {e.top.score:.3f}" for e in self.entries]
        return "\n".join(lines + ([self.footer] if self.footer else []))

    def _columns(self) -> tuple[int, int, int, int, int]:
        fm = QFontMetrics(self.font())
        w = self.width()
        rank = fm.horizontalAdvance("20.") + 8
        index = fm.horizontalAdvance("#1000") + 10
        score = fm.horizontalAdvance("0.000") + 12
        label = max(90, min(280, int(0.42 * (w - rank - index - score))))  # wider only stretches the bars
        bar = max(40, w - rank - label - index - score - 8)
        return rank, label, index, bar, score

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        rank_w, label_w, index_w, bar_w, score_w = self._columns()
        for i, e in enumerate(self.entries):
            t = e.top
            y = 2 + i * ROW_H
            x = 0
            if i == 0 and self.mark is not None:
                p.fillRect(QRect(0, y + 3, 4, ROW_H - 6), self.mark)
            p.setPen(MUTED)
            p.drawText(QRect(x, y, rank_w - 6, ROW_H), Qt.AlignRight | Qt.AlignVCenter, rank_text(e))
            x += rank_w
            p.setPen(MUTED if self.stale else TEXT)
            f = QFont(self.font())
            f.setBold(i == 0)
            p.setFont(f)
            label = QFontMetrics(f).elidedText(t.label, Qt.ElideRight, label_w - 6)
            p.drawText(QRect(x, y, label_w - 6, ROW_H), Qt.AlignLeft | Qt.AlignVCenter, label)
            p.setFont(self.font())
            x += label_w
            p.setPen(MUTED)
            p.drawText(QRect(x, y, index_w - 8, ROW_H), Qt.AlignRight | Qt.AlignVCenter, f"#{t.index}")
            x += index_w
            track = QRect(x, y + 5, bar_w, ROW_H - 10)
            path = QPainterPath()
            path.addRoundedRect(track, 3, 3)
            p.fillPath(path, TRACK)
            filled = QRect(track)
            filled.setWidth(max(2, round(bar_w * max(0.0, min(1.0, t.score)))))
            path = QPainterPath()
            path.addRoundedRect(filled, 3, 3)
            p.fillPath(path, BAR_STALE if self.stale else BAR)
            x += bar_w + 8
            p.setPen(MUTED if self.stale else TEXT)
            p.drawText(QRect(x, y, score_w, ROW_H), Qt.AlignLeft | Qt.AlignVCenter, f"{t.score:.3f}")
        if self.footer:
            f = QFont(self.font())
            f.setItalic(True)
            p.setFont(f)
            p.setPen(MUTED)
            y = 2 + len(self.entries) * ROW_H
            p.drawText(QRect(rank_w, y, self.width() - rank_w, ROW_H), Qt.AlignLeft | Qt.AlignVCenter, self.footer)
        p.end()

    def event(self, e) -> bool:
        # the full label (elided in the row), its index and score, for the row under the pointer
        if e.type() == QEvent.ToolTip:
            i = int((e.pos().y() - 2) // ROW_H)
            if 0 <= i < len(self.entries):
                t = self.entries[i].top
                tie = "\ntied: other classes have exactly this score, listed by output index" \
                    if self.entries[i].tied else ""
                QToolTip.showText(e.globalPos(), f"{t.label}\noutput index {t.index}\nscore {t.score:.5f}{tie}", self)
            else:
                QToolTip.hideText()
            return True
        return super().event(e)


class SlotView(QWidget):
    """One model's column: its name, what it is, the preprocessing, timings and the top-k bars."""

    def __init__(self, role: str, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        self.role = QLabel(role)
        self.role.setStyleSheet("color: #6b7280; font-size: 11px; text-transform: uppercase;")
        self.title = _plain(bold=True)
        self.preprocess = _plain(wrap=True, style="color: #4b5563;")
        self.preprocess.setToolTip("The preprocessing these scores were computed with")
        self.reference = _plain(wrap=True, style="color: #6b7280; font-size: 11px;")
        self.reference.setToolTip("The pipeline the preset reproduces, to the bit")
        self.timing = _plain(wrap=True, style="color: #4b5563;")  # wraps: two columns fit a 1280 px screen
        self.warning = _plain(wrap=True, style="background: #fef3c7; color: #78350f; padding: 2px 6px; "
                                               "border-left: 4px solid #d97706; font-weight: bold;")
        self.warning.setVisible(False)
        self.labels = _plain(wrap=True, style="color: #6b7280;")
        self.note = _plain(wrap=True, style="color: #6b7280; font-style: italic;")
        self.bars = TopKBars()
        # the tensor the model saw: a small picture of it and its shape, type and range
        self.tensor_box = QWidget()
        row = QHBoxLayout(self.tensor_box)
        row.setContentsMargins(0, 4, 0, 0)
        self.tensor_image = QLabel()
        self.tensor_image.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.tensor_image.setToolTip("The input tensor this model was fed, turned back into pixels to show it")
        self.tensor_text = _plain(wrap=True, style="color: #4b5563;")
        self.tensor_text.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        row.addWidget(self.tensor_image)
        row.addWidget(self.tensor_text, 1)
        self.tensor_box.setVisible(False)
        # the top-k right under the title: with two models side by side on a 768 px high screen both show
        # without scrolling; how they were computed follows
        for w in (self.role, self.title, self.warning, self.bars, self.note, self.preprocess, self.reference,
                  self.timing, self.labels, self.tensor_box):
            lay.addWidget(w)
        lay.addStretch(1)

    def show_result(self, title: str, preprocess: str, timing: str, labels: str, rows: Ranking,
                    stale: bool = False, mark: QColor | None = None, reference: str = "", tensor=None) -> None:
        """``rows``: the top-k as ranked; ``tensor``: the result's ``TensorView`` (None: nothing to show)."""
        self.title.setText(title + ("  (updating…)" if stale else ""))
        self.preprocess.setText(preprocess)
        self.reference.setText(f"reproduces {reference}" if reference else "")
        self.reference.setVisible(bool(reference))
        self.timing.setText(timing)
        self.labels.setText(labels)
        self.bars.set_rows(rows, stale, mark)
        self.bars.setVisible(True)
        self.show_tensor(tensor)
        self.note.setVisible(False)

    def set_warning(self, text: str) -> None:
        """A warning about the model itself (random weights), whatever else the column shows."""
        self.warning.setText(text)
        self.warning.setVisible(bool(text))

    def show_tensor(self, view) -> None:
        if view is None:
            self.tensor_image.clear()
            self.tensor_text.setText("")
            self.tensor_box.setVisible(False)
            return
        pixmap = array_pixmap(view.image)
        if max(pixmap.width(), pixmap.height()) > TENSOR_SHOWN:
            pixmap = pixmap.scaled(TENSOR_SHOWN, TENSOR_SHOWN, Qt.KeepAspectRatio, Qt.SmoothTransformation)
        self.tensor_image.setPixmap(pixmap)
        shape = "×".join(str(d) for d in view.shape)
        how = {"uint8": "shown as is: raw pixels", "int8": "shown + 128 (raw pixels - 128)"}.get(
            view.dtype, "shown de-normalised: (x · std + mean) / scale")
        self.tensor_text.setText(f"model input {shape} {view.dtype}\nmin {view.min:.4g}  ·  max {view.max:.4g}\n{how}")
        self.tensor_box.setVisible(True)

    def show_note(self, title: str, note: str, error: bool = False) -> None:
        """No result to show: why (classifying, no model, an error)."""
        self.title.setText(title)
        for w in (self.preprocess, self.reference, self.timing, self.labels):
            w.setText("")
        self.reference.setVisible(False)
        self.show_tensor(None)
        self.bars.set_rows(None)
        self.bars.setVisible(False)
        self.note.setText(note)
        self.note.setStyleSheet("color: #b91c1c;" if error else "color: #6b7280; font-style: italic;")
        self.note.setVisible(True)


def _plain(bold: bool = False, wrap: bool = False, style: str = "") -> QLabel:
    lab = QLabel()
    lab.setTextFormat(Qt.PlainText)  # model names, labels and messages come from files: never markup
    lab.setWordWrap(wrap)
    lab.setTextInteractionFlags(Qt.TextSelectableByMouse)
    if bold:
        f = lab.font()
        f.setBold(True)
        lab.setFont(f)
    if style:
        lab.setStyleSheet(style)
    return lab
