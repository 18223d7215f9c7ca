"""Importing TensorFlow Lite models (``.tflite`` flatbuffers) as ONNX, without TensorFlow.

``import_tflite(path)`` reads the flatbuffer with the ``tflite`` package into plain records (every read
of the file happens in :func:`read_tflite`, so a truncated or corrupt file fails there with a
:class:`TruncatedModelError`, never with a raw exception), then writes the graph as ONNX
(``tflite_ops.py``):

* The graph input keeps TFLite's NHWC layout and dtype; a Transpose to NCHW follows it and the
  convolutions run in NCHW. 4-D activations inside the graph are NCHW; 4-D graph outputs are NHWC again.
* A float model becomes a float ONNX model.
* A quantized model (uint8 per-tensor, int8 per-channel) becomes a QDQ model: integer weights stay integer
  initializers with the file's exact scales and zero points (per-channel axis mapped to the ONNX layout),
  int32 biases go through DequantizeLinear, every quantized activation is a QuantizeLinear/DequantizeLinear
  pair with the tensor's own parameters. The integer graph input is kept (raw pixels go in as in TFLite)
  and a quantized output is dequantized, so scores come out as floats. Its *float twin* (weights
  dequantized to float32, no Q/DQ, float input of real values) is ``loaded.float_twin``.
* Where onnxruntime's float or fused QDQ arithmetic would round differently from the TFLite runtime
  (quantized HARD_SWISH, ADD of two 8-bit tensors, per-channel int8 convolutions), the QDQ model runs
  TFLite's integer arithmetic in model-local functions named after the op (``tflite_int.py``), so it scores
  exactly as LiteRT does; ``tflite_int.standard_qdq`` turns them back into plain QDQ ops.

Naming: every TFLite activation tensor appears in both ONNX models as a float tensor of the same
(sanitised) name holding its real value; in the QDQ model that is its DequantizeLinear's output, the
integer tensor is ``<name>_quantized`` (so the integer graph input is ``<name>_quantized`` too). A
sanitised name is the first ``;``-separated part of the TFLite name (converters join the names of every
fused op), made unique; the full name is kept in the producing node's ``doc_string``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import ModelLoadError
from ..model import LoadedModel, from_proto
from .tflite_ops import convert
from .tflite_read import embedded_metadata, read_tflite

# --------------------------------------------------------------------------------------------------
# Importing


def import_tflite(path: str | os.PathLike, data: bytes | None = None) -> LoadedModel:
    """Open a .tflite file as a :class:`LoadedModel` (a QDQ model with ``float_twin`` when quantized).
    ``data``: the file's bytes when the caller has read them already."""
    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    g = read_tflite(data, path.name)
    stem = path.stem
    out_t = g.tensors[g.outputs[0]]
    num_classes = out_t.shape[-1] if out_t.shape and out_t.shape[-1] > 0 else None
    labels, norm = embedded_metadata(data, g, num_classes)
    common = dict(source_format="tflite", source_path=path.resolve(), sha256=hashlib.sha256(data).hexdigest(),
                  file_size=len(data))
    quantized = any(t.quantized for t in g.tensors)
    main_proto = convert(g, stem, qdq=quantized)
    loaded = from_proto(main_proto, name=stem, **common)
    in_t = g.tensors[g.inputs[0]]
    layout = "NHWC" if len(in_t.shape) == 4 else None
    if in_t.quantized:
        pre = {"source": "tflite", "input_scale": float(in_t.quant.scale[0]),
               "input_zero_point": int(in_t.quant.zero_point[0]), "input_dtype": in_t.dtype.name,
               "layout": layout, "note": "feed raw quantized values q; real = (q - zero_point) * scale"}
        if norm:
            pre["metadata_normalization"] = norm
    else:
        pre = {"source": "tflite", "normalization": norm, "input_dtype": in_t.dtype.name, "layout": layout}
    loaded.preprocessing = pre
    loaded.labels = labels

    def io(t) -> dict:  # the file's own view of a tensor, beside the ONNX one the app runs
        q = t.quant if t.quantized else None
        quant = None if q is None else (
            {"scale": float(q.scale[0]), "zero_point": int(q.zero_point[0])} if not q.per_channel else
            {"scale": [float(v) for v in q.scale], "zero_point": [int(v) for v in q.zero_point], "axis": q.axis})
        return {"name": t.name, "dtype": t.dtype.name, "shape": list(t.shape),
                "layout": "NHWC" if len(t.shape) == 4 else None, "quantization": quant}

    ops: dict[str, int] = {}
    for op in g.operators:
        ops[op.op] = ops.get(op.op, 0) + 1
    loaded.source = {"format": "tflite", "version": g.version, "description": g.description,
                     "inputs": [io(g.tensors[i]) for i in g.inputs], "outputs": [io(g.tensors[i]) for i in g.outputs],
                     "operators": ops}
    if quantized:
        twin_proto = convert(g, stem, qdq=False)
        twin = from_proto(twin_proto, name=f"{stem}_float_twin", **common)
        tw = dict(pre)
        if in_t.quantized:
            tw.update(input_dtype="float32", quantized_input_dtype=in_t.dtype.name,
                      note="the float twin takes real values: real = (q - zero_point) * scale")
        twin.preprocessing = tw
        twin.labels = labels
        loaded.float_twin = twin
    return loaded
