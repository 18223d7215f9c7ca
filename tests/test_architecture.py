"""The architecture, checked on every run: import contracts (no cycles, the layers, a Qt-free core), lint, and
every core module importable with Qt made unimportable."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    exe = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(exe).exists():
        pytest.fail(f"{name} is not installed: pip install -e '.[test]' installs it")
    return exe


def test_import_contracts_are_kept():
    """pyproject.toml's [tool.importlinter] contracts: no cycles at any depth, cli/gui over devices over core,
    no Qt in the core, loading above importers above the model record."""
    out = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_lint_is_clean():
    trees = [d for d in ("mbexplorer", "tests", "bench", "plugins", "installer") if (ROOT / d).is_dir()]
    out = subprocess.run([_tool("ruff"), "check", "--no-cache", *trees], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_every_core_module_imports_with_qt_blocked():
    """Not a chosen few: every module under mbexplorer.core (and mbexplorer.devices once it exists) imports
    with PySide6, shiboken6 and pyqtgraph unimportable, and the CLI builds and summarises a model."""
    code = textwrap.dedent("""
        import importlib, importlib.abc, pkgutil, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph", "PyQt5", "PyQt6"):
                    raise ImportError(f"{name} is blocked in this test")
                return None

        sys.meta_path.insert(0, Block())
        names = []
        for top in ("mbexplorer.core", "mbexplorer.devices"):
            try:
                pkg = importlib.import_module(top)
            except ModuleNotFoundError:
                continue
            names.append(top)
            names += [m.name for m in pkgutil.walk_packages(pkg.__path__, top + ".")]
        for name in names:
            importlib.import_module(name)
        import mbexplorer.cli
        assert mbexplorer.cli.main(["build", "mobilenet_v1", "--width", "0.25", "--resolution", "128",
                                    "-o", sys.argv[1]]) == 0
        assert mbexplorer.cli.main(["summary", sys.argv[1]]) == 0
        assert not [m for m in sys.modules if m.split(".")[0] in ("PySide6", "pyqtgraph", "shiboken6")]
        print("QT-FREE-OK", len(names))
    """)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([sys.executable, "-c", code, str(Path(d) / "m.onnx")], capture_output=True,
                             text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("QT-FREE-OK"))
    assert int(line.split()[1]) >= 25  # every module of the core, not a sample


def test_plugins_import_only_the_public_device_api():
    """Device plugins (top-level plugins/) are written against ``mbexplorer.devices`` alone: no other part of the
    app, and none of its private modules (``mbexplorer.devices._*``)."""
    import ast

    files = sorted((ROOT / "plugins").rglob("*.py")) if (ROOT / "plugins").is_dir() else []
    if not files:
        pytest.skip("plugins/ holds no plugin yet")
    bad = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                parts = name.split(".")
                if parts[0] == "mbexplorer" and (parts[1:2] != ["devices"] or any(p.startswith("_") for p in parts)):
                    bad.append(f"{f.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not bad, "\n".join(bad)
