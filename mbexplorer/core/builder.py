"""The MobileNet builder: V1, V2, V3-Large and V3-Small as ONNX graphs.

Architectures follow the reference implementations so that costs and imported weights line up:
torchvision for V2 / V3 (``mobilenetv2.py``, ``mobilenetv3.py``), timm's ``mobilenetv1_100`` for V1
(the paper's layer table). Parameters are named as in those projects' state dicts (``features.3.conv.1.0.weight``,
``blocks.1.0.conv_dw.weight``) so that later importers map weights by name, not by position.

Channel rounding: ``torchvision`` rounds ``c * width`` with make_divisible(8) (also timm and TF-slim for V1/V2);
``paddle`` truncates, ``int(c * width)``, as PaddleClas does. The two agree at width 1.0. ``tfslim`` differs
from ``torchvision`` only for V3, where TF-slim's ``mobilenet_v3.py`` (the model behind the V3 paper's
figures) sizes each expansion as make_divisible(scaled input channels x expansion factor), squeeze-excite as
make_divisible(expansion / 4), and keeps the last 1280 / 1024 layer unscaled below width 1.0 (as Keras does),
where torchvision scales the expansion and the last layer directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from .errors import BuildError
from .families import FAMILIES, RESOLUTION_RANGE, ROUNDINGS, WIDTH_RANGE
from .model import LoadedModel, from_proto
from .onnx_write import GraphWriter

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: nearest multiple of ``divisor``, never more than 10 % below ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@dataclass(frozen=True)
class BuildSpec:
    family: str
    width: float = 1.0
    resolution: int = 224
    num_classes: int = 1000
    fold_bn: bool = False
    rounding: str = "torchvision"
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.family}_{self.width:g}_{self.resolution}"

    def channels(self, c: float) -> int:
        if self.rounding == "paddle":
            return max(1, int(c * self.width))
        return make_divisible(c * self.width)

    def validate(self) -> None:
        if self.family not in FAMILIES:
            raise BuildError(f"unknown family '{self.family}'; choose one of {', '.join(FAMILIES)}.")
        if not WIDTH_RANGE[0] <= self.width <= WIDTH_RANGE[1]:
            raise BuildError(f"width {self.width:g} is outside {WIDTH_RANGE[0]}...{WIDTH_RANGE[1]}.")
        if not RESOLUTION_RANGE[0] <= self.resolution <= RESOLUTION_RANGE[1]:
            raise BuildError(f"resolution {self.resolution} is outside {RESOLUTION_RANGE[0]}...{RESOLUTION_RANGE[1]}.")
        if self.num_classes < 1:
            raise BuildError("the class count must be at least 1.")
        if self.rounding not in ROUNDINGS:
            raise BuildError(f"unknown channel rounding '{self.rounding}'; choose one of {', '.join(ROUNDINGS)}.")


class _Builder(GraphWriter):
    """Writes the layers; takes a parameter from ``weights`` when given, else draws it. Node and parameter
    names come from the architecture (state-dict names), unique by construction."""

    def __init__(self, spec: BuildSpec, weights: Mapping[str, np.ndarray]):
        super().__init__()
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        self.weights = weights
        self.used: set[str] = set()
        self.shapes: dict[str, tuple[int, ...]] = {}  # every parameter the architecture has, by name

    # parameters ------------------------------------------------------------------------------
    def param(self, name: str, shape: tuple[int, ...], draw: Callable[[tuple[int, ...]], np.ndarray]) -> np.ndarray:
        self.shapes[name] = shape
        if name in self.weights:
            value = np.asarray(self.weights[name], dtype=np.float32)
            if value.shape != shape:
                raise BuildError(f"weight '{name}' has shape {value.shape}; this architecture needs {shape}.")
            self.used.add(name)
            return value
        return draw(shape).astype(np.float32)

    def _he(self, shape):  # variance-preserving, so random models give finite, varied outputs
        fan_in = int(np.prod(shape[1:]))
        return self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)

    def const(self, name: str, value) -> str:
        if name not in self.inits:
            self.add_initializer(name, np.asarray(value, dtype=np.float32))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        out = f"{name}.out"
        self.add_node(op, inputs, [out], name, **attrs)
        return out

    # layers ----------------------------------------------------------------------------------
    def conv(self, x: str, name: str, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
             bias: bool = False) -> str:
        w = self.param(f"{name}.weight", (cout, cin // groups, k, k), self._he)
        inputs = [x, self.add_initializer(f"{name}.weight", w)]
        if bias:
            b = self.param(f"{name}.bias", (cout,), lambda s: self.rng.standard_normal(s) * 0.01)
            inputs.append(self.add_initializer(f"{name}.bias", b))
        pad = (k - 1) // 2
        return self.node("Conv", inputs, name, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad, pad, pad, pad], group=groups)

    def conv_bn(self, x: str, conv_name: str, bn_name: str, cin: int, cout: int, k: int, stride: int = 1,
                groups: int = 1, eps: float = 1e-5) -> str:
        """Conv (no bias) + BatchNormalization, or one Conv with the BN folded in when ``fold_bn``."""
        w = self.param(f"{conv_name}.weight", (cout, cin // groups, k, k), self._he)
        gamma = self.param(f"{bn_name}.weight", (cout,), lambda s: self.rng.uniform(0.5, 1.0, s))
        beta = self.param(f"{bn_name}.bias", (cout,), lambda s: self.rng.standard_normal(s) * 0.1)
        mean = self.param(f"{bn_name}.running_mean", (cout,), lambda s: self.rng.standard_normal(s) * 0.1)
        var = self.param(f"{bn_name}.running_var", (cout,), lambda s: self.rng.uniform(0.5, 1.5, s))
        pad = (k - 1) // 2
        conv_attrs = dict(kernel_shape=[k, k], strides=[stride, stride], pads=[pad, pad, pad, pad], group=groups)
        if self.spec.fold_bn:
            scale = gamma / np.sqrt(var + eps)
            wf = (w * scale[:, None, None, None]).astype(np.float32)
            bf = (beta - mean * scale).astype(np.float32)
            return self.node("Conv", [x, self.add_initializer(f"{conv_name}.weight", wf),
                                      self.add_initializer(f"{conv_name}.bias", bf)], conv_name, **conv_attrs)
        y = self.node("Conv", [x, self.add_initializer(f"{conv_name}.weight", w)], conv_name, **conv_attrs)
        return self.node(
            "BatchNormalization",
            [y] + [self.add_initializer(f"{bn_name}.{p}", v) for p, v in
                   (("weight", gamma), ("bias", beta), ("running_mean", mean), ("running_var", var))],
            bn_name, epsilon=eps)

    def act(self, x: str, name: str, kind: str | None) -> str:
        if kind is None:
            return x
        if kind == "relu":
            return self.node("Relu", [x], name)
        if kind == "relu6":
            return self.node("Clip", [x, self.const("const.zero", 0.0), self.const("const.six", 6.0)], name)
        if kind == "hswish":
            return self.node("HardSwish", [x], name)
        if kind == "hsigmoid":  # torch.nn.Hardsigmoid: relu6(x + 3) / 6
            return self.node("HardSigmoid", [x], name, alpha=1.0 / 6.0, beta=0.5)
        raise AssertionError(kind)

    def cna(self, x: str, prefix: str, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
            act: str | None = "relu", eps: float = 1e-5) -> str:
        """torchvision's Conv2dNormActivation: ``prefix.0`` conv, ``prefix.1`` BN, ``prefix.2`` activation."""
        y = self.conv_bn(x, f"{prefix}.0", f"{prefix}.1", cin, cout, k, stride, groups, eps)
        return self.act(y, f"{prefix}.2", act)

    def linear(self, x: str, name: str, cin: int, cout: int) -> str:
        w = self.param(f"{name}.weight", (cout, cin), lambda s: self.rng.standard_normal(s) * np.sqrt(1.0 / cin))
        b = self.param(f"{name}.bias", (cout,), lambda s: np.zeros(s))
        inputs = [x, self.add_initializer(f"{name}.weight", w), self.add_initializer(f"{name}.bias", b)]
        return self.node("Gemm", inputs, name, transB=1)

    def pool_flatten(self, x: str, name: str) -> str:
        y = self.node("GlobalAveragePool", [x], name)
        return self.node("Flatten", [y], f"{name}.flatten", axis=1)


