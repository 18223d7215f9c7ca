"""onnxruntime device plugin: the CPU execution provider, and CUDA / TensorRT where the installed onnxruntime has
them (``onnxruntime-gpu``). Written against the public API ``mbexplorer.devices`` only.

Devices: ``cpu``; ``cuda:N`` and ``tensorrt:N`` when ``onnxruntime.get_available_providers()`` lists the provider.

compile: onnxruntime optimises the model (graph optimisation level "all") for the device and saves the result with
``SessionOptions.optimized_model_filepath`` into the request's workdir. The saved model may hold kernels specific
to this machine's CPU (NCHWc layouts): it is for profiling here, not for shipping.

profile: one session on a dynamic-batch version of the model (a fixed batch dimension of the first input is made
symbolic when no Reshape/Flatten target pins it; otherwise only the model's own batch runs and every other batch
size is said to be impossible). Inputs are seeded random data of each input's dtype. Each batch size: ``warmup``
untimed calls, then ``iterations`` calls of ``session.run`` each timed with ``time.perf_counter`` (host end to
end: input copy, run, output copy).

Precision: fp32 profiles a float model; int8 profiles a quantized (QDQ) model, as ``mbexplorer quantize`` writes.
int8 on a float model is refused (quantize it first), and so is fp32 on a quantized one: a figure is never
labelled with a precision it did not run at. TensorRT also offers fp16 (``trt_fp16_enable``) on a float model.

Options: ``threads`` (intra-op threads; default onnxruntime's, one per physical core), ``node_timings=1``.

Node timings (capability ``node_timings``, option ``node_timings=1``): after each batch size's timed run, a short
extra run with onnxruntime's profiler on (1 untimed + up to 10 runs) writes ``node_timings_<device>_b<batch>.json``
into the workdir (beside onnxruntime's raw trace), and the measurement's note ends with
``node timings: <path>``. The file (``"format": "mbexplorer-node-timings/1"``)::

    {"format", "tool", "tool_version", "provider", "device", "batch_size", "runs", "model", "unit": "us",
     "kernels": [{"kernel": "<node of the optimised graph>", "op": "<kernel op>", "mean_us": 123.4,
                  "node": "<the model's node whose output it computes, or null>",
                  "covers": ["<every model node fused into this kernel>", ...]}, ...],
     "nodes": {"<model node name>": <mean microseconds per run of the kernels ending at it>, ...},
     "unattributed_us": <mean microseconds of kernels onnxruntime added (layout reorders, transposes)>}

Node names in our ONNX models are unique, so a front end overlays ``nodes`` (or each kernel's ``covers``) on the
block graph by node name. onnxruntime renames the nodes it fuses ("<name>_token_12", "<tensor>_nchwc"); a kernel
is matched to the model by its name with those suffixes removed, as a node name or as the tensor a model node
writes, and is null when it is neither.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from mbexplorer.devices import (
    END_TO_END,
    NODE_TIMINGS_FORMAT,
    NODE_TIMINGS_NOTE,
    Artifact,
    CompileRequest,
    Device,
    PluginError,
    ProfileRequest,
    Progress,
    checkpoint,
    cpu_name,
    measurement_from_times,
    physical_cores,
    random_input,
    warn,
)

NAME = "onnxruntime"
CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
PROVIDERS = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT}
# CUDA has no integer convolution kernels in onnxruntime: a QDQ model runs in float there, so no int8 on cuda
PRECISIONS = {"cpu": ("fp32", "int8"), "cuda": ("fp32",), "tensorrt": ("fp32", "fp16", "int8")}
NODE_TIMING_RUNS = 10
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}
QUANTIZE_FIRST = ("quantize it first (the Quantization tab, or `mbexplorer quantize MODEL --calib IMAGES`) and "
                  "profile the quantized file as int8")
# onnxruntime's names for nodes it makes from others: GenerateNodeName's "_token_N", the NCHWc layout's "_nchwc"
_RENAMED = re.compile(r"(_token_\d+|_nchwc)$")
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
           "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int16)": np.int16,
           "tensor(uint16)": np.uint16, "tensor(int32)": np.int32, "tensor(int64)": np.int64,
           "tensor(bool)": np.bool_}


# --- this machine ------------------------------------------------------------------------------------------

def _gpu_names() -> list[str]:
    """NVIDIA GPUs the driver lists (one folder each; CUDA numbers identical GPUs in this PCI order)."""
    root = Path("/proc/driver/nvidia/gpus")
    names = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            info = (d / "information").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("Model:")), "")
        names.append(model or f"NVIDIA GPU {d.name}")
    return names


# --- the model --------------------------------------------------------------------------------------------

def is_quantized(proto: onnx.ModelProto) -> bool:
    return any(n.op_type in QUANT_OPS or n.op_type.startswith("QLinear") for n in proto.graph.node)


def _first_input(proto: onnx.ModelProto) -> onnx.ValueInfoProto:
    weights = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in weights]
    if not inputs:
        raise PluginError("the model has no input to feed.")
    return inputs[0]


def _constants(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    for n in proto.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = onnx.numpy_helper.to_array(n.attribute[0].t)
    return consts


def batch_blocker(proto: onnx.ModelProto, batch: int) -> str:
    """Why the graph cannot run at another batch than ``batch`` ("" when nothing pins it): a Reshape to a constant
    shape whose first dimension is a number (not 0 = keep, nor -1 = infer), or a Flatten over axis 0."""
    consts = _constants(proto)
    for n in proto.graph.node:
        if n.op_type == "Reshape" and len(n.input) > 1 and n.input[1] in consts:
            target = [int(v) for v in consts[n.input[1]].reshape(-1)]
            if target and target[0] not in (0, -1):
                return (f"its Reshape node {n.name!r} has the fixed target shape {target}, which holds the batch at "
                        f"{target[0]}")
        if n.op_type == "Flatten":
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if axis == 0:
                return f"its Flatten node {n.name!r} (axis 0) folds the batch into one row"
    return ""


def dynamic_batch(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int | None, str]:
    """The model with a symbolic batch dimension on its first input: (model, the batch it had fixed or None,
    why it had to stay fixed or ""). Reshape/Flatten targets are checked first; the intermediate shapes the file
    records (value_info) are dropped, as they hold the old batch."""
    dims = _first_input(proto).type.tensor_type.shape.dim
    if not dims:
        raise PluginError(f"the model's input {_first_input(proto).name!r} has no shape; give a model whose input "
                          "has one (batch first).")
    if not dims[0].HasField("dim_value"):
        return proto, None, ""
    fixed = dims[0].dim_value
    blocker = batch_blocker(proto, fixed)
    if blocker:
        return proto, fixed, blocker
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    _first_input(model).type.tensor_type.shape.dim[0].dim_param = "batch"
    for out in model.graph.output:
        odims = out.type.tensor_type.shape.dim
        if odims and odims[0].HasField("dim_value") and odims[0].dim_value == fixed:
            odims[0].dim_param = "batch"
    del model.graph.value_info[:]
    return model, fixed, ""


def _random_input(rng: np.random.Generator, meta, batch: int) -> np.ndarray:
    dtype = _DTYPES.get(meta.type)
    if dtype is None:
        raise PluginError(f"input {meta.name!r} has the type {meta.type}, which this plugin cannot make data for.")
    shape = list(meta.shape)
    if shape:
        shape[0] = batch if not isinstance(shape[0], int) or shape[0] == batch else shape[0]
    loose = [i for i, d in enumerate(shape) if not isinstance(d, int)]
    if loose:
        raise PluginError(f"input {meta.name!r} has symbolic sizes {meta.shape} beyond the batch; give a model with "
                          "fixed sizes (open it in mbexplorer with --input-shape and save it, or fix them in the "
                          "exporter).")
    return random_input(rng, dtype, shape)


# --- the plugin -------------------------------------------------------------------------------------------

def _int_option(request, key: str, default: int, low: int) -> int:
    text = request.option(key, "")
    if text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise PluginError(f"option {key} must be a whole number >= {low}, not {text!r}.")
    return value


def _flag(request, key: str) -> bool:
    text = request.option(key, "0").strip().lower()
    if text not in ("0", "1", "true", "false", "yes", "no", "on", "off", ""):
        raise PluginError(f"option {key} must be 1 or 0, not {text!r}.")
    return text in ("1", "true", "yes", "on")


class Plugin:
    def devices(self) -> list[Device]:
        providers = ort.get_available_providers()
        version = ("onnxruntime", ort.__version__)
        out = [Device("cpu", f"{cpu_name()} ({physical_cores()} threads)", "cpu", PRECISIONS["cpu"],
                      details=(("provider", CPU), version))]
        gpus = _gpu_names() or ["NVIDIA GPU"]  # the provider is there; the driver's list may not be readable
        for kind in ("cuda", "tensorrt"):
            if PROVIDERS[kind] in providers:
                out += [Device(f"{kind}:{i}", f"{g} ({PROVIDERS[kind]})", "gpu", PRECISIONS[kind],
                               details=(("provider", PROVIDERS[kind]), version)) for i, g in enumerate(gpus)]
        return out

    def _device(self, device_id: str) -> Device:
        devices = self.devices()
        for d in devices:
            if d.id == device_id:
                return d
        raise PluginError(f"onnxruntime has no device {device_id!r} here; it has {', '.join(d.id for d in devices)}"
                          ". CUDA and TensorRT need onnxruntime-gpu (pip install onnxruntime-gpu) and a GPU.")

    def _check(self, request, proto: onnx.ModelProto) -> Device:
        device = self._device(request.device)
        name = Path(request.model_path).name
        quantized = is_quantized(proto)
        if request.precision not in device.precisions or (quantized and "int8" not in device.precisions):
            also = " (its quantized models run in float there: use tensorrt for int8)" if device.kind == "gpu" else ""
            raise PluginError(f"{device.id} runs {', '.join(device.precisions)} with onnxruntime{also}, not "
                              f"{'a quantized model' if quantized else request.precision}.")
        if request.precision == "int8" and not quantized:
            raise PluginError(f"{name} is a float model, and int8 needs a quantized (QDQ) model: {QUANTIZE_FIRST}.")
        if request.precision != "int8" and quantized:
            raise PluginError(f"{name} is quantized (it has QuantizeLinear/DequantizeLinear or integer operators): "
                              f"profile it as int8, or give its float model for {request.precision}.")
        return device

    def _session(self, model: bytes | str, request, threads: int, *, save_to: str = "",
                 profile_prefix: str = "") -> ort.InferenceSession:
        kind, _, index = request.device.partition(":")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # the default, set as the note says
        so.log_severity_level = 3  # errors only: saving an NCHWc model warns that it is for this machine
        if threads:
            so.intra_op_num_threads = threads
        if save_to:
            so.optimized_model_filepath = save_to
        if profile_prefix:
            so.enable_profiling = True
            so.profile_file_prefix = profile_prefix
        providers: list = [CPU]
        if kind == "cuda":
            providers = [(CUDA, {"device_id": int(index or 0)}), CPU]
        elif kind == "tensorrt":
            trt = {"device_id": int(index or 0), "trt_fp16_enable": request.precision == "fp16"}
            if request.workdir:  # the engines TensorRT builds are kept with the other artifacts
                trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(Path(request.workdir) / "trt"))
            providers = [(TENSORRT, trt), (CUDA, {"device_id": int(index or 0)}), CPU]
        try:
            sess = ort.InferenceSession(model, so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own types; say which model and device
            raise PluginError(f"onnxruntime could not load the model for {request.device}: {exc}") from exc
        wanted = PROVIDERS[kind]
        if sess.get_providers()[0] != wanted:  # onnxruntime falls back to the CPU quietly when a provider fails
            raise PluginError(f"onnxruntime could not start {wanted} (it fell back to {sess.get_providers()[0]}); "
                              "check that CUDA/cuDNN (and TensorRT) match the installed onnxruntime-gpu.")
        return sess

    # --- compile ------------------------------------------------------------------------------------------

    def compile(self, request: CompileRequest):
        proto = _load(request.model_path)
        self._check(request, proto)
        if not request.workdir:
            raise PluginError("compile needs a workdir to save the optimised model in.")
        threads = _int_option(request, "threads", 0, 1)
        yield Progress(0.0, "optimising with onnxruntime")
        model, fixed, blocker = dynamic_batch(proto)
        if blocker:
            yield warn(f"the model stays at batch {fixed}: {blocker}.")
        stem = Path(request.model_path).stem
        out = Path(request.workdir) / f"{stem}.ort-{request.device.replace(':', '')}-{request.precision}.onnx"
        if request.device.startswith("tensorrt"):
            # TensorRT compiles the graph itself (engines cached in workdir/trt); onnxruntime cannot save a graph
            # holding compiled nodes, so the artifact is the dynamic-batch model the engines are built from.
            onnx.save(model, str(out))
            sess = self._session(str(out), request, threads)
            del sess
            what = "dynamic-batch model; TensorRT engines cached in " + str(Path(request.workdir) / "trt")
        else:
            sess = self._session(model.SerializeToString(), request, threads, save_to=str(out))
            del sess
            what = f"optimised by onnxruntime (level all) for {PROVIDERS[request.device.partition(':')[0]]}"
        yield Progress(1.0, "optimised")
        sizes = (fixed,) if blocker else tuple(request.batch_sizes)
        batch = f"batch {fixed} only" if blocker else "symbolic batch"
        return Artifact(str(out), request.precision, sizes, f"onnxruntime {ort.__version__}", f"{what}; {batch}")

    # --- profile ------------------------------------------------------------------------------------------

    def profile(self, request: ProfileRequest):
        proto = _load(request.model_path)
        device = self._check(request, proto)
        if request.iterations < 1 or request.warmup < 0:
            raise PluginError(f"iterations must be >= 1 and warmup >= 0 (got {request.iterations}, "
                              f"{request.warmup}).")
        threads = _int_option(request, "threads", 0, 1)
        node_timings = _flag(request, "node_timings")
        if node_timings and not request.workdir:
            raise PluginError("node timings need a workdir to write their file in.")
        kind = request.device.partition(":")[0]
        # compile's optimised model when it ran (already dynamic, or kept fixed for the same reason as here)
        ran = _load(request.artifact.path) if request.artifact is not None else proto
        dyn, fixed, blocker = dynamic_batch(ran)
        model = dyn.SerializeToString()
        yield Progress(0.0, f"loading the model on {request.device}")
        sess = self._session(model, request, threads)
        used = threads or (physical_cores() if kind == "cpu" else 0)
        name = f"{cpu_name()} ({used} threads)" if kind == "cpu" else device.name
        how = (f"{PROVIDERS[kind]}; intra-op threads {threads or f'default ({used})'}; onnxruntime {ort.__version__}"
               f" session.run timed per call with time.perf_counter (inputs seeded random, host end to end)")
        runnable = [b for b in request.batch_sizes if not blocker or b == fixed]
        if not runnable:
            raise PluginError(f"none of the batch sizes {list(request.batch_sizes)} can run: {blocker}, so the "
                              f"model runs at batch {fixed} only.")
        rng = np.random.default_rng(0)
        for i, b in enumerate(request.batch_sizes):
            if b not in runnable:
                yield warn(f"batch {b} is not possible with this model: {blocker}; it runs at batch {fixed} only.")
                continue
            yield Progress(i / len(request.batch_sizes), f"batch {b}")
            feeds = {m.name: _random_input(rng, m, b) for m in sess.get_inputs()}
            times, checked = [], False
            for k in range(request.warmup + request.iterations):
                t0 = time.perf_counter()
                outs = sess.run(None, feeds)
                t1 = time.perf_counter()
                if k >= request.warmup:
                    times.append((t1 - t0) * 1000.0)
                if not checked:
                    checked = True
                    got = outs[0].shape[0] if outs and outs[0].ndim else b
                    if got != b:
                        break
                checkpoint()
            if got != b:
                yield warn(f"batch {b} is not possible with this model: fed {b} images, its first output has "
                           f"{got} rows (a Reshape or Flatten in the graph does not keep the batch).")
                continue
            note = how
            if node_timings:
                yield Progress((i + 0.9) / len(request.batch_sizes), f"node timings at batch {b}")
                path = self._node_timings(model, proto, request, threads, feeds, b)
                note += f"; {NODE_TIMINGS_NOTE}{path}"
            yield measurement_from_times(times, batch_size=b, plugin=NAME, device=request.device, tool="onnxruntime",
                                         tool_version=ort.__version__, model_sha256=request.model_sha256,
                                         precision=request.precision, warmup=request.warmup, meaning=END_TO_END,
                                         timestamp=time.time(), device_name=name, note=note)
        yield Progress(1.0, "done")

    def _node_timings(self, model, proto: onnx.ModelProto, request, threads: int, feeds: dict, batch: int):
        """A short run with onnxruntime's profiler; returns the path of the node-timings JSON it writes."""
        tag = f"{request.device.replace(':', '')}_b{batch}"
        sess = self._session(model, request, threads, profile_prefix=str(Path(request.workdir) / f"ort_trace_{tag}"))
        runs = min(request.iterations, NODE_TIMING_RUNS)
        for _ in range(1 + runs):  # the first is untimed: it allocates
            sess.run(None, feeds)
            checkpoint()
        trace = sess.end_profiling()
        with open(trace, encoding="utf-8") as f:
            events = json.load(f)
        data = node_timings(events, proto, skip_runs=1)
        data = {"format": NODE_TIMINGS_FORMAT, "tool": "onnxruntime", "tool_version": ort.__version__,
                "provider": sess.get_providers()[0], "device": request.device, "batch_size": batch,
                "model": request.model_path, "trace": str(Path(trace).resolve()), "unit": "us", **data}
        path = Path(request.workdir) / f"node_timings_{tag}.json"
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")
        return str(path.resolve())


