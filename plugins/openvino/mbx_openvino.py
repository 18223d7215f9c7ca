"""OpenVINO device plugin: CPU, and GPU / NPU where ``openvino.Core().available_devices`` lists them. Written
against the public API ``mbexplorer.devices`` only. openvino is an optional extra: without it the plugin lists
its CPU as unavailable with ``pip install 'mbexplorer[openvino]'``.

Device ids are OpenVINO's own names ("CPU", "GPU.0", "NPU"), as ``benchmark_app -d`` takes them; a request may
give them in any case ("cpu").

compile: ``core.read_model`` on the ONNX model, ``reshape`` to each batch size, ``compile_model`` with the
precision's inference-precision hint, ``export_model`` to ``<workdir>/openvino_<device>_<precision>/b<N>.blob``.
The artifact is that folder; profile imports its blobs (and compiles any batch size it lacks).

profile, option ``tool``:

* ``api`` (the default), option ``mode``:
  - ``sync`` (default): one InferRequest, latency hint; each ``infer()`` timed with ``time.perf_counter`` (host end
    to end, inputs shared, outputs copied). Throughput = batch x 1000 / mean time.
  - ``async``: an AsyncInferQueue of the device's optimal number of requests, throughput hint; throughput = images
    / wall time of all requests, latency = each request's own (overlapping) time.
* ``benchmark_app``: OpenVINO's benchmark_app run as a subprocess on the ONNX model (``-shape``, ``-niter``,
  ``-api sync|async``); its "Throughput: N FPS" is images per second already (its source: frames = batch x
  iterations / duration), "Latency:" Median/Average/Min/Max in ms. benchmark_app prints no p90/p99 and no
  per-iteration times: p90 and p99 are None (not reported), its Min and Max go in the note.

Precision: fp32 / fp16 set INFERENCE_PRECISION_HINT (f32 / f16): OpenVINO's CPU plugin otherwise picks bf16 on a
CPU with AVX512-BF16 (seen on an AMD EPYC), and an imported blob needs the hint again. int8 needs a quantized
(QDQ) model, as ``mbexplorer quantize`` writes, and keeps f32 for what is not quantized. int8 on a float model
and fp32 on a quantized one are refused. Option ``threads``: INFERENCE_NUM_THREADS.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import onnx

from mbexplorer.devices import (
    END_TO_END,
    Artifact,
    CompileRequest,
    Device,
    Latency,
    Measurement,
    PluginError,
    ProfileRequest,
    Progress,
    ToolMissing,
    checkpoint,
    cpu_name,
    find_tool,
    latency_of,
    measurement_from_times,
    random_input,
    run_tool,
    usable_cpus,
    warn,
)

NAME = "openvino"
INSTALL = "pip install 'mbexplorer[openvino]'"
KINDS = {"CPU": "cpu", "GPU": "gpu", "NPU": "npu"}
CAPS = (("fp32", "FP32"), ("fp16", "FP16"), ("int8", "INT8"))
HINTS = {"fp32": "f32", "fp16": "f16", "int8": "f32"}
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}
QUANTIZE_FIRST = ("quantize it first (the Quantization tab, or `mbexplorer quantize MODEL --calib IMAGES`) and "
                  "profile the quantized file as int8")


def _ov():
    try:
        import openvino
    except ImportError as exc:
        raise ToolMissing("openvino", INSTALL) from exc
    return openvino


def is_quantized(path: str) -> bool:
    try:
        proto = onnx.load(path, load_external_data=False)
    except FileNotFoundError:
        raise PluginError(f"{path} does not exist.") from None
    except Exception as exc:
        raise PluginError(f"{path} is not an ONNX model onnx can read: {exc}") from exc
    return any(n.op_type in QUANT_OPS or n.op_type.startswith("QLinear") for n in proto.graph.node)


def _option(request, key: str, choices: tuple[str, ...]) -> str:
    value = request.option(key, choices[0]).strip().lower() or choices[0]
    if value not in choices:
        raise PluginError(f"option {key} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def _threads(request) -> int:
    text = request.option("threads", "")
    if text == "":
        return 0
    if not text.strip().isdigit() or int(text) < 1:
        raise PluginError(f"option threads must be a whole number >= 1, not {text!r}.")
    return int(text)


class Plugin:
    def devices(self) -> list[Device]:
        try:
            ov = _ov()
        except ToolMissing:
            return [Device("CPU", cpu_name(), "cpu", ("fp32", "int8"), available=False,
                           reason=f"openvino is not installed: {INSTALL}")]
        core = ov.Core()
        out = []
        for dev in core.available_devices:
            kind = KINDS.get(dev.split(".")[0])
            if kind is None:
                continue
            caps = list(core.get_property(dev, "OPTIMIZATION_CAPABILITIES"))
            precisions = tuple(p for p, cap in CAPS if cap in caps)
            name = core.get_property(dev, "FULL_DEVICE_NAME")
            if kind == "cpu":
                name = f"{name} ({usable_cpus()} hardware threads)"
            out.append(Device(dev, name, kind, precisions,
                              details=(("openvino", ov.__version__), ("capabilities", ", ".join(caps)))))
        return out

    def _device(self, device_id: str) -> Device:
        devices = self.devices()
        for d in devices:
            if d.id.lower() == device_id.lower():
                if not d.available:
                    raise ToolMissing("openvino", INSTALL)
                return d
        raise PluginError(f"OpenVINO has no device {device_id!r} here; it has {', '.join(d.id for d in devices)}.")

    def _check(self, request) -> Device:
        device = self._device(request.device)
        if request.precision not in device.precisions:
            raise PluginError(f"OpenVINO's {device.id} runs {', '.join(device.precisions)}, not {request.precision}.")
        name = Path(request.model_path).name
        quantized = is_quantized(request.model_path)
        if request.precision == "int8" and not quantized:
            raise PluginError(f"{name} is a float model, and int8 needs a quantized (QDQ) model: {QUANTIZE_FIRST}.")
        if request.precision != "int8" and quantized:
            raise PluginError(f"{name} is quantized (it has QuantizeLinear/DequantizeLinear or integer operators): "
                              f"profile it as int8, or give its float model for {request.precision}.")
        return device

    def _config(self, device: Device, precision: str, hint: str, threads: int) -> dict:
        config = {"PERFORMANCE_HINT": hint}
        if device.kind in ("cpu", "gpu"):
            config["INFERENCE_PRECISION_HINT"] = HINTS[precision]
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        return config

    def _compiled(self, core, model_path: str, art: Artifact | None, device: Device, batch: int, config: dict):
        """The model compiled at ``batch``: compile's blob when it has one, else read, reshaped and compiled.
        Returns (compiled model, where it came from), or (None, why) when the model cannot take that batch."""
        if art is not None and (Path(art.path) / f"b{batch}.blob").is_file():
            blob = (Path(art.path) / f"b{batch}.blob").read_bytes()
            return core.import_model(blob, device.id, config), f"imported {Path(art.path).name}/b{batch}.blob"
        model = read_model(core, model_path)
        first = model.inputs[0]
        rest = list(first.get_partial_shape())[1:]
        if any(d.is_dynamic for d in rest):
            raise PluginError(f"input {first.any_name!r} has symbolic sizes {first.get_partial_shape()} beyond the "
                              "batch; give a model with fixed sizes.")
        try:
            model.reshape({first: [batch, *[d.get_length() for d in rest]]})
        except RuntimeError as exc:  # shape inference fails where the graph pins the batch (a Reshape to [1, N])
            return None, str(exc).strip().splitlines()[0][:300]
        try:
            return core.compile_model(model, device.id, config), "compiled from the ONNX model"
        except RuntimeError as exc:
            raise PluginError(f"OpenVINO cannot compile {Path(model_path).name} for {device.id}: "
                              f"{ov_message(exc)}") from exc

    # --- compile ------------------------------------------------------------------------------------------

    def compile(self, request: CompileRequest):
        ov = _ov()
        device = self._check(request)
        if not request.workdir:
            raise PluginError("compile needs a workdir to save the compiled models in.")
        core = ov.Core()
        if "EXPORT_IMPORT" not in core.get_property(device.id, "OPTIMIZATION_CAPABILITIES"):
            raise PluginError(f"OpenVINO's {device.id} cannot export a compiled model; profile without compiling.")
        folder = Path(request.workdir) / f"openvino_{device.id.replace('.', '')}_{request.precision}"
        folder.mkdir(parents=True, exist_ok=True)
        config = self._config(device, request.precision, "LATENCY", _threads(request))
        done = []
        for i, b in enumerate(request.batch_sizes):
            yield Progress(i / len(request.batch_sizes), f"compiling batch {b} for {device.id}")
            compiled, how = self._compiled(core, request.model_path, None, device, b, config)
            if compiled is None:
                yield warn(f"batch {b} is not possible with this model in OpenVINO: {how}")
                continue
            blob = compiled.export_model()  # a BytesIO in this openvino, bytes in others
            (folder / f"b{b}.blob").write_bytes(blob.getvalue() if hasattr(blob, "getvalue") else blob)
            done.append(b)
        if not done:
            raise PluginError(f"none of the batch sizes {list(request.batch_sizes)} compiles for this model.")
        yield Progress(1.0, "compiled")
        return Artifact(str(folder), request.precision, tuple(done), f"openvino {ov.__version__}",
                        f"compiled for {device.id} (hint latency, inference precision "
                        f"{config.get('INFERENCE_PRECISION_HINT', 'device default')}); one exported blob per batch "
                        "size: b<N>.blob")

    # --- profile ------------------------------------------------------------------------------------------

    def profile(self, request: ProfileRequest):
        ov = _ov()
        device = self._check(request)
        if request.iterations < 1 or request.warmup < 0:
            raise PluginError(f"iterations must be >= 1 and warmup >= 0 (got {request.iterations}, "
                              f"{request.warmup}).")
        tool = _option(request, "tool", ("api", "benchmark_app"))
        mode = _option(request, "mode", ("sync", "async"))
        threads = _threads(request)
        if tool == "benchmark_app":
            yield from self._benchmark_app(ov, request, device, mode, threads)
            return
        core = ov.Core()
        config = self._config(device, request.precision, "LATENCY" if mode == "sync" else "THROUGHPUT", threads)
        rng = np.random.default_rng(0)
        got = 0
        for i, b in enumerate(request.batch_sizes):
            yield Progress(i / len(request.batch_sizes), f"batch {b}: compiling")
            compiled, source = self._compiled(core, request.model_path, request.artifact, device, b, config)
            if compiled is None:
                yield warn(f"batch {b} is not possible with this model in OpenVINO: {source}")
                continue
            inputs = {k: random_input(rng, inp.get_element_type().to_dtype(), list(inp.get_shape()))
                      for k, inp in enumerate(compiled.inputs)}
            used = compiled.get_property("INFERENCE_NUM_THREADS") if device.kind == "cpu" else 0
            name = f"{cpu_name()} ({used} threads)" if used else device.name
            settings = (f"OpenVINO {device.id}, {source}; hint {config['PERFORMANCE_HINT'].lower()}, inference "
                        f"precision {config.get('INFERENCE_PRECISION_HINT', 'device default')}"
                        + (f", {used} threads" if used else ""))
            yield Progress((i + 0.3) / len(request.batch_sizes), f"batch {b}: running")
            fields = dict(plugin=NAME, device=device.id, tool="openvino", tool_version=ov.__version__,
                          model_sha256=request.model_sha256, precision=request.precision, warmup=request.warmup,
                          meaning=END_TO_END, device_name=name)
            if mode == "sync":
                times = _sync_times(compiled, inputs, request.warmup, request.iterations)
                note = f"{settings}; InferRequest.infer timed per call with time.perf_counter (host end to end)"
                yield measurement_from_times(times, batch_size=b, timestamp=time.time(), note=note, **fields)
            else:
                yield _async_measurement(ov, compiled, inputs, b, request, settings, fields)
            got += 1
        if not got:
            raise PluginError(f"none of the batch sizes {list(request.batch_sizes)} runs with this model in "
                              "OpenVINO (see the log).")
        yield Progress(1.0, "done")

    def _benchmark_app(self, ov, request, device: Device, mode: str, threads: int):
        exe = _benchmark_app_path()
        core = ov.Core()
        first = read_model(core, request.model_path).inputs[0]
        rest = list(first.get_partial_shape())[1:]
        if any(d.is_dynamic for d in rest):
            raise PluginError(f"input {first.any_name!r} has symbolic sizes beyond the batch; give a model with "
                              "fixed sizes.")
        input_type = first.get_element_type().get_type_name()
        got = 0
        for i, b in enumerate(request.batch_sizes):
            yield Progress(i / len(request.batch_sizes), f"benchmark_app, batch {b}")
            shape = "[" + ",".join(str(d) for d in [b, *[d.get_length() for d in rest]]) + "]"
            # -ip: feed the model's own input type (benchmark_app turns an image-like input into u8 by default)
            args = [*exe, "-m", request.model_path, "-d", device.id, "-shape", shape, "-ip", input_type,
                    "-niter", str(request.iterations), "-api", mode]
            if device.kind in ("cpu", "gpu"):
                args += ["-infer_precision", HINTS[request.precision]]
            if threads:  # benchmark_app takes -nthreads only with -hint none (its own rule, not OpenVINO's)
                args += ["-hint", "none", "-nthreads", str(threads)] + (["-nstreams", "1"] if mode == "sync" else [])
            else:
                args += ["-hint", "latency" if mode == "sync" else "throughput"]
            result = yield from run_tool(args, cwd=request.workdir or None, check=False)
            try:
                figures = parse_benchmark_app(result.output)
            except PluginError as exc:
                if "Model batch size" in result.output or result.returncode == 0:
                    raise
                why = next((ln for ln in result.output.splitlines() if "[ ERROR ]" in ln or "Exception" in ln), "")
                yield warn(f"batch {b}: benchmark_app failed (exit code {result.returncode}): {why or exc}")
                continue
            if figures["batch"] != b:
                raise PluginError(f"benchmark_app ran batch {figures['batch']}, not {b}: its FPS would count the "
                                  "wrong number of images.")
            lat = figures["latency"]
            note = (f"benchmark_app ({' '.join(args[len(exe):])}): its own loop; throughput is its 'Throughput' "
                    f"(FPS = images/s); latency mean/p50 its Average/Median; it prints no p90/p99 (not reported); "
                    f"min {lat['min']} ms, max {lat['max']} ms; its warmup is one first inference")
            yield Measurement(plugin=NAME, device=device.id, tool="benchmark_app", tool_version=ov.__version__,
                              model_sha256=request.model_sha256, precision=request.precision, batch_size=b,
                              throughput=figures["fps"],
                              latency_ms=Latency(lat["average"], lat["median"], None, None),
                              iterations=figures["count"], warmup=1, meaning=END_TO_END, timestamp=time.time(),
                              device_name=device.name, note=note)
            got += 1
        if not got:
            raise PluginError(f"benchmark_app ran none of the batch sizes {list(request.batch_sizes)} (see the log).")
        yield Progress(1.0, "done")


def ov_message(exc: BaseException) -> str:
    """The lines of an OpenVINO error that say what failed (its summary), not the source locations around them."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if "Summary:" in lines:
        summary = lines[lines.index("Summary:") + 1:]
    else:
        summary = [ln for ln in lines if ln.startswith("--")]
    said = [ln.lstrip("- ") for ln in summary] or lines[-1:]
    return "; ".join(said) or type(exc).__name__


