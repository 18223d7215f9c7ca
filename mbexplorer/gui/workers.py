"""Running core generator jobs on a worker thread, and collecting garbage on the UI thread only.

A :class:`JobHandle` owns one QThread and one worker object moved onto it. The worker drives the job with
``jobs.run`` and reports through queued signals, so the window's slots run on the UI thread and the UI
never blocks while a model loads or builds. ``cancel()`` only raises a flag: ``jobs.run`` checks it
between the job's events (and at any ``jobs.checkpoint()`` inside the job), closes the generator (its
``finally:`` blocks clean up) and raises ``Cancelled``, which becomes the ``cancelled`` signal. ``Progress``
comes out as ``progress``, ``Log`` lines as ``log`` (and are kept, bounded, in ``logs``), and any other event
as ``event``, in order, so a job can stream partial results (an image classified) to the UI.

Lifetimes are explicit: once a job's thread has stopped, the worker and the thread are deleted on the UI
thread (``deleteLater``). Left to Python's garbage collector they could be destroyed on whichever thread
happens to collect, and Qt objects must not die on a foreign thread. For the same reason a failure keeps
its exception without traceback (a traceback holds the worker's frame, which holds the worker, which holds
the exception: a cycle only the collector would free); the worker formats the traceback as text first.

Python's automatic garbage collection is off for the application's life (:func:`install_collector`, called
where the QApplication is made): the collector would run on whichever thread happens to allocate when a
threshold is crossed, and on a worker thread it would destroy unreachable Qt objects there (a window, a
dialog, an event loop a test left behind), which crashes. A timer on the UI thread collects instead,
generation by generation as the thresholds say: pyqtgraph's recipe (``pyqtgraph/util/garbage_collector.py``).
Reference counting still frees everything acyclic at once, on any thread.
"""

from __future__ import annotations

import gc
import threading
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal, Slot

from mbexplorer.core import jobs
from mbexplorer.core.errors import Cancelled, MbxError

MAX_LOG_LINES = 500  # a job's log kept for a failure's details; older lines are dropped


class _Worker(QObject):
    progress = Signal(float, str)
    log = Signal(str, str)  # level, message
    finished = Signal(object)
    failed = Signal(str, str)  # one-line message, traceback text
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
            text = _format(exc)
            self.exception = _detached(exc)
            self.failed.emit(str(exc), text)
        except Exception as exc:  # a bug in the core: say so in one line rather than die silently
            text = _format(exc)
            self.exception = _detached(exc)
            self.failed.emit(f"internal error: {type(exc).__name__}: {exc}", text)
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
            self.log.emit(event.level, event.message)
        else:
            self.event.emit(event)  # a job's own event (a partial result to stream to the UI)


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def _detached(exc: BaseException) -> BaseException:
    exc.__traceback__ = None
    exc.__context__ = exc.__cause__ = None
    return exc


