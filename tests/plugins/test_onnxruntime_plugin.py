"""The onnxruntime plugin on real models: the shared MobileNetV1 0.25 TFLite files imported and saved as ONNX, run
in real onnxruntime sessions; in-process (the plugin object's jobs) and through the host (the test kit)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from mbexplorer.devices import END_TO_END, CompileRequest, PluginError, ProfileRequest
from mbexplorer.devices.testkit import PluginContract, check_measurement

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "onnxruntime"
FLOAT_TFLITE = "mobilenet_v1_0.25_224_1_default_1.tflite"
QUANT_TFLITE = "mobilenet_v1_0.25_128_quant.tflite"


def measurements(events):
    return [e for e in events if hasattr(e, "throughput")]


def warnings(events):
    return [e.message for e in events if getattr(e, "level", "") == "warning"]


@pytest.fixture(scope="module")
def onnx_of(shared_dir, tmp_path_factory):
    """``onnx_of(name)``: the shared .tflite file imported by mbexplorer and saved as ONNX (once per module)."""
    from mbexplorer.core.loading import load
    from mbexplorer.core.onnx_write import save_model

    folder, made = tmp_path_factory.mktemp("onnx"), {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = folder / (Path(name).stem + ".onnx")
            save_model(load(shared_dir / "models" / name).model, made[name])
        return made[name]

    return get


@pytest.fixture
def plugin(load_plugin):
    return load_plugin("onnxruntime")


def test_devices_list_the_cpu_and_only_the_providers_present(plugin):
    devices = plugin.devices()
    cpu = devices[0]
    assert (cpu.id, cpu.kind, cpu.available) == ("cpu", "cpu", True)
    assert cpu.precisions == ("fp32", "int8") and "threads)" in cpu.name
    assert dict(cpu.details) == {"provider": "CPUExecutionProvider", "onnxruntime": ort.__version__}
    providers = ort.get_available_providers()
    kinds = {d.id.split(":")[0] for d in devices[1:]}
    assert kinds == {k for k, p in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider"))
                     if p in providers}


def test_profile_measures_each_batch_size(plugin, onnx_of, drive):
    model = onnx_of(FLOAT_TFLITE)
    _, events = drive(plugin.profile(ProfileRequest(str(model), "cpu", "fp32", (1, 2), iterations=4, warmup=1,
                                                    model_sha256="ab" * 32, options=(("threads", "1"),))))
    ms = measurements(events)
    assert [m.batch_size for m in ms] == [1, 2]
    for m in ms:
        check_measurement(m, "onnxruntime", "cpu")
        assert abs(m.throughput - m.batch_size * 1000.0 / m.latency_ms.mean) <= 1e-9 * m.throughput
        assert len(m.raw_ms) == m.iterations == 4 and m.warmup == 1
        assert m.latency_ms.mean == pytest.approx(sum(m.raw_ms) / 4)
        assert (m.meaning, m.tool, m.tool_version, m.precision) == (END_TO_END, "onnxruntime", ort.__version__,
                                                                    "fp32")
        assert m.model_sha256 == "ab" * 32 and "(1 threads)" in m.device_name
        assert "CPUExecutionProvider" in m.note and "intra-op threads 1" in m.note


def test_compiled_model_runs_in_onnxruntime_and_gives_the_inputs_outputs(plugin, onnx_of, tmp_path, drive):
    model = onnx_of(FLOAT_TFLITE)
    artifact, _ = drive(plugin.compile(CompileRequest(str(model), "cpu", "fp32", (1, 2), str(tmp_path))))
    assert Path(artifact.path).parent == tmp_path and Path(artifact.path).is_file()
    assert artifact.tool == f"onnxruntime {ort.__version__}" and artifact.batch_sizes == (1, 2)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)  # batch 2: still dynamic
    want = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = ort.InferenceSession(artifact.path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # and profile takes the artifact
    _, events = drive(plugin.profile(ProfileRequest(str(model), "cpu", "fp32", (2,), 2, 0, artifact=artifact)))
    assert [m.batch_size for m in measurements(events)] == [2]


def test_int8_on_a_float_model_says_to_quantize_first(plugin, onnx_of, drive):
    with pytest.raises(PluginError, match=r"float model.*quantize it first.*mbexplorer quantize"):
        drive(plugin.profile(ProfileRequest(str(onnx_of(FLOAT_TFLITE)), "cpu", "int8", (1,), 2, 0)))
    with pytest.raises(PluginError, match="quantize it first"):
        drive(plugin.compile(CompileRequest(str(onnx_of(FLOAT_TFLITE)), "cpu", "int8", (1,), "/nonexistent")))


def test_a_quantized_model_is_int8_and_never_fp32(plugin, onnx_of, drive):
    model = str(onnx_of(QUANT_TFLITE))
    with pytest.raises(PluginError, match="is quantized.*profile it as int8"):
        drive(plugin.profile(ProfileRequest(model, "cpu", "fp32", (1,), 2, 0)))
    _, events = drive(plugin.profile(ProfileRequest(model, "cpu", "int8", (1,), 2, 0)))
    assert [m.precision for m in measurements(events)] == ["int8"]


def _fix_batch(src: Path, dst: Path, reshape_target: list[int] | None = None) -> onnx.ModelProto:
    proto = onnx.load(src)
    for vi in (proto.graph.input[0], proto.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_value = 1
    if reshape_target is not None:
        reshape = next(n for n in proto.graph.node if n.op_type == "Reshape")
        init = next(t for t in proto.graph.initializer if t.name == reshape.input[1])
        init.CopyFrom(onnx.numpy_helper.from_array(np.array(reshape_target, np.int64), init.name))
    onnx.save(proto, dst)
    return proto


def test_a_fixed_batch_is_made_dynamic(plugin, onnx_of, tmp_path, drive):
    fixed = tmp_path / "fixed.onnx"
    _fix_batch(onnx_of(FLOAT_TFLITE), fixed)
    _, events = drive(plugin.profile(ProfileRequest(str(fixed), "cpu", "fp32", (1, 3), 2, 0)))
    assert [m.batch_size for m in measurements(events)] == [1, 3] and not warnings(events)


def test_a_reshape_that_holds_the_batch_is_said_per_batch_size(plugin, onnx_of, tmp_path, drive):
    pinned = tmp_path / "pinned.onnx"
    _fix_batch(onnx_of(QUANT_TFLITE), pinned, reshape_target=[1, 1001])
    _, events = drive(plugin.profile(ProfileRequest(str(pinned), "cpu", "int8", (1, 2, 4), 2, 0)))
    assert [m.batch_size for m in measurements(events)] == [1]
    said = warnings(events)
    assert len(said) == 2 and all("Reshape node" in w and "[1, 1001]" in w for w in said)
    assert said[0].startswith("batch 2 is not possible") and said[1].startswith("batch 4 is not possible")
    with pytest.raises(PluginError, match="runs at batch 1 only"):
        drive(plugin.profile(ProfileRequest(str(pinned), "cpu", "int8", (8,), 2, 0)))


@pytest.mark.parametrize("source", [FLOAT_TFLITE, QUANT_TFLITE])
def test_node_timings_file_names_the_models_nodes(plugin, onnx_of, tmp_path, drive, source):
    model = onnx_of(source)
    precision = "fp32" if source == FLOAT_TFLITE else "int8"
    _, events = drive(plugin.profile(ProfileRequest(str(model), "cpu", precision, (2,), 3, 1, str(tmp_path),
                                                    options=(("node_timings", "1"),))))
    [m] = measurements(events)
    path = Path(m.note.split("node timings: ")[1])
    assert path.parent == tmp_path and path.is_file()
    data = json.loads(path.read_text())
    assert data["format"] == "mbexplorer-node-timings/1" and data["batch_size"] == 2 and data["runs"] == 3
    proto = onnx.load(model)
    names = [n.name for n in proto.graph.node]
    assert data["nodes"] and set(data["nodes"]) <= set(names)
    assert all(v > 0 for v in data["nodes"].values())
    covered = {c for k in data["kernels"] for c in k["covers"]}
    assert covered <= set(names)
    # every convolution of the model is in some kernel, and in one only
    convs = {n.name for n in proto.graph.node if n.op_type == "Conv"}
    assert convs <= covered
    for conv in convs:
        assert sum(conv in k["covers"] for k in data["kernels"]) == 1


def test_bad_options_and_devices_say_what_to_give(plugin, onnx_of, drive):
    model = str(onnx_of(FLOAT_TFLITE))
    with pytest.raises(PluginError, match="threads must be a whole number"):
        drive(plugin.profile(ProfileRequest(model, "cpu", "fp32", (1,), 2, 0, options=(("threads", "two"),))))
    with pytest.raises(PluginError, match="no device 'cuda:7'.*onnxruntime-gpu"):
        drive(plugin.profile(ProfileRequest(model, "cuda:7", "fp32", (1,), 2, 0)))
    with pytest.raises(PluginError, match="node timings need a workdir"):
        drive(plugin.profile(ProfileRequest(model, "cpu", "fp32", (1,), 2, 0, options=(("node_timings", "1"),))))


class TestOnnxruntimeContract(PluginContract):
    """The test kit's contract, through the host (discovery, a child process per call)."""

    plugin_dir = PLUGIN_DIR