# ------------------------------------------------------------------------------------------------
# Architectures


def _v1(g: _Builder, x: str) -> str:
    s = g.spec
    c = s.channels
    cin = c(32)
    # ReLU6 as in timm's mobilenetv1_* and TF-slim / Keras (PaddleClas uses ReLU; costs are the same)
    x = g.act(g.conv_bn(x, "conv_stem", "bn1", 3, cin, 3, 2), "act1", "relu6")
    # timm mobilenetv1_100 stages: (out channels, stride) per depthwise-separable block
    stages = [[(64, 1)], [(128, 2), (128, 1)], [(256, 2), (256, 1)], [(512, 2)] + [(512, 1)] * 5,
              [(1024, 2), (1024, 1)]]
    for si, stage in enumerate(stages):
        for bi, (cout, stride) in enumerate(stage):
            p = f"blocks.{si}.{bi}"
            cout = c(cout)
            x = g.act(g.conv_bn(x, f"{p}.conv_dw", f"{p}.bn1", cin, cin, 3, stride, groups=cin), f"{p}.act1", "relu6")
            x = g.act(g.conv_bn(x, f"{p}.conv_pw", f"{p}.bn2", cin, cout, 1), f"{p}.act2", "relu6")
            cin = cout
    x = g.pool_flatten(x, "global_pool")
    return g.linear(x, "classifier", cin, s.num_classes)


