"""LiteRT device plugin: the original ``.tflite`` file on the CPU, with LiteRT's default XNNPACK kernels. Written
against the public API ``mbexplorer.devices`` only; needs ``ai-edge-litert`` (without it the device is listed as
unavailable with ``pip install ai-edge-litert``).

It runs the file the user opened (``request.source_path``; or ``model_path`` when that is the .tflite itself), not
the ONNX model mbexplorer imported from it: the point is what LiteRT does with the file as shipped.

Precision is the file's: float32 input -> fp32, uint8/int8 input -> int8 (float16 -> fp16). A request for another
precision is refused with the file's, since LiteRT cannot run a file at a precision it was not converted to.

Batch sizes: the interpreter's input is resized to each batch (``resize_tensor_input``). Most quantized TFLite
MobileNets end in a RESHAPE to ``[1, 1001]`` that holds the batch at 1; LiteRT then refuses the resize, and that
batch size is reported as not possible for the file (a log warning) and not measured. It is never emulated by
a loop of batch-1 calls: that is not a batched run, and must not be labelled as one.

Each call is timed with ``time.perf_counter`` around ``set_tensor`` + ``invoke`` + ``get_tensor`` (host end to
end, copies included), after ``warmup`` untimed calls. Options: ``threads`` (default: one per physical core,
passed as ``num_threads``), ``xnnpack=0`` (LiteRT's builtin kernels without the default XNNPACK delegate).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mbexplorer.devices import (
    END_TO_END,
    Device,
    PluginError,
    ProfileRequest,
    Progress,
    ToolMissing,
    checkpoint,
    cpu_name,
    measurement_from_times,
    physical_cores,
    random_input,
    warn,
)

NAME = "litert"
INSTALL = "pip install ai-edge-litert"
_PRECISION = {np.dtype(np.float32): "fp32", np.dtype(np.float16): "fp16", np.dtype(np.uint8): "int8",
              np.dtype(np.int8): "int8"}


def _litert():
    try:
        import ai_edge_litert
        from ai_edge_litert import interpreter
    except ImportError as exc:
        raise ToolMissing("ai_edge_litert (LiteRT)", INSTALL) from exc
    return ai_edge_litert.__version__, interpreter


def is_tflite(path: str) -> bool:
    """A TFLite flatbuffer: its file identifier "TFL3" at bytes 4..8 (never the extension)."""
    try:
        with open(path, "rb") as f:
            return f.read(8)[4:8] == b"TFL3"
    except OSError:
        return False


def tflite_file(request) -> str:
    for path in (request.source_path, request.model_path):
        if path and is_tflite(path):
            return path
    given = request.source_path or request.model_path
    raise PluginError(f"LiteRT runs the original .tflite file, and {given} is not one: open the .tflite model "
                      "(LiteRT takes no ONNX; use the onnxruntime or openvino plugin for ONNX models).")


def _options(request) -> tuple[int, bool]:
    text = request.option("threads", "")
    if text and (not text.strip().isdigit() or int(text) < 1):
        raise PluginError(f"option threads must be a whole number >= 1, not {text!r}.")
    xnn = request.option("xnnpack", "1").strip().lower()
    if xnn not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise PluginError(f"option xnnpack must be 1 or 0, not {xnn!r}.")
    return (int(text) if text else physical_cores()), xnn in ("1", "true", "yes", "on")


class Plugin:
    def devices(self) -> list[Device]:
        try:
            version, _ = _litert()
        except ToolMissing:
            return [Device("cpu", cpu_name(), "cpu", ("fp32", "int8"), available=False,
                           reason=f"LiteRT (ai_edge_litert) is not installed: {INSTALL}")]
        return [Device("cpu", f"{cpu_name()} ({physical_cores()} threads)", "cpu", ("fp32", "int8"),
                       details=(("ai-edge-litert", version), ("kernels", "XNNPACK (LiteRT's default delegate)")))]

    def profile(self, request: ProfileRequest):
        version, lrt = _litert()
        if request.device != "cpu":
            raise PluginError(f"LiteRT has no device {request.device!r} here; it has cpu.")
        if request.iterations < 1 or request.warmup < 0:
            raise PluginError(f"iterations must be >= 1 and warmup >= 0 (got {request.iterations}, "
                              f"{request.warmup}).")
        path = tflite_file(request)
        threads, xnnpack = _options(request)
        resolver = lrt.OpResolverType.AUTO if xnnpack else lrt.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES

        def interpreter():
            try:
                return lrt.Interpreter(model_path=path, num_threads=threads, experimental_op_resolver_type=resolver)
            except (ValueError, RuntimeError) as exc:
                raise PluginError(f"LiteRT cannot load {path}: {exc}") from exc

        details = interpreter().get_input_details()
        dtype = np.dtype(details[0]["dtype"])
        precision = _PRECISION.get(dtype)
        name = Path(path).name
        if precision is None:
            raise PluginError(f"{name} takes {dtype} input, which this plugin cannot label with a precision.")
        if request.precision != precision:
            raise PluginError(f"{name} is {precision} (its input is {dtype}): LiteRT runs the file as it is, so "
                              f"profile it as {precision}.")
        file_batch = int(details[0]["shape"][0])
        kernels = "XNNPACK delegate (LiteRT's default)" if xnnpack else "builtin kernels, no default delegate"
        note = (f"LiteRT Interpreter on the original {path}; {threads} threads; {kernels}; set_tensor + invoke + "
                "get_tensor timed per call with time.perf_counter (inputs seeded random, host end to end)")
        rng = np.random.default_rng(0)
        got = 0
        for i, b in enumerate(request.batch_sizes):
            yield Progress(i / len(request.batch_sizes), f"batch {b}")
            it = interpreter()  # a fresh one each time: a failed resize leaves an interpreter unusable
            try:
                if b != file_batch:
                    for d in it.get_input_details():
                        it.resize_tensor_input(d["index"], [b, *d["shape"][1:]], strict=False)
                it.allocate_tensors()
            except (RuntimeError, ValueError) as exc:
                why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                yield warn(f"batch {b} is not possible with {name}: LiteRT cannot resize its input to batch {b} "
                           f"({why}); the file runs at batch {file_batch} only. Not measured: a loop of "
                           f"batch-{file_batch} calls is not a batched run.")
                continue
            feeds = [(d["index"], random_input(rng, d["dtype"], d["shape"])) for d in it.get_input_details()]
            outs = [d["index"] for d in it.get_output_details()]
            times = []
            for k in range(request.warmup + request.iterations):
                t0 = time.perf_counter()
                for index, data in feeds:
                    it.set_tensor(index, data)
                it.invoke()
                result = [it.get_tensor(o) for o in outs]
                t1 = time.perf_counter()
                if k >= request.warmup:
                    times.append((t1 - t0) * 1000.0)
                checkpoint()
            rows = result[0].shape[0] if result and result[0].ndim else b
            if rows != b:
                yield warn(f"batch {b} is not possible with {name}: fed {b} images, its output has {rows} rows.")
                continue
            yield measurement_from_times(times, batch_size=b, plugin=NAME, device="cpu", tool="litert",
                                         tool_version=version, model_sha256=request.model_sha256,
                                         precision=precision, warmup=request.warmup, meaning=END_TO_END,
                                         timestamp=time.time(), device_name=f"{cpu_name()} ({threads} threads)",
                                         note=note)
            got += 1
        if not got:
            raise PluginError(f"none of the batch sizes {list(request.batch_sizes)} runs with {name} in LiteRT; it "
                              f"runs at batch {file_batch}.")
        yield Progress(1.0, "done")
