"""The runtime device plugins (plugins/onnxruntime, openvino, litert) against the runtimes' own loops and tools,
on this CPU, in one run:

1. MobileNetV1 1.0 fp32: the onnxruntime plugin's throughput per batch size against a raw onnxruntime loop (and
   onnxruntime_perf_test when it is on PATH); target within +-5 %.
2. The OpenVINO plugin (its own sync loop) against benchmark_app run directly (-api sync -hint latency, the same
   precision and iterations); target within +-5 %.
3. The child process's overhead at batch 1: the same onnxruntime profile in-process and through the host's child
   (host.profile_job); target < 2 %.
4. The best fp32 throughput as a share of this CPU's FP32 peak (cores x GHz x FLOPs/cycle, assumptions printed).
5. The fastest path per model among what the plugins offer here (runtime, precision, batch).

The machine may be shared: every comparison interleaves its two sides and keeps the best of several runs, and
the ratios are of figures measured in this one run.

    python bench/bench_devices.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from mbexplorer.core.builder import build
from mbexplorer.core.costs import analyse
from mbexplorer.core.jobs import run
from mbexplorer.core.loading import load
from mbexplorer.core.onnx_write import save_model
from mbexplorer.core.quantize import quantize_job
from mbexplorer.devices import ProfileRequest
from mbexplorer.devices.host import discover, find, profile_job
from mbexplorer.devices.store import Store

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PLUGINS = ROOT / "plugins"
REPEATS = 5  # best of, taking turns: more short runs catch more quiet moments on a shared machine
WARMUP = 3


def plugin(name: str):
    """The plugin object, imported from its folder as the host's child imports it."""
    sys.path.insert(0, str(PLUGINS / name))
    return importlib.import_module(f"mbx_{name}").Plugin()


def measured(job) -> list:
    events = []
    run(job, events.append)
    return [e for e in events if hasattr(e, "throughput")]


def iterations_for(batch: int, images: int) -> int:
    return max(3, round(images / batch))


def pct(a: float, b: float) -> str:
    return f"{(a / b - 1) * 100:+6.1f} %"


def figure(m) -> tuple[float, float]:
    """(throughput, median call in ms) of a plugin's measurement."""
    return m.throughput, m.latency_ms.p50


def interleaved(sides: dict, batches, repeats: int = REPEATS) -> dict[str, dict[int, tuple[float, float]]]:
    """Each side's best of ``repeats`` per batch size: the highest throughput and the lowest median call. The sides
    run back to back for one batch size, taking turns to go first (a load that comes and goes hits both)."""
    best: dict[str, dict[int, tuple[float, float]]] = {name: {} for name in sides}
    for r in range(repeats):
        for i, b in enumerate(batches):
            for name in list(sides) if (r + i) % 2 == 0 else list(sides)[::-1]:
                tp, median = sides[name](b)
                old = best[name].get(b, (0.0, float("inf")))
                best[name][b] = (max(old[0], tp), min(old[1], median))
    return best


def table(best: dict, ours: str, theirs: str, batches, target: float = 0.05) -> None:
    """Throughput (images per mean call: the figure the target is on) and, beside it, images per median call: on a
    shared machine a burst of load moves the mean and hardly the median, so a gap in the first alone is load."""
    print(f"   {'batch':>5} {ours:>10} {theirs:>10} {'ratio':>9}   {'median-call ratio':>17}   "
          f"(images/s, best of {REPEATS}; target within +-{target * 100:.0f} %)")
    for b in batches:
        (a, am), (c, cm) = best[ours][b], best[theirs][b]
        verdict = ("ok" if abs(a / c - 1) <= target else
                   "ok on the median (the mean moved with the load)" if abs(cm / am - 1) <= target else "OUTSIDE")
        print(f"   {b:>5} {a:10.1f} {c:10.1f} {pct(a, c):>9}   {pct(cm, am):>17}   {verdict}")


def load_average() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


# --- 1. onnxruntime plugin against a raw onnxruntime loop -------------------------------------------------

