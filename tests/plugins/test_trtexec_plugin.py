"""The trtexec plugin against a fake trtexec that keeps the real tool's options, log lines and --exportTimes file
(tests/plugins/fakes/trtexec); the sample logs are in trtexec's own format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mbexplorer.devices import END_TO_END, CompileRequest, LogRequest, PluginError, ProfileRequest, ToolMissing
from mbexplorer.devices import latency_of as latency_from
from mbexplorer.devices.testkit import PluginContract, check_measurement

HERE = Path(__file__).resolve().parent
PLUGIN_DIR = HERE.parents[1] / "plugins" / "trtexec"
LOGS = HERE / "logs"


def measurements(events):
    return [e for e in events if hasattr(e, "throughput")]


def test_devices_come_from_nvidia_smi(fakes, load_plugin):
    [gpu] = load_plugin("trtexec").devices()
    assert (gpu.id, gpu.name, gpu.kind, gpu.available) == ("cuda:0", "Tesla T4", "gpu", True)
    assert dict(gpu.details)["memory"] == "15360 MiB"


def test_without_trtexec_it_says_where_to_get_it(no_tools, load_plugin, small_model, tmp_path, drive):
    plugin = load_plugin("trtexec")
    assert not plugin.devices()[0].available
    with pytest.raises(ToolMissing, match="TensorRT") as err:
        drive(plugin.compile(CompileRequest(str(small_model), "cuda:0", "fp16", (1,), str(tmp_path))))
    assert err.value.tool == "trtexec" and "developer.nvidia.com/tensorrt" in err.value.how


def test_compile_builds_one_engine_per_batch_with_trtexecs_arguments(fakes, load_plugin, small_model, tmp_path,
                                                                      drive):
    artifact, events = drive(load_plugin("trtexec").compile(
        CompileRequest(str(small_model), "cuda:0", "fp16", (1, 16), str(tmp_path / "work"))))
    folder = tmp_path / "work" / "trtexec-fp16"
    assert artifact.path == str(folder) and artifact.batch_sizes == (1, 16) and artifact.precision == "fp16"
    assert artifact.tool == "trtexec (TensorRT 10.3.0)"
    assert fakes.calls("trtexec") == [
        [f"--onnx={small_model}", f"--saveEngine={folder / f'model_bs{b}.engine'}", f"--shapes=input:{b}x3x128x128",
         "--fp16", "--device=0", "--skipInference"] for b in (1, 16)]
    assert json.loads((folder / "model_bs16.engine").read_text())["shapes"] == "input:16x3x128x128"
    assert any("Engine built in" in getattr(e, "message", "") for e in events)  # the tool's lines are logged


def test_profile_converts_queries_to_images_and_keeps_each_querys_time(fakes, load_plugin, small_model, tmp_path,
                                                                        drive, monkeypatch):
    monkeypatch.setenv("FAKE_TRT_LATENCY_MS", "1,2,3,2")  # mean 2 ms: 500 queries per second
    plugin = load_plugin("trtexec")
    artifact, _ = drive(plugin.compile(CompileRequest(str(small_model), "cuda:0", "fp32", (1, 16), str(tmp_path))))
    _, events = drive(plugin.profile(ProfileRequest(str(small_model), "cuda:0", "fp32", (1, 16), iterations=8,
                                                    warmup=5, workdir=str(tmp_path), artifact=artifact,
                                                    model_sha256="ab" * 32)))
    ms = measurements(events)
    assert [m.batch_size for m in ms] == [1, 16]
    for m in ms:
        check_measurement(m, "trtexec", "cuda:0")
        assert m.throughput == pytest.approx(500 * m.batch_size)  # qps x batch: images per second
        assert m.raw_ms == (1, 2, 3, 2) * 2 and m.iterations == 8
        assert m.latency_ms == latency_from([1, 2, 3, 2] * 2)
        assert (m.latency_ms.mean, m.latency_ms.p50, m.latency_ms.p90, m.latency_ms.p99) == (2, 2, 3, 3)
        assert m.meaning == END_TO_END and m.warmup == 100  # 200 ms of warm-up at 2 ms a query
        assert "GPU Compute Time (device compute): mean 1.85 ms" in m.note
        assert (m.tool, m.tool_version, m.device_name, m.precision) == ("trtexec", "10.3.0", "Tesla T4", "fp32")
    timing = [c for c in fakes.calls("trtexec") if c[0].startswith("--loadEngine")]
    assert timing[1] == [f"--loadEngine={Path(artifact.path) / 'model_bs16.engine'}", "--shapes=input:16x3x128x128",
                         "--iterations=8", "--warmUp=200", "--duration=0", timing[1][5], "--device=0"]
    assert timing[1][5].startswith("--exportTimes=") and timing[1][5].endswith("times_bs16.json")


def test_profile_without_an_artifact_compiles_first(fakes, load_plugin, small_model, tmp_path, drive):
    _, events = drive(load_plugin("trtexec").profile(ProfileRequest(str(small_model), "cuda:0", "int8", (2,),
                                                                    iterations=4, warmup=0, workdir=str(tmp_path))))
    [m] = measurements(events)
    assert m.batch_size == 2 and m.warmup == 0 and m.throughput == pytest.approx(1000)
    assert [c[0].split("=")[0] for c in fakes.calls("trtexec")] == ["--onnx", "--loadEngine"]
    assert "--int8" in fakes.calls("trtexec")[0]
    assert any("placeholder scales" in getattr(e, "message", "") for e in events)  # int8 without calibration


def test_a_failing_trtexec_gives_its_last_lines(fakes, load_plugin, small_model, tmp_path, drive, monkeypatch):
    monkeypatch.setenv("FAKE_TRT_FAIL", "1")
    with pytest.raises(PluginError, match=r"(?s)trtexec failed \(exit code 1\).*Failed to parse onnx file"):
        drive(load_plugin("trtexec").compile(CompileRequest(str(small_model), "cuda:0", "fp16", (1,), str(tmp_path))))


def test_a_fixed_batch_model_cannot_take_other_batches(fakes, load_plugin, tmp_path, drive, built):
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(built("mobilenet_v1", 0.25, 128).model)  # the session's copy stays as it was
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, tmp_path / "fixed.onnx")
    plugin = load_plugin("trtexec")
    artifact, _ = drive(plugin.compile(CompileRequest(str(tmp_path / "fixed.onnx"), "cuda:0", "fp16", (1,),
                                                      str(tmp_path))))
    assert not any(a.startswith("--shapes") for a in fakes.calls("trtexec")[0])  # a static model takes none
    with pytest.raises(PluginError, match="fixed at 1"):
        drive(plugin.compile(CompileRequest(str(tmp_path / "fixed.onnx"), "cuda:0", "fp16", (4,), str(tmp_path))))


def test_from_log_reads_trtexecs_summary(load_plugin, drive):
    log = LOGS / "trtexec_t4_mobilenet_v1_bs16_fp16.log"
    _, events = drive(load_plugin("trtexec").parse_logs(LogRequest((str(log),), "cd" * 32)))
    [m] = measurements(events)
    check_measurement(m, "trtexec", "cuda:0")
    assert m.batch_size == 16 and m.precision == "fp16"  # both from its command line
    assert m.throughput == pytest.approx(396.087 * 16)  # the seed's T4 bs16 figure, 6337.39 images/s
    assert (m.latency_ms.mean, m.latency_ms.p50, m.latency_ms.p90, m.latency_ms.p99) == (2.51958, 2.51318, 2.53467,
                                                                                          2.64453)
    assert (m.iterations, m.warmup, m.tool_version, m.device_name) == (1000, 79, "8.6.1", "Tesla T4")
    assert m.raw_ms == () and "from log trtexec_t4_mobilenet_v1_bs16_fp16.log" in m.note
    assert "GPU Compute Time (device compute): mean 2.42484 ms, median 2.41895 ms, p99 2.54883 ms" in m.note


def test_from_log_takes_the_times_file_the_log_names(load_plugin, drive):
    log, times = LOGS / "trtexec_t4_mobilenet_v1_bs1_fp16.log", LOGS / "trtexec_t4_mobilenet_v1_bs1_times.json"
    _, events = drive(load_plugin("trtexec").parse_logs(LogRequest((str(log), str(times)), precision="fp16")))
    [m] = measurements(events)
    raw = [q["latencyMs"] for q in json.loads(times.read_text())]
    assert m.raw_ms == tuple(raw) and m.iterations == 10 and m.latency_ms == latency_from(raw)
    assert m.throughput == pytest.approx(3723.37) and m.batch_size == 1  # the seed's T4 bs1 figure


def test_from_log_asks_for_what_the_log_does_not_say(load_plugin, drive, tmp_path):
    text = (LOGS / "trtexec_t4_mobilenet_v1_bs1_fp16.log").read_text()
    log = tmp_path / "run.log"
    log.write_text(text.replace(" --shapes=image:1x3x224x224", ""))
    with pytest.raises(PluginError, match="--batch-size"):
        drive(load_plugin("trtexec").parse_logs(LogRequest((str(log),), precision="fp16")))
    with pytest.raises(PluginError, match="precision"):  # a saved engine's precision is not in its log
        drive(load_plugin("trtexec").parse_logs(LogRequest((str(log),), batch_size=1)))
    log.write_text("&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec --onnx=m.onnx\n[E] Error\n")
    with pytest.raises(PluginError, match="Performance summary"):
        drive(load_plugin("trtexec").parse_logs(LogRequest((str(log),), batch_size=1)))


class TestTrtexecContract(PluginContract):
    """The shared plugin contract, through the host (discovery, a child process per call), on the fake tool."""

    plugin_dir = PLUGIN_DIR
    sample_logs = (LOGS / "trtexec_t4_mobilenet_v1_bs16_fp16.log",)

    @pytest.fixture(autouse=True)
    def _fake_tools(self, fakes, tmp_path, monkeypatch):
        monkeypatch.setenv("MBEXPLORER_HOME", str(tmp_path / "home"))
