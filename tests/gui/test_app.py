"""run_gui's screenshot mode (used by the CLI and docs) and a 10,000-node graph staying responsive."""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import onnx  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402

from mbexplorer.gui.app import SCREENSHOT_SIZE, run_gui  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_screenshot_of_a_built_model(qapp, tmp_path):
    out = tmp_path / "shot.png"
    assert run_gui(screenshot=out, build={"family": "mobilenet_v1", "width": 0.25, "resolution": 128}) == 0
    assert out.stat().st_size > 10_000
    img = QImage(str(out))
    assert (img.width(), img.height()) == SCREENSHOT_SIZE


def test_screenshot_of_a_file(qapp, tmp_path, built):
    model = tmp_path / "v3s.onnx"
    onnx.save(built("mobilenet_v3_small").model, str(model))
    out = tmp_path / "v3s.png"
    assert run_gui(model_path=model, screenshot=out) == 0
    assert not QImage(str(out)).isNull()


def test_screenshot_with_images_classifies_them_first(qapp, tmp_path, monkeypatch):
    """`gui MODEL --images DIR --screenshot OUT`: the grab waits for the Classify tab to finish."""
    from PIL import Image

    from mbexplorer.gui.classify_panel import ClassifyPanel

    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(3):
        Image.new("RGB", (160, 120), (80 * i, 40, 200 - 60 * i)).save(pics / f"p{i}.png")
    seen = {}
    original = ClassifyPanel._on_event

    def record(panel, ev):
        original(panel, ev)
        seen["results"] = sum(bool(e.results) for e in panel.entries)
        seen["tab"] = panel.window().tabs.currentWidget() is panel

    monkeypatch.setattr(ClassifyPanel, "_on_event", record)
    out = tmp_path / "classify.png"
    assert run_gui(screenshot=out, build={"family": "mobilenet_v1", "width": 0.25, "resolution": 96},
                   images=[pics]) == 0
    assert seen == {"results": 3, "tab": True} and not QImage(str(out)).isNull()


def test_screenshot_of_a_bad_file_fails(qapp, tmp_path, capsys):
    bad = tmp_path / "notes.onnx"
    bad.write_text("not a model")
    out = tmp_path / "never.png"
    assert run_gui(model_path=bad, screenshot=out) != 0
    assert "notes.onnx" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture(scope="module")
def synthetic_analysis():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from synthetic import synthetic_graph
    finally:
        sys.path.remove(str(REPO / "bench"))
    from mbexplorer.core.analysis import analyse_job
    from mbexplorer.core.jobs import run
    from mbexplorer.core.model import from_proto

    return run(analyse_job(from_proto(synthetic_graph(10_000), name="synthetic", source_format="onnx")))


def test_ten_thousand_nodes_stay_responsive(qtbot, window, synthetic_analysis):
    a = synthetic_analysis
    assert len(a.costs.nodes) > 9_900
    t0 = time.perf_counter()
    window.show_analysis(a, {})
    window.repaint()
    shown = time.perf_counter() - t0
    g = window.graph
    assert len(g.block_items) == len(a.blocks.blocks) > 1_000
    assert not any(i.op_items for i in g.block_items)  # collapsed by default: no op items yet
    n_items = len(g.graph.items())
    assert n_items < 4 * len(a.blocks.blocks)
    t0 = time.perf_counter()
    g.expand(len(g.block_items) // 2)
    g.select_block(len(g.block_items) // 2)
    g.viewport().repaint()
    expand = time.perf_counter() - t0
    t0 = time.perf_counter()
    window.layers.set_convention("thop")
    window.layers.set_op_filter("Conv")
    window.layers.table.sortByColumn(6, window.layers.table.horizontalHeader().sortIndicatorOrder())
    table = time.perf_counter() - t0
    # generous bounds (2 slow CI cores): what matters is no per-node Qt work on the UI thread
    assert shown < 4.0, shown
    assert expand < 1.0, expand
    assert table < 3.0, table


# --------------------------------------------------------------------------------------------------
# Start-up without a usable display: one line saying why and what to do instead, exit code 1, never Qt's abort.

def _start_app(*args, tmp_path, path_prefix=None, **env_vars):
    """``mbexplorer gui ...`` in a fresh process (the check runs before the QApplication exists), with no
    display and no QT_QPA_PLATFORM unless given."""
    import subprocess

    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE")}
    env.update(env_vars)
    if path_prefix:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    return subprocess.run([sys.executable, "-m", "mbexplorer.cli", "gui", *map(str, args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def _no_abort(result) -> None:
    assert result.returncode == 1, result
    assert "core dumped" not in result.stderr and "Aborted" not in result.stderr
    assert "Traceback" not in result.stderr and "platform plugin" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for alternative in ("--screenshot out.png", "QT_QPA_PLATFORM=offscreen", "xvfb-run", "summary|predict|preprocess"):
        assert alternative in result.stderr


def test_no_display_says_so_and_what_to_do_instead(tmp_path):
    r = _start_app(tmp_path=tmp_path)
    _no_abort(r)
    assert r.stderr.startswith("mbexplorer: error: there is no display to open the window on")


def test_screenshot_needs_no_display(tmp_path):
    r = _start_app("--build", "mobilenet_v1", "--width", "0.25", "--resolution", "96", "--screenshot", "shot.png",
                   tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    img = QImage(str(tmp_path / "shot.png"))
    assert (img.width(), img.height()) == SCREENSHOT_SIZE


def test_missing_xcb_libraries_are_named_with_the_installer(tmp_path):
    """Qt would abort (from C++) on loading its xcb plugin; ``ldd`` on the plugin finds what is missing first.
    A stand-in ``ldd`` reports a missing library, as on a bare Debian 12 with DISPLAY set (ssh -X)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ldd").write_text('#!/bin/sh\nprintf "\\tlibxcb-cursor.so.0 => not found\\n'
                              '\\tlibxcb-icccm.so.4 => not found\\n\\tlibc.so.6 => /lib/libc.so.6\\n"\n')
    (fake / "ldd").chmod(0o755)
    r = _start_app(tmp_path=tmp_path, path_prefix=fake, DISPLAY=":0")
    _no_abort(r)
    assert "missing (libxcb-cursor.so.0, libxcb-icccm.so.4)" in r.stderr
    assert "bash installer/system-deps.sh" in r.stderr


def test_an_unreachable_x_display_says_so(tmp_path):
    number = next(n for n in range(917, 999) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    r = _start_app(tmp_path=tmp_path, DISPLAY=f":{number}")
    _no_abort(r)
    assert f"cannot connect to the X display ':{number}'" in r.stderr


@pytest.mark.parametrize("env, problem", [
    ({}, "there is no display"),
    ({"QT_QPA_PLATFORM": "offscreen"}, None),                   # chosen on purpose
    ({"QT_QPA_PLATFORM": "vnc"}, None),
    ({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "wayland-0"}, "there is no display"),  # xcb needs DISPLAY
    ({"QT_QPA_PLATFORM": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, None),
    ({"WAYLAND_DISPLAY": "wayland-0"}, None),
])
def test_display_problem(monkeypatch, env, problem):
    from mbexplorer.gui.app import display_problem

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    found = display_problem()
    assert (found is None) if problem is None else (problem in found), found
