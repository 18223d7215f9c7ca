"""Starting the app: ``run_gui`` creates the QApplication and the window, opens or builds a model, and in
screenshot mode renders the window to a PNG once the model is on screen, then exits."""

from __future__ import annotations

import sys
from importlib.resources import as_file, files
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer, qInstallMessageHandler
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyleFactory

from .main_window import MainWindow
from .recent import APP, ORG
from .workers import install_collector

SCREENSHOT_SIZE = (1440, 900)
SCREENSHOT_TIMEOUT_MS = 180_000


def make_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication, created once; names set for QSettings; the same look on every platform; garbage
    collected on its thread only, by timer (``workers.install_collector``: jobs run on worker threads)."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv else [sys.argv[0] if sys.argv else "mbexplorer"])
    install_collector(app)
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    app.setApplicationDisplayName("mbexplorer")
    if "Fusion" in QStyleFactory.keys():
        app.setStyle("Fusion")
    try:
        with as_file(files("mbexplorer.resources").joinpath("icon.svg")) as icon:
            app.setWindowIcon(QIcon(str(icon)))
    except (FileNotFoundError, OSError):
        pass  # no icon is no reason not to start
    return app


def _quiet_offscreen(mode, context, message: str) -> None:
    """The offscreen platform warns that it cannot resize windows to hints; the CLI's screenshot output
    should not carry that noise. Everything else still reaches stderr."""
    if "propagateSizeHints" in message:
        return
    print(message, file=sys.stderr)


def run_gui(model_path: str | Path | None = None, screenshot: str | Path | None = None,
            build: dict | None = None, argv: list[str] | None = None, images: list | None = None) -> int:
    """Run the app until the window closes. ``build``: keyword arguments of ``analysis.build_job``;
    ``images``: files or folders for the Classify tab, classified once the model is shown.

    With ``screenshot``: wait for the model to be shown and painted (and the images classified), save
    ``window.grab()`` there and return 0; if loading fails, print the message on stderr and return 1. Works
    with QT_QPA_PLATFORM=offscreen.
    """
    app = make_app(argv)
    quiet = screenshot is not None and app.platformName() == "offscreen"
    previous_handler = qInstallMessageHandler(_quiet_offscreen) if quiet else None
    window = MainWindow(interactive=screenshot is None)
    if screenshot is not None:
        window.resize(*SCREENSHOT_SIZE)
    window.show()
    if screenshot is None:
        _start(window, model_path, build, images)
        code = app.exec()
        window.deleteLater()
        return code
    # Screenshot mode runs a local event loop rather than app.exec(): exec() and exit() change the
    # application's state for good (in a test session, later queued signals stop arriving).
    loop = QEventLoop()
    outcome = {"code": 0}

    def finish(code: int) -> None:
        outcome["code"] = code
        window.close()
        loop.exit(code)

    _grab_when_settled(app, window, Path(screenshot), finish, wait=model_path is not None or build is not None,
                       images=bool(images))
    _start(window, model_path, build, images)
    loop.exec()
    window.deleteLater()
    if quiet:
        qInstallMessageHandler(previous_handler)  # None restores Qt's default handler
    return outcome["code"]


def _grab_when_settled(app: QApplication, window: MainWindow, out: Path, finish, wait: bool, images: bool) -> None:
    """Save ``window.grab()`` to ``out`` once the model is shown and painted (and the images classified), then
    ``finish(0)``; ``finish(1)`` when loading fails or the file cannot be written, ``finish(2)`` on time-out."""

    def grab() -> None:
        app.processEvents()
        pixmap = window.grab()
        if pixmap.isNull() or not pixmap.save(str(out), "PNG"):
            print(f"mbexplorer: error: cannot write the screenshot to {out}", file=sys.stderr)
            finish(1)
            return
        finish(0)

    def failed(message: str) -> None:
        print(f"mbexplorer: error: {message}", file=sys.stderr)
        finish(1)

    def timed_out() -> None:
        print("mbexplorer: error: the model did not open in time for the screenshot", file=sys.stderr)
        finish(2)

    # Let the layouts and the graph's first paint settle before grabbing.
    settled = window.classify.runFinished if images else window.model_shown
    settled.connect(lambda: QTimer.singleShot(150, window, grab))
    window.load_failed.connect(failed)
    window.job_cancelled.connect(lambda: failed("cancelled"))
    # Timers take the window as context so none fires into a later run_gui in the same process.
    if not wait and not images:
        QTimer.singleShot(300, window, grab)
    else:
        QTimer.singleShot(SCREENSHOT_TIMEOUT_MS, window, timed_out)


def _start(window: MainWindow, model_path, build: dict | None, images: list | None) -> None:
    """Open or build the model and add the images, once the event loop runs."""
    if images:
        if model_path is None and build is None:
            QTimer.singleShot(0, window, lambda: window.classify_images(images))
        else:  # once, when the model is on screen, so the images run with it
            def classify_once() -> None:
                window.model_shown.disconnect(classify_once)
                window.classify_images(images)

            window.model_shown.connect(classify_once)
    if model_path is not None:
        QTimer.singleShot(0, window, lambda: window.open_path(model_path))
    elif build is not None:
        QTimer.singleShot(0, window, lambda: window.build_model(**build))
