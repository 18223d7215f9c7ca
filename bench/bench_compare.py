"""`compare` (per-tensor and isolated errors) against the two models' plain inference, and its memory.

On 32 distinct images (the ../shared 8, each also flipped left-right, top-bottom and both, as PNG):
  (a) MobileNetV2 1.0/224 uint8 TFLite vs its float twin
  (b) MobileNetV2 1.0/224 float twin vs its onnxruntime QDQ model (uint8, per channel, calibrated on 8 images)
  (c) MobileNetV1 0.25/224 float TFLite vs its onnxruntime QDQ model (the same settings), a smaller model
and prints, per case:
  time ratio   = compare_job / (both models' plain inference, preprocessing included)   (target <= 2.5),
                 best of 3 interleaved runs (the machine may be shared: both sides of a ratio see its load);
                 also without the isolated error (compare_job(isolated=False), `compare --no-isolated`)
  memory ratio = peak at 64 images / peak at 8 images, tracemalloc and RSS high-water,
                 each run in a fresh child process                                        (target <= 1.10);
                 getrusage's high-water is loading's (the TFLite import), so VmHWM is also reset after loading

    python bench/bench_compare.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from PIL import Image

from mbexplorer.core.compare import compare_job
from mbexplorer.core.jobs import run
from mbexplorer.core.loading import load
from mbexplorer.core.preprocess import for_model
from mbexplorer.core.quantize import quantize_job
from mbexplorer.core.runtime import Session

REPEAT = 3
SHARED = Path(__file__).resolve().parents[2] / "shared"
V2_QUANT = SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite"
V1_FLOAT = SHARED / "models" / "mobilenet_v1_0.25_224_1_default_1.tflite"
CASES = {"a": "MobileNetV2 uint8 TFLite vs its float twin",
         "b": "MobileNetV2 float twin vs its onnxruntime QDQ model (per channel)",
         "c": "MobileNetV1 0.25 float vs its onnxruntime QDQ model (per channel)"}
# the eight symmetries of a square: 8 images x 8 = 64 distinct pictures
FLIPS = [None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_180,
         Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270, Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE]


def make_images(folder: Path, n: int) -> list[Path]:
    src = sorted(p for p in (SHARED / "images").iterdir() if p.suffix in (".bmp", ".jpg"))
    out = []
    for k in range(n):
        img = Image.open(src[k % len(src)]).convert("RGB")
        flip = FLIPS[k // len(src)]
        path = folder / f"{k:02d}_{src[k % len(src)].stem}.png"
        (img if flip is None else img.transpose(flip)).save(path)
        out.append(path)
    return out


def float_model(case: str):
    return load(V2_QUANT).float_twin if case in "ab" else load(V1_FLOAT)


def quantize(case: str, folder: Path, images: list[Path]) -> None:
    """Case b's and c's quantized model, saved in ``folder`` for the child processes to load."""
    if case != "a":
        q = run(quantize_job(float_model(case), images[:8], per_channel=True))
        (folder / f"{case}_int8.onnx").write_bytes(q.model.SerializeToString())


def models(case: str, folder: Path):
    if case == "a":
        q = load(V2_QUANT)
        return q.float_twin, q
    return float_model(case), load(folder / f"{case}_int8.onnx")


def plain(f, q, images) -> None:
    for m in (f, q):
        s, pre = Session(m), for_model(m)
        for path in images:
            s.run({s.input_names[0]: pre.tensor(path)})


def child(case: str, folder: str, n: int) -> None:
    """One compare run in this fresh process: tracemalloc peak and RSS high-water, as JSON on stdout."""
    f, q = models(case, Path(folder))
    images = sorted(Path(folder).glob("*.png"))[:n]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:  # Linux: reset the high-water mark (VmHWM), so that loading the models' own peak does not hide compare's
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    tracemalloc.start()
    run(compare_job(f, q, images))
    peak = tracemalloc.get_traced_memory()[1]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"traced": peak, "rss": rss, "rss_before": before, "hwm": _vm_hwm()}))


def _vm_hwm() -> int:
    """The RSS high-water mark since the reset, from /proc (0 where there is none)."""
    try:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration):
        return 0


def measure_memory(case: str, folder: Path, n: int) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", case, str(folder), str(n)],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = make_images(tmp, 64)
        for case, title in CASES.items():
            quantize(case, tmp, images)
            f, q = models(case, tmp)
            use = images[:32]
            run(compare_job(f, q, use[:1]))  # warm-up: sessions, caches
            plain(f, q, use[:1])
            t_cmp = t_plain = t_bare = float("inf")
            for _ in range(REPEAT):  # interleaved, best of each: the machine may be shared
                t0 = time.perf_counter()
                c = run(compare_job(f, q, use))
                t_cmp = min(t_cmp, time.perf_counter() - t0)
                t0 = time.perf_counter()
                run(compare_job(f, q, use, isolated=False))
                t_bare = min(t_bare, time.perf_counter() - t0)
                t0 = time.perf_counter()
                plain(f, q, use)
                t_plain = min(t_plain, time.perf_counter() - t0)
            iso = sum(t["isolated_sqnr_db"] is not None for t in c.to_dict()["tensors"])
            print(f"({case}) {title}: {len(c.pairing.pairs)} tensors ({iso} with an isolated error), 32 images")
            print(f"    compare {t_cmp:.2f} s, plain inference of both {t_plain:.2f} s: "
                  f"ratio {t_cmp / t_plain:.2f} (target <= 2.5)")
            print(f"    without the isolated error (compare_job(isolated=False)) {t_bare:.2f} s: "
                  f"ratio {t_bare / t_plain:.2f}")
            m8, m64 = (measure_memory(case, tmp, n) for n in (8, 64))
            for k, what in (("traced", "tracemalloc peak"), ("rss", "RSS high-water (getrusage)"),
                            ("hwm", "RSS high-water during compare (VmHWM reset after loading)")):
                print(f"    {what}: {m8[k] / 2**20:.1f} MiB at 8 images, {m64[k] / 2**20:.1f} MiB at 64: "
                      f"ratio {m64[k] / m8[k]:.3f} (target <= 1.10)")
            print(f"    (RSS high-water once the models were loaded, before comparing: {m8['rss_before'] / 2**20:.1f} "
                  f"and {m64['rss_before'] / 2**20:.1f} MiB)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
