"""GUI fixtures: garbage collected on the UI thread only, an isolated settings file per test, analyses built
once per session, a shown window."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from mbexplorer.core.analysis import build_job, run  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def ui_thread_collector(qapp):
    """As in the app (``make_app``): automatic garbage collection off, a timer collects on the UI thread, so no
    worker thread ever destroys a Qt object a test left behind."""
    from mbexplorer.gui.workers import install_collector

    return install_collector(qapp)


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """Recent files and window state go to a file of this test, never the user's settings."""
    path = tmp_path / "settings" / "mbexplorer.ini"
    path.parent.mkdir()
    monkeypatch.setenv("MBEXPLORER_SETTINGS", str(path))
    return path


@pytest.fixture(scope="session")
def analyses():
    """Analyses of built models, once per session (the builder is deterministic; the GUI never mutates them)."""
    cache = {}

    def get(family="mobilenet_v2", width=1.0, resolution=224):
        key = (family, width, resolution)
        if key not in cache:
            cache[key] = run(build_job(family, width, resolution))
        return cache[key]

    return get


@pytest.fixture
def window(qtbot):
    from mbexplorer.gui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)  # closed at teardown; closeEvent waits for job threads
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    return w


@pytest.fixture
def v2_window(window, analyses):
    """A window showing MobileNetV2 1.0/224 (shown directly; the worker path has its own test)."""
    window.show_analysis(analyses("mobilenet_v2"), {"build": {"family": "mobilenet_v2"}})
    return window


@pytest.fixture
def open_and_wait(qtbot):
    """Open a file in a window through the worker and wait until it is shown."""

    def go(window, path, timeout=30_000):
        with qtbot.waitSignal(window.model_shown, timeout=timeout):
            window.open_path(path)

    return go
