"""Keras layer graphs to ONNX: parsing a Keras model config (Keras 2, Keras 3, TF.js layers) and converting it
layer by layer. ``keras.py`` reads the files; this module knows nothing about them.

Layout: the graph input stays NHWC, as Keras has it; 4-D activations inside the graph are NCHW (a Transpose
after the input), because ONNX convolutions and pools are NCHW. Every tensor remembers its layout and a tensor
is transposed at most once per layout, only where a layer needs the other one (Reshape / Flatten of a tensor
whose element order differs between layouts, the graph outputs). Keras shapes (channels last, batch None) are
tracked statically: TF's 'same' padding puts the extra row / column at the bottom / right depending on the input
size and stride, so pads are explicit numbers computed from them.

Weights: ``weights[layer_name]`` is the list of (short name, array) the file holds for that layer, in Keras order;
roles (kernel, bias, gamma, ...) are taken from the names when they are Keras's, from the order otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ..errors import InputShapeError, ModelLoadError, UnsupportedOperatorError
from ..formatting import plural
from ..onnx_write import GraphWriter

NCHW, NHWC = "NCHW", "NHWC"
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)
NCHW_POS = (0, 2, 3, 1)  # NHWC axis -> its position in NCHW
MODEL_CLASSES = ("Model", "Functional", "Sequential")

Ref = tuple  # (layer name, call index, tensor index)


# --------------------------------------------------------------------------------------------------
# Parsing the model config


@dataclass
class Layer:
    name: str
    cls: str
    config: dict
    calls: list[list[Ref]]  # the inbound tensors of each call
    sub: KerasModel | None = None  # a nested model


@dataclass
class KerasModel:
    name: str
    layers: list[Layer]
    inputs: list[Ref]
    outputs: list[Ref]


def _refs(node) -> list[Ref]:
    """Inbound tensors of one call: Keras 2 / TF.js lists, or Keras 3 {"args": [...], "kwargs": {...}}."""
    if isinstance(node, dict):
        found: list[Ref] = []

        def walk(v):
            if isinstance(v, dict):
                if v.get("class_name") == "__keras_tensor__":
                    h = v["config"]["keras_history"]
                    found.append((h[0], int(h[1]), int(h[2])))
                else:
                    for x in v.values():
                        walk(x)
            elif isinstance(v, (list, tuple)):
                for x in v:
                    walk(x)

        walk(node.get("args", []))
        return found
    return [(e[0], int(e[1]), int(e[2]) if len(e) > 2 else 0) for e in node]


def _ref_list(v) -> list[Ref]:
    if not v:
        return []
    if isinstance(v[0], str):  # a single [name, node, tensor]
        v = [v]
    return [(e[0], int(e[1]), int(e[2]) if len(e) > 2 else 0) for e in v]


def _layer_name(d: dict) -> str:
    return d.get("name") or d.get("config", {}).get("name")


def parse_model(d: dict) -> KerasModel:
    """A model config ({"class_name": "Functional" | "Model" | "Sequential", "config": ...})."""
    cls, cfg = d.get("class_name"), d.get("config")
    if cls not in MODEL_CLASSES or cfg is None:
        raise ModelLoadError(f"the model config is a '{cls}', not a Keras Model, Functional or Sequential model.")
    if cls == "Sequential":
        return _parse_sequential(cfg)
    layers = []
    for ld in cfg["layers"]:
        name = _layer_name(ld)
        sub = parse_model(ld) if ld.get("class_name") in MODEL_CLASSES else None
        calls = [_refs(n) for n in ld.get("inbound_nodes", [])]
        layers.append(Layer(name, ld["class_name"], ld.get("config", {}), calls, sub))
    return KerasModel(cfg.get("name", "model"), layers, _ref_list(cfg.get("input_layers")),
                      _ref_list(cfg.get("output_layers")))


def _input_shape(cfg: dict):
    for key in ("batch_input_shape", "batch_shape", "batchInputShape"):
        if cfg.get(key):
            return list(cfg[key])
    if cfg.get("input_shape"):
        return [None] + list(cfg["input_shape"])
    return None


def _parse_sequential(cfg) -> KerasModel:
    entries = cfg if isinstance(cfg, list) else cfg.get("layers", [])
    name = "sequential" if isinstance(cfg, list) else cfg.get("name", "sequential")
    layers: list[Layer] = []
    prev: str | None = None
    for ld in entries:
        lname = _layer_name(ld)
        lcfg = ld.get("config", {})
        sub = parse_model(ld) if ld["class_name"] in MODEL_CLASSES else None
        if prev is None and ld["class_name"] != "InputLayer":
            shape = _input_shape(lcfg)
            if shape is None and sub is not None:  # a nested model first: its own input's shape
                first = {lay.name: lay for lay in sub.layers}.get(sub.inputs[0][0]) if sub.inputs else None
                shape = _input_shape(first.config) if first is not None else None
            if shape is None and isinstance(cfg, dict) and cfg.get("build_input_shape"):
                shape = [None] + list(cfg["build_input_shape"][1:])
            if shape is None:
                raise InputShapeError(f"the Sequential model '{name}' does not say its input shape.")
            prev = f"{lname}_input"
            layers.append(Layer(prev, "InputLayer", {"name": prev, "batch_input_shape": shape}, []))
        calls = [] if ld["class_name"] == "InputLayer" else [[(prev, 0, 0)]]
        layers.append(Layer(lname, ld["class_name"], lcfg, calls, sub))
        prev = lname
    if not layers:
        raise ModelLoadError(f"the Sequential model '{name}' has no layers.")
    return KerasModel(name, layers, [(layers[0].name, 0, 0)], [(prev, 0, 0)])


# --------------------------------------------------------------------------------------------------
# Conversion helpers


@dataclass
class T:
    """One Keras tensor in the ONNX graph: its name, Keras shape (channels last, batch None) and layout."""

    name: str
    shape: tuple
    layout: str = NHWC  # for 4-D tensors; others are always as in Keras

    @property
    def rank(self) -> int:
        return len(self.shape)


_ROLES = {
    "Conv2D": ["kernel", "bias"],
    "DepthwiseConv2D": ["depthwise_kernel", "bias"],
    "SeparableConv2D": ["depthwise_kernel", "pointwise_kernel", "bias"],
    "Dense": ["kernel", "bias"],
    "BatchNormalization": ["gamma", "beta", "moving_mean", "moving_variance"],
    "Normalization": ["mean", "variance", "count"],
}
_IDENTITY = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
             "ActivityRegularization"}


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[1])) if len(v) > 1 else (int(v[0]), int(v[0]))
    return int(v), int(v)


def same_pads(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TF's SAME padding of one dimension: (before, after), the odd one out after."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def _act_name(v) -> str:
    if v is None:
        return "linear"
    if isinstance(v, dict):  # Keras 3 serialised function
        inner = v.get("config")
        return inner if isinstance(inner, str) else str(v.get("class_name", "?"))
    return str(v)


class Converter(GraphWriter):
    def __init__(self, weights: dict, *, fold_bn: bool = False, keras_version: str = "", batch: str = "batch"):
        super().__init__()
        self.weights = weights
        self.fold_bn = fold_bn
        self.keras3 = str(keras_version).startswith("3")
        self.batch = batch
        self.views: dict[tuple[str, str], str] = {}
        self.consts: dict[tuple, str] = {}
        self.layer: Layer | None = None
        self.folded: dict[str, Layer] = {}  # conv layer name -> the BN layer folded into it
        self.skipped_bn: set[str] = set()
        self.used_weights: set[str] = set()

    # nodes, constants ------------------------------------------------------------------------------
    def node(self, op: str, inputs: list[str], out: str, name: str | None = None, **attrs) -> str:
        out = self.unique(out)
        self.add_node(op, inputs, [out], name or out, **attrs)
        return out

    def init(self, base: str, value: np.ndarray) -> str:
        # ascontiguousarray makes a 0-d value a 1-element tensor, as this importer has always written them
        return self.add_initializer(self.unique(base), np.ascontiguousarray(value))

    def const(self, value, dtype=np.float32) -> str:
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self.consts:
            flat = "_".join(f"{v:g}" for v in arr.ravel()[:4]).replace("-", "m")
            self.consts[key] = self.init(f"const_{flat}", arr)
        return self.consts[key]

    def unsupported(self, why: str) -> UnsupportedOperatorError:
        lay = self.layer
        return UnsupportedOperatorError(
            f"Keras layer '{lay.name}' ({lay.cls}) {why}; the importer cannot convert it.")

    def bad(self, why: str) -> ModelLoadError:
        lay = self.layer
        return ModelLoadError(f"Keras layer '{lay.name}' ({lay.cls}): {why}.")

    def view(self, t: T, want: str) -> str:
        """The tensor's name in the layout wanted (4-D only; others have one layout)."""
        if t.rank != 4 or t.layout == want:
            return t.name
        key = (t.name, want)
        if key not in self.views:
            perm = TO_NCHW if want == NCHW else TO_NHWC
            suffix = "nchw" if want == NCHW else "nhwc"
            self.views[key] = self.node("Transpose", [t.name], f"{t.name}/{suffix}", perm=list(perm))
        return self.views[key]

    # weights ---------------------------------------------------------------------------------------
    def params(self, layer: Layer | None = None) -> dict[str, np.ndarray]:
        layer = layer or self.layer
        cls, cfg = layer.cls, layer.config
        roles = list(_ROLES.get(cls, []))
        if cls == "BatchNormalization":
            if not cfg.get("scale", True):
                roles.remove("gamma")
            if not cfg.get("center", True):
                roles.remove("beta")
        elif "bias" in roles and not cfg.get("use_bias", True):
            roles.remove("bias")
        got = self.weights.get(layer.name, [])
        if not got:
            if roles and cls != "Normalization":
                raise ModelLoadError(f"Keras layer '{layer.name}' ({cls}) has no weights in the file.")
            return {}
        self.used_weights.add(layer.name)
        alias = {"kernel": "depthwise_kernel"} if cls == "DepthwiseConv2D" else {}
        names = [alias.get(n, n) for n, _ in got]
        if len(set(names)) == len(names) and set(names) <= set(roles):
            return {n: np.asarray(a) for n, (_, a) in zip(names, got)}
        if len(got) < len([r for r in roles if r != "count"]):
            raise ModelLoadError(
                f"Keras layer '{layer.name}' ({cls}) has {plural(len(got), 'weight')} in the file; "
                f"it needs {', '.join(roles)}.")
        return {r: np.asarray(a) for r, (_, a) in zip(roles, got)}

    def expect(self, name: str, arr: np.ndarray, shape: tuple) -> np.ndarray:
        if tuple(arr.shape) != tuple(shape):
            raise self.bad(f"weight '{name}' has shape {tuple(arr.shape)}; the layer needs {tuple(shape)}")
        return arr.astype(np.float32)

    # the whole graph ---------------------------------------------------------------------------------
    def run(self, model: KerasModel, bound: dict | None = None, call_suffix: str = "") -> list[T]:
        """Convert one (possibly nested) model; ``bound`` maps its input refs to tensors already made."""
        tensors: dict[Ref, T] = dict(bound or {})
        by_name = {lay.name: lay for lay in model.layers}
        self._plan_folds(model)
        pending = [(lay, c) for lay in model.layers for c in range(max(1, len(lay.calls)))]
        while pending:
            left = []
            for lay, c in pending:
                if lay.cls == "InputLayer":
                    if (lay.name, 0, 0) not in tensors:
                        tensors[(lay.name, 0, 0)] = self.input_layer(lay)
                    continue
                if not lay.calls:  # a layer the model never calls
                    continue
                refs = lay.calls[c]
                if not all(r in tensors for r in refs):
                    left.append((lay, c))
                    continue
                ins = [tensors[r] for r in refs]
                self.layer = lay
                suffix = call_suffix + (f"_{c}" if c else "")
                outs = self.call(lay, ins, lay.name + suffix, suffix)
                for k, t in enumerate(outs):
                    tensors[(lay.name, c, k)] = t
            if len(left) == len(pending):
                lay, c = left[0]
                missing = [r[0] for r in lay.calls[c] if r not in tensors and r[0] not in by_name]
                why = f"reads layer '{missing[0]}', which the model does not have" if missing else \
                    "is part of a cycle or reads a tensor nothing computes"
                raise ModelLoadError(f"Keras layer '{lay.name}' ({lay.cls}) {why}.")
            pending = left
        self.layer = None
        try:
            return [tensors[r] for r in model.outputs]
        except KeyError as exc:
            raise ModelLoadError(f"the model's output {exc.args[0][0]} is not computed by any layer.") from None

    def input_layer(self, lay: Layer) -> T:
        shape = _input_shape(lay.config)
        if shape is None:
            raise InputShapeError(f"the Keras input '{lay.name}' does not say its shape.")
        if any(d is None for d in shape[1:]):
            shown = ",".join("?" if d is None else str(d) for d in shape[1:])
            raise InputShapeError(
                f"the Keras input '{lay.name}' has no fixed size ({shown}); the importer needs fixed sizes "
                "(TF 'same' padding depends on them). Save the model with a fixed input shape.")
        dtype = lay.config.get("dtype") or "float32"
        if isinstance(dtype, dict):
            dtype = dtype.get("config", {}).get("name", "float32")
        if dtype not in ("float32", "float16", "float64"):
            raise UnsupportedOperatorError(f"the Keras input '{lay.name}' is {dtype}; only float inputs are supported.")
        name = self.unique(lay.name)
        dims = [self.batch] + [int(d) for d in shape[1:]]
        self.add_input(name, np.float32, dims)
        return T(name, tuple([None] + dims[1:]), NHWC)

    def finish(self, outputs: list[T]) -> None:
        for t in outputs:
            if t.rank == 4 and t.layout == NCHW and (t.name, NHWC) not in self.views:
                # the graph output keeps the layer's name: the NCHW tensor inside is renamed
                inner = self.unique(f"{t.name}/nchw")
                for n in self.nodes:
                    n.input[:] = [inner if v == t.name else v for v in n.input]
                    n.output[:] = [inner if v == t.name else v for v in n.output]
                self.taken.discard(t.name)
                self.node("Transpose", [inner], t.name, f"{t.name}/to_nhwc", perm=list(TO_NHWC))
                self.views[(inner, NHWC)] = t.name
                t = T(inner, t.shape, NCHW)
            name = self.view(t, NHWC)
            if name in {vi.name for vi in self.graph_inputs}:
                name = self.node("Identity", [name], f"{name}/output")
            dims = [self.batch] + [int(d) for d in t.shape[1:]]
            self.add_output(name, np.float32, dims)

    def _plan_folds(self, model: KerasModel) -> None:
        """fold_bn: a BatchNormalization right after a conv with no activation, the conv's only reader."""
        if not self.fold_bn:
            return
        readers: dict[Ref, int] = {}
        for lay in model.layers:
            for call in lay.calls:
                for r in call:
                    readers[r] = readers.get(r, 0) + 1
        for r in model.outputs:
            readers[r] = readers.get(r, 0) + 1
        by_name = {lay.name: lay for lay in model.layers}
        for lay in model.layers:
            if lay.cls != "BatchNormalization" or len(lay.calls) != 1 or len(lay.calls[0]) != 1:
                continue
            src = lay.calls[0][0]
            conv = by_name.get(src[0])
            if conv is None or conv.cls not in ("Conv2D", "DepthwiseConv2D") or len(conv.calls) != 1:
                continue
            if _act_name(conv.config.get("activation")) != "linear" or readers.get(src, 0) != 1:
                continue
            axis = lay.config.get("axis", -1)
            if (axis[0] if isinstance(axis, list) else axis) not in (-1, 3):
                continue
            self.folded[conv.name] = lay
            self.skipped_bn.add(lay.name)

    # dispatch ---------------------------------------------------------------------------------------
    def call(self, lay: Layer, ins: list[T], name: str, suffix: str) -> list[T]:
        if lay.sub is not None:
            sub = lay.sub
            if len(ins) != len(sub.inputs):
                raise self.bad(f"the nested model takes {plural(len(sub.inputs), 'input')}, it is given {len(ins)}")
            outs = self.run(sub, dict(zip(sub.inputs, ins)), suffix)
            self.layer = lay
            return outs
        cfg = lay.config
        if cfg.get("data_format", "channels_last") != "channels_last":
            raise self.unsupported("uses data_format 'channels_first'")
        if lay.cls in _IDENTITY:
            return [ins[0]]
        fn = LAYERS.get(lay.cls)
        if fn is None:
            raise self.unsupported("is a layer type the importer does not know")
        out = fn(self, cfg, ins, name)
        return out if isinstance(out, list) else [out]

    # activations ------------------------------------------------------------------------------------
    def activation(self, x: T, kind, name: str, out: str | None = None) -> T:
        """Apply a Keras activation by name; ``out`` names the result (the layer name by default)."""
        kind = _act_name(kind)
        out = out or name
        xn = x.name
        if kind == "linear":
            return x
        if kind == "relu":
            y = self.node("Relu", [xn], out, name)
        elif kind == "relu6":
            y = self.node("Clip", [xn, self.const(0.0), self.const(6.0)], out, name)
        elif kind == "sigmoid":
            y = self.node("Sigmoid", [xn], out, name)
        elif kind == "tanh":
            y = self.node("Tanh", [xn], out, name)
        elif kind == "hard_sigmoid":  # Keras 2 / TF.js: clip(0.2x + 0.5); Keras 3: relu6(x + 3) / 6
            y = self.node("HardSigmoid", [xn], out, name, alpha=1 / 6 if self.keras3 else 0.2, beta=0.5)
        elif kind in ("hard_swish", "hard_silu"):
            y = self.node("HardSwish", [xn], out, name)
        elif kind in ("swish", "silu"):
            s = self.node("Sigmoid", [xn], f"{out}/sigmoid")
            y = self.node("Mul", [xn, s], out, name)
        elif kind == "elu":
            y = self.node("Elu", [xn], out, name)
        elif kind == "selu":
            y = self.node("Selu", [xn], out, name)
        elif kind == "softplus":
            y = self.node("Softplus", [xn], out, name)
        elif kind == "softmax":
            return self.softmax(x, -1, name, out)
        else:
            raise self.unsupported(f"uses activation '{kind}'")
        return T(y, x.shape, x.layout)

    def softmax(self, x: T, axis: int, name: str, out: str | None = None) -> T:
        axis = axis % x.rank
        if x.rank == 4 and x.layout == NCHW:
            axis = NCHW_POS[axis]
        y = self.node("Softmax", [x.name], out or name, name, axis=axis)
        return T(y, x.shape, x.layout)


