"""Running core generator jobs on a worker thread.

A :class:`JobHandle` owns one QThread and one worker object moved onto it. The worker drives the job with
``jobs.run`` and reports through queued signals, so the window's slots run on the UI thread and the UI
never blocks while a model loads or builds. ``cancel()`` only raises a flag: ``jobs.run`` checks it
between the job's events, closes the generator (its ``finally:`` blocks clean up) and raises
``Cancelled``, which becomes the ``cancelled`` signal. Any event other than ``Progress`` and ``Log`` comes
out as the ``event`` signal, in order, so a job can stream partial results (an image classified) to the UI.

Lifetimes are explicit: once a job's thread has stopped, the worker and the thread are deleted on the UI
thread (``deleteLater``). Left to Python's garbage collector they could be destroyed on whichever thread
happens to collect, such as the next job's worker thread, and Qt objects must not die on a foreign thread.
For the same reason a failure keeps its exception without traceback: a traceback holds the worker's frame,
which holds the worker, which holds the exception, a cycle only the collector would free.

And while any job runs, Python's automatic garbage collection is paused. The collector runs on whichever
thread happens to allocate when a threshold is crossed; on a worker thread it would destroy any
unreachable Qt object there (a window, a dialog, an event loop a test left behind), and Qt objects must
die on their own thread: that crashes. With automatic collection paused, nothing is collected on a worker
thread; reference counting still frees everything acyclic, and collection resumes on the UI thread when
the last job ends. This is the usual recipe for Python Qt apps with worker threads.
"""

from __future__ import annotations

import gc
import threading
from typing import Any, Callable

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from mbexplorer.core import jobs
from mbexplorer.core.errors import Cancelled, MbxError


class _Worker(QObject):
    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    event = Signal(object)

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
            self.exception = _detached(exc)
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug in the core: say so in one line rather than die silently
            self.exception = _detached(exc)
            self.failed.emit(f"internal error: {type(exc).__name__}: {exc}")
        else:
            self.finished.emit(result)
        finally:
            # Back to the UI thread (only this thread may push it), so it is deleted there; and stop this
            # thread's event loop from here, so a UI thread blocked in wait() (closing) is not deadlocked.
            own = QThread.currentThread()
            app = QCoreApplication.instance()
            if app is not None:
                self.moveToThread(app.thread())
            own.quit()

    def _on_event(self, event) -> None:
        if isinstance(event, jobs.Progress):
            self.progress.emit(float(event.fraction), event.message)
        elif isinstance(event, jobs.Log):
            self.progress.emit(-1.0, event.message)  # a log line: message only, progress unchanged
        else:
            self.event.emit(event)  # a job's own event (a partial result to stream to the UI)


_gc_state = {"pauses": 0, "was_enabled": False}


def _pause_gc() -> None:
    if _gc_state["pauses"] == 0:
        _gc_state["was_enabled"] = gc.isenabled()
        gc.disable()
    _gc_state["pauses"] += 1


def _resume_gc() -> None:
    _gc_state["pauses"] = max(0, _gc_state["pauses"] - 1)
    if _gc_state["pauses"] == 0 and _gc_state["was_enabled"]:
        gc.enable()


def gc_paused() -> bool:
    """Whether jobs hold automatic garbage collection paused (for tests and diagnostics)."""
    return _gc_state["pauses"] > 0


def _detached(exc: BaseException) -> BaseException:
    exc.__traceback__ = None
    exc.__context__ = exc.__cause__ = None
    return exc


class JobHandle(QObject):
    """One job on its own thread. Signals arrive on the thread that created the handle (the UI thread)."""

    progress = Signal(float, str)  # fraction 0..1 (-1: message only), message
    finished = Signal(object)  # the job's result
    failed = Signal(str)  # a user-facing one-line message
    cancelled = Signal()
    done = Signal()  # after any of the three above, once the thread has stopped
    event = Signal(object)  # any other event the job yields, in order with progress, before finished

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
        self._worker.event.connect(self.event)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)
        self._thread.finished.connect(self._on_thread_finished)
        self.result: Any = None
        self.error: str | None = None
        self.state = "idle"  # idle, running, finished, failed, cancelled
        self._exception: BaseException | None = None
        self._gc_paused = False
        self._released = False

    @property
    def exception(self) -> BaseException | None:
        """The failure's exception (no traceback), for callers that act on its type."""
        return self._exception

    def _on_thread_finished(self) -> None:
        if self.release():
            self.done.emit()

    def release(self) -> bool:
        """Once the thread has stopped: schedule the worker and thread for deletion on this thread and
        resume garbage collection. Idempotent; the owner calls it when it cannot wait for the event loop
        (a window closing with jobs still unwinding). Returns whether this call did the work."""
        if self._released or (shiboken6.isValid(self._thread) and self._thread.isRunning()):
            return False
        self._released = True
        if shiboken6.isValid(self._thread):
            self._thread.wait()  # finished() fires just before the thread ends; let it end
            self._thread.deleteLater()
        if shiboken6.isValid(self._worker):
            self._worker.deleteLater()
        if self._gc_paused:
            self._gc_paused = False
            _resume_gc()
        return True

    def start(self) -> "JobHandle":
        self.state = "running"
        _pause_gc()
        self._gc_paused = True
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._flag.set()

    def is_cancel_requested(self) -> bool:
        return self._flag.is_set()

    def is_running(self) -> bool:
        return shiboken6.isValid(self._thread) and self._thread.isRunning()

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the thread has stopped (True at once when it already has been cleaned up)."""
        return not shiboken6.isValid(self._thread) or self._thread.wait(msecs)

    def _stop(self) -> None:
        if shiboken6.isValid(self._thread):
            self._thread.quit()

    def _on_finished(self, result) -> None:
        self.state, self.result = "finished", result
        self._stop()
        self.finished.emit(result)

    def _on_failed(self, message: str) -> None:
        self.state, self.error = "failed", message
        self._exception = self._worker.exception
        self._stop()
        self.failed.emit(message)

    def _on_cancelled(self) -> None:
        self.state = "cancelled"
        self._stop()
        self.cancelled.emit()


def start_job(factory: Callable[[], jobs.Job], label: str = "", parent: QObject | None = None) -> JobHandle:
    return JobHandle(factory, label, parent).start()
