"""Starting the app: ``run_gui`` creates the QApplication and the window, opens or builds a model, and in
screenshot mode renders the window to a PNG once the model is on screen, then exits."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from importlib.resources import as_file, files
from pathlib import Path

from PySide6.QtCore import QEventLoop, QLibraryInfo, QTimer, qInstallMessageHandler
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


NO_WINDOW_ALTERNATIVES = (
    "without a window: `mbexplorer gui MODEL --screenshot out.png` renders it offscreen, QT_QPA_PLATFORM=offscreen "
    "runs it invisibly, `xvfb-run mbexplorer ...` gives it a virtual display, and `mbexplorer summary|predict|"
    "preprocess` need no display")


def display_problem() -> str | None:
    """Why Qt could not open a window here (Linux), or None. When its platform plugin cannot start, Qt aborts the
    process from C++ (a core dump, and a message about reinstalling the application), which Python cannot catch,
    so look before the QApplication is created: a display to use, the xcb plugin's system libraries, the X server."""
    if not sys.platform.startswith("linux"):
        return None
    names = [n.split(":")[0] for n in os.environ.get("QT_QPA_PLATFORM", "").split(";") if n]
    if any(n != "xcb" and not n.startswith("wayland") for n in names):
        return None  # offscreen, vnc, eglfs...: chosen on purpose, and Qt reports its own problems
    x11 = os.environ.get("DISPLAY") if not names or "xcb" in names else None
    wayland = os.environ.get("WAYLAND_DISPLAY") if not names or any(n.startswith("wayland") for n in names) else None
    if not x11 and not wayland:
        return "there is no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    if wayland:
        return None  # Wayland's plugin may work where xcb would not
    missing = _missing_xcb_libraries()
    if missing:
        return (f"the window cannot open: Qt's xcb platform needs system libraries that are missing "
                f"({', '.join(missing)}); `bash installer/system-deps.sh` in mbexplorer's repository installs them")
    if not _x_server_answers():
        return (f"cannot connect to the X display {x11!r} (no X server there, or this user may not use it; over "
                "ssh, connect with `ssh -X`)")
    return None


def _missing_xcb_libraries() -> list[str]:
    """The libraries ``ldd`` reports "not found" for Qt's xcb plugin (its dependencies' included)."""
    plugin = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms" / "libqxcb.so"
    try:
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []  # no ldd: let Qt try
    return sorted({line.split()[0] for line in out.splitlines() if "=> not found" in line})