def read_model(core, path: str):
    try:
        return core.read_model(path)
    except RuntimeError as exc:  # the ONNX front end's conversion failures (an op it has no rule for)
        raise PluginError(f"OpenVINO cannot read {Path(path).name}: {ov_message(exc)}") from exc


def _sync_times(compiled, inputs: dict, warmup: int, iterations: int) -> list[float]:
    req = compiled.create_infer_request()
    for _ in range(warmup):
        req.infer(inputs, share_inputs=True)
        checkpoint()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        req.infer(inputs, share_inputs=True)
        times.append((time.perf_counter() - t0) * 1000.0)
        checkpoint()
    return times


def _async_measurement(ov, compiled, inputs: dict, batch: int, request, settings: str, fields: dict) -> Measurement:
    jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, jobs)
    for _ in range(max(request.warmup, jobs)):  # every request once at least: the first call of each allocates
        queue.start_async(inputs, share_inputs=True)
    queue.wait_all()
    # Each request's own time (ms) is read when it is next picked, as benchmark_app does: a Python callback
    # would run on OpenVINO's threads and can deadlock with the queue's teardown.
    latencies: list[float] = []
    ran: set[int] = set()
    t0 = time.perf_counter()
    for _ in range(request.iterations):
        idle = queue.get_idle_request_id()  # waits for one; start_async takes this same request
        if idle in ran:
            latencies.append(queue[idle].latency)
        ran.add(idle)
        queue.start_async(inputs, share_inputs=True)
        checkpoint()
    queue.wait_all()
    wall = time.perf_counter() - t0
    latencies += [queue[i].latency for i in ran]
    note = (f"{settings}; AsyncInferQueue of {jobs} requests: throughput = {batch} x {request.iterations} images / "
            f"{wall * 1000:.4f} ms wall time; latency is each request's own (they overlap)")
    return Measurement(batch_size=batch, throughput=batch * request.iterations / wall, latency_ms=latency_of(latencies),
                       iterations=request.iterations, raw_ms=tuple(latencies), timestamp=time.time(), note=note,
                       **fields)


