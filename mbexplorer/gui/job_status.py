"""The status bar's job area: what is running, a progress bar and a Cancel button, hidden when idle.

It follows one lane of the window's task registry (``follow``): shown when a job starts there, its progress
and latest log line as it runs, hidden once the job's outcome is in or it is replaced. Cancel asks the owner
(``cancelRequested``), which cancels through the registry and calls ``cancelling()``.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget


class JobStatus(QWidget):
    cancelRequested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 4, 0)
        lay.setSpacing(6)
        self.message = QLabel()
        self.message.setStyleSheet("color: #374151;")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setFixedWidth(180)
        self.bar.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running job; the current model stays open")
        self.cancel_button.clicked.connect(self.cancelRequested)
        lay.addWidget(self.message)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancel_button)
        self.setVisible(False)
        self._lane: str | None = None

    def follow(self, tasks, lane: str) -> None:
        """Show the running job of ``lane`` in ``tasks`` (a ``tasks.Tasks``)."""
        self._lane = lane
        tasks.started.connect(self._on_started)
        tasks.progress.connect(self._on_progress)
        tasks.log.connect(self._on_log)
        tasks.ended.connect(self._on_ended)

    def _on_started(self, lane: str, job) -> None:
        if lane == self._lane:
            self.begin(job.label)

    def _on_progress(self, lane: str, fraction: float, message: str) -> None:
        if lane == self._lane:
            self.update_progress(fraction, message)

    def _on_log(self, lane: str, level: str, message: str) -> None:
        if lane == self._lane:  # the latest log line as the message; the bar stays
            self.update_progress(-1.0, f"warning: {message}" if level == "warning" else message)

    def _on_ended(self, lane: str, job) -> None:
        if lane == self._lane:
            self.end()

    def begin(self, label: str) -> None:
        self.message.setText(label)
        self.bar.setValue(0)
        self.cancel_button.setEnabled(True)
        self.setVisible(True)

    def update_progress(self, fraction: float, message: str) -> None:
        """``fraction`` < 0: the message only, the bar stays."""
        if fraction >= 0:
            self.bar.setValue(int(round(1000 * max(0.0, min(1.0, fraction)))))
        if message:
            self.message.setText(message)

    def cancelling(self) -> None:
        self.message.setText("cancelling…")
        self.cancel_button.setEnabled(False)

    def end(self) -> None:
        self.setVisible(False)
