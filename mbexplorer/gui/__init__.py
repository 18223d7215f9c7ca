"""The PySide6 desktop app. The only package that imports Qt (PySide6, pyqtgraph); it shows what the core
computes and runs core jobs off the UI thread."""
