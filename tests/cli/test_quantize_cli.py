"""`mbexplorer quantize`: writes a QDQ model, checks -o before calibrating, refuses a quantized input."""

import onnx
import pytest

SMALL = ("mobilenet_v1", 0.25, 96)


@pytest.fixture
def images(shared_dir):
    return shared_dir / "images"


def test_quantize_writes_the_model_and_says_what_it_did(mbx, model_file, images, tmp_path):
    src = model_file(*SMALL)
    out = tmp_path / "q.onnx"
    r = mbx("quantize", src, "--calib", images, "--per-channel", "--activations", "int8", "--weights", "int8",
            "--exclude", "blocks.1.0.conv_dw", "-o", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") == 1 and f"wrote {out}" in r.stdout
    assert "calibrated on 8 images (minmax), activations int8, weights int8 per channel, 1 node excluded" in r.stdout
    assert "%" not in r.stderr  # stderr is not a terminal: no progress
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_an_existing_output_needs_force_before_any_work(mbx, model_file, images, tmp_path):
    out = tmp_path / "q.onnx"
    out.write_bytes(b"keep")
    r = mbx("quantize", model_file(*SMALL), "--calib", images, "-o", out)
    assert r.returncode == 1 and "already exists; give --force" in r.stderr
    assert out.read_bytes() == b"keep"
    r = mbx("quantize", model_file(*SMALL), "--calib", images / "cat.bmp", "-o", out, "--force")
    assert r.returncode == 0, r.stderr
    assert "calibrated on 1 image " in r.stdout
    assert onnx.load(out).graph.node


def test_refuses_a_quantized_model_and_unknown_nodes(mbx, model_file, images, tmp_path, shared_dir):
    out = tmp_path / "q.onnx"
    r = mbx("quantize", shared_dir / "models/mobilenet_v1_0.25_128_quant.tflite", "--calib", images, "-o", out)
    assert r.returncode == 1 and "already quantized" in r.stderr and r.stderr.count("\n") == 1
    r = mbx("quantize", model_file(*SMALL), "--calib", images, "--exclude", "nope", "-o", out)
    assert r.returncode == 1 and "no node 'nope'" in r.stderr
    r = mbx("quantize", model_file(*SMALL), "--calib", tmp_path, "-o", out)
    assert r.returncode == 1 and "no images found" in r.stderr
    r = mbx("quantize", model_file(*SMALL), "--calib", images, "--activations", "int8", "-o", out)
    assert r.returncode == 1 and "int8 activations need int8 weights" in r.stderr
    assert not out.exists()
