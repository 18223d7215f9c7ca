"""Shared fixtures. ``shared_dir`` is the ../shared test data beside the repository: a test that needs it
fails when CI is set and it is missing, and skips otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest

# Qt tests run headless everywhere (a developer's desktop included); set before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "models").is_dir():
        msg = f"test data not found at {SHARED} (clone the repo beside ../shared)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return SHARED


@pytest.fixture(scope="session")
def built():
    """Build each (family, width, ...) once per session; the builder is deterministic."""
    from mbexplorer.core.builder import build

    cache = {}

    def get(family, width=1.0, resolution=224, **kw):
        key = (family, width, resolution, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = build(family, width, resolution, **kw)
        return cache[key]

    return get


@pytest.fixture
def model_file(tmp_path, built):
    """Write a built model to an .onnx file and return its path."""

    def write(family="mobilenet_v2", width=1.0, resolution=224, name=None, **kw):
        path = tmp_path / (name or f"{family}_{width:g}_{resolution}.onnx")
        onnx.save(built(family, width, resolution, **kw).model, str(path))
        return path

    return write
