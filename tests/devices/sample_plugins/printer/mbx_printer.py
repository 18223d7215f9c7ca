"""Prints to stdout everywhere (as chatty vendor libraries do): the protocol must not notice."""

import os
import time

from mbexplorer.devices import END_TO_END, Device, measurement_from_times

print("printer: imported")


class Plugin:
    def __init__(self):
        print("{\"type\": \"result\", \"data\": \"not from the host protocol\"}")

    def devices(self):
        print("printer: listing devices")
        return [Device("cpu", "host", "cpu")]

    def profile(self, request):
        for bs in request.batch_sizes:
            print(f"printer: batch size {bs}", flush=True)
            os.write(1, b"printer: straight to file descriptor 1\n")
            times = []
            for _ in range(request.iterations):
                t0 = time.perf_counter()
                sum(range(1000 * bs))
                times.append((time.perf_counter() - t0) * 1000.0)
            yield measurement_from_times(times, batch_size=bs, plugin="printer", device=request.device,
                                         tool="printer", tool_version="0.1", model_sha256=request.model_sha256,
                                         precision=request.precision, warmup=0, meaning=END_TO_END,
                                         timestamp=time.time())
