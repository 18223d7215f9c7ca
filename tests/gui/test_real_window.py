"""The real window, once: the app started as a user starts it, on Qt's xcb platform (not offscreen), under Xvfb.
Proves that the system libraries the xcb plugin needs are installed (``installer/system-deps.sh``) and that the
window opens, shows the model, resizes, and quits with Ctrl+Q. Needs Xvfb, xdotool and ImageMagick's ``import``
(``.ci/run`` installs them): skipped without them, failed under CI."""

import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL = "mobilenet_v2_1.0_224_quant"
TOOLS = ("Xvfb", "xdotool", "import")


@pytest.fixture
def xvfb():
    """A fresh Xvfb on a free display number (``-displayfd``: the server picks it and reports it)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        msg = f"{', '.join(missing)} not installed (apt-get install xvfb xauth xdotool imagemagick)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    r, w = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], 10)
        number = os.read(r, 64).decode().strip() if ready else ""
        if not number:
            server.kill()
            pytest.fail(f"Xvfb did not start: {server.communicate()[1].decode(errors='replace')}")
        yield f":{number}"
    finally:
        os.close(r)
        server.terminate()
        server.wait(5)


def _colours(path: Path) -> tuple[tuple[int, int], int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size, len(im.convert("RGB").getcolors(1 << 24))


def test_the_real_window_opens_shows_the_model_and_quits(xvfb, shared_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    env["DISPLAY"] = xvfb  # QT_QPA_PLATFORM unset: Qt picks xcb, as on a user's X11 desktop
    model, images = shared_dir / "models" / f"{MODEL}.tflite", shared_dir / "images"
    log = (tmp_path / "app.log").open("w+")
    app = subprocess.Popen([sys.executable, "-m", "mbexplorer.cli", "gui", str(model), "--images", str(images)],
                           cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def output() -> str:
        log.seek(0)
        return log.read()

    def xdotool(*args, check=True) -> str:
        return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, check=check,
                              timeout=30).stdout.strip()

    try:
        # the title names the model once it is shown; polled rather than `search --sync`, so that an app that
        # exits at once (a missing library: its message) fails the test at once
        deadline = time.monotonic() + 60  # generous: CI's two cores may be busy
        while not (wid := xdotool("search", "--onlyvisible", "--name", MODEL, check=False)):
            if app.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no window named {MODEL} (app exit code {app.poll()}); the app said:\n{output()}")
            time.sleep(0.2)
        wid = wid.split()[0]
        assert xdotool("getwindowname", wid) == f"{MODEL} — mbexplorer"
        xdotool("windowsize", "--sync", wid, "1280", "768")
        shot = tmp_path / "window.png"
        deadline = time.monotonic() + 30
        while True:  # grabbed from the X server, as a user sees it: wait for the repaint at the new size
            subprocess.run(["import", "-window", wid, str(shot)], env=env, check=True, timeout=30)
            size, colours = _colours(shot)
            if (size == (1280, 768) and colours > 1_000) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert size == (1280, 768)
        assert colours > 1_000, f"the window looks blank ({colours} colours)"
        xdotool("windowfocus", "--sync", wid)
        xdotool("key", "ctrl+q")
        rc = app.wait(30)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    out = output()
    log.close()
    assert rc == 0, out
    assert "core dumped" not in out and "Aborted" not in out, out
