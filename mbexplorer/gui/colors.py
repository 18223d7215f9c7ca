"""Colours of the graph view: op families (from resources/op_colors.json) and the overlay ramp.

The ramp is a light-to-dark sequential scale (ColorBrewer YlOrRd-like) so "more" always reads as
"darker and warmer" and a zero-cost block stays nearly white; text colour is picked per fill so labels
stay readable on every step of the ramp.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files

from PySide6.QtGui import QColor, QLinearGradient

# Op type -> family; anything unlisted is "other". Conv is split into depthwise at lookup time.
_FAMILY_OF = {
    "Conv": "conv", "ConvInteger": "conv", "QLinearConv": "conv", "ConvTranspose": "conv",
    "Gemm": "fc", "MatMul": "fc", "MatMulInteger": "fc", "QGemm": "fc",
    "BatchNormalization": "norm", "InstanceNormalization": "norm", "LayerNormalization": "norm",
    "Relu": "activation", "Clip": "activation", "HardSwish": "activation", "HardSigmoid": "activation",
    "Sigmoid": "activation", "LeakyRelu": "activation", "PRelu": "activation", "Tanh": "activation",
    "Elu": "activation", "Selu": "activation", "Mish": "activation", "Gelu": "activation",
    "Softmax": "activation", "LogSoftmax": "activation",
    "GlobalAveragePool": "pool", "AveragePool": "pool", "MaxPool": "pool", "GlobalMaxPool": "pool",
    "ReduceMean": "pool",
    "Add": "eltwise", "Sub": "eltwise", "Mul": "eltwise", "Div": "eltwise", "Sum": "eltwise",
    "QuantizeLinear": "quant", "DequantizeLinear": "quant", "DynamicQuantizeLinear": "quant",
    "Reshape": "shape", "Flatten": "shape", "Squeeze": "shape", "Unsqueeze": "shape", "Transpose": "shape",
    "Shape": "shape", "Gather": "shape", "Concat": "shape", "Slice": "shape", "Identity": "shape",
    "Dropout": "shape", "Cast": "shape", "Constant": "shape", "Pad": "shape", "Split": "shape",
}

FAMILY_TITLES = {
    "conv": "convolution", "depthwise": "depthwise conv", "fc": "fully connected", "norm": "normalization",
    "activation": "activation", "pool": "pooling", "eltwise": "element-wise", "quant": "quantize",
    "shape": "shape / copy", "other": "other",
}

# Sequential ramp for overlays, light (0) to dark (max).
RAMP = ("#fff7d6", "#fee391", "#fec44f", "#fe9929", "#ec7014", "#cc4c02", "#8c2d04")


@lru_cache(maxsize=1)
def op_colors() -> dict[str, str]:
    raw = json.loads(files("mbexplorer.resources").joinpath("op_colors.json").read_text(encoding="utf-8"))
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def op_family(op_type: str, depthwise: bool = False) -> str:
    fam = _FAMILY_OF.get(op_type, "other")
    return "depthwise" if fam == "conv" and depthwise else fam


def family_color(family: str) -> QColor:
    colors = op_colors()
    return QColor(colors.get(family, colors.get("other", "#888888")))


def ramp_color(t: float) -> QColor:
    """t in 0..1 -> a colour interpolated along RAMP."""
    t = 0.0 if t != t else max(0.0, min(1.0, t))  # NaN-safe clamp
    pos = t * (len(RAMP) - 1)
    i = min(int(pos), len(RAMP) - 2)
    f = pos - i
    a, b = QColor(RAMP[i]), QColor(RAMP[i + 1])
    return QColor(round(a.red() + (b.red() - a.red()) * f), round(a.green() + (b.green() - a.green()) * f),
                  round(a.blue() + (b.blue() - a.blue()) * f))


def ramp_gradient(x0: float, y0: float, x1: float, y1: float) -> QLinearGradient:
    g = QLinearGradient(x0, y0, x1, y1)
    for i, c in enumerate(RAMP):
        g.setColorAt(i / (len(RAMP) - 1), QColor(c))
    return g


def text_color_on(fill: QColor) -> QColor:
    """Black or white, whichever contrasts more with ``fill`` (WCAG relative luminance)."""
    def lin(c: float) -> float:
        c /= 255.0
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    lum = 0.2126 * lin(fill.red()) + 0.7152 * lin(fill.green()) + 0.0722 * lin(fill.blue())
    return QColor("#1b1b1b") if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else QColor("#ffffff")


# Chrome of the graph view, kept together so the look can be tuned in one place.
BACKGROUND = QColor("#f6f7f9")
EDGE = QColor("#6b7280")
RESIDUAL = QColor("#2563eb")
SELECTION = QColor("#1d4ed8")
BOX_BORDER = QColor("#4b5563")
