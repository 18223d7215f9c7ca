"""Writing ONNX for the TFLite importer: layouts, constants, and each tensor's node with its Q/DQ pair.

One :class:`Emitter` writes one ONNX graph: ``qdq=True`` the QDQ model of a quantized file, ``qdq=False`` a
float model (a float file, or the float twin of a quantized one: the same nodes, weights dequantized, no
Q/DQ). Each TFLite tensor has a primary ONNX *view* (its name and layout: NCHW for 4-D activations that
convolutions produce, native otherwise); other views (a Transpose to the other layout) are made on demand
and cached, so a tensor is transposed at most once per layout. The converters (``tflite_ops.py``) call it.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOperatorError
from ..onnx_write import GraphWriter
from .tflite_read import Operator, TFLiteGraph

NCHW, NATIVE = "NCHW", "native"
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)
NCHW_POS = (0, 2, 3, 1)  # NHWC axis -> its position in NCHW
# fused_activation_function -> (ONNX op, clip range, node suffix)
_FUSED = {1: ("Relu", None, "relu"), 2: ("Clip", (-1.0, 1.0), "relu_n1_to_1"), 3: ("Clip", (0.0, 6.0), "relu6"),
          4: ("Tanh", None, "tanh")}
_FUSED_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def sanitise(name: str, index: int) -> str:
    """The first ';'-separated part of a TFLite tensor name (converters join every fused op's name),
    with whitespace and control characters replaced."""
    first = name.split(";")[0].strip()
    clean = "".join(ch if ch.isprintable() and not ch.isspace() else "_" for ch in first)
    return clean or f"tensor_{index}"


def _order_kept(shape: tuple[int, ...]) -> bool:
    """Whether an NHWC tensor and its NCHW transpose hold the elements in the same order (C == 1 or H == W == 1),
    so that reshapes may read either."""
    return len(shape) == 4 and (shape[3] == 1 or (shape[1] == 1 and shape[2] == 1))


class Emitter(GraphWriter):
    def __init__(self, g: TFLiteGraph, names: dict[int, str], qdq: bool, batch: bool):
        super().__init__(reserved=names.values())  # every TFLite tensor's name, kept for its own ONNX tensor
        self.g, self.names, self.qdq, self.batch = g, names, qdq, batch
        self.views: dict[tuple[int, str], str] = {}
        self.primary: dict[int, str] = {}
        self.cache: dict[tuple, str] = {}
        self.alias: dict[int, int] = {}  # DEQUANTIZE of a constant: output -> input
        self.outputs = set(g.outputs)
        self.op: Operator | None = None

    # plain nodes -----------------------------------------------------------------------------------
    def node(self, op_type: str, inputs: list[str], output: str, name: str, **attrs) -> str:
        self.add_node(op_type, inputs, [output], name, **attrs)
        return output

    def integer_input(self, name: str) -> str:
        """The integer initializer behind a constant's DequantizeLinear (QDQ model)."""
        node = next(n for n in reversed(self.nodes) if n.op_type == "DequantizeLinear" and n.output[0] == name)
        return node.input[0]

    def init(self, base: str, value: np.ndarray) -> str:
        return self.add_initializer(self.unique(base), value)

    def scalar(self, value: float) -> str:
        key = ("scalar", float(value))
        if key not in self.cache:
            self.cache[key] = self.init(f"const_{value:g}", np.array(value, np.float32))
        return self.cache[key]

    def ints(self, values) -> str:
        key = ("ints", tuple(int(v) for v in values))
        if key not in self.cache:
            self.cache[key] = self.init("const_" + "_".join(str(v) for v in key[1]).replace("-", "m"),
                                        np.array(key[1], np.int64))
        return self.cache[key]

    def tensor(self, idx: int):
        return self.g.tensors[self.alias.get(idx, idx)]

    def is_const(self, idx: int) -> bool:
        return self.tensor(idx).is_const

    def values(self, idx: int) -> np.ndarray:
        """The plain value of a constant (shape, axes, paddings; quantized ones as real values)."""
        t = self.tensor(idx)
        if t.data is None:
            raise self.unsupported(f"needs input '{t.name}' to be a constant")
        return _dequantize(t) if t.quant is not None and t.dtype != np.float32 else t.data

    def unsupported(self, why: str) -> UnsupportedOperatorError:
        op = self.op
        if op is None:  # graph inputs / outputs
            return UnsupportedOperatorError(f"the TFLite graph {why}; the importer cannot convert it.")
        out = self.g.tensors[op.outputs[0]].name if op.outputs else "?"
        return UnsupportedOperatorError(f"TFLite op {op.op} (tensor '{out}') {why}; the importer cannot convert it.")

    # activations -----------------------------------------------------------------------------------
    def qparams(self, idx: int, layout: str) -> tuple[list[str], dict]:
        key = ("qparams", idx, layout)
        if key not in self.cache:
            t = self.g.tensors[idx]
            q, x = t.quant, self.names[idx]
            attrs = {}
            if q.per_channel:
                axis = q.axis
                attrs["axis"] = NCHW_POS[axis] if layout == NCHW and len(t.shape) == 4 else axis
                scale, zp = q.scale, q.zero_point.astype(t.dtype)
            else:
                scale, zp = np.array(q.scale[0], np.float32), np.array(q.zero_point[0]).astype(t.dtype)
            self.cache[key] = ([self.init(f"{x}_scale", scale), self.init(f"{x}_zero_point", zp)], attrs)
        return self.cache[key]

    def add_inputs(self) -> None:
        for idx in self.g.inputs:
            t = self.g.tensors[idx]
            x = self.names[idx]
            shape = list(t.shape)
            if self.batch and shape:
                shape[0] = "batch"
            if self.qdq and t.quantized:
                qn = self.unique(f"{x}_quantized")
                self.add_input(qn, t.dtype, shape)
                (s, z), attrs = self.qparams(idx, NATIVE)
                self.node("DequantizeLinear", [qn, s, z], x, f"{x}/dequantize", **attrs)
            else:
                dtype = np.dtype(np.float32) if t.quantized else t.dtype
                self.add_input(x, dtype, shape)
            self.views[(idx, NATIVE)] = x
            self.primary[idx] = NATIVE

    def add_outputs(self) -> None:
        for idx in self.g.outputs:
            t = self.g.tensors[idx]
            name = self.x(idx, NATIVE)
            shape = list(t.shape)
            if self.batch and shape:
                shape[0] = "batch"
            dtype = np.dtype(np.float32) if t.quantized else t.dtype
            self.add_output(name, dtype, shape)

    def x(self, idx: int, want: str | None = None) -> str:
        """An activation's name in the layout wanted (None: its primary one)."""
        t = self.g.tensors[idx]
        if idx not in self.primary:
            if t.is_const or idx in self.alias:
                return self.const(idx, perm=TO_NCHW if want == NCHW and len(t.shape) == 4 else None)
            raise self.unsupported(f"reads tensor '{t.name}', which nothing computes before it")
        have = self.primary[idx]
        if want is None or want == have or len(t.shape) != 4:
            return self.views[(idx, have)]
        if (idx, want) not in self.views:
            src = self.views[(idx, have)]
            out = self.unique(f"{self.names[idx]}_{'nchw' if want == NCHW else 'nhwc'}")
            self.node("Transpose", [src], out, f"{out}/transpose", perm=list(TO_NCHW if want == NCHW else TO_NHWC))
            self.views[(idx, want)] = out
        return self.views[(idx, want)]

    def layout(self, idx: int) -> str:
        return self.primary.get(idx, NATIVE)

    def operand(self, idx: int, layout: str, rank4: bool) -> str:
        """An input of an element-wise op whose output is in ``layout``: constants broadcast to rank 4 and
        transposed when the op runs in NCHW."""
        if self.is_const(idx):
            t = self.tensor(idx)
            if layout == NCHW and rank4 and t.data.ndim >= 1 and t.data.size > 1:
                return self.const(idx, perm=TO_NCHW, rank=4)
            return self.const(idx)
        return self.x(idx, layout if rank4 and len(self.g.tensors[idx].shape) == 4 else None)

    def emit(self, op_type: str, inputs: list[str], out: int, layout: str, act: int = 0, tie_offset: float = 0.0,
             **attrs) -> str:
        """The node computing TFLite tensor ``out``, its fused activation, and in a QDQ model the Q/DQ pair
        whose DequantizeLinear output carries the tensor's name. ``tie_offset`` (in output steps, QDQ only):
        added before QuantizeLinear so that exact ties round up as TFLite's integer kernel rounds them, where
        QuantizeLinear would round them to even."""
        t = self.g.tensors[out]
        x = self.names[out]
        if len(t.shape) != 4:
            layout = NATIVE
        to_native = out in self.outputs and layout == NCHW
        final = self.unique(f"{x}_nchw") if to_native else x
        quant = self.qdq and t.quantized
        target = self.unique(f"{x}_unquantized") if quant else final
        implied = ""
        if not act and op_type in _IMPLIED_ACT_OPS and t.quantized:
            act, implied = _implied_activation(t)
        fused = _FUSED.get(act) if act else None
        if act and fused is None:
            raise self.unsupported(f"has fused activation {_FUSED_NAMES.get(act, act)}")
        first = self.unique(f"{x}_preact") if fused else target
        self.node(op_type, inputs, first, x, **attrs)
        op = self.op
        self.nodes[-1].doc_string = f"TFLite {op.op} (operator {op.index}) -> tensor '{t.name}'"
        if fused:
            kind, rng, suffix = fused
            extra = [self.scalar(rng[0]), self.scalar(rng[1])] if rng else []
            self.node(kind, [first] + extra, target, f"{x}/{suffix}")
            if implied:
                self.nodes[-1].doc_string = implied
        if quant and tie_offset:
            shifted = self.unique(f"{x}_unrounded")
            self.nodes[-1].output[0] = shifted
            step = float(t.quant.scale[0])
            self.node("Add", [shifted, self.scalar(np.float32(tie_offset * step))], target, f"{x}/round_half_up")
            self.nodes[-1].doc_string = (f"+{tie_offset:g} output step: ties round up, as TFLite's integer kernel "
                                         "rounds them (QuantizeLinear rounds ties to even)")
        if quant:
            (s, z), qattrs = self.qparams(out, layout)
            qn = self.unique(f"{x}_quantized")
            self.node("QuantizeLinear", [target, s, z], qn, f"{x}/quantize", **qattrs)
            self.node("DequantizeLinear", [qn, s, z], final, f"{x}/dequantize", **qattrs)
        self.views[(out, layout)] = final
        self.primary[out] = layout
        if to_native:
            self.node("Transpose", [final], x, f"{x}/to_nhwc", perm=list(TO_NHWC))
            self.views[(out, NATIVE)] = x
        return final

    # constants -------------------------------------------------------------------------------------
    def const(self, idx: int, perm: tuple[int, ...] | None = None, rank: int | None = None) -> str:
        """A constant as a float tensor of its real value: in a QDQ model a DequantizeLinear of the integer
        initializer (exact scales and zero points, per-channel axis moved with ``perm``), else float32."""
        src = self.alias.get(idx, idx)
        key = ("const", src, perm, rank)
        if key in self.cache:
            return self.cache[key]
        t = self.g.tensors[src]
        data, q = t.data, t.quant
        if data is None:  # an input the op needs constant (weights, bias) is an activation, or lost its buffer
            raise self.unsupported(f"needs input '{t.name}' to be a constant")
        axis = q.axis if q is not None else 0
        if rank is not None and data.ndim < rank:
            k = rank - data.ndim
            data = data.reshape((1,) * k + data.shape)
            axis += k
        if perm is not None:
            data = np.transpose(data, perm)
            axis = list(perm).index(axis)
        first = not any(k[0] == "const" and k[1] == src for k in self.cache)
        # the tensor's own (reserved) name on first use; a transposed / reshaped variant gets a new one
        name = self.names[src] if first else self.unique(f"{self.names[src]}_{'nchw' if perm == TO_NCHW else 'v'}")
        integer = q is not None and t.dtype in (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.int32),
                                                np.dtype(np.int16))
        if integer and self.qdq:  # integer initializer + DequantizeLinear writing ``name``
            qn = self.init(f"{name}_quantized", np.ascontiguousarray(data))
            if q.per_channel:
                s = self.init(f"{name}_scale", q.scale)
                z = self.init(f"{name}_zero_point", q.zero_point.astype(t.dtype))
                attrs = {"axis": axis}
            else:
                s = self.init(f"{name}_scale", np.array(q.scale[0], np.float32))
                z = self.init(f"{name}_zero_point", np.array(q.zero_point[0]).astype(t.dtype))
                attrs = {}
            out = self.node("DequantizeLinear", [qn, s, z], name, f"{name}/dequantize", **attrs)
        else:
            if integer:
                value = _dequantize(t, data, axis)
            elif data.dtype in (np.float16, np.float64):
                value = data.astype(np.float32)
            else:
                value = np.ascontiguousarray(data)
            out = self.add_initializer(name, value)
        self.cache[key] = out
        return out


