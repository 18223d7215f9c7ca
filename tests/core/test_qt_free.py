"""The core must work without Qt: import it with PySide6, shiboken6 and pyqtgraph made unimportable."""

import subprocess
import sys
import textwrap


def test_core_works_with_qt_blocked():
    code = textwrap.dedent("""
        import sys, importlib.abc

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph", "PyQt5", "PyQt6"):
                    raise ImportError(f"{name} is blocked in this test")
                return None

        sys.meta_path.insert(0, Block())
        import mbexplorer.core.analysis as analysis, mbexplorer.core.overlays as overlays, mbexplorer.cli
        a = analysis.run(analysis.build_job("mobilenet_v1", 0.25, 128))
        assert a.costs.totals()["macs"] > 0 and overlays.mac_share(a.costs).values
        assert mbexplorer.cli.main(["build", "mobilenet_v1", "--width", "0.25", "--resolution", "128", "-o", sys.argv[1]]) == 0
        assert mbexplorer.cli.main(["summary", sys.argv[1]]) == 0
        assert not [m for m in sys.modules if m.split(".")[0] in ("PySide6", "pyqtgraph")]
        print("QT-FREE-OK")
    """)
    import tempfile, os

    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([sys.executable, "-c", code, os.path.join(d, "m.onnx")], capture_output=True,
                             text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "QT-FREE-OK" in out.stdout
