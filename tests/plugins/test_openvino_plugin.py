"""The OpenVINO plugin on a real model (the shared MobileNetV1 0.25 TFLite imported and saved as ONNX): its own
loops, benchmark_app, compiled blobs checked against onnxruntime. openvino is an optional extra: without it these
tests skip, unless CI is set (the test extra installs it there), and the plugin says how to get it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from mbexplorer.devices import END_TO_END, CompileRequest, PluginError, ProfileRequest
from mbexplorer.devices.testkit import PluginContract, check_measurement

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "openvino"
FLOAT_TFLITE = "mobilenet_v1_0.25_224_1_default_1.tflite"


def measurements(events):
    return [e for e in events if hasattr(e, "throughput")]


@pytest.fixture(scope="module")
def ov():
    try:
        import openvino
    except ImportError:
        msg = "openvino is not installed: pip install 'mbexplorer[openvino]'"
        if os.environ.get("CI"):
            pytest.fail(msg + " (the test extra installs it under CI)")
        pytest.skip(msg)
    return openvino


@pytest.fixture(scope="module")
def model(shared_dir, tmp_path_factory) -> Path:
    from mbexplorer.core.loading import load
    from mbexplorer.core.onnx_write import save_model

    path = tmp_path_factory.mktemp("ov") / "mobilenet_v1_0.25_224.onnx"
    save_model(load(shared_dir / "models" / FLOAT_TFLITE).model, path)
    return path


@pytest.fixture
def plugin(ov, load_plugin):
    return load_plugin("openvino")


def test_devices_come_from_openvino(plugin, ov):
    devices = plugin.devices()
    assert [d.id for d in devices] == [d for d in ov.Core().available_devices if d.split(".")[0] in
                                       ("CPU", "GPU", "NPU")]
    cpu = devices[0]
    assert (cpu.id, cpu.kind, cpu.available) == ("CPU", "cpu", True)
    assert {"fp32", "int8"} <= set(cpu.precisions) and "threads)" in cpu.name
    assert dict(cpu.details)["openvino"] == ov.__version__


def test_sync_profile_measures_each_batch_size(plugin, ov, model, drive):
    _, events = drive(plugin.profile(ProfileRequest(str(model), "cpu", "fp32", (1, 2), 4, 1, model_sha256="c" * 64)))
    ms = measurements(events)
    assert [m.batch_size for m in ms] == [1, 2]
    for m in ms:
        check_measurement(m, "openvino", "CPU")
        assert abs(m.throughput - m.batch_size * 1000.0 / m.latency_ms.mean) <= 1e-9 * m.throughput
        assert len(m.raw_ms) == m.iterations == 4 and m.warmup == 1
        assert (m.meaning, m.tool, m.tool_version, m.precision) == (END_TO_END, "openvino", ov.__version__, "fp32")
        assert "InferRequest.infer" in m.note and "precision f32" in m.note


def test_async_profile_counts_images_over_wall_time(plugin, model, drive):
    _, events = drive(plugin.profile(ProfileRequest(str(model), "CPU", "fp32", (2,), 6, 1,
                                                    options=(("mode", "async"),))))
    [m] = measurements(events)
    check_measurement(m, "openvino", "CPU")
    assert len(m.raw_ms) == m.iterations == 6 and "AsyncInferQueue" in m.note
    wall_ms = float(re.search(r"/ ([0-9.]+) ms wall time", m.note).group(1))
    assert m.throughput == pytest.approx(2 * 6 / (wall_ms / 1000.0), rel=1e-3)


def test_compiled_blob_gives_onnxruntimes_outputs(plugin, ov, model, tmp_path, drive):
    artifact, _ = drive(plugin.compile(CompileRequest(str(model), "CPU", "fp32", (2,), str(tmp_path))))
    blob = Path(artifact.path) / "b2.blob"
    assert blob.is_file() and Path(artifact.path).parent == tmp_path and artifact.batch_sizes == (2,)
    x = np.random.default_rng(3).uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    # the precision hint goes with the import too: without it this CPU would run the blob in bf16
    compiled = ov.Core().import_model(blob.read_bytes(), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    got = compiled.create_infer_request().infer({0: x})[compiled.outputs[0]]
    want = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert np.array_equal(got.argmax(1), want.argmax(1))
    # profile imports the blob
    _, events = drive(plugin.profile(ProfileRequest(str(model), "CPU", "fp32", (2,), 2, 0, artifact=artifact)))
    [m] = measurements(events)
    assert "imported" in m.note and "b2.blob" in m.note


def test_benchmark_app_figures_are_its_own_and_count_images(plugin, ov, model, tmp_path, drive):
    _, events = drive(plugin.profile(ProfileRequest(str(model), "CPU", "fp32", (2,), 8, 1, str(tmp_path),
                                                    options=(("tool", "benchmark_app"),))))
    ms = measurements(events)
    assert [m.batch_size for m in ms] == [2]
    log = "\n".join(e.message for e in events if hasattr(e, "level"))
    durations = [float(v) for v in re.findall(r"Duration:\s*([0-9.]+) ms", log)]
    fps = [float(v) for v in re.findall(r"Throughput:\s*([0-9.]+) FPS", log)]
    for m, duration, shown in zip(ms, durations, fps):
        check_measurement(m, "openvino", "CPU")
        assert (m.tool, m.tool_version, m.raw_ms) == ("benchmark_app", ov.__version__, ())
        assert m.iterations >= 8 and m.throughput == shown
        # its FPS is images: batch x iterations / duration (so never multiplied by the batch again)
        assert m.throughput == pytest.approx(m.batch_size * m.iterations / (duration / 1000.0), rel=0.01)
        assert (m.latency_ms.p90, m.latency_ms.p99) == (None, None) and "max" in m.note  # none made up


def test_int8_needs_a_quantized_model(plugin, model, drive):
    with pytest.raises(PluginError, match=r"float model.*quantize it first.*mbexplorer quantize"):
        drive(plugin.profile(ProfileRequest(str(model), "CPU", "int8", (1,), 2, 0)))


def test_options_are_checked(plugin, model, drive):
    with pytest.raises(PluginError, match="tool must be one of api, benchmark_app"):
        drive(plugin.profile(ProfileRequest(str(model), "CPU", "fp32", (1,), 2, 0, options=(("tool", "x"),))))
    with pytest.raises(PluginError, match="no device 'NPU.3'"):
        drive(plugin.profile(ProfileRequest(str(model), "NPU.3", "fp32", (1,), 2, 0)))


def test_without_openvino_the_device_says_how_to_get_it(tmp_path):
    """Run where ``import openvino`` fails, as on a machine without the extra."""
    code = textwrap.dedent(f"""
        import importlib.abc, importlib.util, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "openvino":
                    raise ImportError("blocked")

        sys.meta_path.insert(0, Block())
        spec = importlib.util.spec_from_file_location("mbx_openvino", {str(PLUGIN_DIR / "mbx_openvino.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        [d] = module.Plugin().devices()
        assert not d.available, d
        print(d.reason)
        from mbexplorer.core.jobs import run
        from mbexplorer.devices import ProfileRequest, ToolMissing
        try:
            run(module.Plugin().profile(ProfileRequest("m.onnx", "CPU")))
        except ToolMissing as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "openvino is not installed: pip install 'mbexplorer[openvino]'"
    assert "pip install 'mbexplorer[openvino]'" in lines[1]


class TestOpenvinoContract(PluginContract):
    """The test kit's contract, through the host (discovery, a child process per call)."""

    plugin_dir = PLUGIN_DIR