def _v2(g: _Builder, x: str) -> str:
    s = g.spec
    c = s.channels
    cin = c(32)
    if s.rounding == "paddle":
        last = int(1280 * s.width) if s.width > 1.0 else 1280
    else:
        last = make_divisible(1280 * max(1.0, s.width))
    x = g.cna(x, "features.0", 3, cin, 3, 2, act="relu6")
    setting = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1)]
    idx = 1
    for t, ch, n, stride0 in setting:
        cout = c(ch)
        for i in range(n):
            stride = stride0 if i == 0 else 1
            hidden = int(round(cin * t))
            p = f"features.{idx}.conv"
            y, j = x, 0
            if t != 1:
                y = g.cna(y, f"{p}.0", cin, hidden, 1, act="relu6")
                j = 1
            y = g.cna(y, f"{p}.{j}", hidden, hidden, 3, stride, groups=hidden, act="relu6")
            y = g.conv_bn(y, f"{p}.{j + 1}", f"{p}.{j + 2}", hidden, cout, 1)
            if stride == 1 and cin == cout:
                y = g.node("Add", [x, y], f"features.{idx}.add")
            x, cin = y, cout
            idx += 1
    x = g.cna(x, f"features.{idx}", cin, last, 1, act="relu6")
    x = g.pool_flatten(x, "avgpool")
    return g.linear(x, "classifier.1", last, s.num_classes)


# (input, kernel, expanded, out, use_se, activation, stride) as in torchvision's _mobilenet_v3_conf
_V3_LARGE = [
    (16, 3, 16, 16, False, "relu", 1), (16, 3, 64, 24, False, "relu", 2), (24, 3, 72, 24, False, "relu", 1),
    (24, 5, 72, 40, True, "relu", 2), (40, 5, 120, 40, True, "relu", 1), (40, 5, 120, 40, True, "relu", 1),
    (40, 3, 240, 80, False, "hswish", 2), (80, 3, 200, 80, False, "hswish", 1),
    (80, 3, 184, 80, False, "hswish", 1), (80, 3, 184, 80, False, "hswish", 1),
    (80, 3, 480, 112, True, "hswish", 1), (112, 3, 672, 112, True, "hswish", 1),
    (112, 5, 672, 160, True, "hswish", 2), (160, 5, 960, 160, True, "hswish", 1),
    (160, 5, 960, 160, True, "hswish", 1),
]
_V3_SMALL = [
    (16, 3, 16, 16, True, "relu", 2), (16, 3, 72, 24, False, "relu", 2), (24, 3, 88, 24, False, "relu", 1),
    (24, 5, 96, 40, True, "hswish", 2), (40, 5, 240, 40, True, "hswish", 1), (40, 5, 240, 40, True, "hswish", 1),
    (40, 5, 120, 48, True, "hswish", 1), (48, 5, 144, 48, True, "hswish", 1), (48, 5, 288, 96, True, "hswish", 2),
    (96, 5, 576, 96, True, "hswish", 1), (96, 5, 576, 96, True, "hswish", 1),
]