def _load(path: str) -> onnx.ModelProto:
    try:
        return onnx.load(path)
    except FileNotFoundError:
        raise PluginError(f"{path} does not exist.") from None
    except Exception as exc:  # protobuf's DecodeError and friends
        raise PluginError(f"{path} is not an ONNX model onnx can read: {exc}") from exc


def node_timings(events: list[dict], proto: onnx.ModelProto, skip_runs: int = 1) -> dict:
    """Per-kernel mean microseconds from an onnxruntime profile (its JSON events), each kernel matched to the
    model's nodes. The first ``skip_runs`` runs are left out."""
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session"
                  and e.get("name") == "model_run")[skip_runs:]
    if not runs:
        raise PluginError("onnxruntime's profile holds no timed run.")
    total: dict[str, float] = {}
    ops: dict[str, str] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        if not any(start <= e["ts"] <= end for start, end in runs):
            continue
        kernel = e["name"][: -len("_kernel_time")]
        total[kernel] = total.get(kernel, 0.0) + float(e["dur"])
        ops[kernel] = e.get("args", {}).get("op_name", "")
    nodes = {n.name: n for n in proto.graph.node}
    producer = {t: n.name for n in proto.graph.node for t in n.output}
    matched = {k: _model_node(k, nodes, producer) for k in total}
    # What onnxruntime fused into a kernel: the activation / QuantizeLinear after its node (that no kernel of
    # their own ran), then every node before it back to the tensors other kernels (or the inputs and weights) hold.
    ends = _fused_after(matched, nodes)
    frontier = {t for end in ends.values() for t in nodes[end[-1]].output}
    frontier |= {i.name for i in proto.graph.input} | {t.name for t in proto.graph.initializer}
    kernels, by_node, unattributed = [], {}, 0.0
    order = list(nodes)
    for k, us in total.items():
        mean = us / len(runs)
        node = matched[k]
        covers = sorted(set(_covered(ends[node][-1], nodes, producer, frontier)) | set(ends[node]),
                        key=order.index) if node else []
        kernels.append({"kernel": k, "op": ops[k], "mean_us": mean, "node": node, "covers": covers})
        if node:
            by_node[node] = by_node.get(node, 0.0) + mean
        else:
            unattributed += mean
    return {"runs": len(runs), "kernels": kernels, "nodes": by_node, "unattributed_us": unattributed}


