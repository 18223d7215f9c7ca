"""Classify ▸ Preset ▸ custom…: every step of the preprocessing, starting from the preset shown."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
)

from mbexplorer.core.preprocess import Preprocess
from mbexplorer.core.presets_info import ALPHA_TITLES, DECODER_TITLES, INTERPOLATION_TITLES

RESIZES = {"shorter": "shorter side, then centre crop (torchvision, timm, PaddleClas)",
           "central_fraction": "central crop, then resize (TF-slim)",
           "whole": "the whole image (Keras, TF.js, Coral, TFLite)"}


def _numbers(text: str) -> list[float] | None:
    """'0.485, 0.456, 0.406', '0.5' or '1/255' as floats; None when it is not that."""
    out = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        try:
            num, _, den = part.partition("/")
            out.append(float(num) / float(den) if den else float(num))
        except (ValueError, ZeroDivisionError):
            return None
    return out


def _choices(titles: dict[str, str], current: str) -> QComboBox:
    """A combo of readable titles carrying the option's value; ``current`` selected."""
    box = QComboBox()
    for key, title in titles.items():
        box.addItem(title, key)
    box.setCurrentIndex(max(0, box.findData(current)))
    return box


class PreprocessDialog(QDialog):
    def __init__(self, start: Preprocess, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Custom preprocessing")
        lay = QVBoxLayout(self)
        intro = QLabel(f"Starting from {start.name}. The input size, layout and type follow the model.")
        intro.setWordWrap(True)
        intro.setStyleSheet("color: #4b5563;")
        lay.addWidget(intro)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignRight)
        self.resize_mode = _choices(RESIZES, start.resize)
        self.crop = QDoubleSpinBox()
        self.crop.setRange(0.05, 1.0)
        self.crop.setDecimals(4)
        self.crop.setSingleStep(0.0125)
        self.crop.setValue(start.crop_ratio)
        self.crop.setToolTip("shorter side: crop / resized side (224/256 = 0.875); central crop: the fraction kept")
        self.decoder = _choices(DECODER_TITLES, start.decoder)
        self.decoder.setToolTip("How the file becomes pixels: each reference pipeline decodes its own way")
        self.interpolation = _choices(INTERPOLATION_TITLES, start.interpolation)
        self.alpha = _choices(ALPHA_TITLES, start.alpha)
        self.alpha.setToolTip("Transparent pictures: every reference loader drops alpha")
        self.scale = QLineEdit(f"{start.scale:.10g}")
        self.scale.setToolTip("Pixel values (0-255) are multiplied by this first: 1/255, 1/127.5, …")
        self.mean = QLineEdit(", ".join(f"{v:.6g}" for v in start.mean))
        self.std = QLineEdit(", ".join(f"{v:.6g}" for v in start.std))
        self.channel_order = QComboBox()
        self.channel_order.addItems(["RGB", "BGR"])
        self.channel_order.setCurrentText(start.channel_order)
        form.addRow("Decoder:", self.decoder)
        form.addRow("Transparency:", self.alpha)
        form.addRow("Resize:", self.resize_mode)
        form.addRow("Crop:", self.crop)
        form.addRow("Interpolation:", self.interpolation)
        form.addRow("Scale:", self.scale)
        form.addRow("Mean:", self.mean)
        form.addRow("Std:", self.std)
        form.addRow("Channel order:", self.channel_order)
        lay.addLayout(form)
        if start.dtype in ("uint8", "int8"):
            note = QLabel("This model takes integer pixels: scale, mean and std do not apply to it.")
            note.setStyleSheet("color: #6b7280;")
            lay.addWidget(note)
        # the steps without a control here (timm's rounding of the resize, TF's uint8 cast) stay the preset's
        self.kept = {"sizing": start.sizing, "truncate_uint8": start.truncate_uint8}
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #b91c1c;")
        lay.addWidget(self.problem)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        for edit in (self.scale, self.mean, self.std):
            edit.textChanged.connect(self._check)
        self._check()

    def _check(self) -> None:
        problem = ""
        scale, mean, std = (_numbers(e.text()) for e in (self.scale, self.mean, self.std))
        if scale is None or len(scale) != 1 or scale[0] <= 0:
            problem = "Scale: one positive number, e.g. 1/255."
        elif mean is None or len(mean) not in (1, 3):
            problem = "Mean: one or three numbers."
        elif std is None or len(std) not in (1, 3) or min(std) <= 0:
            problem = "Std: one or three positive numbers."
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(not problem)

    def options(self) -> dict:
        """The choices as ``Preprocess`` fields (for ``preprocess.for_model(..., **options)``)."""
        mean, std = _numbers(self.mean.text()), _numbers(self.std.text())
        return {**self.kept, "decoder": self.decoder.currentData(), "alpha": self.alpha.currentData(),
                "resize": self.resize_mode.currentData(), "crop_ratio": round(self.crop.value(), 6),
                "interpolation": self.interpolation.currentData(), "scale": _numbers(self.scale.text())[0],
                "mean": tuple(mean * 3 if len(mean) == 1 else mean), "std": tuple(std * 3 if len(std) == 1 else std),
                "channel_order": self.channel_order.currentText()}