def raw_onnxruntime(path: Path, batch: int, iterations: int, warmup: int) -> tuple[float, float]:
    """The plainest loop: a default session, seeded random input, session.run timed per call."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).uniform(-1, 1, (batch, 3, 224, 224)).astype(np.float32)
    for _ in range(warmup):
        sess.run(None, {name: x})
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t0) * 1000.0)
    return batch * 1000.0 / (sum(times) / len(times)), float(np.median(times))


def perf_test(path: Path, runs: int) -> float | None:
    """onnxruntime_perf_test at batch 1 (free dimensions are 1 with -I), images/s; None when not on PATH."""
    exe = shutil.which("onnxruntime_perf_test")
    if exe is None:
        return None
    out = subprocess.run([exe, "-e", "cpu", "-m", "times", "-r", str(runs), "-I", str(path)], capture_output=True,
                         text=True, timeout=600).stdout
    m = re.search(r"Average inference time cost:\s*([0-9.]+) ms", out)
    return 1000.0 / float(m.group(1)) if m else None


def compare_onnxruntime(ort_plugin, path: Path, batches, images: int) -> dict[int, float]:
    def plugin_side(b: int) -> tuple[float, float]:
        request = ProfileRequest(str(path), "cpu", "fp32", (b,), iterations_for(b, images), WARMUP)
        return figure(measured(ort_plugin.profile(request))[0])

    print(f"\n1. onnxruntime {ort.__version__} plugin vs a raw onnxruntime loop, MobileNetV1 1.0 fp32 "
          f"({images} images per figure, the same iterations and warmup; {load_average()})")
    best = interleaved({"plugin": plugin_side,
                        "raw loop": lambda b: raw_onnxruntime(path, b, iterations_for(b, images), WARMUP)}, batches)
    table(best, "plugin", "raw loop", batches)
    fixed1 = path.with_name("v1_batch1.onnx")
    proto = onnx.load(path)
    for vi in (proto.graph.input[0], proto.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(proto, fixed1)
    pt = perf_test(fixed1, iterations_for(1, images))
    if pt is None:
        print("   onnxruntime_perf_test: not on PATH (the onnxruntime pip wheel does not ship it); not compared")
    else:
        print(f"   onnxruntime_perf_test batch 1: {pt:.1f} images/s; plugin {pct(best['plugin'][1][0], pt)}")
    return {b: v[0] for b, v in best["plugin"].items()}


# --- 2. OpenVINO plugin against benchmark_app ---------------------------------------------------------------

def benchmark_app(path: Path, batch: int, iterations: int) -> tuple[float, float]:
    """benchmark_app's own 'Throughput: N FPS' (images/s: batch x iterations / duration, per its source) and its
    median latency in ms."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    args = [exe, "-m", str(path), "-d", "CPU", "-shape", f"[{batch},3,224,224]", "-ip", "f32", "-api", "sync",
            "-hint", "latency", "-infer_precision", "f32", "-niter", str(iterations)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600).stdout
    fps = re.search(r"Throughput:\s*([0-9.]+) FPS", out)
    median = re.search(r"Median:\s*([0-9.]+) (ms|us)", out)
    if fps is None or median is None:
        raise SystemExit(f"benchmark_app failed:\n{out[-3000:]}")
    return float(fps.group(1)), float(median.group(1)) / (1000.0 if median.group(2) == "us" else 1.0)


def compare_openvino(ov_plugin, path: Path, batches, images: int) -> dict[int, float]:
    import openvino

    def plugin_side(b: int) -> tuple[float, float]:  # warmup 1: benchmark_app's own (one first inference)
        request = ProfileRequest(str(path), "CPU", "fp32", (b,), iterations_for(b, images), 1)
        return figure(measured(ov_plugin.profile(request))[0])

    print(f"\n2. OpenVINO {openvino.__version__} plugin (sync InferRequest loop) vs benchmark_app -api sync -hint "
          f"latency, f32, the same iterations ({load_average()})")
    best = interleaved({"plugin": plugin_side,
                        "bench_app": lambda b: benchmark_app(path, b, iterations_for(b, images))}, batches)
    table(best, "plugin", "bench_app", batches)
    print("   (f32 is set on both sides: left to its defaults, OpenVINO runs bf16 on a CPU with avx512_bf16)")
    return {b: max(best["plugin"][b][0], best["bench_app"][b][0]) for b in batches}


# --- 3. the child process's overhead ----------------------------------------------------------------------------

