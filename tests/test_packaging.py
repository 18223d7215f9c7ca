"""The wheel holds the whole app: every module under mbexplorer/ and every resource the app ships.

Tests run against an editable install, which reads the source tree and so never shows a package missing
from the wheel; building the wheel does.
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_module_and_resource(tmp_path):
    # From a clean copy: setuptools reuses a build/ folder left in the tree, which can hold what the
    # configuration no longer lists.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                                              ".pytest_cache", ".ruff_cache"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    wheel = next(tmp_path.glob("mbexplorer-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mbexplorer").rglob("*.py")}
    want |= {"mbexplorer/resources/" + p.name for p in (ROOT / "resources").iterdir()
             if p.is_file() and p.suffix in (".py", ".json", ".svg", ".png", ".txt")}
    missing = sorted(want - names)
    assert not missing, f"not in the wheel: {missing}; list the package in pyproject.toml [tool.setuptools]"
