"""File ▸ New from builder: pick a MobileNet family and its knobs; the window builds it on the worker."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
)

from mbexplorer.core.families import FAMILIES, RESOLUTION_RANGE, ROUNDINGS, WIDTH_RANGE

FAMILY_TITLES = {
    "mobilenet_v1": "MobileNetV1",
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3_large": "MobileNetV3-Large",
    "mobilenet_v3_small": "MobileNetV3-Small",
}
ROUNDING_TITLES = {
    "torchvision": "torchvision / timm (make_divisible 8)",
    "paddle": "PaddleClas (int(c × width))",
    "tfslim": "TF-slim / V3 paper (expansion from scaled input)",
}


class BuilderDialog(QDialog):
    def __init__(self, parent=None, values: dict | None = None):
        super().__init__(parent)
        self.setWindowTitle("New model from builder")
        lay = QVBoxLayout(self)
        lay.setSpacing(10)
        intro = QLabel("Build a MobileNet with random weights to study its structure and costs.")
        intro.setWordWrap(True)
        intro.setStyleSheet("color: #4b5563;")
        lay.addWidget(intro)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignRight)
        form.setHorizontalSpacing(12)

        self.family = QComboBox()
        for f in FAMILIES:
            self.family.addItem(FAMILY_TITLES.get(f, f), f)
        self.width_spin = QDoubleSpinBox()
        self.width_spin.setRange(*WIDTH_RANGE)
        self.width_spin.setSingleStep(0.05)
        self.width_spin.setDecimals(2)
        self.width_spin.setValue(1.0)
        self.width_spin.setPrefix("× ")
        self.resolution = QSpinBox()
        self.resolution.setRange(*RESOLUTION_RANGE)
        self.resolution.setSingleStep(16)
        self.resolution.setValue(224)
        self.resolution.setSuffix(" px")
        self.classes = QSpinBox()
        self.classes.setRange(1, 100_000)
        self.classes.setValue(1000)
        self.classes.setGroupSeparatorShown(True)
        self.fold_bn = QCheckBox("Fold BatchNorm into the convolutions")
        self.rounding = QComboBox()
        for r in ROUNDINGS:
            self.rounding.addItem(ROUNDING_TITLES.get(r, r), r)
        self.rounding.setToolTip("How channel counts are rounded at widths other than 1.0")

        form.addRow("Family:", self.family)
        form.addRow("Width multiplier:", self.width_spin)
        form.addRow("Input resolution:", self.resolution)
        form.addRow("Classes:", self.classes)
        form.addRow("Channel rounding:", self.rounding)
        form.addRow("", self.fold_bn)
        lay.addLayout(form)

        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Build")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        if values:
            self.set_values(values)

    def values(self) -> dict:
        """Keyword arguments of ``analysis.build_job``."""
        return {
            "family": self.family.currentData(),
            "width": round(self.width_spin.value(), 2),
            "resolution": self.resolution.value(),
            "num_classes": self.classes.value(),
            "fold_bn": self.fold_bn.isChecked(),
            "rounding": self.rounding.currentData(),
        }

    def set_values(self, v: dict) -> None:
        if "family" in v:
            self.family.setCurrentIndex(max(0, self.family.findData(v["family"])))
        if "width" in v:
            self.width_spin.setValue(float(v["width"]))
        if "resolution" in v:
            self.resolution.setValue(int(v["resolution"]))
        if "num_classes" in v:
            self.classes.setValue(int(v["num_classes"]))
        if "fold_bn" in v:
            self.fold_bn.setChecked(bool(v["fold_bn"]))
        if "rounding" in v:
            self.rounding.setCurrentIndex(max(0, self.rounding.findData(v["rounding"])))
