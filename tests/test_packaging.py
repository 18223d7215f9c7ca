"""The wheel holds the whole app: every module under mbexplorer/, every resource the app ships, and the
first-party device plugins.

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
    # the first-party device plugins, as data of mbexplorer.plugins (where the host looks in an installed app)
    plugins = {"mbexplorer/plugins/" + p.relative_to(ROOT / "plugins").as_posix()
               for p in (ROOT / "plugins").rglob("*") if p.is_file() and "__pycache__" not in p.parts
               and p.suffix != ".pyc"} if (ROOT / "plugins").is_dir() else set()
    want |= plugins
    missing = sorted(want - names)
    assert not missing, f"not in the wheel: {missing}; list the package in pyproject.toml [tool.setuptools]"
    if plugins:  # and the host finds them where the wheel put them
        target = tmp_path / "installed"
        out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        code = ("import sys; sys.path.insert(0, sys.argv[1]); from mbexplorer.devices import host; "
                "folder = host.built_in_folder(); print(folder); "
                "print(*sorted(p.name for p in host.discover([folder])))")
        # -S: no site-packages, so the editable install of this checkout cannot answer instead
        out = subprocess.run([sys.executable, "-S", "-c", code, str(target)], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr[-3000:]
        folder, found = out.stdout.splitlines()
        assert Path(folder) == target / "mbexplorer" / "plugins"
        assert found.split() == sorted({Path(n).parts[2] for n in plugins if n.endswith("/plugin.toml")})