def _v3(g: _Builder, x: str, large: bool) -> str:
    s = g.spec
    c = s.channels
    setting = _V3_LARGE if large else _V3_SMALL
    eps = 1e-3  # torchvision's MobileNetV3 uses BatchNorm2d(eps=0.001)
    first = c(setting[0][0])
    x = g.cna(x, "features.0", 3, first, 3, 2, act="hswish", eps=eps)
    tfslim = s.rounding == "tfslim"
    for i, (cin, k, exp, cout, se, act, stride) in enumerate(setting, start=1):
        factor = exp / cin  # TF-slim's expansion factor (ef), e.g. 184 / 80
        cin, cout = c(cin), c(cout)
        exp = make_divisible(cin * factor) if tfslim else c(exp)
        p = f"features.{i}.block"
        y, j = x, 0
        if exp != cin:
            y = g.cna(y, f"{p}.0", cin, exp, 1, act=act, eps=eps)
            j = 1
        y = g.cna(y, f"{p}.{j}", exp, exp, k, stride, groups=exp, act=act, eps=eps)
        j += 1
        if se:
            sq = make_divisible(exp / 4 if tfslim else exp // 4, 8)
            q = f"{p}.{j}"
            z = g.node("GlobalAveragePool", [y], f"{q}.avgpool")
            z = g.conv(z, f"{q}.fc1", exp, sq, 1, bias=True)
            z = g.act(z, f"{q}.activation", "relu")
            z = g.conv(z, f"{q}.fc2", sq, exp, 1, bias=True)
            z = g.act(z, f"{q}.scale_activation", "hsigmoid")
            y = g.node("Mul", [y, z], f"{q}.mul")
            j += 1
        y = g.cna(y, f"{p}.{j}", exp, cout, 1, act=None, eps=eps)
        if stride == 1 and cin == cout:
            y = g.node("Add", [x, y], f"features.{i}.add")
        x = y
    cin = c(setting[-1][3])
    last_conv = 6 * cin
    head = 1280 if large else 1024
    last = make_divisible(head * max(1.0, s.width)) if tfslim else c(head)
    x = g.cna(x, f"features.{len(setting) + 1}", cin, last_conv, 1, act="hswish", eps=eps)
    x = g.pool_flatten(x, "avgpool")
    x = g.linear(x, "classifier.0", last_conv, last)
    x = g.act(x, "classifier.1", "hswish")
    return g.linear(x, "classifier.3", last, s.num_classes)


def _write(spec: BuildSpec, weights: Mapping[str, np.ndarray]) -> _Builder:
    spec.validate()
    g = _Builder(spec, weights)
    x = INPUT_NAME
    if spec.family == "mobilenet_v1":
        y = _v1(g, x)
    elif spec.family == "mobilenet_v2":
        y = _v2(g, x)
    else:
        y = _v3(g, x, large=spec.family == "mobilenet_v3_large")
    g.add_node("Identity", [y], [OUTPUT_NAME], "output")
    unused = set(weights) - g.used
    if unused:
        example = next(iter(g.shapes))
        raise BuildError(
            f"{len(unused)} supplied weights are not parameters of {spec.name} "
            f"(e.g. '{sorted(unused)[0]}'); parameters are named like '{example}'."
        )
    return g


def parameter_shapes(family: str, width: float = 1.0, resolution: int = 224, num_classes: int = 1000,
                     rounding: str = "torchvision") -> dict[str, tuple[int, ...]]:
    """Every parameter the builder's architecture has (unfolded BN), by state-dict name."""
    return dict(_write(BuildSpec(family, width, resolution, num_classes, False, rounding), {}).shapes)


def build_proto(spec: BuildSpec, weights: Mapping[str, np.ndarray] | None = None) -> onnx.ModelProto:
    g = _write(spec, weights or {})
    r = spec.resolution
    g.add_input(INPUT_NAME, np.float32, ["batch", 3, r, r])
    g.add_output(OUTPUT_NAME, np.float32, ["batch", spec.num_classes])
    meta = {"family": spec.family, "width": f"{spec.width:g}", "resolution": str(r),
            "num_classes": str(spec.num_classes), "channel_rounding": spec.rounding,
            "bn_folded": str(spec.fold_bn).lower(), "weights": "supplied" if weights else f"random(seed={spec.seed})"}
    return g.to_model(spec.name, "mbexplorer-builder", meta)


def build(family: str, width: float = 1.0, resolution: int = 224, num_classes: int = 1000, *,
          fold_bn: bool = False, rounding: str = "torchvision", seed: int = 0,
          weights: Mapping[str, np.ndarray] | None = None) -> LoadedModel:
    """Build a MobileNet and return it loaded (validated, shapes resolved)."""
    spec = BuildSpec(family, float(width), int(resolution), int(num_classes), fold_bn, rounding, seed)
    proto = build_proto(spec, weights)
    return from_proto(proto, name=spec.name, source_format="builder")
