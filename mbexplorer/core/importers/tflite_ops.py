"""TFLite ops to ONNX: one converter per builtin op, and the whole-graph conversion (names, batch, model).

See ``tflite.py`` for the conventions (layout, QDQ, naming) and ``tflite_emit.py`` for the writer.
"""

from __future__ import annotations

import numpy as np
import onnx

from ..errors import TruncatedModelError, UnsupportedOperatorError
from ..onnx_write import OPSET, unique_name
from .tflite_emit import (
    _FUSED,
    _FUSED_NAMES,
    NATIVE,
    NCHW,
    NCHW_POS,
    TO_NCHW,
    Emitter,
    _dequantize,
    _order_kept,
    sanitise,
)
from .tflite_int import (
    DOMAIN,
    add_function,
    add_params,
    conv_function,
    conv_is_exact_in_float,
    conv_requant_scale,
    hard_swish_table,
    lookup_function,
)
from .tflite_read import Operator, TFLiteGraph

_SAME, _VALID = 0, 1


# --------------------------------------------------------------------------------------------------
# Converters


def _pads(e: Emitter, op: Operator, kh: int, kw: int, sh: int, sw: int, dh: int = 1, dw: int = 1) -> list[int]:
    """TF SAME: output ceil(in / stride), the odd padding pixel at the bottom / right; VALID: none."""
    padding = op.options.get("Padding", _SAME)
    if padding == _VALID:
        return [0, 0, 0, 0]
    if padding != _SAME:
        raise e.unsupported(f"has padding mode {padding}")
    _, h, w, _ = e.g.tensors[op.inputs[0]].shape
    begin, end = [], []
    for n, k, s, d in ((h, kh, sh, dh), (w, kw, sw, dw)):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def _conv(e: Emitter, op: Operator, depthwise: bool) -> None:
    o = op.options
    x_t, w_t = e.g.tensors[op.inputs[0]], e.tensor(op.inputs[1])
    if len(x_t.shape) != 4 or len(w_t.shape) != 4 or not w_t.is_const:
        raise e.unsupported("is not a 2-D convolution of an NHWC tensor with constant weights")
    cin = x_t.shape[3]
    if depthwise:  # weights [1, KH, KW, C*M] -> [C*M, 1, KH, KW], one group per input channel
        _, kh, kw, cout = w_t.shape
        w = e.const(op.inputs[1], perm=(3, 0, 1, 2))
        group = cin
    else:  # weights [O, KH, KW, I] -> [O, I, KH, KW]
        cout, kh, kw, ci = w_t.shape
        w = e.const(op.inputs[1], perm=TO_NCHW)
        group = cin // ci if ci else 1
    sh, sw = o.get("StrideH", 1) or 1, o.get("StrideW", 1) or 1
    dh, dw = o.get("DilationHFactor", 1) or 1, o.get("DilationWFactor", 1) or 1
    inputs = [e.x(op.inputs[0], NCHW), w]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        inputs.append(e.const(op.inputs[2]))
    attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], dilations=[dh, dw],
                 pads=_pads(e, op, kh, kw, sh, sw, dh, dw), group=group)
    act = o.get("FusedActivationFunction", 0)
    exact = _integer_conv_inputs(e, op, inputs)
    if exact is not None:  # per-channel int8 weights: XNNPACK's integer convolution (see tflite_int)
        e.add_function(conv_function(OPSET))
        e.emit("Conv", inputs + exact, op.outputs[0], NCHW, act, domain=DOMAIN, **attrs)
        return
    e.emit("Conv", inputs, op.outputs[0], NCHW, act, **attrs)