# --------------------------------------------------------------------------------------------------
# Layers


def _conv_geometry(cv: Converter, cfg: dict, x: T, k: tuple[int, int]):
    if x.rank != 4:
        raise cv.unsupported(f"gets a {x.rank}-D input; 2-D convolutions need 4-D (N, H, W, C)")
    s, d = _pair(cfg.get("strides", 1)), _pair(cfg.get("dilation_rate", 1))
    padding = str(cfg.get("padding", "valid")).lower()
    h, w = x.shape[1], x.shape[2]
    if padding == "same":
        (t, b), (le, r) = same_pads(h, k[0], s[0], d[0]), same_pads(w, k[1], s[1], d[1])
        oh, ow = -(-h // s[0]), -(-w // s[1])
    elif padding == "valid":
        t = b = le = r = 0
        oh, ow = (h - (k[0] - 1) * d[0] - 1) // s[0] + 1, (w - (k[1] - 1) * d[1] - 1) // s[1] + 1
    else:
        raise cv.unsupported(f"uses padding '{padding}'")
    if oh < 1 or ow < 1:
        raise cv.bad(f"its {k[0]}x{k[1]} kernel does not fit its {h}x{w} input")
    attrs = dict(kernel_shape=list(k), strides=list(s), dilations=list(d), pads=[t, le, b, r])
    return attrs, oh, ow


def _bn_affine(cv: Converter, bn: Layer, c: int) -> tuple[np.ndarray, np.ndarray, dict]:
    p = cv.params(bn)
    keep = cv.layer
    cv.layer = bn
    gamma = cv.expect("gamma", p["gamma"], (c,)) if "gamma" in p else np.ones(c, np.float32)
    beta = cv.expect("beta", p["beta"], (c,)) if "beta" in p else np.zeros(c, np.float32)
    mean = cv.expect("moving_mean", p["moving_mean"], (c,))
    var = cv.expect("moving_variance", p["moving_variance"], (c,))
    cv.layer = keep
    return gamma, beta, {"mean": mean, "var": var, "eps": float(bn.config.get("epsilon", 1e-3))}


def _fold(cv: Converter, conv_name: str, w: np.ndarray, b: np.ndarray | None):
    """Fold the BN planned for this conv into its OIHW weight and bias."""
    bn = cv.folded.get(conv_name)
    if bn is None:
        return w, b, conv_name
    c = w.shape[0]
    gamma, beta, st = _bn_affine(cv, bn, c)
    scale = gamma / np.sqrt(st["var"] + st["eps"])
    b = np.zeros(c, np.float32) if b is None else b
    w = (w * scale[:, None, None, None]).astype(np.float32)
    b = ((b - st["mean"]) * scale + beta).astype(np.float32)
    return w, b, bn.name  # the folded conv's output carries the BN's name


def _conv_node(cv: Converter, x: T, w, b, attrs, group: int, name: str, act, oh: int, ow: int) -> T:
    w, b, out = _fold(cv, cv.layer.name, w, b)
    if out != cv.layer.name:
        out = out + name[len(cv.layer.name):]
    inputs = [cv.view(x, NCHW), cv.init(f"{name}/kernel", w)]
    if b is not None:
        inputs.append(cv.init(f"{name}/bias", b))
    linear = _act_name(act) == "linear"
    y = cv.node("Conv", inputs, out if linear else f"{name}/conv", name, group=group, **attrs)
    t = T(y, (None, oh, ow, w.shape[0]), NCHW)
    return t if linear else cv.activation(t, act, f"{name}/{_act_name(act)}", name)


def conv2d(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    x = ins[0]
    k = _pair(cfg["kernel_size"])
    attrs, oh, ow = _conv_geometry(cv, cfg, x, k)
    cin, groups, filters = x.shape[3], int(cfg.get("groups", 1) or 1), int(cfg["filters"])
    p = cv.params()
    kern = cv.expect("kernel", p["kernel"], (k[0], k[1], cin // groups, filters))
    b = cv.expect("bias", p["bias"], (filters,)) if "bias" in p else None
    return _conv_node(cv, x, kern.transpose(3, 2, 0, 1), b, attrs, groups, name, cfg.get("activation"), oh, ow)


def depthwise_conv2d(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    x = ins[0]
    k = _pair(cfg["kernel_size"])
    attrs, oh, ow = _conv_geometry(cv, cfg, x, k)
    cin, m = x.shape[3], int(cfg.get("depth_multiplier", 1))
    p = cv.params()
    kern = cv.expect("depthwise_kernel", p["depthwise_kernel"], (k[0], k[1], cin, m))
    w = kern.transpose(2, 3, 0, 1).reshape(cin * m, 1, k[0], k[1])  # TF output channel c * m + j
    b = cv.expect("bias", p["bias"], (cin * m,)) if "bias" in p else None
    return _conv_node(cv, x, w, b, attrs, cin, name, cfg.get("activation"), oh, ow)


def separable_conv2d(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    x = ins[0]
    k = _pair(cfg["kernel_size"])
    attrs, oh, ow = _conv_geometry(cv, cfg, x, k)
    cin, m, filters = x.shape[3], int(cfg.get("depth_multiplier", 1)), int(cfg["filters"])
    p = cv.params()
    dw = cv.expect("depthwise_kernel", p["depthwise_kernel"], (k[0], k[1], cin, m))
    pw = cv.expect("pointwise_kernel", p["pointwise_kernel"], (1, 1, cin * m, filters))
    b = cv.expect("bias", p["bias"], (filters,)) if "bias" in p else None
    d = cv.node("Conv", [cv.view(x, NCHW), cv.init(f"{name}/depthwise_kernel",
                                                   dw.transpose(2, 3, 0, 1).reshape(cin * m, 1, k[0], k[1]))],
                f"{name}/depthwise", group=cin, **attrs)
    t = T(d, (None, oh, ow, cin * m), NCHW)
    one = dict(kernel_shape=[1, 1], strides=[1, 1], dilations=[1, 1], pads=[0, 0, 0, 0])
    return _conv_node(cv, t, pw.transpose(3, 2, 0, 1), b, one, 1, name, cfg.get("activation"), oh, ow)


def batch_norm(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    x = ins[0]
    if cv.layer.name in cv.skipped_bn:
        return x  # folded into the conv before it
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if not isinstance(axis, int) or axis % x.rank != x.rank - 1:
        raise cv.unsupported(f"normalises axis {axis}; only the channel (last) axis is supported")
    c = x.shape[-1]
    gamma, beta, st = _bn_affine(cv, cv.layer, c)
    if x.rank in (2, 4):
        ins_ = [cv.view(x, NCHW)] + [cv.init(f"{name}/{n}", v) for n, v in
                                     (("gamma", gamma), ("beta", beta), ("moving_mean", st["mean"]),
                                      ("moving_variance", st["var"]))]
        y = cv.node("BatchNormalization", ins_, name, epsilon=st["eps"])
        return T(y, x.shape, NCHW if x.rank == 4 else x.layout)
    scale = gamma / np.sqrt(st["var"] + st["eps"])
    m = cv.node("Mul", [x.name, cv.init(f"{name}/scale", scale)], f"{name}/mul")
    y = cv.node("Add", [m, cv.init(f"{name}/shift", beta - st["mean"] * scale)], name)
    return T(y, x.shape, x.layout)


def activation(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    return cv.activation(ins[0], cfg.get("activation", "linear"), name)


def relu(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    x = ins[0]
    mx = cfg.get("max_value")
    slope = float(cfg.get("negative_slope", 0.0) or 0.0)
    if float(cfg.get("threshold", 0.0) or 0.0) != 0.0:
        raise cv.unsupported("uses a non-zero threshold")
    if slope == 0.0:
        if mx is None:
            return T(cv.node("Relu", [x.name], name), x.shape, x.layout)
        return T(cv.node("Clip", [x.name, cv.const(0.0), cv.const(float(mx))], name), x.shape, x.layout)
    if mx is None:
        return T(cv.node("LeakyRelu", [x.name], name, alpha=slope), x.shape, x.layout)
    raise cv.unsupported("combines a negative slope with a maximum value")


def leaky_relu(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    alpha = float(cfg.get("negative_slope", cfg.get("alpha", 0.3)))
    return T(cv.node("LeakyRelu", [ins[0].name], name, alpha=alpha), ins[0].shape, ins[0].layout)


def softmax_layer(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    axis = cfg.get("axis", -1)
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise cv.unsupported("normalises over several axes")
        axis = axis[0]
    return cv.softmax(ins[0], int(axis), name)


def zero_padding(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    x = ins[0]
    p = cfg.get("padding", 1)
    if isinstance(p, int):
        (t, b), (le, r) = (p, p), (p, p)
    elif all(isinstance(v, int) for v in p):
        (t, b), (le, r) = (p[0], p[0]), (p[1], p[1])
    else:
        (t, b), (le, r) = _pair(p[0]), _pair(p[1])
    pads = cv.const([0, 0, t, le, 0, 0, b, r], np.int64)
    y = cv.node("Pad", [cv.view(x, NCHW), pads], name, mode="constant")
    return T(y, (None, x.shape[1] + t + b, x.shape[2] + le + r, x.shape[3]), NCHW)


def _merge_inputs(cv: Converter, ins: list[T]) -> tuple[list[str], str, tuple]:
    if len({t.rank for t in ins}) != 1:
        raise cv.unsupported("merges tensors of different ranks")
    layout = NCHW if ins[0].rank == 4 else NHWC
    shape = tuple(None if i == 0 else max(t.shape[i] for t in ins) for i in range(ins[0].rank))
    return [cv.view(t, layout) for t in ins], layout, shape


def _merge(op: str, pairwise: bool):
    def convert(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
        names, layout, shape = _merge_inputs(cv, ins)
        if pairwise:
            y = names[0]
            for k, other in enumerate(names[1:], start=1):
                y = cv.node(op, [y, other], name if k == len(names) - 1 else f"{name}/{k}")
        else:
            y = cv.node(op, names, name)
        return T(y, shape, layout)
    return convert


def subtract(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    names, layout, shape = _merge_inputs(cv, ins)
    return T(cv.node("Sub", names, name), shape, layout)


def concatenate(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    names, layout, _ = _merge_inputs(cv, ins)
    rank = ins[0].rank
    axis = int(cfg.get("axis", -1)) % rank
    shape = list(ins[0].shape)
    shape[axis] = sum(t.shape[axis] for t in ins)
    onnx_axis = NCHW_POS[axis] if rank == 4 and layout == NCHW else axis
    return T(cv.node("Concat", names, name, axis=onnx_axis), tuple(shape), layout)


def _global_pool(op: str):
    def convert(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
        x = ins[0]
        if x.rank != 4:
            raise cv.unsupported(f"gets a {x.rank}-D input")
        c = x.shape[3]
        if cfg.get("keepdims", False):
            return T(cv.node(op, [cv.view(x, NCHW)], name), (None, 1, 1, c), NCHW)
        p = cv.node(op, [cv.view(x, NCHW)], f"{name}/pool", name)
        return T(cv.node("Flatten", [p], name, f"{name}/flatten", axis=1), (None, c))
    return convert


def _pool(op: str):
    def convert(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
        x = ins[0]
        k = _pair(cfg.get("pool_size", 2))
        c = dict(cfg, strides=cfg.get("strides") or k, dilation_rate=1)
        attrs, oh, ow = _conv_geometry(cv, c, x, k)
        attrs.pop("dilations")
        extra = {"count_include_pad": 0} if op == "AveragePool" else {}  # TF averages over real pixels only
        y = cv.node(op, [cv.view(x, NCHW)], name, **attrs, **extra)
        return T(y, (None, oh, ow, x.shape[3]), NCHW)
    return convert


def _order_kept(shape: tuple) -> bool:
    """Whether an NHWC tensor and its NCHW transpose hold the elements in the same order."""
    return len(shape) == 4 and (shape[3] == 1 or (shape[1] == 1 and shape[2] == 1))


def reshape(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    x = ins[0]
    target = [int(d) for d in cfg["target_shape"]]
    total = int(np.prod(x.shape[1:]))
    if target.count(-1) > 1:
        raise cv.bad("its target shape has more than one -1")
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1]))
        if known == 0 or total % known:
            raise cv.bad(f"cannot reshape {x.shape[1:]} to {tuple(target)}")
        target[target.index(-1)] = total // known
    if int(np.prod(target)) != total:
        raise cv.bad(f"cannot reshape {x.shape[1:]} to {tuple(target)}")
    out_shape = (None, *target)
    src = x.name if _order_kept(x.shape) or x.rank != 4 else cv.view(x, NHWC)
    layout = NHWC
    if len(out_shape) == 4 and _order_kept(out_shape):  # straight to NCHW, no transpose needed
        target, layout = [out_shape[3], out_shape[1], out_shape[2]], NCHW
    y = cv.node("Reshape", [src, cv.const([0] + target, np.int64)], name)
    return T(y, out_shape, layout)


def flatten(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    x = ins[0]
    src = x.name if _order_kept(x.shape) or x.rank != 4 else cv.view(x, NHWC)
    return T(cv.node("Flatten", [src], name, axis=1), (None, int(np.prod(x.shape[1:]))))


def dense(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    x = ins[0]
    units, cin = int(cfg["units"]), x.shape[-1]
    p = cv.params()
    kern = cv.expect("kernel", p["kernel"], (cin, units))
    b = cv.expect("bias", p["bias"], (units,)) if "bias" in p else None
    act = cfg.get("activation")
    linear = _act_name(act) == "linear"
    out = name if linear else f"{name}/dense"
    if x.rank == 2:
        inputs = [x.name, cv.init(f"{name}/kernel", kern.T)]
        if b is not None:
            inputs.append(cv.init(f"{name}/bias", b))
        y = cv.node("Gemm", inputs, out, name, transB=1)
    else:
        src = cv.view(x, NHWC)
        y = cv.node("MatMul", [src, cv.init(f"{name}/kernel", kern)], out if b is None else f"{name}/matmul", name)
        if b is not None:
            y = cv.node("Add", [y, cv.init(f"{name}/bias", b)], out, f"{name}/bias_add")
    t = T(y, (*x.shape[:-1], units), NHWC)
    return t if linear else cv.activation(t, act, f"{name}/{_act_name(act)}", name)


def _channel_const(x: T, v) -> np.ndarray:
    """A per-channel (last Keras axis) value shaped to broadcast against the tensor in its layout."""
    v = np.asarray(v, np.float32)
    if v.ndim == 0 or v.size == 1:
        return v.reshape(())
    v = v.reshape(-1)
    if x.rank == 4 and x.layout == NCHW:
        return v.reshape(-1, 1, 1)
    return v


def rescaling(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    x = ins[0]
    scale, offset = cfg.get("scale", 1.0), cfg.get("offset", 0.0)
    y = cv.node("Mul", [x.name, cv.init(f"{name}/scale", _channel_const(x, scale))], f"{name}/mul", name)
    y = cv.node("Add", [y, cv.init(f"{name}/offset", _channel_const(x, offset))], name, f"{name}/add")
    return T(y, x.shape, x.layout)


def normalization(cv: Converter, cfg: dict, ins: list[T], name: str) -> T:
    x = ins[0]
    if cfg.get("invert"):
        raise cv.unsupported("inverts the normalisation")
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if axis is None or axis % x.rank != x.rank - 1:
        raise cv.unsupported(f"normalises along axis {axis}; only the channel (last) axis is supported")
    p = cv.params()
    mean = p.get("mean", cfg.get("mean"))
    var = p.get("variance", cfg.get("variance"))
    if mean is None or var is None:
        raise cv.bad("has neither weights nor a mean and variance in its config")
    std = np.maximum(np.sqrt(np.asarray(var, np.float32)), 1e-7)
    y = cv.node("Sub", [x.name, cv.init(f"{name}/mean", _channel_const(x, mean))], f"{name}/sub", name)
    y = cv.node("Div", [y, cv.init(f"{name}/std", _channel_const(x, std))], name, f"{name}/div")
    return T(y, x.shape, x.layout)


LAYERS = {
    "Conv2D": conv2d, "Convolution2D": conv2d,
    "DepthwiseConv2D": depthwise_conv2d,
    "SeparableConv2D": separable_conv2d, "SeparableConvolution2D": separable_conv2d,
    "BatchNormalization": batch_norm,
    "Activation": activation, "ReLU": relu, "LeakyReLU": leaky_relu, "Softmax": softmax_layer,
    "ZeroPadding2D": zero_padding,
    "Add": _merge("Add", True), "Multiply": _merge("Mul", True), "Subtract": subtract,
    "Maximum": _merge("Max", False), "Minimum": _merge("Min", False), "Average": _merge("Mean", False),
    "Concatenate": concatenate,
    "GlobalAveragePooling2D": _global_pool("GlobalAveragePool"), "GlobalMaxPooling2D": _global_pool("GlobalMaxPool"),
    "AveragePooling2D": _pool("AveragePool"), "MaxPooling2D": _pool("MaxPool"),
    "Reshape": reshape, "Flatten": flatten, "Dense": dense,
    "Rescaling": rescaling, "Normalization": normalization,
}


def convert(model_config: dict, weights: dict, name: str, *, fold_bn: bool = False, keras_version: str = "",
            source_format: str = "keras", props: dict | None = None) -> onnx.ModelProto:
    """A Keras model config and its weights as an ONNX model (opset 17, NHWC input, dynamic batch)."""
    model = parse_model(model_config)
    cv = Converter(weights, fold_bn=fold_bn, keras_version=keras_version)
    try:
        outs = cv.run(model)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        lay = cv.layer
        where = f"Keras layer '{lay.name}' ({lay.cls})" if lay else "the model config"
        raise ModelLoadError(
            f"{name}: {where} has a config or weights the importer cannot read ({type(exc).__name__}: {exc}); "
            "the file is damaged or written by an unknown Keras version.") from exc
    cv.finish(outs)
    meta = {"source_format": source_format, "keras_version": str(keras_version or "unknown"),
            "bn_folded": str(bool(cv.folded)).lower(),
            "activation_layout": "graph input NHWC as in Keras; 4-D activations inside the graph NCHW"}
    meta.update(props or {})
    return cv.to_model(name, "mbexplorer-keras", meta)
