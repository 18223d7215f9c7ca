"""Running core generator jobs on a worker thread.

A :class:`JobHandle` owns one QThread and one worker object moved onto it. The worker drives the job with
``jobs.run`` and reports through queued signals, so the window's slots run on the UI thread and the UI
never blocks while a model loads or builds. ``cancel()`` only raises a flag: ``jobs.run`` checks it
between the job's events, closes the generator (its ``finally:`` blocks clean up) and raises
``Cancelled``, which becomes the ``cancelled`` signal.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from mbexplorer.core import jobs
from mbexplorer.core.errors import Cancelled, MbxError


class _Worker(QObject):
    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, factory: Callable[[], jobs.Job], flag: threading.Event):
        super().__init__()
        self._factory = factory
        self._flag = flag
        self.exception: BaseException | None = None

    @Slot()
    def run(self) -> None:
        try:
            result = jobs.run(self._factory(), self._on_event, self._flag.is_set)
        except Cancelled:
            self.cancelled.emit()
        except MbxError as exc:
            self.exception = exc
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug in the core: say so in one line rather than die silently
            self.exception = exc
            self.failed.emit(f"internal error: {type(exc).__name__}: {exc}")
        else:
            self.finished.emit(result)

    def _on_event(self, event) -> None:
        if isinstance(event, jobs.Progress):
            self.progress.emit(float(event.fraction), event.message)
        elif isinstance(event, jobs.Log):
            self.progress.emit(-1.0, event.message)  # a log line: message only, progress unchanged


class JobHandle(QObject):
    """One job on its own thread. Signals arrive on the thread that created the handle (the UI thread)."""

    progress = Signal(float, str)  # fraction 0..1 (-1: message only), message
    finished = Signal(object)  # the job's result
    failed = Signal(str)  # a user-facing one-line message
    cancelled = Signal()
    done = Signal()  # after any of the three above, once the thread has stopped

    def __init__(self, factory: Callable[[], jobs.Job], label: str = "", parent: QObject | None = None):
        super().__init__(parent)
        self.label = label
        self._flag = threading.Event()
        self._thread = QThread()
        self._thread.setObjectName(f"job: {label}" if label else "job")
        self._worker = _Worker(factory, self._flag)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        # Signal-to-signal connections are queued across threads: they fire on this handle's thread.
        self._worker.progress.connect(self.progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)
        self._thread.finished.connect(self.done)
        self.result: Any = None
        self.error: str | None = None
        self.state = "idle"  # idle, running, finished, failed, cancelled

    @property
    def exception(self) -> BaseException | None:
        return self._worker.exception

    def start(self) -> "JobHandle":
        self.state = "running"
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._flag.set()

    def is_cancel_requested(self) -> bool:
        return self._flag.is_set()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, msecs: int = 30_000) -> bool:
        return self._thread.wait(msecs)

    def _stop(self) -> None:
        self._thread.quit()

    def _on_finished(self, result) -> None:
        self.state, self.result = "finished", result
        self._stop()
        self.finished.emit(result)

    def _on_failed(self, message: str) -> None:
        self.state, self.error = "failed", message
        self._stop()
        self.failed.emit(message)

    def _on_cancelled(self) -> None:
        self.state = "cancelled"
        self._stop()
        self.cancelled.emit()


def start_job(factory: Callable[[], jobs.Job], label: str = "", parent: QObject | None = None) -> JobHandle:
    return JobHandle(factory, label, parent).start()
