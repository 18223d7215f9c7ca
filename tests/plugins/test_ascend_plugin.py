"""The Ascend plugin against fakes of npu-smi, atc and `python3 -m ais_bench` that keep the real tools' options and
output (tests/plugins/fakes); the sample logs are in ais_bench's (and its predecessor ais_infer's) own format."""

from __future__ import annotations

from pathlib import Path

import pytest

from mbexplorer.devices import DEVICE_COMPUTE, CompileRequest, LogRequest, PluginError, ProfileRequest, ToolMissing
from mbexplorer.devices import latency_of as latency_from
from mbexplorer.devices.testkit import PluginContract, check_measurement

HERE = Path(__file__).resolve().parent
LOGS = HERE / "logs"


def measurements(events):
    return [e for e in events if hasattr(e, "throughput")]


def test_devices_come_from_npu_smis_table(fakes, load_plugin):
    devices = load_plugin("ascend").devices()
    assert [(d.id, d.name, d.kind, d.available) for d in devices] == [("npu:0", "Ascend 310P3", "npu", True),
                                                                      ("npu:1", "Ascend 310P3", "npu", True)]
    details = dict(devices[1].details)
    assert details == {"npu": "1", "chip": "0", "bus": "0000:89:00.0", "health": "OK", "memory": "1070 / 21534 MB",
                       "soc_version": "Ascend310P3", "atc": "found"}


def test_without_the_toolkit_it_says_where_to_get_it(no_tools, load_plugin, small_model, tmp_path, drive):
    plugin = load_plugin("ascend")
    assert not plugin.devices()[0].available and "npu-smi" in plugin.devices()[0].reason
    with pytest.raises(ToolMissing, match="CANN toolkit") as err:
        drive(plugin.compile(CompileRequest(str(small_model), "npu:0", "fp16", (1,), str(tmp_path),
                                            options=(("soc_version", "Ascend310P3"),))))
    assert err.value.tool == "atc"
    with pytest.raises(ToolMissing, match="gitee.com/ascend/tools") as err:  # python3 is there, ais_bench is not
        drive(plugin.profile(ProfileRequest(str(small_model), "npu:0", "fp16", (1,), workdir=str(tmp_path))))
    assert "ais_bench" in err.value.tool


def test_compile_runs_atc_per_batch_as_the_model_zoo_does(fakes, load_plugin, small_model, tmp_path, drive):
    artifact, events = drive(load_plugin("ascend").compile(
        CompileRequest(str(small_model), "npu:0", "fp16", (1, 16), str(tmp_path / "work"))))
    folder = tmp_path / "work" / "ascend-fp16"
    assert (artifact.path, artifact.batch_sizes, artifact.tool) == (str(folder), (1, 16), "atc (Ascend310P3)")
    assert fakes.calls("atc") == [
        ["--framework=5", f"--model={small_model}", "--input_format=NCHW", f"--input_shape=input:{b},3,128,128",
         f"--output={folder / f'model_bs{b}'}", "--soc_version=Ascend310P3", "--precision_mode=force_fp16"]
        for b in (1, 16)]  # soc_version from npu-smi's Name column, as the model zoo page says
    assert (folder / "model_bs16.om").is_file()
    assert any("ATC run success" in getattr(e, "message", "") for e in events)
    with pytest.raises(PluginError, match="AMCT"):
        drive(load_plugin("ascend").compile(CompileRequest(str(small_model), "npu:0", "int8", (1,), str(tmp_path))))


def test_profile_takes_ais_benchs_device_compute_figures(fakes, load_plugin, small_model, tmp_path, drive,
                                                         monkeypatch):
    monkeypatch.setenv("FAKE_AIS_NPU_MS", "1,2,3,2")
    plugin = load_plugin("ascend")
    _, events = drive(plugin.profile(ProfileRequest(str(small_model), "npu:1", "fp32", (1, 16), iterations=8,
                                                    warmup=2, workdir=str(tmp_path / "work"),
                                                    model_sha256="ab" * 32)))
    ms = measurements(events)
    assert [m.batch_size for m in ms] == [1, 16]
    for m in ms:
        check_measurement(m, "ascend", "npu:1")
        assert m.meaning == DEVICE_COMPUTE
        assert m.throughput == pytest.approx(1000 * m.batch_size / 2)  # ais_bench's: already images per second
        assert m.raw_ms == (1, 2, 3, 2) * 2 and m.iterations == 8 and m.warmup == 2
        assert m.latency_ms == latency_from([1, 2, 3, 2] * 2)
        assert (m.tool, m.tool_version, m.precision) == ("ais_bench", "0.0.2", "fp32")
        assert "host-to-device copy mean 0.5 ms; device-to-host copy mean 0.1 ms" in m.note
    om = tmp_path / "work" / "ascend-fp32" / "model_bs16.om"
    [call] = [c for c in fakes.calls("ais_bench") if str(om) in c]
    out = call[call.index("--output") + 1]
    assert call == ["--model", str(om), "--loop", "8", "--warmup_count", "2", "--batchsize", "16", "--device", "1",
                    "--output", out, "--output_dirname", "bs16", "--display_all_summary", "1"]
    assert "--precision_mode=force_fp32" in fakes.calls("atc")[0]


