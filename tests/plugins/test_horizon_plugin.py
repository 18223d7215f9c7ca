"""The Horizon (D-Robotics RDK X5) plugin against fakes of hb_mapper and hrt_model_exec that keep the real tools'
options and output (tests/plugins/fakes). The board over ssh is tested in test_ssh_board.py; here the tool runs
locally, as it does when mbexplorer itself runs on the board."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mbexplorer.devices import END_TO_END, CompileRequest, LogRequest, PluginError, ProfileRequest, ToolMissing
from mbexplorer.devices.testkit import PluginContract

HERE = Path(__file__).resolve().parent
LOGS = HERE / "logs"


def measurements(events):
    return [e for e in events if hasattr(e, "throughput")]


def test_the_board_is_listed_without_reaching_it(load_plugin):
    [board] = load_plugin("horizon").devices()
    assert (board.id, board.kind, board.precisions, dict(board.details)["march"]) == ("rdk-x5", "npu", ("int8",),
                                                                                      "bayes-e")


def test_without_the_tools_it_says_where_to_get_them(no_tools, load_plugin, small_model, tmp_path, drive):
    plugin = load_plugin("horizon")
    with pytest.raises(ToolMissing, match="OpenExplorer") as err:
        drive(plugin.compile(CompileRequest(str(small_model), "rdk-x5", "int8", (1,), str(tmp_path))))
    assert err.value.tool == "hb_mapper"
    with pytest.raises(ToolMissing, match="board's system image") as err:
        drive(plugin.profile(ProfileRequest(str(small_model), "rdk-x5", "int8", (1,), workdir=str(tmp_path))))
    assert err.value.tool == "hrt_model_exec"


def test_compile_writes_hb_mappers_config_from_the_request(fakes, load_plugin, small_model, tmp_path, drive):
    plugin = load_plugin("horizon")
    artifact, events = drive(plugin.compile(CompileRequest(str(small_model), "rdk-x5", "int8", (1, 4),
                                                           str(tmp_path / "work"))))
    folder = tmp_path / "work" / "horizon-int8"
    assert (artifact.path, artifact.batch_sizes, artifact.tool) == (str(folder), (1, 4), "hb_mapper 1.24.3 (bayes-e)")
    configs = [folder / f"bs{b}" / "config.yaml" for b in (1, 4)]
    assert fakes.calls("hb_mapper") == [["makertbin", "--config", str(c), "--model-type", "onnx"] for c in configs]
    text = configs[1].read_text()
    for line in ['march: "bayes-e"', 'input_name: "input"', 'input_shape: "1x3x128x128"', "input_batch: 4",
                 'input_type_rt: "featuremap"', 'norm_type: "no_preprocess"', 'calibration_type: "skip"',
                 f'onnx_model: "{small_model}"']:
        assert line in text
    assert "input_batch" not in configs[0].read_text()
    assert json.loads((folder / "model_bs4.bin").read_text())["batch"] == 4
    assert any("skips calibration" in getattr(e, "message", "") for e in events)


def test_compile_calibrates_with_the_images_given(fakes, load_plugin, small_model, tmp_path, drive):
    cal = tmp_path / "calibration"
    cal.mkdir()
    (cal / "0.bin").write_bytes(b"\0" * 16)
    drive(load_plugin("horizon").compile(CompileRequest(str(small_model), "rdk-x5", "int8", (1,), str(tmp_path),
                                                        options=(("cal_data_dir", str(cal)),))))
    text = (tmp_path / "horizon-int8" / "bs1" / "config.yaml").read_text()
    assert f'cal_data_dir: "{cal}"' in text and 'calibration_type: "default"' in text
    with pytest.raises(PluginError, match="int8"):
        drive(load_plugin("horizon").compile(CompileRequest(str(small_model), "rdk-x5", "fp16", (1,), str(tmp_path))))


@pytest.mark.parametrize("threads, latency, fps", [("1", 1.27, 787.401575), ("4", 2.90, 1356.25)])
def test_profile_reads_hrt_model_execs_perf_result(threads, latency, fps, fakes, load_plugin, small_model, tmp_path,
                                                   drive):
    """The fake's default figures are the RDK X5 model zoo's MobileNetV1: 1.27 ms on one thread, 1356.25 FPS on
    several."""
    _, events = drive(load_plugin("horizon").profile(ProfileRequest(
        str(small_model), "rdk-x5", "int8", (1, 2), iterations=400, warmup=5, workdir=str(tmp_path / "work"),
        model_sha256="ab" * 32, options=(("thread_num", threads),))))
    ms = measurements(events)
    assert [m.batch_size for m in ms] == [1, 2]
    for m in ms:
        assert m.throughput == pytest.approx(fps * m.batch_size)  # frames per second x images per frame
        assert m.latency_ms.mean == latency  # hrt_model_exec's Average latency, and nothing it did not print
        assert (m.latency_ms.p50, m.latency_ms.p90, m.latency_ms.p99) == (None, None, None)
        assert (m.iterations, m.warmup, m.meaning, m.precision) == (400, 0, END_TO_END, "int8")
        assert (m.tool, m.tool_version, m.device_name) == ("hrt_model_exec", "1.23.10", "RDK X5")
        assert "no percentiles" in m.note and "no warm-up" in m.note
    model = tmp_path / "work" / "horizon-int8" / "model_bs2.bin"
    assert fakes.calls("hrt_model_exec")[-1] == ["perf", "--model_file", str(model), "--thread_num", threads,
                                                 "--frame_count", "400"]


def test_a_failing_hb_mapper_gives_its_last_lines(fakes, load_plugin, small_model, tmp_path, drive, monkeypatch):
    monkeypatch.setenv("FAKE_HB_MAPPER_FAIL", "1")
    with pytest.raises(PluginError, match=r"(?s)hb_mapper failed \(exit code 1\).*quantization failed"):
        drive(load_plugin("horizon").compile(CompileRequest(str(small_model), "rdk-x5", "int8", (1,), str(tmp_path))))


def test_from_log_reads_each_perf_result(load_plugin, drive):
    log = LOGS / "hrt_model_exec_rdk_x5_mobilenetv1.log"
    _, events = drive(load_plugin("horizon").parse_logs(LogRequest((str(log),), "cd" * 32, batch_size=1)))
    one, four = measurements(events)
    assert (one.latency_ms.mean, one.throughput, one.iterations) == (1.27, 785.795543, 200)  # the seed's 1.27 ms
    assert (four.latency_ms.mean, four.throughput, four.iterations) == (2.9, 1356.25, 1000)  # and its 1356.25 FPS
    assert "4 thread(s)" in four.note and "(min 1.293 ms, max 4.29 ms)" in four.note
    assert (four.device, four.device_name, four.precision) == ("rdk-x5", "RDK X5", "int8")
    with pytest.raises(PluginError, match="--batch-size"):
        drive(load_plugin("horizon").parse_logs(LogRequest((str(log),))))


class TestHorizonContract(PluginContract):
    """The shared plugin contract, through the host, with the fake tools running "on the board" locally."""

    plugin_dir = HERE.parents[1] / "plugins" / "horizon"
    sample_logs = (LOGS / "hrt_model_exec_rdk_x5_mobilenetv1.log",)
    log_batch_size = 1

    @pytest.fixture(autouse=True)
    def _fake_tools(self, fakes, tmp_path, monkeypatch):
        monkeypatch.setenv("MBEXPLORER_HOME", str(tmp_path / "home"))

