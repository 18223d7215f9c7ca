"""Long-running work as generator jobs.

A job is a generator function that yields events (:class:`Progress`, :class:`Log`) and *returns* its
result. The CLI drives a job with :func:`run`; the GUI runs it on a worker thread and cancels it by not
resuming it: :func:`run` checks ``cancelled()`` between events and closes the generator, so its ``finally:``
blocks clean up (child processes, temporary files) before :class:`Cancelled` is raised.

Progress nests: ``yield from nested(sub_job, 0.2, 0.8)`` maps the sub-job's 0..1 into 20..80 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generator

from .errors import Cancelled


@dataclass(frozen=True)
class Progress:
    fraction: float  # 0..1
    message: str = ""


@dataclass(frozen=True)
class Log:
    message: str
    level: str = "info"


Event = Progress | Log
Job = Generator[Event, None, Any]


def run(job: Job, on_event: Callable[[Event], None] | None = None,
        cancelled: Callable[[], bool] | None = None) -> Any:
    """Drive a job to its end and return its result. Raises :class:`Cancelled` if ``cancelled()`` turns true."""
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
