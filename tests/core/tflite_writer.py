"""A small TFLite flatbuffer writer for tests: synthetic models with the ops the shared models lack (the
``tflite`` package's generated builders, no TensorFlow). ``Graph.t`` adds a tensor, ``Graph.op`` an operator
with its builtin options by name, ``Graph.build`` returns the file's bytes."""

from __future__ import annotations

import importlib

import flatbuffers
import numpy as np
from tflite.BuiltinOperator import BuiltinOperator as BO  # noqa: F401 (re-exported for the tests)
from tflite.BuiltinOptions import BuiltinOptions as BOpt  # noqa: F401
from tflite.TensorType import TensorType as TT

_TYPES = {np.float32: TT.FLOAT32, np.uint8: TT.UINT8, np.int8: TT.INT8, np.int32: TT.INT32, np.int64: TT.INT64}


def _mod(name: str):
    return importlib.import_module("tflite." + name)


class Graph:
    def __init__(self):
        self.tensors, self.ops, self.buffers = [], [], [b""]
        self.inputs, self.outputs, self.codes = [], [], []

    def t(self, name, shape, dtype=np.float32, data=None, q=None) -> int:
        """A tensor; ``data`` makes it a constant; ``q`` = (scale, zero_point, axis), scale per channel or not."""
        buf = 0
        if data is not None:
            self.buffers.append(np.ascontiguousarray(np.asarray(data, dtype)).tobytes())
            buf = len(self.buffers) - 1
        self.tensors.append(dict(name=name, shape=list(shape), dtype=dtype, buf=buf, q=q))
        return len(self.tensors) - 1

    def op(self, code, ins, outs, options_type=None, options=None, **fields) -> None:
        if code not in self.codes:
            self.codes.append(code)
        self.ops.append(dict(code=self.codes.index(code), ins=ins, outs=outs, options_type=options_type,
                             options=options, fields=fields))

    def build(self) -> bytes:
        b = flatbuffers.Builder(1024)
        Buf, T, Q, O, SG, OC, M = (_mod(n) for n in ("Buffer", "Tensor", "QuantizationParameters", "Operator",
                                                      "SubGraph", "OperatorCode", "Model"))

        def vec(start, values, kind="Int32"):
            start(b, len(values))
            for v in reversed(values):
                getattr(b, "Prepend" + kind)(v)
            return b.EndVector()

        def offsets(start, items):
            start(b, len(items))
            for x in reversed(items):
                b.PrependUOffsetTRelative(x)
            return b.EndVector()

        bufs = []
        for data in self.buffers:
            d = b.CreateByteVector(data) if data else None
            Buf.BufferStart(b)
            if d is not None:
                Buf.BufferAddData(b, d)
            bufs.append(Buf.BufferEnd(b))
        tensors = []
        for t in self.tensors:
            name, shape = b.CreateString(t["name"]), vec(T.TensorStartShapeVector, t["shape"])
            quant = None
            if t["q"] is not None:
                scale, zero, axis = t["q"]
                sv = vec(Q.QuantizationParametersStartScaleVector, [float(x) for x in np.atleast_1d(scale)], "Float32")
                zv = vec(Q.QuantizationParametersStartZeroPointVector, [int(x) for x in np.atleast_1d(zero)], "Int64")
                Q.QuantizationParametersStart(b)
                Q.QuantizationParametersAddScale(b, sv)
                Q.QuantizationParametersAddZeroPoint(b, zv)
                Q.QuantizationParametersAddQuantizedDimension(b, axis)
                quant = Q.QuantizationParametersEnd(b)
            T.TensorStart(b)
            T.TensorAddShape(b, shape)
            T.TensorAddType(b, _TYPES[t["dtype"]])
            T.TensorAddBuffer(b, t["buf"])
            T.TensorAddName(b, name)
            if quant is not None:
                T.TensorAddQuantization(b, quant)
            tensors.append(T.TensorEnd(b))
        ops = []
        for o in self.ops:
            opts = None
            if o["options"]:
                m, pre = _mod(o["options"]), o["options"]
                vectors = {k: vec(getattr(m, f"{pre}Start{k}Vector"), v) for k, v in o["fields"].items()
                           if isinstance(v, list)}
                getattr(m, pre + "Start")(b)
                for k, v in o["fields"].items():
                    getattr(m, f"{pre}Add{k}")(b, vectors.get(k, v))
                opts = getattr(m, pre + "End")(b)
            iv, ov = vec(O.OperatorStartInputsVector, o["ins"]), vec(O.OperatorStartOutputsVector, o["outs"])
            O.OperatorStart(b)
            O.OperatorAddOpcodeIndex(b, o["code"])
            O.OperatorAddInputs(b, iv)
            O.OperatorAddOutputs(b, ov)
            if opts is not None:
                O.OperatorAddBuiltinOptionsType(b, o["options_type"])
                O.OperatorAddBuiltinOptions(b, opts)
            ops.append(O.OperatorEnd(b))
        tv, opv = offsets(SG.SubGraphStartTensorsVector, tensors), offsets(SG.SubGraphStartOperatorsVector, ops)
        inv, outv = vec(SG.SubGraphStartInputsVector, self.inputs), vec(SG.SubGraphStartOutputsVector, self.outputs)
        SG.SubGraphStart(b)
        SG.SubGraphAddTensors(b, tv)
        SG.SubGraphAddInputs(b, inv)
        SG.SubGraphAddOutputs(b, outv)
        SG.SubGraphAddOperators(b, opv)
        subgraph = SG.SubGraphEnd(b)
        codes = []
        for c in self.codes:
            OC.OperatorCodeStart(b)
            OC.OperatorCodeAddDeprecatedBuiltinCode(b, min(c, 127))
            OC.OperatorCodeAddBuiltinCode(b, c)
            OC.OperatorCodeAddVersion(b, 1)
            codes.append(OC.OperatorCodeEnd(b))
        cv = offsets(M.ModelStartOperatorCodesVector, codes)
        sv, bv = offsets(M.ModelStartSubgraphsVector, [subgraph]), offsets(M.ModelStartBuffersVector, bufs)
        desc = b.CreateString("mbexplorer test")
        M.ModelStart(b)
        M.ModelAddVersion(b, 3)
        M.ModelAddOperatorCodes(b, cv)
        M.ModelAddSubgraphs(b, sv)
        M.ModelAddDescription(b, desc)
        M.ModelAddBuffers(b, bv)
        b.Finish(M.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())
