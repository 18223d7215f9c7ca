"""A 1080p JPEG to its input tensor, per preset: ours against the reference library doing the same steps.

For each preset, the median of N runs of ``Preprocess.tensor(path)`` (decode included) and of the pipeline
the preset reproduces, run by its own library in this process:

  torchvision  PIL decode + torchvision.transforms Resize(256), CenterCrop(224), ToTensor, Normalize
  timm         PIL decode + timm.data.create_transform(eval, bicubic, crop_pct 0.875)
  tfslim       tf.io.decode_jpeg, convert_image_dtype, central_crop(0.875), compat.v1 resize_bilinear, (x-0.5)*2
  keras        keras.utils.load_img(target_size), img_to_array, applications.mobilenet.preprocess_input
  coral        PIL decode, tf.image.resize(bilinear, antialias=False), cast to uint8 (a quantized model's input)
  paddle       PaddleClas's eval ops: cv2.imdecode, ResizeImage(resize_short=256), CropImage, NormalizeImage,
               ToCHWImage (numpy, as PaddleClas writes them)
  tfjs         skipped: TF.js has no Python runtime to time against

ratio = ours / reference (target <= 1.2). "fast" is the opt-in reduced-scale JPEG decode (the Classify tab's
default, ``predict --fast-decode``) for the presets that allow it. TensorFlow's and torch's first calls are
slow (graph tracing, thread pools): every pipeline is warmed up before it is timed. A framework that is not
installed prints its line as skipped.

    python bench/bench_preprocess.py [--repeat N] [--size 224]
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import photo_jpeg  # noqa: E402

from mbexplorer.core.preprocess import IMAGENET_MEAN, IMAGENET_STD, draft_size, load_approximate, preset

LAYOUT = {"torchvision": "NCHW", "timm": "NCHW", "paddle": "NCHW", "tfslim": "NHWC", "keras": "NHWC",
          "coral": "NHWC", "tfjs": "NHWC"}  # each reference's own layout, so both sides make the same array
DTYPE = {"coral": "uint8"}


def median_ms(*fns, repeat: int, warmup: int = 3, block: int = 5) -> list[float]:
    """Each function's median time. They take turns in blocks of ``block`` runs, so a machine busy with
    something else slows them alike; blocks, not single runs, so that one pipeline's large buffers (freed and
    mapped again) do not land in the next one's timing."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    while len(times[0]) < repeat:
        for fn, ts in zip(fns, times):
            for _ in range(min(block, repeat - len(ts))):
                t0 = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(ts) for ts in times]


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# the references: a function of the file, or (None, why) ---------------------------------------------------------
def ref_torchvision(path: Path, s: int):
    tv = _module("torchvision.transforms")
    if tv is None:
        return None, "torchvision not installed"
    t = tv.Compose([tv.Resize(round(s / 0.875)), tv.CenterCrop(s), tv.ToTensor(),
                    tv.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return (lambda: t(Image.open(path).convert("RGB")).unsqueeze(0).numpy()), ""


def ref_timm(path: Path, s: int):
    data = _module("timm.data")
    if data is None:
        return None, "timm not installed"
    t = data.create_transform(input_size=(3, s, s), interpolation="bicubic", crop_pct=0.875,
                              mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return (lambda: t(Image.open(path).convert("RGB")).unsqueeze(0).numpy()), ""


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return _module("tensorflow")


def ref_tfslim(path: Path, s: int):
    tf = _tf()
    if tf is None:
        return None, "tensorflow not installed"

    def run():
        img = tf.image.convert_image_dtype(tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=3), tf.float32)
        img = tf.image.central_crop(img, central_fraction=0.875)
        img = tf.compat.v1.image.resize_bilinear(img[None], [s, s], align_corners=False)
        return ((img - 0.5) * 2.0).numpy()

    return run, ""


def ref_keras(path: Path, s: int):
    if _tf() is None or (keras := _module("keras")) is None:
        return None, "keras (tensorflow) not installed"
    return (lambda: keras.applications.mobilenet.preprocess_input(
        keras.utils.img_to_array(keras.utils.load_img(path, target_size=(s, s)))[None])), ""


def ref_coral(path: Path, s: int):
    tf = _tf()
    if tf is None:
        return None, "tensorflow not installed"

    def run():
        img = np.asarray(Image.open(path).convert("RGB"))
        return tf.cast(tf.image.resize(img, (s, s), method="bilinear", antialias=False), tf.uint8)[None].numpy()

    return run, ""


def ref_paddle(path: Path, s: int):
    cv2 = _module("cv2")
    if cv2 is None:
        return None, "opencv not installed"
    scale = np.float32(1.0 / 255.0)
    mean = np.array(IMAGENET_MEAN).reshape((1, 1, 3)).astype("float32")
    std = np.array(IMAGENET_STD).reshape((1, 1, 3)).astype("float32")
    short = round(s / 0.875)

    def run():
        with open(path, "rb") as f:  # DecodeImage gets the file's bytes
            img = cv2.imdecode(np.frombuffer(f.read(), dtype="uint8"), 1)[:, :, ::-1]
        h, w = img.shape[:2]
        percent = float(short) / min(w, h)
        img = cv2.resize(img, (int(round(w * percent)), int(round(h * percent))), interpolation=cv2.INTER_LINEAR)
        h, w = img.shape[:2]
        img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s, :]
        img = (img.astype("float32") * scale - mean) / std
        return img.astype("float32").transpose((2, 0, 1))[None]

    return run, ""


def ref_tfjs(path: Path, s: int):
    return None, "no Python TF.js to time against (tests/reference/test_tfjs.py checks it with node)"


REFERENCES = {"torchvision": ref_torchvision, "timm": ref_timm, "tfslim": ref_tfslim, "keras": ref_keras,
              "coral": ref_coral, "paddle": ref_paddle, "tfjs": ref_tfjs}


def bench(name: str, jpeg: Path, size: int, repeat: int) -> str:
    """One preset's line: ours, the reference, the ratio, the fast path, and how far the results are apart."""
    pre = preset(name, size, layout=LAYOUT[name], dtype=DTYPE.get(name, "float32"))
    fns = [lambda: pre.tensor(jpeg)]
    if draft_size(pre) is not None:
        fns.append(lambda: pre(*load_approximate(jpeg, pre)))
    ref, why = REFERENCES[name](jpeg, size)
    if ref is None:
        ours, *fast = median_ms(*fns, repeat=repeat)
        fast = f"{fast[0]:8.2f}" if fast else ""
        return f"{name:<12} {ours:8.2f} {'-':>8} {'-':>6}  {fast:>8}  skipped: {why}"
    want, got = np.asarray(ref()), pre.tensor(jpeg)
    assert want.shape == got.shape and want.dtype == got.dtype, (name, want.shape, got.shape, want.dtype)
    err = float(np.abs(want.astype(np.float64) - got).max())
    theirs, ours, *fast = median_ms(ref, *fns, repeat=repeat)
    fast = f"{fast[0]:8.2f}" if fast else ""
    flag = "" if ours <= 1.2 * theirs else "  (over 1.2)"
    return f"{name:<12} {ours:8.2f} {theirs:8.2f} {ours / theirs:6.2f}  {fast:>8}  max |ours - ref| {err:.2g}{flag}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--only", nargs="+", choices=list(REFERENCES), help="only these presets")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        jpeg = Path(d) / "1080p.jpg"
        photo_jpeg(jpeg)
        print(f"1920x1080 JPEG (quality 90) to a {args.size} px input tensor; median of {args.repeat} runs, "
              f"{os.cpu_count()} CPUs")
        print(f"{'preset':<12} {'ours ms':>8} {'ref ms':>8} {'ratio':>6}  {'fast ms':>8}  reference")
        for name in args.only or REFERENCES:
            print(bench(name, jpeg, args.size, args.repeat), flush=True)


if __name__ == "__main__":
    main()