def _benchmark_app_path() -> list[str]:
    """benchmark_app from PATH, else the one pip installed beside this Python (a venv that is not activated)."""
    try:
        return [find_tool("benchmark_app", INSTALL)]
    except ToolMissing:
        beside = Path(sys.executable).with_name("benchmark_app")
        if beside.is_file():
            return [str(beside)]
        if shutil.which("benchmark_app") is None:
            raise
        return ["benchmark_app"]


_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def parse_benchmark_app(output: str) -> dict:
    """benchmark_app's figures: batch, count, fps (images/s), latency median/average/min/max (ms)."""

    def search(pattern: str, what: str) -> re.Match:
        m = re.search(pattern, output)
        if m is None:
            raise PluginError(f"benchmark_app's output has no {what} line; it printed:\n"
                              + "\n".join(output.splitlines()[-10:]))
        return m

    def find(pattern: str, what: str) -> float:
        return float(search(pattern, what).group(1))

    latency = {}
    for key in ("Median", "Average", "Min", "Max"):
        # in ms, or in us when the average is under a millisecond (benchmark_app's format_console_latency)
        m = search(rf"\b{key}:\s*{_NUMBER} (ms|us)\b", f"'{key}: ... ms'")
        latency[key.lower()] = float(m.group(1)) / (1000.0 if m.group(2) == "us" else 1.0)
    return {"batch": int(find(r"Model batch size:\s*([0-9]+)", "'Model batch size'")),
            "count": int(find(r"Count:\s*([0-9]+) iterations", "'Count: N iterations'")),
            "fps": find(rf"Throughput:\s*{_NUMBER} FPS", "'Throughput: N FPS'"), "latency": latency}
