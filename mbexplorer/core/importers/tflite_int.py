"""TFLite's integer kernels, reproduced where a QDQ graph computed in float would round differently.

A QDQ model runs DequantizeLinear -> float op -> QuantizeLinear (or onnxruntime's fused integer kernel for
it). For most ops either is exactly what the TFLite runtime computes, but not for two that MobileNetV3 is full
of, and a one-step difference there grows along the network (59 output steps on V3-small):

* HARD_SWISH is a chain of 16-bit fixed-point multiplies (TFLite's ``reference_ops::HardSwish`` and
  ``HardSwishPrepare`` in activations.cc; gemmlowp's helpers are written out below for int16). An 8-bit op of
  one input has 256 possible inputs, so the importer writes the kernel's answer for each as a table
  (``hard_swish_table``) and the QDQ model looks it up (``lookup_function``).
* ADD of two 8-bit tensors is XNNPACK's fixed-point sum (``xnn_init_qu8_add_minmax_scalar_params`` and the
  vadd kernels): multipliers of 21 bits from the scale ratios, one rounding shift. onnxruntime's float path and
  its fused QLinearAdd each round some near-ties the other way; ``add_function`` computes XNNPACK's sum with
  int64 ONNX ops (``add_params``).

* CONV_2D / DEPTHWISE_CONV_2D with per-channel int8 weights (TF2 post-training quantization) is an int32
  accumulation requantized in float32 by input_scale * kernel_scale[c] / output_scale and rounded to nearest
  even (XNNPACK's qs8-qc8w "fp32" requantization); onnxruntime's QDQ path rounds a few ties the other way.
  ``conv_function`` accumulates the integers in a float32 Conv, which is exact while every partial sum stays
  below 2^24 (``conv_is_exact_in_float`` checks the bound from the weights at import; the int32 bias is
  added after), so it runs at float speed; ConvInteger would be exact too, but runs int8 convolutions
  (depthwise above all) many times slower in onnxruntime.

All three run as model-local functions of domain ``mbexplorer.tflite`` named after the op they implement
(``HardSwish``, ``Add``, ``Conv``): the graph still reads HardSwish(x), Add(a, b) and Conv(x, w, b), so block
grouping and cost counting see the ops they know, and onnxruntime inlines the functions' bodies.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper

DOMAIN = "mbexplorer.tflite"

_I16_MIN, _I16_MAX = -32768, 32767


def _sat16(v: int) -> int:
    return max(_I16_MIN, min(_I16_MAX, v))


def _div_pow2_toward_zero(v: int, shift: int) -> int:
    q = abs(v) >> shift
    return q if v >= 0 else -q


def _rounding_doubling_high_mul(a: int, b: int) -> int:
    """gemmlowp::SaturatingRoundingDoublingHighMul for int16: round(a * b / 2^15), ties away from zero."""
    if a == b == _I16_MIN:
        return _I16_MAX
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    return _sat16(_div_pow2_toward_zero(ab + nudge, 15))


def _doubling_high_mul(a: int, b: int) -> int:
    """SaturatingDoublingHighMul: a * b / 2^15 truncated toward zero (TFLite uses it to cancel a bias)."""
    if a == b == _I16_MIN:
        return _I16_MAX
    return _sat16(_div_pow2_toward_zero(a * b, 15))


def _rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp::RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def _quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: m = q * 2^(e - 31) with q an int32 in [2^30, 2^31)."""
    if m == 0.0:
        return 0, 0
    fraction, exponent = math.frexp(m)
    q = int(round(fraction * (1 << 31)))
    if q == 1 << 31:
        q //= 2
        exponent += 1
    return q, exponent


def _to_int16_multiplier(q32: int) -> int:
    """DownScaleInt32ToInt16Multiplier: the int32 multiplier rounded to its top 16 bits."""
    if q32 >= (1 << 31) - (1 << 15):
        return _I16_MAX
    return (q32 + (1 << 15)) >> 16


def hard_swish_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int, dtype) -> np.ndarray | None:
    """The output of TFLite's quantized HARD_SWISH for every input value of ``dtype`` (uint8 or int8), in
    two's-complement order (int8: 0 ... 127, then -128 ... -1, as ``lookup_function`` indexes it); None where
    TFLite itself refuses the scales (an output multiplier of 1 or more)."""
    info = np.iinfo(dtype)
    f32 = np.float32
    hires_scale = f32(1.0 / 128.0) * f32(in_scale)
    with np.errstate(over="ignore"):  # scales far apart: an infinite ratio, refused below as TFLite does
        out_ratio = float(f32(hires_scale / f32(out_scale)))
        relu_ratio = float(f32(hires_scale / f32(3.0 / 32768.0)))
    if not (math.isfinite(out_ratio) and math.isfinite(relu_ratio)):
        return None
    out_mult, out_exp = _quantize_multiplier(out_ratio)
    relu_mult, relu_exp = _quantize_multiplier(relu_ratio)
    if out_exp > 0:
        return None
    out_mult, relu_mult = _to_int16_multiplier(out_mult), _to_int16_multiplier(relu_mult)
    table = []
    for q in range(info.min, info.max + 1):
        hires = _sat16((q - in_zero) * 128)
        preshift = _rounding_doubling_high_mul(hires, out_mult)
        reluish = hires
        if relu_exp > 0:
            reluish = _sat16(reluish * (1 << (relu_exp - 1)))
        reluish = _rounding_doubling_high_mul(reluish, relu_mult)
        if relu_exp > 0:
            reluish = _sat16(reluish * 2)
        elif relu_exp < 0:
            reluish = _rounding_divide_by_pot(reluish, -relu_exp)
        reluish = (reluish + (1 << 15)) >> 1  # [-1, 1] to [0, 1]
        out = _rounding_divide_by_pot(_doubling_high_mul(reluish, preshift), -out_exp) + out_zero
        table.append(min(info.max, max(info.min, out)))
    return np.roll(np.array(table, dtype=dtype), info.min)  # int8: -128 goes to index 128


