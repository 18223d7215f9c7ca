"""Drop-to-top-k for a 1080p JPEG and MobileNetV2 1.0/224 (torchvision preprocessing).

Prints the split (decode / preprocess / infer / top-k) of the app's path, the model's own inference time,
and the same steps written by hand with PIL and onnxruntime, all measured in this run:
  ratio 1 = app path / model inference        (target <= 2.0)
  ratio 2 = app path / hand-written path       (target <= 1.10)

    python bench/bench_topk.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from mbexplorer.core import builder
from mbexplorer.core.inference import Classifier

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"
REPEAT = 40


def make_jpeg(path: Path) -> None:
    """A 1920x1080 photo-like JPEG: a ../shared image scaled up, or smooth noise when it is absent."""
    src = SHARED / "parrot.jpg"
    if src.exists():
        img = Image.open(src).convert("RGB").resize((1920, 1080), Image.BICUBIC)
    else:
        rng = np.random.default_rng(0)
        small = (rng.random((68, 120, 3)) * 255).astype(np.uint8)
        img = Image.fromarray(small).resize((1920, 1080), Image.BICUBIC)
    img.save(path, quality=90)


def median_ms(fn) -> float:
    fn()  # warm-up
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        jpeg = Path(d) / "photo_1080p.jpg"
        make_jpeg(jpeg)
        model = builder.build("mobilenet_v2")
        clf = Classifier(model)
        x = clf.preprocess(Image.open(jpeg).convert("RGB"))

        infer = median_ms(lambda: clf.session.run(None, {clf.input_name: x}))
        app = median_ms(lambda: clf.classify(jpeg, k=5, fast=True))
        exact = median_ms(lambda: clf.classify(jpeg, k=5, fast=False))
        splits = [clf.classify(jpeg, k=5, fast=True).timings_ms for _ in range(REPEAT)]
        split = {k: statistics.median(s[k] for s in splits) for k in splits[0]}

        sess = ort.InferenceSession(model.model.SerializeToString(), providers=["CPUExecutionProvider"])
        mean = np.array([0.485, 0.456, 0.406], np.float32)
        std = np.array([0.229, 0.224, 0.225], np.float32)

        def by_hand():
            img = Image.open(jpeg)
            img.draft("RGB", (512, 512))
            img = img.convert("RGB")
            w, h = img.size
            img = img.resize((int(256 * w / h), 256), Image.BILINEAR)
            left = (img.size[0] - 224) // 2
            a = np.asarray(img.crop((left, 16, left + 224, 240)), np.float32) / 255
            a = ((a - mean) / std).transpose(2, 0, 1)[None]
            logits = sess.run(None, {"input": np.ascontiguousarray(a)})[0][0]
            p = np.exp(logits - logits.max())
            p /= p.sum()
            return np.argsort(-p)[:5]

        hand = median_ms(by_hand)
        print(f"1080p JPEG -> top-5 with MobileNetV2 1.0/224 (median of {REPEAT})")
        print("  app path split: " + "  ".join(f"{k} {v:.2f} ms" for k, v in split.items()))
        print(f"  app path (JPEG draft decode): {app:.2f} ms   exact path (full decode): {exact:.2f} ms")
        print(f"  model inference alone: {infer:.2f} ms   hand-written PIL + onnxruntime: {hand:.2f} ms")
        print(f"  ratio app / inference: {app / infer:.2f} (target <= 2.0)")
        print(f"  ratio app / hand-written: {app / hand:.2f} (target <= 1.10)")
        print(f"  ratio exact path / inference: {exact / infer:.2f}")


if __name__ == "__main__":
    main()