def child_overhead(ort_plugin, path: Path, work: Path, iterations: int, pairs: int) -> None:
    info = find("onnxruntime", discover())
    request = ProfileRequest(str(path), "cpu", "fp32", (1,), iterations, 20, str(work))
    walls = []
    with Store(work / "runs.sqlite") as store:
        def child(_b: int) -> tuple[float, float]:
            t0 = time.perf_counter()
            m = measured(profile_job(info, request, store))[0]
            walls.append(time.perf_counter() - t0)
            return figure(m)

        print(f"\n3. Child-process overhead, onnxruntime plugin, MobileNetV1 1.0 batch 1, {iterations} iterations "
              f"({load_average()})")
        best = interleaved({"in-process": lambda _b: figure(measured(ort_plugin.profile(request))[0]),
                            "child": child}, (1,), repeats=pairs)
    (a, am), (c, cm) = best["in-process"][1], best["child"][1]
    print(f"   in-process {a:.1f} images/s, through the host's child {c:.1f} (best of {pairs}, taking turns): "
          f"overhead {(1 - c / a) * 100:+.1f} % (target < 2 %); on the median call {(cm / am - 1) * 100:+.1f} %")
    print(f"   (the child's start-up is outside the figure: a whole child job took {min(walls):.1f} s at best)")


# --- 4. FP32 peak -------------------------------------------------------------------------------------------------

def fp32_peak() -> tuple[float, float, str]:
    """FLOP/s at the clock /proc/cpuinfo reports, FLOPs per cycle of all cores, and the assumptions, said."""
    text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    first = dict((k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in text.split("\n\n")[0].splitlines()))
    flags = set(first.get("flags", "").split())
    vendor, family, model = first.get("vendor_id", ""), int(first.get("cpu family", "0")), first.get("model name", "")
    cores = len(os.sched_getaffinity(0))
    smt = int(first.get("siblings", "1")) // max(1, int(first.get("cpu cores", "1")))
    ghz = float(first.get("cpu MHz", "0")) / 1000.0
    if "avx512f" in flags and vendor == "AuthenticAMD" and family >= 0x1A:
        per, why = 64, "Zen 5 (family 0x1A) with avx512f: two 512-bit FMA pipes x 16 fp32 lanes x 2 FLOPs"
    elif "avx512f" in flags and vendor == "AuthenticAMD":
        per, why = 32, "Zen 4 with avx512f: two 256-bit FMA pipes (512-bit ops take two) x 8 lanes x 2 FLOPs"
    elif "avx512f" in flags:
        per, why = 64, "Intel with avx512f: two 512-bit FMA ports (Xeon Gold/Platinum; one-port SKUs have 32)"
    elif "fma" in flags and "avx2" in flags:
        per, why = 32, "avx2 + fma: two 256-bit FMA ports x 8 lanes x 2 FLOPs"
    else:
        per, why = 8, "SSE only: one 4-wide add and one 4-wide multiply per cycle"
    cores_phys = cores // max(1, smt)
    peak = cores_phys * ghz * 1e9 * per
    said = (f"{model}: {cores_phys} cores ({cores} CPUs this process may use, {smt} per core) x {ghz:.3f} GHz "
            f"(/proc/cpuinfo's clock: a VM shows the nominal one; with boost the peak is higher and the shares below "
            f"lower) x {per} FP32 "
            f"FLOPs/cycle ({why}) = {peak / 1e9:.0f} GFLOP/s")
    return peak, cores_phys * per, said


# --- 5. the fastest path per model ------------------------------------------------------------------------------

def offers(onnx_path: Path, tflite: Path | None, precision: str):
    """(runtime, plugin, request kwargs) the plugins offer for one model here."""
    out = [("onnxruntime", "onnxruntime", dict(model_path=str(onnx_path), device="cpu", precision=precision)),
           ("openvino", "openvino", dict(model_path=str(onnx_path), device="CPU", precision=precision))]
    if tflite is not None:
        out.append(("litert", "litert", dict(model_path=str(onnx_path), source_path=str(tflite), device="cpu",
                                             precision=precision)))
    return out


