"""A TFLite model described as TFLite: its own input and output names, dtypes, shapes and quantization, as the
TFLite runtime itself reports them, and its operators; ONNX sources report their own graph (no quantization)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mbexplorer.core.importers.tflite import import_tflite
from mbexplorer.core.importers.tflite_read import read_tflite
from mbexplorer.core.inspect import describe_io, source_io

interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")

MODELS = ["mobilenet_v1_0.25_128_quant.tflite", "mobilenet_v1_0.25_224_1_default_1.tflite",
          "mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite", "v3-small_224_1.0_uint8.tflite"]


def _reference(details: dict) -> dict:
    """What LiteRT says of a tensor, in the source record's terms (scale 0 / zero point 0: not quantized)."""
    scale, zp = details["quantization"]
    return {"name": details["name"], "dtype": np.dtype(details["dtype"]).name,
            "shape": [int(d) for d in details["shape"]],
            "quantization": {"scale": scale, "zero_point": zp} if scale else None}


@pytest.mark.shared
@pytest.mark.parametrize("name", MODELS)
def test_inputs_and_outputs_are_what_the_tflite_runtime_reports(shared_dir, name):
    path = shared_dir / "models" / name
    interp = interpreter_mod.Interpreter(model_path=str(path))
    src = import_tflite(path).source
    assert src["format"] == "tflite"
    for got, ref in ((src["inputs"], interp.get_input_details()), (src["outputs"], interp.get_output_details())):
        assert [{k: d[k] for k in ("name", "dtype", "shape", "quantization")} for d in got] == \
            [_reference(r) for r in ref]
    ops = Counter(op.op for op in read_tflite(path.read_bytes()).operators)
    assert src["operators"] == dict(ops)


@pytest.mark.shared
def test_uint8_v1_figures(shared_dir):
    """DATA.md's figures: uint8 1x128x128x3, 1/128, 128 in; uint8 1x1001, 1/256, 0 out; not the ONNX view's
    float32 output."""
    m = import_tflite(shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite")
    io = source_io(m)
    assert io["inputs"] == [{"name": "input", "dtype": "uint8", "shape": [1, 128, 128, 3], "layout": "NHWC",
                             "quantization": {"scale": 1 / 128, "zero_point": 128}}]
    out = io["outputs"][0]
    assert out["dtype"] == "uint8" and out["shape"] == [1, 1001]
    assert out["quantization"] == {"scale": 1 / 256, "zero_point": 0}
    assert m.outputs[0].dtype == "float32"  # the ONNX graph the app runs dequantizes it
    assert describe_io(out) == ("MobilenetV1/Predictions/Reshape_1: uint8 [1x1001], scale 0.00390625 (1/256), "
                                "zero point 0")
    assert m.source["operators"] == {"CONV_2D": 15, "DEPTHWISE_CONV_2D": 13, "AVERAGE_POOL_2D": 1, "RESHAPE": 1,
                                     "SOFTMAX": 1}


def test_onnx_sources_report_their_own_graph(built):
    m = built("mobilenet_v1", 0.25, 128)
    assert m.source is None
    io = source_io(m)
    assert io["format"] == m.source_format and io["operators"] is None
    assert [(d["name"], d["dtype"], d["shape"], d["quantization"]) for d in io["inputs"]] == \
        [(s.name, s.dtype, list(s.shape), None) for s in m.inputs]
    assert [d["name"] for d in io["outputs"]] == [s.name for s in m.outputs]
