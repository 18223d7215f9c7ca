"""The task registry and the job handle: lanes (a new job retires the running one), signals a status widget
follows, shutdown; a log stream apart from progress; a failure's traceback as text; garbage collected on
the UI thread only."""

import gc
import os
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from mbexplorer.core.errors import MbxError  # noqa: E402
from mbexplorer.core.jobs import Log, Progress, warn  # noqa: E402
from mbexplorer.gui.job_status import JobStatus  # noqa: E402
from mbexplorer.gui.tasks import Tasks  # noqa: E402
from mbexplorer.gui.workers import MAX_LOG_LINES, JobHandle, collector  # noqa: E402


def slow(steps=500):
    for i in range(steps):
        time.sleep(0.01)
        yield Progress(i / steps, f"step {i}")
    return "slow done"


def quick(value="done"):
    yield Progress(0.5, "half")
    return value


@pytest.fixture
def tasks(qtbot):
    t = Tasks()
    yield t
    t.shutdown()


def test_a_new_job_retires_the_running_one(qtbot, tasks):
    seen = []
    tasks.started.connect(lambda lane, job: seen.append(("started", lane, job.label)))
    tasks.ended.connect(lambda lane, job: seen.append(("ended", lane, job.label)))
    first = tasks.start("model", JobHandle(slow, "first"))
    other = tasks.start("classify", JobHandle(slow, "other"))  # another lane: runs alongside
    assert tasks.current("model") is first and tasks.current("classify") is other
    results = []
    second = JobHandle(quick, "second")
    second.finished.connect(lambda r: results.append((r, tasks.current("model"), tasks.is_current(second))))
    with qtbot.waitSignal(second.finished, timeout=10_000):
        tasks.start("model", second)
        assert first.is_cancel_requested() and not tasks.is_current(first)
        assert first in tasks.jobs()  # retired, kept alive until its thread ends
    # the owner's slot sees the lane free already, and that its job is the one wanted
    assert results == [("done", None, True)]
    qtbot.waitUntil(lambda: first not in tasks.jobs() and second not in tasks.jobs(), timeout=10_000)
    assert first.state == "cancelled" and tasks.jobs() == [other]
    assert seen == [("started", "model", "first"), ("started", "classify", "other"), ("ended", "model", "first"),
                    ("started", "model", "second"), ("ended", "model", "second")]
    assert tasks.cancel("classify") and not tasks.cancel("model")
    with qtbot.waitSignal(other.cancelled, timeout=10_000):
        pass
    assert tasks.current("classify") is None


def test_shutdown_cancels_and_waits_for_every_job(qtbot, tasks):
    a = tasks.start("model", JobHandle(slow, "a"))
    b = tasks.start("model", JobHandle(slow, "b"))  # a is retired, still unwinding
    c = tasks.start("classify", JobHandle(slow, "c"))
    tasks.shutdown()
    assert tasks.jobs() == [] and all(j.is_cancel_requested() and not j.is_running() for j in (a, b, c))
    assert tasks.current("model") is None and tasks.current("classify") is None


def test_log_lines_are_their_own_stream(qtbot, tasks):
    def chatty():
        yield Progress(0.25, "reading")
        yield Log("opened the file")
        yield warn("an op runs on the slow path")
        for i in range(MAX_LOG_LINES + 5):
            yield Log(f"line {i}")
        yield Progress(0.5, "")
        return 1

    status = JobStatus()
    status.follow(tasks, "model")
    progress, logs, shown = [], [], []
    job = JobHandle(chatty, "Chatty…")
    job.progress.connect(lambda f, m: progress.append((f, m)))
    job.log.connect(lambda level, m: logs.append((level, m)))
    tasks.log.connect(lambda lane, level, m: shown.append((status.message.text(), status.bar.value())))
    with qtbot.waitSignal(job.finished, timeout=10_000):
        tasks.start("model", job)
        assert status.isVisible() and status.message.text() == "Chatty…"
    assert progress == [(0.25, "reading"), (0.5, "")]  # log lines never come out as progress
    assert logs[:2] == [("info", "opened the file"), ("warning", "an op runs on the slow path")]
    assert len(logs) == MAX_LOG_LINES + 7
    assert len(job.logs) == MAX_LOG_LINES and job.logs[-1] == ("info", f"line {MAX_LOG_LINES + 4}")  # bounded
    # the status shows the latest line as its message; the bar keeps the progress
    assert ("warning: an op runs on the slow path", 250) in shown
    assert not status.isVisible()


def test_a_failure_keeps_its_traceback_as_text(qtbot, tasks):
    def buggy():
        yield Log("about to fail")
        raise RuntimeError("boom")

    def refused():
        yield Progress(0.1)
        raise MbxError("that file is not a model")

    bug = JobHandle(buggy)
    with qtbot.waitSignal(bug.failed, timeout=10_000) as blocker:
        tasks.start("model", bug)
    assert blocker.args == ["internal error: RuntimeError: boom"]  # one line for the user
    assert bug.traceback.startswith("Traceback") and "in buggy" in bug.traceback
    assert bug.traceback.rstrip().endswith("RuntimeError: boom")
    assert bug.exception.__traceback__ is None  # the exception itself holds no frames (no cycle)
    assert bug.details() == "info: about to fail\n" + bug.traceback.rstrip()
    user = JobHandle(refused)
    with qtbot.waitSignal(user.failed, timeout=10_000):
        tasks.start("model", user)
    assert user.error == "that file is not a model" and "MbxError" in user.traceback
    assert user.details() == ""  # the user's error: no traceback in the box


def test_internal_error_offers_details_in_the_error_box(qtbot, v2_window):
    def buggy():
        yield Progress(0.1)
        raise KeyError("nodes")

    with qtbot.waitSignal(v2_window.load_failed, timeout=10_000):
        v2_window.start_job(buggy, "Buggy…", {"path": None})
    box = v2_window.last_error
    assert box.text() == "internal error: KeyError: 'nodes'"
    assert "Traceback" in box.detailedText() and "in buggy" in box.detailedText()


def test_garbage_is_collected_on_the_ui_thread_only(qtbot, tasks):
    """Automatic collection is off while the app runs: a job that leaves thousands of cycles on its worker
    thread never triggers a collection there; the UI thread's timer collects them."""
    gc_timer = collector()
    assert gc_timer is not None and not gc.isenabled()
    threads = []

    def on_gc(phase, info):
        if phase == "start":
            threads.append(threading.get_ident())

    def litter():
        for _ in range(5):
            for _ in range(20_000):
                a, b = [], []
                a.append(b)
                b.append(a)  # a cycle only the collector frees
            yield Progress(0.1)

    before = gc_timer.collections
    gc.callbacks.append(on_gc)
    try:
        job = JobHandle(litter)
        with qtbot.waitSignal(job.finished, timeout=30_000):
            tasks.start("model", job)
        qtbot.waitUntil(lambda: gc_timer.collections > before, timeout=5_000)  # the timer ticks each second
    finally:
        gc.callbacks.remove(on_gc)
    assert threads and set(threads) == {threading.main_thread().ident}
    assert not gc.isenabled()