def _integer_conv_inputs(e: Emitter, op: Operator, inputs: list[str]) -> list[str] | None:
    """The extra inputs of ``tflite_int.conv_function`` for a QDQ convolution with per-channel int8 weights
    (symmetric, as TFLite requires), an int32 bias and 8-bit per-tensor activations; None otherwise."""
    if not e.qdq or len(inputs) != 3:
        return None
    x_t, w_t, b_t, y_t = (e.g.tensors[i] for i in (op.inputs[0], op.inputs[1], op.inputs[2], op.outputs[0]))
    if not (w_t.quantized and w_t.quant.per_channel and w_t.dtype == np.int8 and not w_t.quant.zero_point.any()
            and b_t.quant is not None and b_t.dtype == np.int32 and _per_tensor_8bit(x_t, y_t)
            and conv_is_exact_in_float(w_t.data, _scale_zero(x_t)[1], x_t.dtype, op.op != "CONV_2D")):
        return None
    requant = conv_requant_scale(_scale_zero(x_t)[0], w_t.quant.scale, _scale_zero(y_t)[0])
    if not np.isfinite(requant).all():  # scales too far apart for XNNPACK's kernel too: plain QDQ
        return None
    w_q = e.integer_input(inputs[1])
    (xs, _), _ = e.qparams(op.inputs[0], NCHW)
    (ys, _), _ = e.qparams(op.outputs[0], NCHW)
    out = e.names[op.outputs[0]]
    cout = w_t.quant.scale.size
    info, zero = np.iinfo(y_t.dtype), _scale_zero(y_t)[1]
    return [xs, w_q, e.init(f"{out}_b_q", b_t.data.astype(np.int32).reshape(cout, 1, 1)),
            e.init(f"{out}_requant", requant.reshape(cout, 1, 1)),
            e.scalar(float(info.min - zero)), e.scalar(float(info.max - zero)), ys]


def _pool(e: Emitter, op: Operator) -> None:
    o = op.options
    kh, kw = o.get("FilterHeight", 1), o.get("FilterWidth", 1)
    sh, sw = o.get("StrideH", 1) or 1, o.get("StrideW", 1) or 1
    attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=_pads(e, op, kh, kw, sh, sw))
    tie = 0.0
    if op.op == "AVERAGE_POOL_2D":  # TF excludes padded cells from the average
        kind, attrs["count_include_pad"] = "AveragePool", 0
        if e.g.tensors[op.outputs[0]].dtype == np.uint8:
            # uint8 average pool sums raw values and divides rounding half up: (sum + n/2) / n. Sums are
            # multiples of 1/n step, so a quarter of that moves exact ties up and nothing else across.
            tie = 0.25 / (kh * kw)
    else:
        kind = "MaxPool"
    e.emit(kind, [e.x(op.inputs[0], NCHW)], op.outputs[0], NCHW, o.get("FusedActivationFunction", 0),
           tie_offset=tie, **attrs)


def _reduced_view(e: Emitter, idx: int, axes: list[int], out_shape: tuple) -> tuple[str, list[int], str]:
    """Input name, axes and layout for a reduction / squeeze: in NCHW when dropping ``axes`` there leaves the
    dims in the output's order, else in the native layout."""
    shape = e.g.tensors[idx].shape
    if e.layout(idx) == NCHW and len(shape) == 4:
        mapped = sorted(NCHW_POS[a] for a in axes)
        nchw = [shape[i] for i in TO_NCHW]
        if len(out_shape) == 4:  # kept dims: stays NCHW
            return e.x(idx, NCHW), mapped, NCHW
        if [d for i, d in enumerate(nchw) if i not in mapped] == list(out_shape):
            return e.x(idx, NCHW), mapped, NATIVE
    return e.x(idx, NATIVE), sorted(axes), NATIVE


def _axes(values, rank: int) -> list[int]:
    return sorted({int(a) + rank if int(a) < 0 else int(a) for a in np.asarray(values).reshape(-1)})