def lookup_function(name: str, opset: int) -> onnx.FunctionProto:
    """``name``(x, table, scale, zero_point) = table[quantize(x)]: x is a real value on the input's grid (a
    DequantizeLinear output), table the real output for each integer input in two's-complement order (an
    int8 -1 is a Gather index of -1: the table's last entry)."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero_point"], ["q"]),
             helper.make_node("Cast", ["q"], ["i"], to=TensorProto.INT32),
             helper.make_node("Gather", ["table", "i"], ["y"])]
    return helper.make_function(DOMAIN, name, ["x", "table", "scale", "zero_point"], ["y"], nodes,
                                [helper.make_opsetid("", opset)])


# ADD -----------------------------------------------------------------------------------------------
_OFFSET = 1 << 24  # added to the sum (times the divisor) so that integer division floors like a shift


def add_params(a_scale: float, b_scale: float, out_scale: float, a_zero: int, b_zero: int, out_zero: int,
               dtype) -> np.ndarray | None:
    """XNNPACK's quantized ADD as int64 constants [a_mult, b_mult, bias, divisor, out_zero - offset, lo, hi,
    out_zero] for ``add_function``; None where XNNPACK's own limits on the scale ratios rule it out."""
    f32 = np.float32
    with np.errstate(over="ignore"):  # scales far apart: an infinite ratio, outside XNNPACK's limits below
        a_ratio, b_ratio = f32(a_scale) / f32(out_scale), f32(b_scale) / f32(out_scale)
    largest = max(abs(a_ratio), abs(b_ratio))
    if not (2.0 ** -10 <= min(abs(a_ratio), abs(b_ratio)) and largest < 2.0 ** 8):
        return None
    exponent = int((np.array(largest, f32).view(np.uint32) >> 23) & 0xFF) - 127
    shift = 20 - exponent  # multipliers of 21 bits
    # lrintf(ratio * 2^shift): an exact power-of-two product, rounded to nearest even
    a_mult, b_mult = (int(np.rint(f32(r) * f32(2.0 ** shift))) for r in (a_ratio, b_ratio))
    bias = (1 << (shift - 1)) - a_mult * a_zero - b_mult * b_zero + _OFFSET * (1 << shift)
    info = np.iinfo(dtype)
    return np.array([a_mult, b_mult, bias, 1 << shift, out_zero - _OFFSET, info.min, info.max, out_zero], np.int64)


