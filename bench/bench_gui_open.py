"""Open-to-painted time of the window: MobileNetV2 from an .onnx file, and a 10,000-node synthetic graph.

The clock starts when the window is asked to open the file and stops when the window has shown the
analysis (graph, table and info populated) and finished a full repaint. Loading runs on the worker
thread as it does for a user. Offscreen Qt; medians of several opens; ratios to the targets.

    QT_QPA_PLATFORM=offscreen python bench/bench_gui_open.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MBEXPLORER_SETTINGS", str(Path(tempfile.gettempdir()) / "mbexplorer-bench.ini"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import onnx  # noqa: E402
from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from synthetic import synthetic_graph  # noqa: E402

from mbexplorer.core import builder  # noqa: E402
from mbexplorer.gui.app import make_app  # noqa: E402
from mbexplorer.gui.main_window import MainWindow  # noqa: E402


def open_to_painted(window: MainWindow, path: Path) -> float:
    loop = QEventLoop()
    done = {}

    def shown():
        window.repaint()  # a synchronous full paint of the window and its children
        done["t"] = time.perf_counter()
        loop.quit()

    window.model_shown.connect(shown)
    window.load_failed.connect(lambda msg: (print("failed:", msg), loop.quit()))
    QTimer.singleShot(120_000, loop.quit)
    t0 = time.perf_counter()
    window.open_path(path)
    loop.exec()
    window.model_shown.disconnect(shown)
    return done["t"] - t0


def main() -> None:
    app = make_app([])
    with tempfile.TemporaryDirectory() as d:
        v2 = Path(d) / "mobilenet_v2.onnx"
        onnx.save(builder.build("mobilenet_v2").model, str(v2))
        syn = Path(d) / "synthetic_10k.onnx"
        proto = synthetic_graph(10_000)
        onnx.save(proto, str(syn))
        window = MainWindow(interactive=False)
        window.resize(1440, 900)
        window.show()
        app.processEvents()
        for label, path, target, repeat in (("MobileNetV2 1.0/224", v2, 0.5, 7),
                                             (f"synthetic graph, {len(proto.graph.node):,} nodes", syn, 3.0, 3)):
            open_to_painted(window, path)  # warm-up: imports, first-time Qt setup
            times = [open_to_painted(window, path) for _ in range(repeat)]
            t = statistics.median(times)
            print(f"{label}: open to painted {t * 1e3:.0f} ms (median of {repeat}; min {min(times) * 1e3:.0f} ms);"
                  f" target {target * 1e3:.0f} ms; ratio to target {t / target:.2f}")
        window.close()


if __name__ == "__main__":
    main()
