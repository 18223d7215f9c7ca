"""The PySide6 desktop app. The only package that imports Qt (PySide6, pyqtgraph); it shows what the core
computes and runs core jobs off the UI thread."""

from ._none_guard import guard_none

guard_none()  # before any Qt call: PySide6 6.12.0 leaks references to None on Python < 3.12
