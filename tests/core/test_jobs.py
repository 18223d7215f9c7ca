"""Generator jobs: results, nested progress, log levels, cancellation (between events and at checkpoints)
that runs the job's clean-up."""

import pytest

from mbexplorer.core.analysis import build_job
from mbexplorer.core.errors import Cancelled
from mbexplorer.core.jobs import Log, Progress, checkpoint, nested, run, warn


def test_run_returns_the_result_and_reports_events():
    def job():
        yield Progress(0.5, "half")
        yield Log("note")
        return 42

    events = []
    assert run(job(), events.append) == 42
    assert events == [Progress(0.5, "half"), Log("note")]


def test_nested_progress_maps_into_the_parent_slice():
    def child():
        yield Progress(0.0)
        yield Progress(0.5)
        yield Progress(1.0)
        return "child"

    def parent():
        r = yield from nested(child(), 0.2, 0.6)
        yield Progress(1.0)
        return r

    seen = []
    assert run(parent(), seen.append) == "child"
    assert [round(e.fraction, 3) for e in seen] == [0.2, 0.4, 0.6, 1.0]


def test_cancel_closes_the_job_so_its_cleanup_runs():
    cleaned = []

    def job():
        try:
            for i in range(100):
                yield Progress(i / 100)
        finally:
            cleaned.append(True)

    count = 0

    def cancelled():
        return count >= 3

    def on_event(_):
        nonlocal count
        count += 1

    with pytest.raises(Cancelled):
        run(job(), on_event, cancelled)
    assert cleaned == [True] and count == 3


def test_build_job_reports_monotonic_progress():
    fractions = []
    a = run(build_job("mobilenet_v3_small", 0.5, 128), lambda e: fractions.append(e.fraction))
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert a.costs.totals()["macs"] > 0 and len(a.blocks.blocks) == 13


def test_log_lines_have_a_level():
    assert warn("careful") == Log("careful", "warning") and Log("note").level == "info"


def test_checkpoint_cancels_a_blocking_stretch_between_yields():
    """A job blocked in a long loop between two yields stops at its next checkpoint, and its clean-up runs."""
    flag = {"cancel": False}
    reached, cleaned = [], []

    def job():
        try:
            yield Progress(0.0)
            for i in range(1000):  # one long stretch: no yield, only checkpoints
                if i == 10:
                    flag["cancel"] = True  # the user clicks Cancel meanwhile
                checkpoint()
                reached.append(i)
            yield Progress(1.0)
        finally:
            checkpoint()  # clean-up is not interrupted: the cancel test is gone by then
            cleaned.append(True)

    with pytest.raises(Cancelled):
        run(job(), None, lambda: flag["cancel"])
    assert reached == list(range(10)) and cleaned == [True]
    checkpoint()  # outside a job: nothing to cancel


def test_checkpoint_in_an_inner_run_follows_the_outer_cancel():
    flag = {"cancel": False}

    def inner():
        flag["cancel"] = True
        checkpoint()
        yield Progress(1.0)
        return "not reached"

    def outer():
        yield Progress(0.0)
        return run(inner())  # a job that drives another one without a cancel test of its own

    with pytest.raises(Cancelled):
        run(outer(), None, lambda: flag["cancel"])
    assert run(inner()) == "not reached"  # no job around it: the checkpoint does nothing
