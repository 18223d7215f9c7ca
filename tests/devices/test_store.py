"""The runs store: measurements committed as they arrive (a `kill -9` of the recorder keeps them), runs listed,
reopened and deleted, and a database it cannot read refused with a clear message."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from devices_helpers import SAMPLES, gone

from mbexplorer.core.errors import MbxError
from mbexplorer.devices import END_TO_END, measurement_from_times
from mbexplorer.devices.store import Store, data_home


def point(bs: int, times=(1.0, 2.0, 3.0)):
    return measurement_from_times(list(times), batch_size=bs, plugin="p", device="cpu", tool="t", tool_version="1",
                                  model_sha256="s", precision="fp32", warmup=0, meaning=END_TO_END,
                                  timestamp=time.time())


def test_data_home_follows_the_environment(tmp_path, monkeypatch):
    assert data_home() == tmp_path / "home"
    monkeypatch.delenv("MBEXPLORER_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert data_home() == tmp_path / "xdg" / "mbexplorer"
    assert Store().path.parent == data_home()


def test_runs_are_listed_newest_first_reopened_and_deleted(tmp_path):
    with Store(tmp_path / "r.sqlite") as s:
        a = s.new_run("p", "cpu", "CPU", "/m.onnx", "s", "fp32", {"iterations": 3})
        s.add(a, point(1))
        s.add(a, point(2, (2.0, 4.0, 6.0)))
        s.finish(a, "done")
        b = s.new_run("p", "cpu", "CPU", "/m.onnx", "s", "int8", {}, source="log")
        assert [r.id for r in s.runs()] == [b, a]
        assert s.runs()[0].status == "running"  # this process records it: alive, not interrupted
    with Store(tmp_path / "r.sqlite") as s:  # reopened
        r = s.run(a)
        assert r.status == "done" and r.finished and r.settings == {"iterations": 3} and r.source == "measured"
        assert [m.batch_size for m in r.measurements] == [1, 2]
        assert r.measurements[1].latency_ms.mean == pytest.approx(4.0) and r.measurements[1].raw_ms == (2, 4, 6)
        s.delete(a)
        assert [r.id for r in s.runs()] == [b]
        with pytest.raises(MbxError, match=f"there is no run {a}"):
            s.run(a)
        with pytest.raises(MbxError, match=f"there is no run {a}"):
            s.delete(a)


def test_a_file_it_cannot_read_is_refused_clearly(tmp_path):
    bad = tmp_path / "runs.sqlite"
    bad.write_bytes(b"this is not a database, it is a text file " * 100)
    with pytest.raises(MbxError, match="is not a runs database mbexplorer can read"):
        Store(bad)
    newer = tmp_path / "newer.sqlite"
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(MbxError, match="written by a newer mbexplorer"):
        Store(newer)


RECORDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from mbexplorer.devices import Measurement, Log, ProfileRequest
    from mbexplorer.devices.host import discover, find, profile_job
    from mbexplorer.devices.store import Store

    info = find("sleeper", discover([Path(sys.argv[1])], entry_points=False))
    request = ProfileRequest("m.onnx", "cpu", batch_sizes=(1, 2, 4), iterations=3, warmup=0,
                             options=(("pause_after_s", "60"),))
    for event in profile_job(info, request, Store(Path(sys.argv[2]))):
        if isinstance(event, Log) and event.message.startswith("sleeper pid"):
            print(event.message, flush=True)
        if isinstance(event, Measurement):
            print("POINT", flush=True)
""")


def test_a_kill_9_of_the_recorder_keeps_its_finished_points(tmp_path):
    db = tmp_path / "runs.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", RECORDER, str(SAMPLES), str(db)], stdout=subprocess.PIPE,
                            text=True)
    try:
        plugin_pid = int(proc.stdout.readline().split()[-1])
        assert proc.stdout.readline().strip() == "POINT"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with Store(db) as s:
        (r,) = s.runs()
    assert r.status == "interrupted"
    assert [m.batch_size for m in r.measurements] == [1]
    # the plugin's process notices its host is gone and ends its group (generous bound: it polls twice a second)
    deadline = time.monotonic() + 10
    while not gone(plugin_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(plugin_pid)
