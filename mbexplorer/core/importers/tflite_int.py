"""TFLite's integer kernels, reproduced where a QDQ graph computed in float would round differently.

A QDQ model runs DequantizeLinear -> float op -> QuantizeLinear. For most ops that is exactly what TFLite's
integer kernels compute, but quantized HARD_SWISH is a chain of 16-bit fixed-point multiplies whose rounding
differs from the float formula by one step on a few inputs of most layers; MobileNetV3 amplifies that along
the network (59 output steps on V3-small). An 8-bit op of one input has only 256 possible inputs, so the
importer writes the kernel's answer for each as a table (``hard_swish_table``) and the QDQ model looks it up
in a model-local function, ``HardSwish`` of domain ``mbexplorer.tflite`` (``lookup_function``): the graph
still reads HardSwish(x), so block grouping and cost counting see the op they know, and onnxruntime inlines
the function's QuantizeLinear -> Cast -> Gather.

The arithmetic follows TFLite's ``reference_ops::HardSwish`` and ``HardSwishPrepare`` (activations.cc),
which XNNPACK matches; gemmlowp's fixed-point helpers are written out below for int16.
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
    out_mult, out_exp = _quantize_multiplier(float(f32(hires_scale / f32(out_scale))))
    relu_mult, relu_exp = _quantize_multiplier(float(f32(hires_scale / f32(3.0 / 32768.0))))
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