# Ops whose result can be negative: when TFLite's converter folded a ReLU / ReLU6 into the output's quantization
# range (fused activation NONE, range starting at exactly 0), the importer writes the activation out.
_IMPLIED_ACT_OPS = {"Conv", "Gemm", "Add", "Sub"}


def _implied_activation(t) -> tuple[int, str]:
    """(fused activation code, note) for a quantized output whose range [lo, hi] has lo == 0: RELU6 when hi is
    within one step of 6, else RELU. In the QDQ model the node changes nothing (QuantizeLinear clamps the same);
    in the float twin it restores the activation the quantized range imposes."""
    q = t.quant
    if q.per_channel:
        return 0, ""
    info = np.iinfo(t.dtype)
    zp, scale = int(q.zero_point[0]), float(q.scale[0])
    if zp != info.min:
        return 0, ""
    hi = (info.max - zp) * scale
    code = 3 if abs(hi - 6.0) <= scale else 1
    name = "ReLU6" if code == 3 else "ReLU"
    return code, f"{name} implied by the output quantization range [0, {hi:.6g}] (TFLite fused activation NONE)"


def _dequantize(t, data: np.ndarray | None = None, axis: int | None = None) -> np.ndarray:
    """(q - zero_point) * scale in float32, as onnxruntime's DequantizeLinear computes it."""
    data = t.data if data is None else data
    q = t.quant
    axis = q.axis if axis is None else axis
    scale, zp = q.scale.astype(np.float32), q.zero_point
    if q.per_channel:
        shape = [1] * data.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    else:
        scale, zp = scale[0], zp[0]
    return ((data.astype(np.int64) - zp).astype(np.float32) * scale).astype(np.float32)