def _mean(e: Emitter, op: Operator) -> None:
    shape = e.g.tensors[op.inputs[0]].shape
    axes = _axes(e.values(op.inputs[1]), len(shape))
    keep = bool(op.options.get("KeepDims", False))
    out_shape = e.g.tensors[op.outputs[0]].shape
    x, mapped, layout = _reduced_view(e, op.inputs[0], axes, out_shape)
    e.emit("ReduceMean", [x], op.outputs[0], layout, axes=mapped, keepdims=int(keep))


def _squeeze(e: Emitter, op: Operator) -> None:
    shape = e.g.tensors[op.inputs[0]].shape
    dims = op.options.get("SqueezeDims") or [i for i, d in enumerate(shape) if d == 1]
    axes = _axes(dims, len(shape))
    x, mapped, layout = _reduced_view(e, op.inputs[0], axes, e.g.tensors[op.outputs[0]].shape)
    e.emit("Squeeze", [x, e.ints(mapped)], op.outputs[0], layout)


def _reshape(e: Emitter, op: Operator) -> None:
    src, out = e.g.tensors[op.inputs[0]], e.g.tensors[op.outputs[0]]
    if e.layout(op.inputs[0]) == NCHW and _order_kept(src.shape):
        x = e.x(op.inputs[0], NCHW)
    else:
        x = e.x(op.inputs[0], NATIVE)
    target, layout = list(out.shape), NATIVE
    if _order_kept(out.shape):  # write it as NCHW directly; a following conv needs no Transpose
        target, layout = [out.shape[i] for i in TO_NCHW], NCHW
    if e.batch and target:
        target[0] = -1
    e.emit("Reshape", [x, e.ints(target)], op.outputs[0], layout)


def _fully_connected(e: Emitter, op: Operator) -> None:
    o = op.options
    if o.get("WeightsFormat", 0) != 0:
        raise e.unsupported("uses shuffled weights")
    src = e.g.tensors[op.inputs[0]]
    w_t = e.tensor(op.inputs[1])
    if not w_t.is_const or len(w_t.shape) != 2:
        raise e.unsupported("has non-constant weights")
    n, k = w_t.shape
    x = e.x(op.inputs[0], NCHW if e.layout(op.inputs[0]) == NCHW and _order_kept(src.shape) else NATIVE)
    bias = [e.const(op.inputs[2])] if len(op.inputs) > 2 and op.inputs[2] >= 0 else []
    act = o.get("FusedActivationFunction", 0)
    out = op.outputs[0]
    name = e.names[out]
    if o.get("KeepNumDims") and len(src.shape) > 2:
        x = e.x(op.inputs[0], NATIVE)
        m = e.node("MatMul", [x, e.const(op.inputs[1], perm=(1, 0))], e.unique(f"{name}_matmul"), f"{name}/matmul")
        if bias:
            e.emit("Add", [m, bias[0]], out, NATIVE, act)
        else:
            e.emit("Identity", [m], out, NATIVE, act)
        return
    if len(src.shape) != 2:
        x = e.node("Reshape", [x, e.ints([-1, k])], e.unique(f"{name}_flatten"), f"{name}/flatten")
    e.emit("Gemm", [x, e.const(op.inputs[1])] + bias, out, NATIVE, act, transB=1)


def _softmax(e: Emitter, op: Operator) -> None:
    beta = float(op.options.get("Beta", 1.0))
    idx = op.inputs[0]
    x = e.x(idx)
    layout = e.layout(idx)
    name = e.names[op.outputs[0]]
    if beta != 1.0:
        x = e.node("Mul", [x, e.scalar(beta)], e.unique(f"{name}_scaled"), f"{name}/beta")
    rank = len(e.g.tensors[idx].shape)
    axis = 1 if layout == NCHW and rank == 4 else -1
    e.emit("Softmax", [x], op.outputs[0], layout, axis=axis)


