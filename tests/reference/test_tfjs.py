"""The "tfjs" preset against @tensorflow-models/mobilenet's own preprocessing, run by TensorFlow.js in node
(tests/reference/tfjs/preprocess.js, CPU backend): float results within 1e-5 for every picture and size.

TensorFlow.js is fed what tf.browser.fromPixels would give: the decoded RGB pixels. A browser decodes with its
own decoder; the preset decodes with PIL, so PIL's pixels go to both.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import SIZES
from PIL import Image

from mbexplorer.core.preprocess import preset

pytestmark = pytest.mark.shared

HARNESS = Path(__file__).parent / "tfjs"
TOLERANCE = 1e-5


def _node() -> str:
    """The node executable, once the harness's packages are installed; else fail (CI) / skip."""
    node = shutil.which("node")
    installed = (HARNESS / "node_modules" / "@tensorflow-models" / "mobilenet").is_dir()
    if node and installed:
        return node
    msg = ("node is not on PATH" if not node else "the TensorFlow.js harness is not installed") + \
        "; install node 20+ and run: npm ci --prefix tests/reference/tfjs"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def tfjs_tensors(photos, odd_photos, tmp_path_factory) -> dict[tuple[Path, int], np.ndarray]:
    """(picture, size) -> the s x s x 3 float32 tensor TensorFlow.js makes: every picture and size in one node
    process (starting node per picture is slow)."""
    node = _node()
    work = tmp_path_factory.mktemp("tfjs")
    items, keys = [], []
    for i, p in enumerate(photos + odd_photos):
        with Image.open(p) as img:
            pixels = np.asarray(img.convert("RGB"))
        pixels.tofile(work / f"{i}.rgb")
        for s in SIZES:
            items.append(dict(input=f"{i}.rgb", height=pixels.shape[0], width=pixels.shape[1], size=s,
                              output=f"{i}_{s}.f32"))
            keys.append((p, s))
    (work / "manifest.json").write_text(json.dumps({"items": items}))
    run = subprocess.run([node, str(HARNESS / "preprocess.js"), str(work / "manifest.json")],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    return {k: np.fromfile(work / it["output"], "<f4").reshape(k[1], k[1], 3) for k, it in zip(keys, items)}


@pytest.mark.parametrize("size", SIZES)
def test_tfjs_preset_matches_tensorflow_js(size, photos, odd_photos, tfjs_tensors):
    pre = preset("tfjs", size, layout="NHWC")
    worst = {}
    for p in photos + odd_photos:
        ours = pre.tensor(p)
        assert ours.shape == (1, size, size, 3) and ours.dtype == np.float32
        worst[p.name] = float(np.abs(ours[0] - tfjs_tensors[p, size]).max())
    bad = {name: d for name, d in worst.items() if d > TOLERANCE}
    assert not bad, f"max abs difference over {TOLERANCE}: {bad}"
