"""Static quantization of a float model with onnxruntime's quantizer: QDQ format, calibrated on images.

``quantize_job`` runs ``quant_pre_process`` (shape inference and optimisation) and ``quantize_static``, feeding
the calibration one image at a time through the model's exact preprocessing. ``quantize_static`` is one blocking
call, so it runs on a worker thread while the job yields a :class:`Progress` per image the reader hands over;
the reader stops (raises Cancelled) as soon as the job is cancelled or closed, and every temporary file is
removed in ``finally:``.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from . import jobs
from .errors import Cancelled, MbxError
from .formatting import plural
from .jobs import Progress, warn
from .model import LoadedModel, from_proto
from .outputs import write_atomically

METHODS = ("minmax", "entropy", "percentile", "distribution")
TYPES = ("uint8", "int8")
_QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}


def is_quantized(model: LoadedModel) -> bool:
    return any(n.op_type in _QUANTIZED_OPS or n.op_type.startswith("QLinear") for n in model.graph.node)


def quantize_job(model: LoadedModel, images: list[Path], *, preset: str | None = None, per_channel: bool = False,
                 method: str = "minmax", activations: str = "uint8", weights: str = "uint8",
                 exclude=()) -> jobs.Job:
    """Quantize ``model`` (float) statically, calibrated on ``images``; returns the QDQ model as a LoadedModel."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    from .preprocess import PRESET_KEY, for_model, source_preset

    if is_quantized(model):
        raise MbxError(f"{model.name} is already quantized (it has Q/DQ or integer operators); give its float model.")
    if not images:
        raise MbxError("no calibration images: give at least one image or a folder of images.")
    if method not in METHODS or activations not in TYPES or weights not in TYPES:
        raise MbxError(f"unknown option: method must be one of {', '.join(METHODS)}, "
                       f"activations and weights {' or '.join(TYPES)}.")
    if activations == "int8" and weights == "uint8":  # onnxruntime refuses it, but only after calibrating
        raise MbxError("int8 activations need int8 weights (onnxruntime has no int8 x uint8 kernels); "
                       "give weights int8, or activations uint8.")
    names = [n.name for n in model.graph.node]  # unique: from_proto names every node
    unknown = [n for n in exclude if n not in set(names)]
    if unknown:
        raise MbxError(f"{model.name} has no node {', '.join(repr(n) for n in unknown)}; its nodes are named like "
                       f"{', '.join(names[:4])}, … (see the Layers table or `mbexplorer summary`).")
    pre = for_model(model, preset)  # checks the preset name before any work
    calib_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                    "percentile": CalibrationMethod.Percentile, "distribution": CalibrationMethod.Distribution}[method]
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}

    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    reader = _Reader(images, pre, model.inputs[0].name, events, stop)
    tmp = Path(tempfile.mkdtemp(prefix="mbx-quantize-"))
    worker = None
    try:
        yield Progress(0.0, "optimising the float model")
        prepared, out = tmp / "prepared.onnx", tmp / "quantized.onnx"
        # skip_symbolic_shape: onnx's own shape inference already types every tensor of a MobileNet, and the
        # symbolic pass imports sympy (seconds, on the first quantization of a session) for nothing more.
        # From a file: given a ModelProto without the symbolic pass, onnxruntime writes its weights as external
        # data it then cannot read back.
        source = tmp / "float.onnx"
        write_atomically(source, model.model.SerializeToString())
        quant_pre_process(str(source), prepared, skip_symbolic_shape=True)
        import onnx

        kept = {n.name for n in onnx.load(prepared, load_external_data=False).graph.node}
        gone = [n for n in exclude if n not in kept]
        if gone:  # fused away by the optimisation (a BatchNormalization into its Conv): nothing left to exclude
            yield warn(f"{plural(len(gone), 'excluded node')} ({', '.join(gone)}) merged into another by the "
                       "optimisation before quantization; exclude the node it merged into instead.")

        def work():
            # CalibStridedMinMax=1: the calibrator takes one image per pass and keeps only ranges or histograms,
            # so memory stays flat in the number of images (for every method, not only MinMax).
            # The histogram collector prints a line per pass to stdout: not ours to show.
            with _muted_thread():
                quantize_static(str(prepared), str(out), reader, quant_format=QuantFormat.QDQ,
                                per_channel=per_channel, activation_type=qtype[activations],
                                weight_type=qtype[weights], nodes_to_exclude=list(exclude),
                                calibrate_method=calib_method, extra_options={"CalibStridedMinMax": 1})

        # The worker runs in a copy of this context, so jobs.checkpoint() inside the reader sees run()'s cancel test.
        worker = threading.Thread(target=_report, args=(contextvars.copy_context(), work, events), daemon=True)
        worker.start()
        while True:
            event = events.get()
            if event is None:
                break
            if isinstance(event, BaseException):
                raise event
            yield Progress(event / len(images) * 0.95, f"calibrating image {event} of {len(images)}")
        yield Progress(1.0, "quantized")
        proto = onnx.load(out)
        # the preprocessing it was calibrated with goes with the file, so the quantized model is fed as its float
        # model was (a TFLite source's coral, say) wherever it is opened (``preprocess.source_preset``)
        onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props},
                                            PRESET_KEY: pre.name if pre.name != "custom" else source_preset(model)})
    finally:
        stop.set()  # a closed or cancelled job: the reader raises at its next image
        if worker is not None:
            worker.join()
        shutil.rmtree(tmp, ignore_errors=True)
    result = from_proto(proto, name=f"{model.name}_int8", source_format="onnx")
    result.preprocessing = model.preprocessing
    return result


@contextlib.contextmanager
def _muted_thread():
    """Drop what this thread prints to sys.stdout while other threads' output goes through: redirect_stdout
    would swap stdout for the whole process (the CLI's output, the window's log)."""
    real, me = sys.stdout, threading.get_ident()

    class Proxy:
        def write(self, text):
            return len(text) if threading.get_ident() == me else real.write(text)

        def __getattr__(self, name):
            return getattr(real, name)

    sys.stdout = Proxy()
    try:
        yield
    finally:
        sys.stdout = real


def _report(context: contextvars.Context, work, events: queue.Queue) -> None:
    """Run ``work`` and put None (done) or the exception it raised on ``events``."""
    try:
        context.run(work)
        events.put(None)
    except BaseException as exc:  # handed to the job's thread, which raises it
        events.put(exc)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: ``get_next`` gives one input dict or None at the end;
    ``__len__`` and ``set_range`` let quantize_static take the images one pass at a time."""

    def __init__(self, images, pre, input_name, events: queue.Queue, stop: threading.Event):
        self.images, self.pre, self.input_name, self.events, self.stop = list(images), pre, input_name, events, stop
        self.next, self.end, self.done = 0, len(self.images), 0

    def __len__(self) -> int:
        return len(self.images)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.next, self.end = start_index, end_index

    def get_next(self):
        jobs.checkpoint()
        if self.stop.is_set():
            raise Cancelled("cancelled")
        if self.next >= self.end:
            return None
        path = self.images[self.next]
        self.next += 1
        tensor = self.pre.tensor(path)
        self.done += 1
        self.events.put(self.done)
        return {self.input_name: tensor}