def _elementwise(e: Emitter, op: Operator, kind: str) -> None:
    """Binary ops (ADD, SUB, MUL, DIV) and CONCATENATION: inputs in one layout, constants broadcast to it."""
    out_t = e.g.tensors[op.outputs[0]]
    rank4 = len(out_t.shape) == 4
    acts = [i for i in op.inputs if i >= 0 and not e.is_const(i)]
    nchw = rank4 and all(len(e.g.tensors[i].shape) == 4 for i in acts) and any(e.layout(i) == NCHW for i in acts)
    layout = NCHW if nchw else NATIVE
    inputs = [e.operand(i, layout, rank4) for i in op.inputs]
    act = op.options.get("FusedActivationFunction", 0)
    params = _xnn_add_params(e, op) if kind == "Add" else None
    if params is not None:  # XNNPACK's integer sum (see tflite_int)
        a, b = op.inputs[:2]
        (sa, za), _ = e.qparams(a, NATIVE)
        (sb, zb), _ = e.qparams(b, NATIVE)
        (so, _), _ = e.qparams(op.outputs[0], NATIVE)
        e.add_function(add_function(OPSET))
        extra = [sa, za, sb, zb, e.init(f"{e.names[op.outputs[0]]}_add_params", params), so]
        e.emit("Add", inputs[:2] + extra, op.outputs[0], layout, act, domain=DOMAIN)
        return
    if kind == "Concat":
        axis = int(op.options.get("Axis", 0))
        axis = axis + len(out_t.shape) if axis < 0 else axis
        if nchw:
            axis = NCHW_POS[axis]
        e.emit("Concat", inputs, op.outputs[0], layout, act, axis=axis)
    else:
        e.emit(kind, inputs, op.outputs[0], layout, act)


def _xnn_add_params(e: Emitter, op: Operator):
    """XNNPACK's ADD constants when both inputs and the output are 8-bit per-tensor tensors of a QDQ model."""
    if not e.qdq or len(op.inputs) != 2:
        return None
    ts = [e.g.tensors[i] for i in (*op.inputs, op.outputs[0])]
    if not _per_tensor_8bit(*ts):
        return None
    (sa, za), (sb, zb), (so, zo) = (_scale_zero(t) for t in ts)
    return add_params(sa, sb, so, za, zb, zo, ts[2].dtype)


def _per_tensor_8bit(*tensors) -> bool:
    """All quantized per tensor, to one 8-bit type: what the integer-exact ops (tflite_int) take."""
    return all(t.quantized and not t.quant.per_channel and t.dtype == tensors[0].dtype for t in tensors) and \
        tensors[0].dtype in (np.uint8, np.int8)


def _scale_zero(t) -> tuple[float, int]:
    return float(t.quant.scale[0]), int(t.quant.zero_point[0])


def _pad(e: Emitter, op: Operator) -> None:
    idx = op.inputs[0]
    shape = e.g.tensors[idx].shape
    pads = np.asarray(e.values(op.inputs[1]), dtype=np.int64).reshape(len(shape), 2)
    layout = e.layout(idx) if len(shape) == 4 else NATIVE
    if layout == NCHW:
        pads = pads[list(TO_NCHW)]
    inputs = [e.x(idx, layout), e.ints(list(pads[:, 0]) + list(pads[:, 1]))]
    if op.op == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        inputs.append(e.scalar(float(np.asarray(e.values(op.inputs[2])).reshape(-1)[0])))
    e.emit("Pad", inputs, op.outputs[0], layout, mode="constant")


def _unary(kind: str, clip: tuple[float, float] | None = None):
    def convert(e: Emitter, op: Operator) -> None:
        idx = op.inputs[0]
        inputs = [e.x(idx)]
        attrs = {}
        if clip:
            inputs += [e.scalar(clip[0]), e.scalar(clip[1])]
        if kind == "LeakyRelu":
            attrs["alpha"] = float(op.options.get("Alpha", 0.2))
        e.emit(kind, inputs, op.outputs[0], e.layout(idx), **attrs)

    return convert


