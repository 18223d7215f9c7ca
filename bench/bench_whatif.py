"""What-if table on the real models, and the time of one what-if round trip.

For the float MobileNetV1 0.25/224 and the float twin of MobileNetV2 1.0/224 (quant), calibrated and compared on
the 8 shared images: output SQNR, top-1/top-5 agreement and the worst layer per setting (``whatif.SETTINGS``).
Then, for MobileNetV2, one round trip timed: keep the baseline's worst layer in float, re-quantize with 32
calibration images (the 8 mirrored and cropped), re-compare on the 8 (target under 5 s).

    python bench/bench_whatif.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from mbexplorer.core.compare import compare_job
from mbexplorer.core.decoding import image_files
from mbexplorer.core.equalize import equalize_report
from mbexplorer.core.jobs import run
from mbexplorer.core.loading import load
from mbexplorer.core.quantize import quantize_job
from mbexplorer.core.whatif import augment, format_table, whatif

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    images = image_files([SHARED / "images"])
    models = {"MobileNetV1 0.25/224 float": load(SHARED / "models" / "mobilenet_v1_0.25_224_1_default_1.tflite"),
              "MobileNetV2 1.0/224 float twin":
                  load(SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite").float_twin}
    results = {}
    for name, model in models.items():
        _, rep = equalize_report(model)
        t = time.perf_counter()
        results[name] = whatif(model, images)
        print(f"\n{name}  ({len(images)} images; {time.perf_counter() - t:.1f} s; CLE: {rep.pairs} pairs, "
              f"skipped {dict(rep.skipped)})")
        print(format_table(results[name]))

    model = models["MobileNetV2 1.0/224 float twin"]
    worst = results["MobileNetV2 1.0/224 float twin"]["settings"][0]["worst_node"]
    with tempfile.TemporaryDirectory() as tmp:
        calib = augment(images, Path(tmp), 32)
        times = []
        for _ in range(3):  # three times: a shared machine's other work shows as spread, not as the figure
            t = time.perf_counter()
            q = run(quantize_job(model, calib, exclude=[worst]))
            t_q = time.perf_counter() - t
            c = run(compare_job(model, q, images)).to_dict()
            times.append((time.perf_counter() - t, t_q))
    total, t_q = min(times)
    print(f"\nround trip (MobileNetV2, {worst} kept float, 32 calibration images, compare on 8): "
          f"best of 3 {total:.2f} s (quantize {t_q:.2f} s, compare {total - t_q:.2f} s; target < 5 s), "
          f"all {', '.join(f'{t:.2f}' for t, _ in times)} s; output SQNR {c['output']['sqnr_db']:.2f} dB")

if __name__ == "__main__":
    main()
