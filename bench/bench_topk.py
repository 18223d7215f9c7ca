"""Drop-to-top-k for a 1080p JPEG and MobileNetV2 1.0/224 (torchvision preprocessing).

Prints the split (decode / preprocess / infer / top-k) of the exact path (the default: 'mbexplorer predict' and
the Classify tab, torchvision's pipeline to the bit) and of the opt-in fast path (JPEG draft decoding, an
approximation), the model's own inference time, and the same steps written by hand with PIL and onnxruntime,
all measured in this run:
  ratio 1 = fast path / model inference              (target <= 2.0)
  ratio 2 = fast path / hand-written draft path      (target <= 1.10)
  ratio 3 = exact path / hand-written exact path     (target <= 1.10)
It also prints the floor no decoder here gets under: the JPEG decoded at 1/8 scale, where entropy decoding
is nearly all that is left.

    python bench/bench_topk.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import photo_jpeg  # noqa: E402

from mbexplorer.core import builder
from mbexplorer.core.inference import Classifier

REPEAT = 40


def median_ms(fn) -> float:
    fn()  # warm-up
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def median_split(clf, jpeg, fast):
    splits = [clf.classify(jpeg, k=5, fast=fast).timings_ms for _ in range(REPEAT)]
    return {k: statistics.median(s[k] for s in splits) for k in splits[0]}


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        jpeg = Path(d) / "photo_1080p.jpg"
        photo_jpeg(jpeg)
        model = builder.build("mobilenet_v2")
        clf = Classifier(model)
        x = clf.preprocess(Image.open(jpeg).convert("RGB"))

        infer = median_ms(lambda: clf.session.run(None, {clf.input_name: x}))
        app = median_ms(lambda: clf.classify(jpeg, k=5, fast=True))
        exact = median_ms(lambda: clf.classify(jpeg, k=5, fast=False))
        split = median_split(clf, jpeg, fast=True)
        exact_split = median_split(clf, jpeg, fast=False)

        def floor():
            img = Image.open(jpeg)
            img.draft("RGB", (img.size[0] // 8, img.size[1] // 8))
            img.load()

        entropy = median_ms(floor)

        sess = ort.InferenceSession(model.model.SerializeToString(), providers=["CPUExecutionProvider"])
        mean = np.array([0.485, 0.456, 0.406], np.float32)
        std = np.array([0.229, 0.224, 0.225], np.float32)

        def by_hand(draft: bool):
            """torchvision's eval pipeline written out: decode (at a reduced JPEG scale with ``draft``, as the
            fast path does), Resize(256), CenterCrop(224), normalise, run, top-5."""
            img = Image.open(jpeg)
            if draft:
                img.draft("RGB", (512, 512))
            img = img.convert("RGB")
            w, h = img.size
            img = img.resize((int(256 * w / h), 256), Image.BILINEAR)
            left = int(round((img.size[0] - 224) / 2.0))
            a = np.asarray(img.crop((left, 16, left + 224, 240)), np.float32) / 255
            a = ((a - mean) / std).transpose(2, 0, 1)[None]
            logits = sess.run(None, {"input": np.ascontiguousarray(a)})[0][0]
            p = np.exp(logits - logits.max())
            p /= p.sum()
            return np.argsort(-p)[:5]

        hand = median_ms(lambda: by_hand(True))
        hand_exact = median_ms(lambda: by_hand(False))
        print(f"1080p JPEG -> top-5 with MobileNetV2 1.0/224 (median of {REPEAT})")
        print("  exact path split (default): " + "  ".join(f"{k} {v:.2f} ms" for k, v in exact_split.items()))
        print("  fast path split (opt-in):   " + "  ".join(f"{k} {v:.2f} ms" for k, v in split.items()))
        print(f"  decode floor (1/8-scale decode, entropy decoding alone): {entropy:.2f} ms")
        print(f"  exact path (full decode): {exact:.2f} ms   fast path (JPEG draft decode): {app:.2f} ms")
        print(f"  model inference alone: {infer:.2f} ms   hand-written PIL + onnxruntime: draft {hand:.2f} ms, "
              f"exact {hand_exact:.2f} ms")
        print(f"  ratio fast / inference: {app / infer:.2f} (target <= 2.0)")
        print(f"  ratio fast / hand-written draft: {app / hand:.2f} (target <= 1.10)")
        print(f"  ratio exact / hand-written exact: {exact / hand_exact:.2f} (target <= 1.10)")
        print(f"  ratio exact path / inference: {exact / infer:.2f}")
        print(f"  ratio (decode floor + inference) / inference: {(entropy + infer) / infer:.2f}")


if __name__ == "__main__":
    main()
