"""Time to open and analyse models: MobileNetV2 from an .onnx file (read, validate, shape inference, block
grouping, costs) and a 10,000-node synthetic graph. Prints medians of several runs and the ratio to target.

    python bench/bench_summary.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import synthetic_graph  # noqa: E402

from mbexplorer.core import builder  # noqa: E402
from mbexplorer.core.analysis import open_model  # noqa: E402
from mbexplorer.core.blocks import group_blocks  # noqa: E402
from mbexplorer.core.costs import analyse  # noqa: E402
from mbexplorer.core.graph import GraphIndex  # noqa: E402
from mbexplorer.core.loading import load  # noqa: E402


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def stages(path, repeat):
    t_load = timed(lambda: load(path), repeat)
    m = load(path)
    t_index = timed(lambda: GraphIndex(m), repeat)
    gi = GraphIndex(m)
    t_blocks = timed(lambda: group_blocks(gi), repeat)
    bg = group_blocks(gi)
    t_costs = timed(lambda: analyse(m, gi, bg), repeat)
    t_total = timed(lambda: open_model(path), repeat)
    return t_load, t_index, t_blocks, t_costs, t_total


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        v2 = Path(d) / "mobilenet_v2.onnx"
        onnx.save(builder.build("mobilenet_v2").model, str(v2))
        syn = Path(d) / "synthetic_10k.onnx"
        proto = synthetic_graph(10_000)
        onnx.save(proto, str(syn))
        for label, path, target, repeat in (("MobileNetV2 1.0/224", v2, 0.5, 7),
                                             (f"synthetic graph, {len(proto.graph.node):,} nodes", syn, 3.0, 3)):
            t_load, t_index, t_blocks, t_costs, t_total = stages(path, repeat)
            print(f"{label} ({path.stat().st_size / 1e6:.1f} MB)")
            print(f"  load {t_load * 1e3:7.1f} ms   index {t_index * 1e3:6.1f} ms   blocks {t_blocks * 1e3:6.1f} ms"
                  f"   costs {t_costs * 1e3:6.1f} ms")
            print(f"  open + graph + costs: {t_total * 1e3:.1f} ms (median of {repeat}); target {target * 1e3:.0f} ms;"
                  f" ratio to target {t_total / target:.2f}")


if __name__ == "__main__":
    main()
