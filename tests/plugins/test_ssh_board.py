"""Profiling on a board over ssh, against a real OpenSSH server on 127.0.0.1 (the board fixture): the plugin copies
the compiled model over with scp, runs the vendor tool there through ssh (an absolute tool_dir, since ssh passes no
PATH of ours) and parses what comes back. The "board"'s tools are the same fakes, in a folder of their own."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest

from mbexplorer.devices import CompileRequest, PluginError, ProfileRequest, ToolMissing


def measurements(events):
    return [e for e in events if hasattr(e, "throughput")]


def test_horizon_times_the_model_on_the_board(board, board_tools, fakes, load_plugin, small_model, tmp_path, drive):
    plugin = load_plugin("horizon")
    artifact, _ = drive(plugin.compile(CompileRequest(str(small_model), "rdk-x5", "int8", (1, 2), str(tmp_path))))
    options = board.options(tool_dir=str(board_tools.bin), thread_num="1")
    _, events = drive(plugin.profile(ProfileRequest(str(small_model), "rdk-x5", "int8", (1, 2), iterations=200,
                                                    warmup=0, artifact=artifact, options=options)))
    ms = measurements(events)
    # hrt_model_exec's figures as it printed them on the board: the X5 zoo's 1.27 ms on one thread
    assert [(m.batch_size, m.throughput, m.latency_ms.mean) for m in ms] == [(1, 787.401575, 1.27),
                                                                             (2, 2 * 787.401575, 1.27)]
    remote = Path(dict(options)["remote_dir"])
    assert board_tools.calls("hrt_model_exec") == [
        ["perf", "--model_file", str(remote / f"model_bs{b}.bin"), "--thread_num", "1", "--frame_count", "200"]
        for b in (1, 2)]
    assert fakes.calls("hrt_model_exec") == []  # not the local one
    sent = json.loads((remote / "model_bs2.bin").read_text())  # scp put the compiled model there
    assert sent["batch"] == 2 and sent == json.loads((Path(artifact.path) / "model_bs2.bin").read_text())


def test_trtexec_builds_and_times_on_the_gpu_machine(board, board_tools, load_plugin, small_model, tmp_path, drive):
    plugin = load_plugin("trtexec")
    options = board.options(tool_dir=str(board_tools.bin))
    artifact, _ = drive(plugin.compile(CompileRequest(str(small_model), "cuda:0", "fp16", (4,), str(tmp_path),
                                                      options=options)))
    engine = Path(artifact.path) / "model_bs4.engine"
    assert json.loads(engine.read_text())["shapes"] == "input:4x3x128x128"  # built there, copied back
    _, events = drive(plugin.profile(ProfileRequest(str(small_model), "cuda:0", "fp16", (4,), iterations=10,
                                                    warmup=1, artifact=artifact, options=options)))
    [m] = measurements(events)
    assert m.throughput == pytest.approx(500 * 4) and m.raw_ms == (2.0,) * 10  # the times file came back too
    remote = dict(options)["remote_dir"]
    build, timing = board_tools.calls("trtexec")
    assert build[:2] == [f"--onnx={remote}/model.onnx", f"--saveEngine={remote}/model_bs4.engine"]
    assert timing[0] == f"--loadEngine={remote}/model_bs4.engine"
    assert f"--exportTimes={remote}/times_bs4.json" in timing


def test_a_tool_missing_on_the_board_says_where(board, load_plugin, small_model, tmp_path, drive, fakes):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    with pytest.raises(ToolMissing, match="board's system image") as err:
        drive(load_plugin("horizon").profile(ProfileRequest(str(small_model), "rdk-x5", "int8", (1,),
                                                            options=board.options(tool_dir=str(empty)))))
    assert err.value.tool == f"{empty}/hrt_model_exec on {getpass.getuser()}@127.0.0.1"


def test_an_unreachable_board_is_not_a_missing_tool(board, load_plugin, small_model, drive):
    options = board.options(port=str(board.port + 1 if board.port < 65535 else board.port - 1))
    with pytest.raises(PluginError, match="cannot reach") as err:
        drive(load_plugin("horizon").profile(ProfileRequest(str(small_model), "rdk-x5", "int8", (1,),
                                                            options=options)))
    assert not isinstance(err.value, ToolMissing)
