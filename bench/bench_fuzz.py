"""Fuzz the loaders: open thousands of mutated model files (``fuzz_mutants``) and count what happens.

Every outcome must be a successful open or a typed refusal (an ``MbxError``); anything else is a bug, listed
with its seed. Each file is opened (load, graph, blocks, costs) in a worker process, so a crash (a segfault
in a native library) or a hang is counted against its seed and the worker replaced, not the bench ended.

    python bench/bench_fuzz.py [--n 10000] [--start 0] [--workers N] [--timeout 60]

Reproduce one mutant: ``python bench/bench_fuzz.py --start SEED --n 1 --workers 1``.
"""

from __future__ import annotations

import argparse
import faulthandler
import multiprocessing as mp
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from multiprocessing.connection import wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_mutants import mutant  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
TFLITE_BASES = ("mobilenet_v1_0.25_128_quant.tflite", "v3-small_224_1.0_uint8.tflite")


def bases(shared: Path = SHARED) -> list[tuple[str, bytes]]:
    """The files mutated: a built MobileNetV1 x0.25 at 96 px as ONNX and the small shared TFLite models."""
    from mbexplorer.core.builder import build

    out = [("mobilenet_v1_0.25_96.onnx", build("mobilenet_v1", 0.25, 96).model.SerializeToString())]
    return out + [(name, (shared / "models" / name).read_bytes()) for name in TFLITE_BASES]


def try_one(base_files: list[tuple[str, bytes]], seed: int, folder: str) -> tuple:
    """Open mutant ``seed``: ("open", warned), ("refused", error class, warned) or ("other", text, warned),
    warned being whether a RuntimeWarning (numpy overflow and the like) escaped."""
    from mbexplorer.core.analysis import open_model
    from mbexplorer.core.errors import MbxError

    name, data, how = mutant(base_files, seed)
    path = Path(folder) / f"m{seed}{Path(name).suffix}"
    path.write_bytes(data)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                open_model(path)
                result: tuple = ("open",)
            except MbxError as exc:
                result = ("refused", type(exc).__name__)
            except Exception as exc:  # the bugs this bench looks for
                where = traceback.extract_tb(exc.__traceback__)[-1]
                text = f"{how}: {type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})"
                result = ("other", text[:500])
        warned = any(issubclass(w.category, RuntimeWarning) for w in caught)
        return (*result, warned)
    finally:
        path.unlink()


def _worker(conn, base_files, folder) -> None:
    faulthandler.enable()  # a segfault prints where it happened before the parent counts it
    while (seed := conn.recv()) is not None:
        conn.send(try_one(base_files, seed, folder))


def run(seeds: list[int], workers: int, timeout: float) -> dict:
    base_files = bases()
    ctx = mp.get_context("spawn")  # workers start clean: no state inherited from this process
    todo = list(reversed(seeds))
    counts: Counter = Counter()
    refusals: Counter = Counter()
    others, crashes, warned = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        live: dict = {}  # connection -> [process, seed or None, started]

        def start():
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, base_files, folder), daemon=True)
            proc.start()
            child.close()
            live[parent] = [proc, None, 0.0]
            return parent

        def feed(conn) -> None:
            if todo:
                seed = todo.pop()
                conn.send(seed)
                live[conn][1:] = [seed, time.monotonic()]
            else:
                conn.send(None)
                live.pop(conn)[0].join()

        def replace(conn, what: str):
            """Count a dead or stuck worker's mutant as ``what`` and start another worker in its place."""
            proc, seed, _ = live.pop(conn)
            proc.kill()
            proc.join()
            counts[what] += 1
            crashes.append(f"{what} (exit code {proc.exitcode}): {mutant(base_files, seed)[2]}")
            return start()

        for _ in range(min(workers, len(seeds))):
            start()
        for conn in list(live):
            feed(conn)
        done, t0 = 0, time.monotonic()
        while live:
            for conn in wait(list(live), timeout=1.0):
                try:
                    outcome = conn.recv()
                except (EOFError, OSError):  # the worker died mid-mutant
                    feed(replace(conn, "crash"))
                    continue
                seed = live[conn][1]
                counts[outcome[0]] += 1
                if outcome[0] == "refused":
                    refusals[outcome[1]] += 1
                elif outcome[0] == "other":
                    others.append(outcome[1])
                if outcome[-1]:
                    warned.append(seed)
                done += 1
                if done % 500 == 0:
                    print(f"  {done:,} of {len(seeds):,} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
                feed(conn)
            now = time.monotonic()
            for conn, (_, seed, started) in list(live.items()):
                if seed is not None and now - started > timeout:
                    feed(replace(conn, "hang"))
    return {"counts": counts, "refusals": refusals, "others": others, "crashes": crashes, "warned": warned,
            "seconds": time.monotonic() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="number of mutants (default 10,000)")
    ap.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="worker processes")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a mutant counts as a hang")
    args = ap.parse_args()
    r = run(list(range(args.start, args.start + args.n)), args.workers, args.timeout)
    c = r["counts"]
    print(f"{args.n:,} mutants (seeds {args.start} to {args.start + args.n - 1}) in {r['seconds']:.0f} s "
          f"on {args.workers} workers")
    print(f"  opened:            {c['open']:,}")
    print(f"  typed refusals:    {c['refused']:,}")
    for cls, k in r["refusals"].most_common():
        print(f"    {cls:<28} {k:,}")
    print(f"  other exceptions:  {c['other']:,}")
    for line in r["others"]:
        print(f"    {line}")
    print(f"  crashes and hangs: {c['crash'] + c['hang']:,}")
    for line in r["crashes"]:
        print(f"    {line}")
    print(f"  RuntimeWarnings escaped on {len(r['warned']):,} mutants" +
          (f" (seeds {', '.join(map(str, r['warned'][:20]))}{' ...' if len(r['warned']) > 20 else ''})"
           if r["warned"] else ""))
    return 1 if c["other"] or c["crash"] or c["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