def fastest_paths(plugins: dict, models: list, batches, images: int) -> None:
    print(f"\n5. Fastest path per model (batch sizes {list(batches)}, about {images} images per figure, one run "
          "each: a ranking, not a precise figure)")
    for label, onnx_path, tflite, precision in models:
        results, impossible = [], []
        for runtime, plugin_name, kw in offers(onnx_path, tflite, precision):
            for b in batches:
                request = ProfileRequest(batch_sizes=(b,), iterations=iterations_for(b, images), warmup=2, **kw)
                events = []
                try:
                    run(plugins[plugin_name].profile(request), events.append)
                except Exception as exc:  # a batch size the model or runtime cannot take: said, not fatal
                    impossible.append(f"{runtime} b{b}: {str(exc).splitlines()[0][:150]}")
                    continue
                for m in (e for e in events if hasattr(e, "throughput")):
                    results.append((m.throughput, runtime, m.precision, m.batch_size))
        best = max(results)
        tried = ", ".join(f"{r} {p} b{b} {t:.0f}" for t, r, p, b in sorted(results, reverse=True)[1:])
        print(f"   {label:<42} best: {best[1]} {best[2]} batch {best[3]}: {best[0]:.0f} images/s")
        print(f"   {'':<42} others: {tried}")
        for why in impossible:
            print(f"   {'':<42} not possible: {why}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images per figure (a smoke run)")
    args = parser.parse_args()
    started = time.perf_counter()
    images = 24 if args.quick else 48
    batches = (1, 2, 4, 8, 16, 32)
    if not (SHARED / "models").is_dir():
        raise SystemExit(f"the shared test data is not at {SHARED}")
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        v1 = build("mobilenet_v1")
        v1_path = work / "mobilenet_v1_1.0_224.onnx"
        save_model(v1.model, v1_path)
        macs = analyse(v1).totals()["macs"]
        print(f"MobileNetV1 1.0/224 (built, fp32): {macs / 1e6:.1f} M MACs = {2 * macs / 1e9:.3f} GFLOP per image "
              "(2 x MACs, from mbexplorer.core.costs as `mbexplorer summary` counts them)")
        print(f"CPU: {os.cpu_count()} CPUs; onnxruntime {ort.__version__}; numpy {np.__version__}")
        plugins = {n: plugin(n) for n in ("onnxruntime", "openvino", "litert")}

        best_ort = compare_onnxruntime(plugins["onnxruntime"], v1_path, batches, images)
        best_ov = compare_openvino(plugins["openvino"], v1_path, batches, images)
        child_overhead(plugins["onnxruntime"], v1_path, work, 60 if args.quick else 200, 2 if args.quick else 5)

        peak, per_cycle, said = fp32_peak()
        best_tp, who = max([(v, f"onnxruntime batch {b}") for b, v in best_ort.items()]
                           + [(v, f"OpenVINO batch {b}") for b, v in best_ov.items()])
        print(f"\n4. FP32 peak: {said}")
        print(f"   best fp32 MobileNetV1 1.0: {who}, {best_tp:.1f} images/s x {2 * macs / 1e9:.3f} GFLOP = "
              f"{best_tp * 2 * macs / 1e9:.1f} GFLOP/s = {best_tp * 2 * macs / peak * 100:.1f} % of that peak")
        if best_tp * 2 * macs > peak:  # more than the nominal clock allows: the cores ran faster (boost)
            print(f"   above 100 %: the cores ran at {best_tp * 2 * macs / per_cycle / 1e9:.2f} GHz at least, not the "
                  "nominal clock; the share of the real peak is lower")

        t0 = time.perf_counter()
        calib = sorted(p for p in (SHARED / "images").iterdir() if p.suffix in (".bmp", ".jpg"))[:4]
        qdq = run(quantize_job(v1, calib, per_channel=True, activations="uint8", weights="int8"))
        qdq_path = work / "mobilenet_v1_1.0_224.qdq.onnx"
        save_model(qdq.model, qdq_path)
        print(f"\n   (int8 QDQ MobileNetV1 1.0 made with quantize_job on {len(calib)} shared images, per-channel "
              f"u8/s8, in {time.perf_counter() - t0:.1f} s)")
        models = [("MobileNetV1 1.0/224 (built) fp32", v1_path, None, "fp32"),
                  ("MobileNetV1 1.0/224 (built) int8 QDQ", qdq_path, None, "int8")]
        for tfl in sorted((SHARED / "models").glob("*.tflite")):
            imported = load(tfl)
            path = work / (tfl.stem + ".onnx")
            save_model(imported.model, path)
            precision = "int8" if imported.inputs[0].dtype in ("uint8", "int8") else "fp32"
            models.append((tfl.name, path, tfl, precision))
        fastest_paths(plugins, models, (1, 8), 32 if not args.quick else 12)
    print(f"\nwhole bench: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