def _hard_swish(e: Emitter, op: Operator) -> None:
    """HardSwish; between 8-bit per-tensor tensors of a QDQ model, TFLite's integer kernel as a table
    (``tflite_int``), since the float formula rounds differently on a few inputs of most layers."""
    idx, out = op.inputs[0], op.outputs[0]
    ti, to = e.g.tensors[idx], e.g.tensors[out]
    table = None
    if e.qdq and _per_tensor_8bit(ti, to):
        table = hard_swish_table(*_scale_zero(ti), *_scale_zero(to), ti.dtype)
    if table is None:
        _unary("HardSwish")(e, op)
        return
    layout = e.layout(idx)
    (s, z), _ = e.qparams(idx, layout)
    real = e.init(f"{e.names[out]}_table", _dequantize(to, table))
    e.add_function(lookup_function("HardSwish", OPSET))
    e.emit("HardSwish", [e.x(idx), real, s, z], out, layout, domain=DOMAIN)
    node = next(n for n in reversed(e.nodes) if n.op_type == "HardSwish")
    node.doc_string += "; TFLite's integer kernel, looked up per input value"


def _requantize(e: Emitter, op: Operator) -> None:
    """QUANTIZE / DEQUANTIZE: the real value does not change; in a QDQ model the output's own Q/DQ pair
    does the requantization. A DEQUANTIZE of a constant (float16 or int8 weights) is folded into it."""
    idx = op.inputs[0]
    if op.op == "DEQUANTIZE" and e.is_const(idx):
        e.alias[op.outputs[0]] = e.alias.get(idx, idx)
        return
    e.emit("Identity", [e.x(idx)], op.outputs[0], e.layout(idx))


CONVERTERS = {
    "CONV_2D": lambda e, op: _conv(e, op, False),
    "DEPTHWISE_CONV_2D": lambda e, op: _conv(e, op, True),
    "AVERAGE_POOL_2D": _pool,
    "MAX_POOL_2D": _pool,
    "MEAN": _mean,
    "FULLY_CONNECTED": _fully_connected,
    "RESHAPE": _reshape,
    "SQUEEZE": _squeeze,
    "SOFTMAX": _softmax,
    "ADD": lambda e, op: _elementwise(e, op, "Add"),
    "SUB": lambda e, op: _elementwise(e, op, "Sub"),
    "MUL": lambda e, op: _elementwise(e, op, "Mul"),
    "DIV": lambda e, op: _elementwise(e, op, "Div"),
    "CONCATENATION": lambda e, op: _elementwise(e, op, "Concat"),
    "PAD": _pad,
    "PADV2": _pad,
    "HARD_SWISH": _hard_swish,
    "LOGISTIC": _unary("Sigmoid"),
    "TANH": _unary("Tanh"),
    "RELU": _unary("Relu"),
    "RELU6": _unary("Clip", (0.0, 6.0)),
    "RELU_N1_TO_1": _unary("Clip", (-1.0, 1.0)),
    "LEAKY_RELU": _unary("LeakyRelu"),
    "QUANTIZE": _requantize,
    "DEQUANTIZE": _requantize,
}
SUPPORTED_OPS = tuple(sorted(CONVERTERS))


# --------------------------------------------------------------------------------------------------
# The whole graph


def check_supported(g: TFLiteGraph) -> None:
    for op in g.operators:
        if op.op not in CONVERTERS:
            out = g.tensors[op.outputs[0]].name if op.outputs else "?"
            kind = op.op.replace("CUSTOM:", "CUSTOM ")
            raise UnsupportedOperatorError(
                f"TFLite op {kind} (tensor '{out}') is not supported by the importer; "
                f"supported: {', '.join(SUPPORTED_OPS)}.")
        act = op.options.get("FusedActivationFunction", 0)
        if act and act not in _FUSED:
            out = g.tensors[op.outputs[0]].name if op.outputs else "?"
            raise UnsupportedOperatorError(
                f"TFLite op {op.op} (tensor '{out}') has fused activation {_FUSED_NAMES.get(act, act)}, "
                "which the importer does not support; supported: NONE, RELU, RELU6, RELU_N1_TO_1, TANH.")
        for t in op.inputs + op.outputs:
            tt = g.tensors[t] if t >= 0 else None
            if tt is not None and not tt.is_const and tt.quant is not None and tt.dtype == np.int16:
                raise UnsupportedOperatorError(
                    f"TFLite op {op.op} (tensor '{tt.name}') uses int16 activations (16x8 quantization), "
                    "which the importer does not support; it reads float, uint8 and int8 models.")