def _x_server_answers() -> bool:
    """Connect to DISPLAY as Qt's xcb plugin will (libxcb: the same address and authorization)."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return True  # reported as missing above, or not this system's way: let Qt try
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = (ctypes.c_char_p, ctypes.c_void_p)
    xcb.xcb_connection_has_error.argtypes = (ctypes.c_void_p,)
    xcb.xcb_disconnect.argtypes = (ctypes.c_void_p,)
    conn = xcb.xcb_connect(None, None)  # never NULL: a failed connection reports its error
    try:
        return xcb.xcb_connection_has_error(conn) == 0
    finally:
        xcb.xcb_disconnect(conn)


def _quiet_offscreen(mode, context, message: str) -> None:
    """The offscreen platform warns that it cannot resize windows to hints; the CLI's screenshot output
    should not carry that noise. Everything else still reaches stderr."""
    if "propagateSizeHints" in message:
        return
    print(message, file=sys.stderr)


def run_gui(model_path: str | Path | None = None, screenshot: str | Path | None = None,
            build: dict | None = None, argv: list[str] | None = None, images: list | None = None,
            tab: str | None = None, compare: str | Path | None = None) -> int:
    """Run the app until the window closes. ``build``: keyword arguments of ``analysis.build_job``;
    ``images``: files or folders for the Classify tab, classified once the model is shown. ``tab``: the tab
    shown (layers, model, classify, quantization, devices: its stored runs, once every plugin's devices are
    listed); with "quantization" the images go to that tab instead, and
    the open model is compared (with ``compare``, a second model file, else its float twin) once it is shown.

    With ``screenshot``: wait for the model to be shown and painted (and the images classified), save
    ``window.grab()`` there and return 0; if loading fails, print the message on stderr and return 1. Works
    with QT_QPA_PLATFORM=offscreen, and uses it by itself when there is no display to open a window on.
    Without ``screenshot`` and with no usable display: print why and what to do instead, and return 1.
    """
    if QApplication.instance() is None:  # the platform is fixed once the QApplication exists
        problem = display_problem()
        if problem and screenshot is not None:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no display
        elif problem:
            print(f"mbexplorer: error: {problem}; {NO_WINDOW_ALTERNATIVES}", file=sys.stderr)
            return 1
    app = make_app(argv)
    quiet = screenshot is not None and app.platformName() == "offscreen"
    previous_handler = qInstallMessageHandler(_quiet_offscreen) if quiet else None
    window = MainWindow(interactive=screenshot is None)
    if screenshot is not None:
        window.resize(*SCREENSHOT_SIZE)
    window.show()
    quantize = tab == "quantization" and bool(images)
    if tab is not None:
        window.tabs.setCurrentWidget(window.tab(tab))
    if quantize:
        _start_quantization(window, images, compare)
    elif compare is not None:
        window.quantization.compare_with_path(compare)
    if screenshot is None:
        _start(window, model_path, build, None if quantize else images)
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
                       images=bool(images), quantize=quantize, devices=tab == "devices")
    _start(window, model_path, build, None if quantize else images)
    loop.exec()
    window.deleteLater()
    if quiet:
        qInstallMessageHandler(previous_handler)  # None restores Qt's default handler
    return outcome["code"]


def _grab_when_settled(app: QApplication, window: MainWindow, out: Path, finish, wait: bool, images: bool,
                       quantize: bool = False, devices: bool = False) -> None:
    """Save ``window.grab()`` to ``out`` once the model is shown and painted (and the images classified, and with
    ``devices`` every plugin's devices listed), then ``finish(0)``; ``finish(1)`` when loading fails or the file
    cannot be written, ``finish(2)`` on time-out."""

    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    from ..core.outputs import write_atomically

    def grab() -> None:
        app.processEvents()
        pixmap = window.grab()
        # encoded in memory, in the format the suffix names, then written whole or not at all: a failure leaves
        # an existing file as it was and no partial image
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        fmt = out.suffix[1:].upper() or "PNG"
        if pixmap.isNull() or not pixmap.save(buffer, fmt):
            print(f"mbexplorer: error: cannot write the screenshot to {out}: cannot encode it as {fmt}",
                  file=sys.stderr)
            finish(1)
            return
        buffer.close()
        try:
            write_atomically(out, bytes(data))
        except OSError as exc:
            print(f"mbexplorer: error: cannot write the screenshot to {out}: {exc.strerror or exc}", file=sys.stderr)
            finish(1)
            return
        finish(0)

    def failed(message: str) -> None:
        print(f"mbexplorer: error: {message}", file=sys.stderr)
        finish(1)

    def timed_out() -> None:
        print("mbexplorer: error: the model did not open in time for the screenshot", file=sys.stderr)
        finish(2)

    # Let the layouts and the graph's first paint settle before grabbing: once everything awaited has happened.
    settled = (window.quantization.runFinished if quantize else window.classify.runFinished if images
               else window.model_shown)
    awaited = ([settled] if wait or images else []) + ([window.devices.settled] if devices else [])
    pending = set(range(len(awaited)))

    def arrived(i: int) -> None:
        if i in pending:
            pending.discard(i)
            if not pending:
                QTimer.singleShot(150, window, grab)

    for i, signal in enumerate(awaited):
        signal.connect(lambda *_args, i=i: arrived(i))
    window.load_failed.connect(failed)
    window.job_cancelled.connect(lambda: failed("cancelled"))
    if quantize:  # a comparison that cannot run fails the screenshot rather than waiting for the time-out
        window.quantization.errorRaised.connect(lambda _title, message: failed(message))
    # Timers take the window as context so none fires into a later run_gui in the same process.
    if not awaited:
        QTimer.singleShot(300, window, grab)
    else:
        QTimer.singleShot(SCREENSHOT_TIMEOUT_MS, window, timed_out)


def _start_quantization(window: MainWindow, images: list, compare) -> None:
    """The Quantization tab compares on ``images`` once the model is on screen (once)."""
    window.quantization.set_images(images)
    if compare is not None:
        window.quantization.compare_with_path(compare)

    def run_once() -> None:
        window.model_shown.disconnect(run_once)
        window.quantization.run()

    window.model_shown.connect(run_once)


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
