"""`mbexplorer summary` tells the truth about the file: a TFLite model's inputs and outputs as the file defines
them (checked against the TFLite runtime), its operators, and activation memory as a peak beside the sum."""

from __future__ import annotations

import json

import numpy as np
import pytest

interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")

QUANT = "mobilenet_v1_0.25_128_quant.tflite"


@pytest.mark.shared
def test_json_io_is_the_source_files(mbx, shared_dir):
    path = shared_dir / "models" / QUANT
    r = mbx("summary", path, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    interp = interpreter_mod.Interpreter(model_path=str(path))
    for got, ref in ((d["model"]["inputs"], interp.get_input_details()),
                     (d["model"]["outputs"], interp.get_output_details())):
        assert len(got) == len(ref)
        for g, e in zip(got, ref):
            scale, zp = e["quantization"]
            assert (g["name"], g["dtype"], g["shape"]) == (e["name"], np.dtype(e["dtype"]).name, e["shape"].tolist())
            assert g["quantization"] == {"scale": scale, "zero_point": zp}
    # the figures themselves: uint8 1x128x128x3 at 1/128, 128 in; uint8 1x1001 at 1/256, 0 out (not float32)
    assert d["model"]["inputs"][0]["quantization"] == {"scale": 1 / 128, "zero_point": 128}
    out = d["model"]["outputs"][0]
    assert out["dtype"] == "uint8" and out["shape"] == [1, 1001]
    assert out["quantization"] == {"scale": 1 / 256, "zero_point": 0}
    assert d["model"]["onnx_outputs"][0]["dtype"] == "float32"  # the ONNX view the app runs, beside it
    assert d["model"]["operators"]["CONV_2D"] == 15
    t = d["totals"]
    assert 0 < t["peak_activation_bytes"] < t["activation_bytes"]


@pytest.mark.shared
def test_text_shows_the_source_and_the_peak(mbx, shared_dir):
    r = mbx("summary", shared_dir / "models" / QUANT)
    assert r.returncode == 0, r.stderr
    assert "source input  input: uint8 [1x128x128x3] NHWC, scale 0.0078125 (1/128), zero point 128" in r.stdout
    assert ("source output MobilenetV1/Predictions/Reshape_1: uint8 [1x1001], scale 0.00390625 (1/256), "
            "zero point 0") in r.stdout
    assert "31 operators: CONV_2D 15, DEPTHWISE_CONV_2D 13" in r.stdout
    assert "peak activation memory" in r.stdout and "(sum of all activations" in r.stdout


def test_onnx_reports_its_own_graph(mbx, model_file):
    r = mbx("summary", model_file("mobilenet_v1", 0.25, 96), "--json")
    d = json.loads(r.stdout)
    i = d["model"]["inputs"][0]
    assert (i["name"], i["dtype"], i["shape"], i["quantization"]) == ("input", "float32", ["batch", 3, 96, 96], None)
    assert d["model"]["outputs"][0]["quantization"] is None and d["model"]["operators"] is None
    assert d["totals"]["peak_activation_bytes"] > 0
    text = mbx("summary", model_file("mobilenet_v1", 0.25, 96)).stdout
    assert "source input" not in text and "peak activation memory" in text


@pytest.mark.shared
def test_uint8_peak_is_smaller_than_float(mbx, shared_dir, model_file):
    flt = json.loads(mbx("summary", model_file("mobilenet_v2"), "--json").stdout)["totals"]
    q = json.loads(mbx("summary", shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite", "--json").stdout)
    assert q["totals"]["peak_activation_bytes"] < flt["peak_activation_bytes"]