def _model_node(kernel: str, nodes: dict, producer: dict) -> str | None:
    name = kernel
    while True:
        if name in nodes:
            return name
        if name in producer:
            return producer[name]
        shorter = _RENAMED.sub("", name)
        if shorter == name:
            return None
        name = shorter


# unary ops onnxruntime folds into the kernel before them (QuantizeLinear ends the chain: a QLinear kernel's
# output is the quantized tensor)
_FOLDED_AFTER = {"Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Sigmoid", "QuantizeLinear"}


def _fused_after(matched: dict, nodes: dict) -> dict[str, list[str]]:
    """For each matched node, it and the chain of single-consumer unary nodes after it that no kernel ran."""
    consumers: dict[str, list[str]] = {}
    for n in nodes.values():
        for t in n.input:
            consumers.setdefault(t, []).append(n.name)
    taken = {n for n in matched.values() if n}
    chains = {}
    for node in taken:
        chain = [node]
        while nodes[chain[-1]].op_type != "QuantizeLinear" and len(nodes[chain[-1]].output) == 1:
            nxt = consumers.get(nodes[chain[-1]].output[0], [])
            if len(nxt) != 1 or nxt[0] in taken or nodes[nxt[0]].op_type not in _FOLDED_AFTER:
                break
            chain.append(nxt[0])
        chains[node] = chain
    return chains


def _covered(node: str, nodes: dict, producer: dict, frontier: set) -> list[str]:
    seen, stack = {node}, [node]
    while stack:
        for t in nodes[stack.pop()].input:
            if t and t not in frontier and t in producer and producer[t] not in seen:
                seen.add(producer[t])
                stack.append(producer[t])
    return list(seen)
