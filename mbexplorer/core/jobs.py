"""Long-running work as generator jobs.

A job is a generator function that yields events (:class:`Progress`, :class:`Log`) and *returns* its
result. The CLI drives a job with :func:`run`; the GUI runs it on a worker thread and cancels it by not
resuming it: :func:`run` checks ``cancelled()`` between events and closes the generator, so its ``finally:``
blocks clean up (child processes, temporary files) before :class:`Cancelled` is raised.

Progress nests: ``yield from nested(sub_job, 0.2, 0.8)`` maps the sub-job's 0..1 into 20..80 %.

Log lines are their own stream: ``yield Log("...")`` or ``yield warn("...")``; a front end shows or keeps them,
never as progress.

A job that runs a long blocking call between two yields (a calibration batch, a profiling loop) calls
:func:`checkpoint` inside it: while :func:`run` drives the job it raises :class:`Cancelled` as soon as a
cancel was requested, so the user does not wait for the next yield. Outside a job it does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .errors import Cancelled


@dataclass(frozen=True)
class Progress:
    fraction: float  # 0..1
    message: str = ""


@dataclass(frozen=True)
class Log:
    message: str
    level: str = "info"  # "info" or "warning"


def warn(message: str) -> Log:
    """A warning-level log line: ``yield warn("...")``."""
    return Log(message, "warning")


Event = Progress | Log
Job = Generator[Event, None, Any]

# The cancel test of the job being driven on this thread (each thread has its own context), for checkpoint().
# A generator runs in its caller's context, so code inside the job sees what run() set.
_cancelled: ContextVar[Callable[[], bool] | None] = ContextVar("mbexplorer_job_cancelled", default=None)


def checkpoint() -> None:
    """Raise :class:`Cancelled` if the job being run was asked to stop; a no-op outside a job. For inner loops
    that block for long between yields."""
    cancelled = _cancelled.get()
    if cancelled is not None and cancelled():
        # Once: the job's finally blocks run as this unwinds, and their clean-up must not be cut short too.
        _cancelled.set(None)
        raise Cancelled("cancelled")


def run(job: Job, on_event: Callable[[Event], None] | None = None,
        cancelled: Callable[[], bool] | None = None) -> Any:
    """Drive a job to its end and return its result. Raises :class:`Cancelled` if ``cancelled()`` turns true,
    between events or at a :func:`checkpoint`."""
    # Without a cancel test of its own (a run inside a job), the outer run's test stays in force.
    token = _cancelled.set(cancelled) if cancelled is not None else None
    try:
        while True:
            if cancelled is not None and cancelled():
                raise Cancelled("cancelled")
            try:
                event = next(job)
            except StopIteration as stop:
                return stop.value
            if on_event is not None:
                on_event(event)
    finally:
        if token is not None:
            _cancelled.reset(token)  # first: the job's clean-up (run by close) must not be cancelled midway
        job.close()


def nested(job: Job, start: float, end: float) -> Job:
    """Run a sub-job inside the parent's ``start..end`` slice of progress; returns the sub-job's result."""
    span = end - start
    try:
        while True:
            try:
                event = next(job)
            except StopIteration as stop:
                return stop.value
            if isinstance(event, Progress):
                event = Progress(start + span * max(0.0, min(1.0, event.fraction)), event.message)
            yield event
    finally:
        job.close()
