"""A plugin whose workload is real but trivial: sleeping ``delay_ms`` per image, timed with perf_counter.

Its log format (for from_log), as a vendor tool would print it::

    sleeper 0.1 device=cpu precision=fp32
    batch size: 4
    iteration 0: 4.12 ms
    ...
"""

import os
import re
import time
from pathlib import Path

from mbexplorer.devices import (
    END_TO_END,
    Artifact,
    Device,
    Log,
    PluginError,
    Progress,
    checkpoint,
    measurement_from_times,
)

NAME, VERSION = "sleeper", "0.1"


class Plugin:
    def devices(self):
        return [Device("cpu", "a sleeping host thread", "cpu", ("fp32", "fp16")),
                Device("npu:0", "an NPU that is not there", "npu", ("int8",), available=False,
                       reason="no NPU on this machine; plug one in")]

    def compile(self, request):
        yield Progress(0.5, "nothing to compile")
        out = Path(request.workdir) / "sleeper.artifact"
        out.write_text(f"compiled from {request.model_path} for {request.batch_sizes}\n")
        return Artifact(str(out), request.precision, request.batch_sizes, f"{NAME} {VERSION}", "a text file")

    def profile(self, request):
        delay = float(request.option("delay_ms", "1")) / 1000.0
        pause = float(request.option("pause_after_s", "0"))  # lets a test act between two points
        yield Log(f"sleeper pid {os.getpid()}")
        for i, bs in enumerate(request.batch_sizes):
            yield Progress(i / len(request.batch_sizes), f"batch size {bs}")
            for _ in range(request.warmup):
                time.sleep(delay * bs)
            times = []
            for _ in range(request.iterations):
                t0 = time.perf_counter()
                time.sleep(delay * bs)
                times.append((time.perf_counter() - t0) * 1000.0)
                checkpoint()
            yield Log(f"batch size {bs}: {len(times)} iterations")
            yield measurement_from_times(times, batch_size=bs, plugin=NAME, device=request.device, tool=NAME,
                                         tool_version=VERSION, model_sha256=request.model_sha256,
                                         precision=request.precision, warmup=request.warmup, meaning=END_TO_END,
                                         timestamp=time.time())
            time.sleep(pause)

    def parse_logs(self, request):
        for path in request.paths:
            text = Path(path).read_text()
            head = re.search(r"^sleeper (\S+) device=(\S+) precision=(\S+)", text, re.M)
            if head is None:
                raise PluginError(f"{path} is not a sleeper log: its first line should be 'sleeper VERSION ...'")
            bs = re.search(r"^batch size: (\d+)", text, re.M)
            batch = int(bs.group(1)) if bs else request.batch_size
            if batch is None:
                raise PluginError(f"{path} does not say its batch size; give --batch-size")
            times = [float(t) for t in re.findall(r"^iteration \d+: ([\d.]+) ms", text, re.M)]
            if not times:
                raise PluginError(f"{path} holds no iteration times")
            yield measurement_from_times(times, batch_size=batch, plugin=NAME, device=head.group(2), tool=NAME,
                                         tool_version=head.group(1), model_sha256=request.model_sha256,
                                         precision=request.precision or head.group(3), warmup=0,
                                         meaning=END_TO_END, timestamp=time.time(), note=f"from log {path}")