def tensor_names(g: TFLiteGraph) -> dict[int, str]:
    """Sanitised unique names: activations first (graph inputs, then outputs in op order), constants after."""
    order = list(g.inputs) + [t for op in g.operators for t in op.outputs]
    order += [t for op in g.operators for t in op.inputs if t >= 0]
    names: dict[int, str] = {}
    used: set[str] = set()
    for idx in order:
        if idx in names:
            continue
        names[idx] = unique_name(sanitise(g.tensors[idx].name, idx), used)
    return names


def batch_is_free(g: TFLiteGraph) -> bool:
    """Whether the leading dimension is a batch every op treats independently, so it can be made dynamic."""
    try:
        return _batch_is_free(g)
    except (IndexError, ValueError, ZeroDivisionError):  # inconsistent op / tensor: keep the file's shapes
        return False


def _batch_is_free(g: TFLiteGraph) -> bool:
    acts = {t for op in g.operators for t in op.inputs + op.outputs if t >= 0 and not g.tensors[t].is_const}
    acts |= set(g.inputs) | set(g.outputs)
    if any(not g.tensors[t].shape or g.tensors[t].shape[0] != 1 for t in acts):
        return False
    for op in g.operators:
        shape = g.tensors[op.inputs[0]].shape
        if op.op == "CONCATENATION" and int(op.options.get("Axis", 0)) % len(g.tensors[op.outputs[0]].shape) == 0:
            return False
        if op.op in ("MEAN", "PAD", "PADV2"):
            c = g.tensors[op.inputs[1]]
            if c.data is None:
                return False
            if op.op == "MEAN" and 0 in _axes(c.data, len(shape)):
                return False
            if op.op != "MEAN" and np.any(c.data.reshape(len(shape), 2)[0] != 0):
                return False
        if op.op == "FULLY_CONNECTED":
            w = g.tensors[op.inputs[1]]
            if len(w.shape) != 2 or int(np.prod(shape[1:])) != w.shape[1]:
                return False
    return True


def convert(g: TFLiteGraph, name: str, qdq: bool) -> onnx.ModelProto:
    check_supported(g)
    names = tensor_names(g)
    e = Emitter(g, names, qdq, batch_is_free(g))
    e.add_inputs()
    for op in g.operators:
        e.op = op
        try:
            CONVERTERS[op.op](e, op)
        except (IndexError, KeyError, ValueError, TypeError, ZeroDivisionError) as exc:
            # a structurally valid flatbuffer whose operator does not fit its tensors (missing inputs,
            # shapes that disagree): the file is damaged, or written by a converter this importer does not know
            out = g.tensors[op.outputs[0]].name if op.outputs else "?"
            raise TruncatedModelError(
                f"{name}: TFLite op {op.op} (tensor '{out}') does not fit its tensors ({exc}); the file is corrupt "
                "or uses the op in a form the importer does not support.") from exc
    e.op = None
    e.add_outputs()
    quantized = any(t.quantized for t in g.tensors)
    return e.to_model(name, "mbexplorer-tflite", {
        "source_format": "tflite",
        "variant": "qdq" if qdq else ("float_twin" if quantized else "float"),
        "activation_layout": "graph input NHWC as in TFLite; 4-D activations inside the graph NCHW",
        "tflite_description": g.description,
        "tflite_schema_version": str(g.version),
    })
