"""Pictures every preset is compared on against its reference framework: the shared photos (BMP and JPEG)
and, for "any size and aspect ratio", renditions of them at awkward sizes saved as JPEG and PNG, plus a
transparent PNG. Reference frameworks (tensorflow-cpu, torch + torchvision, opencv-python-headless, node with
@tensorflow/tfjs) are optional test dependencies that .ci/run installs: a test whose framework is missing
fails under CI and skips otherwise, like the tests that need ../shared.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

try:  # torch and torchvision first: importing them after TensorFlow has loaded crashes the process here
    import torch  # noqa: F401
    import torchvision  # noqa: F401
except ImportError:
    pass

SIZES = (128, 160, 192, 224)
# (w, h) renditions: very wide, very tall, odd, small, 1080p-like
ODD_SIZES = ((1280, 720), (333, 1001), (97, 61), (640, 479), (1920, 1080))


def need(module: str):
    """Import a reference framework, or fail (CI) / skip (elsewhere) saying how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"{module} is not installed ({exc}); .ci/run installs the reference frameworks"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def photos(shared_dir) -> list[Path]:
    """The shared photos: six BMPs and two JPEGs."""
    return sorted((shared_dir / "images").glob("*.*[gp]"))


@pytest.fixture(scope="session")
def odd_photos(shared_dir, tmp_path_factory) -> list[Path]:
    """The shared photos re-saved at awkward sizes and aspect ratios: JPEG (4:2:0, the common case) and PNG."""
    out = tmp_path_factory.mktemp("odd")
    srcs = sorted((shared_dir / "images").glob("*.*[gp]"))
    paths = []
    for i, (w, h) in enumerate(ODD_SIZES):
        img = Image.open(srcs[i % len(srcs)]).convert("RGB").resize((w, h), Image.BICUBIC)
        p = out / f"odd_{w}x{h}.jpg"
        img.save(p, quality=90)
        paths.append(p)
        q = out / f"odd_{w}x{h}.png"
        img.save(q)
        paths.append(q)
    return paths


@pytest.fixture(scope="session")
def transparent_png(tmp_path_factory) -> Path:
    """A picture whose transparent parts hide colour: dropping alpha and compositing over white differ."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)
    a = np.zeros((150, 200), np.uint8)
    a[30:120, 40:160] = 255
    a[60:90] = 128
    p = tmp_path_factory.mktemp("alpha") / "transparent.png"
    Image.fromarray(np.dstack([rgb, a]), "RGBA").save(p)
    return p