class JobHandle(QObject):
    """One job on its own thread. Signals arrive on the thread that created the handle (the UI thread)."""

    progress = Signal(float, str)  # fraction 0..1, message
    log = Signal(str, str)  # level ("info", "warning"), message
    ended = Signal()  # the job's outcome is in (state set), just before finished, failed or cancelled
    finished = Signal(object)  # the job's result
    failed = Signal(str)  # a user-facing one-line message
    cancelled = Signal()
    done = Signal()  # after any of the three above, once the thread has stopped
    event = Signal(object)  # any other event the job yields, in order with progress, before finished

    def __init__(self, factory: Callable[[], jobs.Job], label: str = "", parent: QObject | None = None):
        super().__init__(parent)
        self.label = label
        self.lane = ""  # set by the task registry that runs it
        self._flag = threading.Event()
        self._thread = QThread()
        self._thread.setObjectName(f"job: {label}" if label else "job")
        self._worker = _Worker(factory, self._flag)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        # Signal-to-signal connections are queued across threads: they fire on this handle's thread.
        self._worker.progress.connect(self.progress)
        self._worker.log.connect(self._on_log)
        self._worker.event.connect(self.event)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)
        self._thread.finished.connect(self._on_thread_finished)
        self.result: Any = None
        self.error: str | None = None
        self.traceback = ""  # a failure's traceback, as text
        self.logs: deque[tuple[str, str]] = deque(maxlen=MAX_LOG_LINES)  # (level, message)
        self.state = "idle"  # idle, running, finished, failed, cancelled
        self._exception: BaseException | None = None
        self._released = False

    @property
    def exception(self) -> BaseException | None:
        """The failure's exception (no traceback: see ``traceback``), for callers that act on its type."""
        return self._exception

    def details(self) -> str:
        """For a failure's "Details": the job's log lines, then the traceback if it was an internal error
        (an ``MbxError`` is the user's to fix; its traceback would only be noise)."""
        lines = [f"{level}: {message}" for level, message in self.logs]
        if self.traceback and not isinstance(self._exception, MbxError):
            lines.append(self.traceback.rstrip())
        return "\n".join(lines)

    def _on_thread_finished(self) -> None:
        if self.release():
            self.done.emit()

    def release(self) -> bool:
        """Once the thread has stopped: schedule the worker and thread for deletion on this thread.
        Idempotent; the owner calls it when it cannot wait for the event loop (a window closing with jobs
        still unwinding). Returns whether this call did the work."""
        if self._released or (shiboken6.isValid(self._thread) and self._thread.isRunning()):
            return False
        self._released = True
        if shiboken6.isValid(self._thread):
            self._thread.wait()  # finished() fires just before the thread ends; let it end
            self._thread.deleteLater()
        if shiboken6.isValid(self._worker):
            self._worker.deleteLater()
        return True

    def start(self) -> JobHandle:
        self.state = "running"
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

    def on_end(self, callback: Callable[[object, str | None], None]) -> None:
        """Call ``callback(result, error)`` when the job ends, whichever way: (result, None) finished, (None,
        message) failed, (None, None) cancelled; in the order ``finished``/``failed``/``cancelled`` come."""
        self.finished.connect(lambda result: callback(result, None))
        self.failed.connect(lambda message: callback(None, message))
        self.cancelled.connect(lambda: callback(None, None))

    def _stop(self) -> None:
        if shiboken6.isValid(self._thread):
            self._thread.quit()

    def _on_log(self, level: str, message: str) -> None:
        self.logs.append((level, message))
        self.log.emit(level, message)

    def _on_finished(self, result) -> None:
        self.state, self.result = "finished", result
        self._stop()
        self.ended.emit()
        self.finished.emit(result)

    def _on_failed(self, message: str, text: str) -> None:
        self.state, self.error, self.traceback = "failed", message, text
        self._exception = self._worker.exception
        self._stop()
        self.ended.emit()
        self.failed.emit(message)

    def _on_cancelled(self) -> None:
        self.state = "cancelled"
        self._stop()
        self.ended.emit()
        self.cancelled.emit()


def start_job(factory: Callable[[], jobs.Job], label: str = "", parent: QObject | None = None) -> JobHandle:
    return JobHandle(factory, label, parent).start()


class GarbageCollector(QObject):
    """Automatic collection off; a timer on this (the UI) thread collects instead: generation 0 once it has
    crossed its threshold, the older ones when theirs are crossed too, as the interpreter would."""

    def __init__(self, interval_ms: int = 100, parent: QObject | None = None):
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.collections = 0  # how many times check() collected (for tests and diagnostics)
        gc.disable()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)

    def check(self) -> None:
        l0, l1, l2 = gc.get_count()
        if l0 > self.threshold[0]:
            gc.collect(0)
            if l1 > self.threshold[1]:
                gc.collect(1)
                if l2 > self.threshold[2]:
                    gc.collect(2)
            self.collections += 1


_collector: GarbageCollector | None = None


def install_collector(app: QCoreApplication, interval_ms: int = 100) -> GarbageCollector:
    """Turn automatic garbage collection off for the application's life and collect on its thread by timer
    (see the module's docstring). Call from the thread that made ``app``; once is enough, more is harmless.

    Every 100 ms, not pyqtgraph's 1 s: while a job allocates on its worker thread, a second's worth of young
    objects made one collection of 80-700 ms on the UI thread (bench/bench_whatif_ui.py). What exists at start
    (modules, Qt wrappers) is frozen out of the collector's walks: it lives as long as the app."""
    global _collector
    if _collector is None or not shiboken6.isValid(_collector):
        gc.freeze()
        _collector = GarbageCollector(interval_ms, app)  # a child of the app: its timer lives on the UI thread
    gc.disable()  # again, should anything have turned it back on
    return _collector


def collector() -> GarbageCollector | None:
    """The installed collector, if any."""
    return _collector if _collector is not None and shiboken6.isValid(_collector) else None
