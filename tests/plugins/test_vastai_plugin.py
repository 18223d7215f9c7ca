"""The VastAI plugin against fakes of vamc and vamp that keep the real tools' command lines and vamp's report
(tests/plugins/fakes); the sample log is vamp's report as VastModelZOO's pages show it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mbexplorer.devices import END_TO_END, CompileRequest, LogRequest, PluginError, ProfileRequest, ToolMissing
from mbexplorer.devices.testkit import PluginContract, check_measurement

HERE = Path(__file__).resolve().parent
LOGS = HERE / "logs"


def measurements(events):
    return [e for e in events if hasattr(e, "throughput")]


@pytest.fixture
def vdsp(tmp_path) -> Path:
    """A vdsp_params JSON in the zoo's layout (vamp's preprocessing on the card)."""
    path = tmp_path / "ppcls-mobilenet_v1-vdsp_params.json"
    path.write_text(json.dumps({"vdsp_op_type": "RGB_RESIZE_CVTCOLOR_CROP_NORMALIZATION_TENSORIZATION_U8",
                                "config": [{"Property": "crop_size", "DType": "UINT_32", "ParamType": "ELEMENT",
                                            "Value": 128}]}))
    return path


def test_without_the_tools_it_says_where_to_get_them(no_tools, load_plugin, small_model, tmp_path, drive, vdsp):
    plugin = load_plugin("vastai")
    assert not plugin.devices()[0].available and "vamp" in plugin.devices()[0].reason
    with pytest.raises(ToolMissing, match="VastModelZOO") as err:
        drive(plugin.compile(CompileRequest(str(small_model), "vastai:0", "fp16", (1,), str(tmp_path))))
    assert err.value.tool == "vamc"
    with pytest.raises(ToolMissing, match="vastpipe") as err:
        drive(plugin.profile(ProfileRequest(str(small_model), "vastai:0", "fp16", (1,), workdir=str(tmp_path),
                                            options=(("vdsp_params", str(vdsp)),))))
    assert err.value.tool == "vamp"


def test_compile_builds_one_model_for_every_batch(fakes, load_plugin, small_model, tmp_path, drive):
    cal = tmp_path / "calib"
    cal.mkdir()
    (cal / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"\xff\xd8")
    artifact, _ = drive(load_plugin("vastai").compile(CompileRequest(
        str(small_model), "vastai:0", "int8", (1, 22), str(tmp_path / "work"), options=(("cal_data_dir", str(cal)),))))
    folder = tmp_path / "work" / "vastai-int8"
    assert (artifact.path, artifact.batch_sizes, artifact.precision) == (str(folder), (1, 22), "int8")
    assert fakes.calls("vamc") == [["build", str(folder / "vamc.yaml")]]
    config = (folder / "vamc.yaml").read_text()
    for line in ['"input": [1, 3, 128, 128]', f'checkpoint: "{small_model}"', "do_quantization: true",
                 f'path: "{cal}"', "size: [256, 256]", "crop_size: [128, 128]", "mean: [0.485, 0.456, 0.406]"]:
        assert line in config
    prefix = folder / "model" / "model-int8-percentile-1_3_128_128-vacc" / "model"
    assert all(prefix.with_suffix(s).is_file() for s in (".so", ".json", ".params"))
    with pytest.raises(PluginError, match="cal_data_dir"):
        drive(load_plugin("vastai").compile(CompileRequest(str(small_model), "vastai:0", "int8", (1,), str(tmp_path))))


def test_profile_times_each_batch_with_vamp(fakes, load_plugin, small_model, tmp_path, drive, vdsp, monkeypatch):
    monkeypatch.setenv("FAKE_VAMP_E2E_US", "2000,1500,4000,1900,2500,2600,3100")
    monkeypatch.setenv("FAKE_VAMP_MODEL_US", "1800,1400,3900,1700,2300,2400,2900")
    _, events = drive(load_plugin("vastai").profile(ProfileRequest(
        str(small_model), "vastai:0", "fp16", (1, 22), iterations=64, warmup=0, workdir=str(tmp_path / "work"),
        model_sha256="ab" * 32, options=(("vdsp_params", str(vdsp)), ("instances", "2")))))
    ms = measurements(events)
    assert [m.batch_size for m in ms] == [1, 22]
    for m in ms:
        check_measurement(m, "vastai", "vastai:0")
        assert m.throughput == pytest.approx(2 * m.batch_size * 1e6 / 2000)  # vamp's qps counts samples
        assert (m.latency_ms.mean, m.latency_ms.p50, m.latency_ms.p90, m.latency_ms.p99) == (2.0, 1.9, 2.5, 3.1)
        assert (m.meaning, m.iterations, m.precision) == (END_TO_END, 64, "fp16")
        assert "model latency (the model alone): avg 1.8 ms, p50 1.7 ms, p99 2.9 ms" in m.note
    prefix = tmp_path / "work" / "vastai-fp16" / "model" / "model-fp16-none-1_3_128_128-vacc" / "model"
    assert fakes.calls("vamp")[1] == ["-m", str(prefix), "--vdsp_params", str(vdsp), "-i", "2", "-p", "1", "-b", "22",
                                      "-d", "0", "--iterations", "64"]
    assert len(fakes.calls("vamc")) == 1  # compiled once: the card batches at run time


def test_profile_needs_vamps_preprocessing_json(fakes, load_plugin, small_model, tmp_path, drive):
    with pytest.raises(PluginError, match="vdsp_params"):
        drive(load_plugin("vastai").profile(ProfileRequest(str(small_model), "vastai:0", "fp16", (1,),
                                                           workdir=str(tmp_path))))


def test_a_failing_vamc_gives_its_last_lines(fakes, load_plugin, small_model, tmp_path, drive, monkeypatch):
    monkeypatch.setenv("FAKE_VAMC_FAIL", "1")
    with pytest.raises(PluginError, match=r"(?s)vamc failed \(exit code 1\).*unsupported operator"):
        drive(load_plugin("vastai").compile(CompileRequest(str(small_model), "vastai:0", "fp16", (1,), str(tmp_path))))


def test_from_log_reads_vamps_report(load_plugin, drive, tmp_path):
    log = LOGS / "vamp_mobilenet_v1_int8_bs22.log"
    _, events = drive(load_plugin("vastai").parse_logs(LogRequest((str(log),), "cd" * 32)))
    [m] = measurements(events)
    check_measurement(m, "vastai", "vastai:0")
    assert (m.batch_size, m.precision, m.iterations, m.tool_version) == (22, "int8", 1024, "2.1.0")  # all logged
    assert m.throughput == 9872.35
    assert (m.latency_ms.mean, m.latency_ms.p50, m.latency_ms.p90, m.latency_ms.p99) == (17.813, 17.781, 18.402,
                                                                                          21.044)
    assert "8 instance(s)" in m.note and "ai utilize 96.2114%" in m.note
    bare = tmp_path / "vamp.log"  # the seed's command line has no --iterations
    bare.write_text(log.read_text().replace(" --iterations 1024", ""))
    with pytest.raises(PluginError, match="iterations"):
        drive(load_plugin("vastai").parse_logs(LogRequest((str(bare),))))


class TestVastaiContract(PluginContract):
    """The shared plugin contract, through the host, on the fake tools."""

    plugin_dir = HERE.parents[1] / "plugins" / "vastai"
    sample_logs = (LOGS / "vamp_mobilenet_v1_int8_bs22.log",)

    @pytest.fixture(autouse=True)
    def _fake_tools(self, fakes, vdsp, tmp_path, monkeypatch):
        monkeypatch.setenv("MBEXPLORER_HOME", str(tmp_path / "home"))
        self.options = {"vdsp_params": str(vdsp), "cal_data_dir": str(vdsp.parent)}