@pytest.mark.parametrize("tool", ["atc", "ais_bench"])
def test_a_failing_tool_gives_its_last_lines(tool, fakes, load_plugin, small_model, tmp_path, drive, monkeypatch):
    monkeypatch.setenv("FAKE_ATC_FAIL" if tool == "atc" else "FAKE_AIS_FAIL", "1")
    expect = r"atc failed \(exit code 1\).*E19999" if tool == "atc" else r"python3 failed \(exit code 1\).*507011"
    with pytest.raises(PluginError, match=f"(?s){expect}"):
        drive(load_plugin("ascend").profile(ProfileRequest(str(small_model), "npu:0", "fp16", (1,), 2, 0,
                                                           str(tmp_path))))


def test_from_log_reads_ais_benchs_summary(load_plugin, drive):
    _, events = drive(load_plugin("ascend").parse_logs(
        LogRequest((str(LOGS / "ais_bench_310p3_mobilenet_v1_bs16.log"),), "cd" * 32)))
    [m] = measurements(events)
    assert m.batch_size == 16 and m.throughput == pytest.approx(12259.18)  # the seed's 310P bs16 figure
    assert (m.latency_ms.mean, m.latency_ms.p50, m.latency_ms.p99) == (1.3051443900000002, 1.3083, 1.3249711499999999)
    assert m.latency_ms.p90 is None  # ais_bench prints no 90th percentile, and no figure is made up
    assert (m.iterations, m.device, m.precision, m.meaning) == (100, "npu:0", "fp16", DEVICE_COMPUTE)
    assert "atc's default (fp16) assumed" in m.note and "from log ais_bench_310p3_mobilenet_v1_bs16.log" in m.note


def test_from_log_reads_the_older_ais_infer_lines(load_plugin, drive):
    _, events = drive(load_plugin("ascend").parse_logs(
        LogRequest((str(LOGS / "ais_infer_310_mobilenet_v1_bs8_bs4.log"),), precision="fp16")))
    bs8, bs4 = measurements(events)
    assert (bs8.batch_size, bs8.throughput) == (8, pytest.approx(7116.32))  # "1000*batchsize(8)/..."
    assert (bs4.batch_size, bs4.throughput) == (4, pytest.approx(6736))  # the oldest line leaves the batch out
    assert bs8.latency_ms.mean == pytest.approx(8000 / 7116.32) and bs8.iterations == 100


def test_from_log_reads_a_summary_json_with_every_iteration(load_plugin, drive):
    import json

    path = LOGS / "ais_bench_310p3_bs1_summary.json"
    _, events = drive(load_plugin("ascend").parse_logs(LogRequest((str(path),), precision="fp16")))
    [m] = measurements(events)
    raw = json.loads(path.read_text())["npu_compute_time_list"]
    check_measurement(m, "ascend", "npu:0")
    assert m.raw_ms == tuple(raw) and m.latency_ms == latency_from(raw) and m.iterations == 20
    assert m.batch_size == 1 and m.throughput == pytest.approx(4241.54)


def test_from_log_asks_for_the_batch_size_it_cannot_find(load_plugin, drive, tmp_path):
    log = tmp_path / "ais.log"
    log.write_text("Inference Processing task: 100%|███| 10/10 [00:00<00:00, 85.12it/s]\n"
                   "[INFO] NPU_compute_time (ms): min = 0.7, max = 0.7, mean = 0.7, median = 0.7, "
                   "percentile(99%) = 0.7\n[INFO] throughput (1000*batchsize/NPU_compute_time): 2000.0\n")
    with pytest.raises(PluginError, match="--batch-size"):
        drive(load_plugin("ascend").parse_logs(LogRequest((str(log),))))
    _, events = drive(load_plugin("ascend").parse_logs(LogRequest((str(log),), batch_size=1, precision="fp16")))
    assert measurements(events)[0].throughput == 2000.0  # ais_bench's figure as printed, even when odd
    log.write_text("[INFO] acl init success\n")
    with pytest.raises(PluginError, match="Performance Summary"):
        drive(load_plugin("ascend").parse_logs(LogRequest((str(log),), batch_size=1)))


class TestAscendContract(PluginContract):
    """The shared plugin contract, through the host, on the fake toolchain."""

    plugin_dir = HERE.parents[1] / "plugins" / "ascend"
    sample_logs = (LOGS / "ais_bench_310p3_bs1_summary.json",)

    @pytest.fixture(autouse=True)
    def _fake_tools(self, fakes, tmp_path, monkeypatch):
        monkeypatch.setenv("MBEXPLORER_HOME", str(tmp_path / "home"))
