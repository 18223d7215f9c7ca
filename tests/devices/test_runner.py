"""Plugin calls run in a child process: a plugin that raises, hangs, crashes, prints or spawns tools leaves the
caller alive, the run marked with what happened, and no process behind."""

from __future__ import annotations

import threading
import time

import pytest
from devices_helpers import SAMPLES, gone

from mbexplorer.core.errors import Cancelled
from mbexplorer.core.jobs import Log, Progress, run
from mbexplorer.devices import Artifact, CompileRequest, Measurement, PluginError, ProfileRequest
from mbexplorer.devices.host import compile_job, devices_job, discover, find, profile_job
from mbexplorer.devices.store import Store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "runs.sqlite") as s:
        yield s


def request(**kw) -> ProfileRequest:
    return ProfileRequest(**{"model_path": "model.onnx", "device": "cpu", "batch_sizes": (1, 2),
                             "iterations": 5, "warmup": 1, "model_sha256": "ab" * 32, **kw})


def test_a_good_plugin_measures_each_batch_size_and_stores_it(samples, store):
    events = []
    result = run(profile_job(samples["sleeper"], request(options=(("delay_ms", "2"),)), store, "sleepy"),
                 events.append)
    measured = [e for e in events if isinstance(e, Measurement)]
    assert [m.batch_size for m in measured] == [1, 2]
    assert any(isinstance(e, Progress) for e in events) and any(isinstance(e, Log) for e in events)
    assert result.status == "done" and result.measurements == measured
    for m in measured:
        # a 2 ms sleep per image, timed: the mean is at least that, and throughput follows from it
        assert m.latency_ms.mean >= 2.0 * m.batch_size
        assert m.throughput == pytest.approx(m.batch_size * 1000.0 / m.latency_ms.mean)
        assert len(m.raw_ms) == m.iterations == 5 and m.warmup == 1
        assert m.model_sha256 == "ab" * 32 and m.device_name == "sleepy"  # filled in by the host
    stored = store.run(result.id)
    assert stored.measurements == measured and stored.settings["iterations"] == 5


def test_devices_and_compile_return_their_results(samples, tmp_path):
    devices = run(devices_job(samples["sleeper"]))
    assert [d.id for d in devices] == ["cpu", "npu:0"]
    assert not devices[1].available and "no NPU" in devices[1].reason
    artifact = run(compile_job(samples["sleeper"], CompileRequest("model.onnx", "cpu", workdir=str(tmp_path))))
    assert isinstance(artifact, Artifact) and (tmp_path / "sleeper.artifact").is_file()
    with pytest.raises(PluginError, match="cannot compile: its manifest declares profile"):
        run(compile_job(samples["raiser"], CompileRequest("model.onnx", "cpu")))


def test_a_raising_plugin_fails_the_run_with_its_traceback_and_log(samples, store):
    with pytest.raises(PluginError, match="the plugin raiser failed.*RuntimeError: boom") as err:
        run(profile_job(samples["raiser"], request(), store))
    assert "Traceback" in err.value.traceback and "about to fail" in err.value.log
    (r,) = store.runs()
    assert r.status == "failed" and "boom from the raiser plugin" in r.error and "Traceback" in r.error


def test_a_segfaulting_plugin_fails_the_run_and_the_caller_lives(samples, store):
    with pytest.raises(PluginError, match=r"the plugin crasher crashed \(signal 11, SIGSEGV\) during profile"):
        run(profile_job(samples["crasher"], request(), store))
    (r,) = store.runs()
    assert r.status == "failed" and "crashed" in r.error


def test_what_a_plugin_prints_does_not_corrupt_the_protocol(samples, store):
    events = []
    result = run(profile_job(samples["printer"], request(), store), events.append)
    assert result.status == "done" and [m.batch_size for m in result.measurements] == [1, 2]
    logs = [e.message for e in events if isinstance(e, Log)]
    assert "printer: straight to file descriptor 1" in logs and "printer: imported" in logs


def test_a_plugin_failing_conformance_is_unavailable_for_the_session(samples, store):
    with pytest.raises(PluginError, match="unavailable: it failed the conformance check: it declares 'compile' "
                                          "but has no compile"):
        run(profile_job(samples["nonconformant"], request(), store))
    with pytest.raises(PluginError, match="conformance check"):
        # rediscovered: still unavailable, with the reason
        find("nonconformant", discover([SAMPLES], entry_points=False))
    with pytest.raises(PluginError, match="importing mbx_broken_import failed: ImportError"):
        run(devices_job(samples["broken_import"]))


def _run_in_thread(job):
    """Drive a job on a thread as the GUI does; returns (events, outcome, cancel, thread)."""
    events, outcome, cancel = [], {}, threading.Event()

    def body():
        try:
            outcome["result"] = run(job, events.append, cancel.is_set)
        except BaseException as exc:  # noqa: B036 - the test inspects it
            outcome["error"] = exc

    t = threading.Thread(target=body)
    t.start()
    return events, outcome, cancel, t


def _wait_for_log(events, prefix, timeout=20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in list(events):
            if isinstance(e, Log) and e.message.startswith(prefix):
                return e.message
        time.sleep(0.02)
    raise AssertionError(f"no log line starting {prefix!r} in {events}")


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_cancel_ends_the_child_and_the_tool_it_started(samples, store):
    events, outcome, cancel, t = _run_in_thread(profile_job(samples["spawner"], request(), store))
    tool = int(_wait_for_log(events, "grandchild pid").split()[-1])
    child = _parent(tool)
    cancel.set()
    t.join(10)
    assert not t.is_alive()
    assert isinstance(outcome.get("error"), Cancelled)
    # the tool ignores SIGTERM: the group's SIGKILL ended it, before cancel returned
    assert gone(child) and gone(tool)
    (r,) = store.runs()
    assert r.status == "cancelled"


def test_a_hanging_plugin_is_cancelled(samples, store):
    events, outcome, cancel, t = _run_in_thread(profile_job(samples["hanger"], request(), store))
    _wait_for_log(events, "hanging now")
    cancel.set()
    t.join(10)
    assert isinstance(outcome.get("error"), Cancelled)
    assert store.runs()[0].status == "cancelled"


def test_closing_the_job_midway_ends_its_processes(samples, store):
    job = profile_job(samples["spawner"], request(), store)
    event = next(job)
    while not (isinstance(event, Log) and event.message.startswith("grandchild pid")):
        event = next(job)
    tool = int(event.message.split()[-1])
    child = _parent(tool)
    job.close()
    assert gone(child) and gone(tool)
    assert store.runs()[0].status == "cancelled"


def test_a_plugin_that_hangs_listing_devices_times_out(samples, monkeypatch):
    monkeypatch.setenv("HANGER_DEVICES_HANG", "1")
    with pytest.raises(PluginError, match="did not answer within 1 s"):
        run(devices_job(samples["hanger"], timeout=1))
