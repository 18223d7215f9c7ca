"""The LiteRT plugin on the shared .tflite files themselves (float and uint8 MobileNetV1 0.25), in-process and through
the host (the test kit)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mbexplorer.devices import END_TO_END, PluginError, ProfileRequest
from mbexplorer.devices.testkit import PluginContract, check_measurement

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "litert"
FLOAT_TFLITE = "mobilenet_v1_0.25_224_1_default_1.tflite"
QUANT_TFLITE = "mobilenet_v1_0.25_128_quant.tflite"


def measurements(events):
    return [e for e in events if hasattr(e, "throughput")]


@pytest.fixture(scope="module")
def litert_version():
    try:
        import ai_edge_litert
    except ImportError:
        msg = "ai_edge_litert is not installed: pip install -e '.[test]' installs it"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return ai_edge_litert.__version__


@pytest.fixture
def plugin(litert_version, load_plugin):
    return load_plugin("litert")


@pytest.fixture
def models(shared_dir) -> Path:
    return shared_dir / "models"


def test_devices_are_the_cpu_with_xnnpack(plugin, litert_version):
    [cpu] = plugin.devices()
    assert (cpu.id, cpu.kind, cpu.available, cpu.precisions) == ("cpu", "cpu", True, ("fp32", "int8"))
    assert "threads)" in cpu.name
    assert dict(cpu.details) == {"ai-edge-litert": litert_version, "kernels": "XNNPACK (LiteRT's default delegate)"}


def test_profile_resizes_the_float_file_to_each_batch(plugin, models, litert_version, drive):
    path = models / FLOAT_TFLITE
    _, events = drive(plugin.profile(ProfileRequest(str(path), "cpu", "fp32", (1, 2), 4, 1, model_sha256="d" * 64,
                                                    options=(("threads", "1"),))))
    ms = measurements(events)
    assert [m.batch_size for m in ms] == [1, 2]
    for m in ms:
        check_measurement(m, "litert", "cpu")
        assert abs(m.throughput - m.batch_size * 1000.0 / m.latency_ms.mean) <= 1e-9 * m.throughput
        assert len(m.raw_ms) == m.iterations == 4 and m.warmup == 1
        assert (m.meaning, m.tool, m.tool_version, m.precision) == (END_TO_END, "litert", litert_version, "fp32")
        assert f"original {path}" in m.note and "XNNPACK" in m.note and "(1 threads)" in m.device_name


def test_it_runs_the_original_tflite_not_the_onnx_import(plugin, models, tmp_path, drive):
    from mbexplorer.core.loading import load
    from mbexplorer.core.onnx_write import save_model

    onnx_path = tmp_path / "imported.onnx"
    save_model(load(models / FLOAT_TFLITE).model, onnx_path)
    _, events = drive(plugin.profile(ProfileRequest(str(onnx_path), "cpu", "fp32", (1,), 2, 0,
                                                    source_path=str(models / FLOAT_TFLITE))))
    [m] = measurements(events)
    assert str(models / FLOAT_TFLITE) in m.note and str(onnx_path) not in m.note
    with pytest.raises(PluginError, match="runs the original .tflite file.*imported.onnx is not one"):
        drive(plugin.profile(ProfileRequest(str(onnx_path), "cpu", "fp32", (1,), 2, 0)))


def test_a_uint8_file_is_int8_and_its_fixed_batch_is_said_not_looped(plugin, models, drive):
    path = str(models / QUANT_TFLITE)
    _, events = drive(plugin.profile(ProfileRequest(path, "cpu", "int8", (1, 2), 3, 1)))
    ms = measurements(events)
    assert [(m.batch_size, m.precision) for m in ms] == [(1, "int8")]
    [said] = [e.message for e in events if getattr(e, "level", "") == "warning"]
    assert said.startswith(f"batch 2 is not possible with {QUANT_TFLITE}") and "not a batched run" in said
    with pytest.raises(PluginError, match=r"is int8 \(its input is uint8\).*profile it as int8"):
        drive(plugin.profile(ProfileRequest(path, "cpu", "fp32", (1,), 2, 0)))
    with pytest.raises(PluginError, match="runs at batch 1"):
        drive(plugin.profile(ProfileRequest(path, "cpu", "int8", (4,), 2, 0)))


def test_builtin_kernels_and_bad_options(plugin, models, drive):
    path = str(models / FLOAT_TFLITE)
    _, events = drive(plugin.profile(ProfileRequest(path, "cpu", "fp32", (1,), 2, 0, options=(("xnnpack", "0"),))))
    [m] = measurements(events)
    assert "builtin kernels, no default delegate" in m.note
    with pytest.raises(PluginError, match="threads must be a whole number"):
        drive(plugin.profile(ProfileRequest(path, "cpu", "fp32", (1,), 2, 0, options=(("threads", "0"),))))


class TestLitertContract(PluginContract):
    """The test kit's contract, through the host, on the float .tflite file (LiteRT takes no ONNX)."""

    plugin_dir = PLUGIN_DIR

    @pytest.fixture
    def model(self, shared_dir) -> Path:
        return shared_dir / "models" / FLOAT_TFLITE
