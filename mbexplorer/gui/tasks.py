"""The window's task registry: every job runs through it, under a lane name.

A lane is one owner's kind of work ("model": the window opening or building a model; "classify": the
Classify tab; later compare and profiling). A lane has at most one *current* job: starting another retires
the running one, which is cancelled and kept alive until its thread ends (a QThread must not be destroyed
while it runs, and Python would drop a handle nobody refers to). A retired job may still report: owners
ask ``is_current(job)`` in their result slots and ignore what is not. Streamed events are the owners' to
judge (the Classify tab keeps a retired run's results that still match).

The registry is made once per window and given to its panels; ``shutdown()`` cancels every job and waits
for its thread, for the window's ``closeEvent``. Status widgets follow a lane through the registry's
signals (``started``, ``progress``, ``log``, ``ended``), which carry only the lane's current job.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from .workers import JobHandle


class Tasks(QObject):
    started = Signal(str, object)  # lane, JobHandle: it is about to start
    progress = Signal(str, float, str)  # lane, fraction, message: the lane's current job only
    log = Signal(str, str, str)  # lane, level, message: the lane's current job only
    ended = Signal(str, object)  # lane, JobHandle: no longer the lane's running job (its outcome is in, or retired)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._lanes: dict[str, JobHandle] = {}  # the latest job started in each lane
        self._alive: set[JobHandle] = set()  # every job whose thread has not been cleaned up, retired ones too

    def start(self, lane: str, job: JobHandle) -> JobHandle:
        """Start ``job`` (its signals already connected by the owner) as the lane's current job, retiring the
        one running there."""
        self.retire(lane)
        job.lane = lane
        job.setParent(self)
        self._lanes[lane] = job
        self._alive.add(job)
        # The handle emits ``ended`` before its result signals, so this runs before the owner's result slots:
        # they see the lane free and the status hidden.
        job.ended.connect(lambda j=job: self._on_ended(j))
        job.done.connect(lambda j=job: self._on_done(j))
        job.progress.connect(lambda f, m, j=job: self.is_current(j) and self.progress.emit(j.lane, f, m))
        job.log.connect(lambda level, m, j=job: self.is_current(j) and self.log.emit(j.lane, level, m))
        self.started.emit(lane, job)
        return job.start()

    def current(self, lane: str) -> JobHandle | None:
        """The lane's running job; None once its outcome is in or it was retired."""
        job = self._lanes.get(lane)
        return job if job is not None and job.state == "running" else None

    def is_current(self, job: JobHandle) -> bool:
        """Whether ``job`` is the latest started in its lane (not retired): its result is wanted."""
        return self._lanes.get(job.lane) is job

    def jobs(self) -> list[JobHandle]:
        """Every job whose thread has not been cleaned up yet, current or retired."""
        return list(self._alive)

    def cancel(self, lane: str) -> bool:
        """Ask the lane's running job to stop (it stays current until it says it has); whether there was one."""
        job = self.current(lane)
        if job is None:
            return False
        job.cancel()
        return True

    def retire(self, lane: str) -> None:
        """Cancel the lane's current job and forget it; it stays alive until its thread ends."""
        job = self._lanes.pop(lane, None)
        if job is not None:
            job.cancel()
            if job.state == "running":
                self.ended.emit(lane, job)

    def shutdown(self, lane: str | None = None, msecs: int = 10_000) -> None:
        """Cancel every job (of ``lane``, or all) and wait for their threads: Qt objects must not outlive the
        window they report to. All are cancelled first, so they unwind together."""
        doomed = [j for j in self._alive if lane is None or j.lane == lane]
        for job in doomed:
            job.cancel()
        for job in doomed:
            if self._lanes.get(job.lane) is job:
                self.retire(job.lane)
            if job.wait(msecs):
                job.release()  # now: its queued clean-up would not run once the window is gone
                self._alive.discard(job)

    def _on_ended(self, job: JobHandle) -> None:
        if self.is_current(job):
            self.ended.emit(job.lane, job)

    def _on_done(self, job: JobHandle) -> None:
        # Its thread has stopped and every signal was delivered: forget it, and delete it on this thread.
        self._alive.discard(job)
        if self.is_current(job):
            del self._lanes[job.lane]
        job.deleteLater()