def add_function(opset: int) -> onnx.FunctionProto:
    """Add(a, b, a_scale, a_zero, b_scale, b_zero, params, out_scale): a and b real values on their grids
    (DequantizeLinear outputs), params from ``add_params``; returns the real value of XNNPACK's 8-bit sum."""
    split = helper.make_tensor("", TensorProto.INT64, [8], [1] * 8)
    parts = ["am", "bm", "bias", "div", "zero_less_offset", "lo", "hi", "zero"]
    nodes = [
        helper.make_node("QuantizeLinear", ["a", "a_scale", "a_zero"], ["qa"]),
        helper.make_node("QuantizeLinear", ["b", "b_scale", "b_zero"], ["qb"]),
        helper.make_node("Cast", ["qa"], ["ia"], to=TensorProto.INT64),
        helper.make_node("Cast", ["qb"], ["ib"], to=TensorProto.INT64),
        helper.make_node("Constant", [], ["ones"], value=split),
        helper.make_node("Split", ["params", "ones"], parts, axis=0),
        helper.make_node("Mul", ["ia", "am"], ["pa"]),
        helper.make_node("Mul", ["ib", "bm"], ["pb"]),
        helper.make_node("Add", ["pa", "pb"], ["pab"]),
        helper.make_node("Add", ["pab", "bias"], ["acc"]),  # >= 0: division by 2^shift floors
        helper.make_node("Div", ["acc", "div"], ["shifted"]),
        helper.make_node("Add", ["shifted", "zero_less_offset"], ["q"]),
        helper.make_node("Max", ["q", "lo"], ["q_lo"]),
        helper.make_node("Min", ["q_lo", "hi"], ["q_out"]),
        helper.make_node("Sub", ["q_out", "zero"], ["centred"]),
        helper.make_node("Cast", ["centred"], ["centred_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["centred_f", "out_scale"], ["y"]),
    ]
    return helper.make_function(DOMAIN, "Add", ["a", "b", "a_scale", "a_zero", "b_scale", "b_zero", "params",
                                                "out_scale"], ["y"], nodes, [helper.make_opsetid("", opset)])


# CONV_2D with per-channel weights ---------------------------------------------------------------------
CONV_ATTRS = (("kernel_shape", onnx.AttributeProto.INTS), ("strides", onnx.AttributeProto.INTS),
              ("pads", onnx.AttributeProto.INTS), ("dilations", onnx.AttributeProto.INTS),
              ("group", onnx.AttributeProto.INT))


def conv_requant_scale(in_scale: float, kernel_scales: np.ndarray, out_scale: float) -> np.ndarray:
    """XNNPACK's per-channel requantization scale, in its order of float32 operations (infinite where scales
    far apart overflow float32: the caller checks)."""
    f32 = np.float32
    with np.errstate(over="ignore"):
        return ((f32(in_scale) * kernel_scales.astype(f32)) / f32(out_scale)).astype(f32)


def conv_is_exact_in_float(weights: np.ndarray, in_zero: int, dtype, depthwise: bool) -> bool:
    """Whether a float32 convolution of (q - zero point) by these integer weights (TFLite layout: [O, H, W, I],
    depthwise [1, H, W, C]) only ever forms integers below 2^24 in magnitude, so it is exact."""
    info = np.iinfo(dtype)
    largest_input = max(in_zero - info.min, info.max - in_zero)
    w = np.abs(weights.astype(np.int64))
    per_output = w.sum(axis=(0, 1, 2)) if depthwise else w.reshape(w.shape[0], -1).sum(axis=1)
    return int(per_output.max(initial=0)) * largest_input < 1 << 24


def conv_function(opset: int) -> onnx.FunctionProto:
    """Conv(x, w, b, x_scale, w_q, b_q, requant, lo, hi, out_scale): x a real value on its grid, w and b the
    dequantized weights (kept so the node reads as the convolution it is), w_q / b_q their integers (b_q
    shaped [C, 1, 1]), requant [C, 1, 1] from ``conv_requant_scale``, lo / hi the output range less its zero
    point; returns the real value of the 8-bit output."""
    conv = helper.make_node("Conv", ["centred_x", "w_f"], ["acc"])
    conv.attribute.extend(helper.make_attribute_ref(name, kind) for name, kind in CONV_ATTRS)
    nodes = [
        # x is (q - zero point) * scale: dividing and rounding gives q - zero point exactly, and padding
        # zeros are the zero point, as in TFLite
        helper.make_node("Div", ["x", "x_scale"], ["x_steps"]),
        helper.make_node("Round", ["x_steps"], ["centred_x"]),
        helper.make_node("Cast", ["w_q"], ["w_f"], to=TensorProto.FLOAT),  # folded once by onnxruntime
        conv,  # integers, exactly (conv_is_exact_in_float)
        helper.make_node("Cast", ["acc"], ["acc_i"], to=TensorProto.INT32),
        helper.make_node("Add", ["acc_i", "b_q"], ["acc_b"]),  # the bias may be far above 2^24: in int32
        helper.make_node("Cast", ["acc_b"], ["acc_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["acc_f", "requant"], ["scaled"]),
        helper.make_node("Round", ["scaled"], ["rounded"]),  # to nearest even, as lrintf / the magic bias
        helper.make_node("Max", ["rounded", "lo"], ["q_lo"]),
        helper.make_node("Min", ["q_lo", "hi"], ["q_out"]),
        helper.make_node("Mul", ["q_out", "out_scale"], ["y"]),
    ]
    inputs = ["x", "w", "b", "x_scale", "w_q", "b_q", "requant", "lo", "hi", "out_scale"]
    return helper.make_function(DOMAIN, "Conv", inputs, ["y"], nodes, [helper.make_opsetid("", opset)],
                                attributes=[name for name, _ in CONV_ATTRS])


# plain QDQ ------------------------------------------------------------------------------------------
_STANDARD_INPUTS = {"HardSwish": 1, "Add": 2, "Conv": 3}  # the standard op's inputs come first


def standard_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same model with every emulated op back as the standard ONNX op it stands for (HardSwish, Add,
    Conv between Q/DQ pairs): plain QDQ, as quantization tools and NPU compilers expect, computed by
    onnxruntime's own kernels (so no longer step-exact with the TFLite runtime)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        if node.domain == DOMAIN:
            keep = list(node.input[:_STANDARD_INPUTS[node.op_type]])
            del node.input[:]
            node.input.extend(keep)
            node.domain = ""
    used = {i for n in out.graph.node for i in n.input}
    kept = [t for t in out.graph.initializer if t.name in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    del out.functions[:]
    opsets = [o for o in out.opset_import if o.domain != DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(opsets)
    return out
