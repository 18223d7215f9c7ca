"""NVIDIA TensorRT through its command-line tool trtexec.

compile: one engine per batch size (``trtexec --onnx=... --saveEngine=... --shapes=input:Bx3xHxW [--fp16|--int8]
--skipInference``, so TensorRT 8.6 or later). profile: ``trtexec --loadEngine=... --iterations=N --warmUp=MS
--duration=0 --exportTimes=times.json``, whose per-query times become the raw times. Both run here, or on a GPU
machine over ssh (options host, user, port, key, known_hosts; the engine must be built on the GPU that runs it, so
compile runs there too and the engine is copied back).

The figures: trtexec's Throughput is queries per second measured on the host's wall clock; one query is one batch,
so images per second are qps x batch. Its Latency is each query's H2D copy + GPU compute + D2H copy: this plugin
reports that pair (END_TO_END) and puts the GPU Compute Time (the device's compute, what the Ascend model zoo
compares T4 against) in the note.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mbexplorer.devices import (
    END_TO_END,
    Artifact,
    CompileRequest,
    Device,
    Measurement,
    PluginError,
    Progress,
    compiled_first,
    copy,
    device_index,
    find_tool,
    image_input,
    remote_from_options,
    reported_latency,
    run_tool,
    tool_path,
    warn,
)

PLUGIN = "trtexec"
HOW = ("trtexec comes with NVIDIA TensorRT (https://developer.nvidia.com/tensorrt): install TensorRT (or use the "
       "nvcr.io/nvidia/tensorrt container) and put its bin folder on PATH, or name that folder with the tool_dir "
       "option.")
REMOTE_DIR = "/tmp/mbexplorer-trtexec"  # where files go on a machine reached over ssh (option remote_dir)
PRECISION_FLAGS = {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8"]}


class Plugin:
    def devices(self) -> list[Device]:
        precisions = ("fp32", "fp16", "int8")
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total,driver_version",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=15)
            rows = [[c.strip() for c in line.split(",")] for line in out.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            rows = []
        rows = [r for r in rows if len(r) >= 4 and r[0].isdigit()]
        if not rows:
            return [Device("cuda:0", "NVIDIA GPU", "gpu", precisions, False,
                           "nvidia-smi finds no NVIDIA GPU here (the NVIDIA driver brings it). To time on a GPU "
                           "machine over ssh, give the host option (and user, port, key).")]
        missing = "" if shutil.which("trtexec") else f"trtexec was not found. {HOW}"
        return [Device(f"cuda:{index}", name, "gpu", precisions, not missing, missing,
                       (("memory", memory), ("driver", driver)))
                for index, name, memory, driver, *_ in rows]

    def compile(self, request: CompileRequest):
        opts = dict(request.options)
        remote = remote_from_options(opts)
        trtexec = find_tool(tool_path(opts, "trtexec"), HOW, remote)
        name, fixed, chw = image_input(request.model_path)
        if request.precision not in PRECISION_FLAGS:
            raise PluginError(f"trtexec builds fp32, fp16 or int8 engines, not {request.precision}.")
        flags = list(PRECISION_FLAGS[request.precision])
        if request.precision == "int8":
            if opts.get("calib"):
                flags.append(f"--calib={opts['calib']}")
            else:
                yield warn("int8 without a calibration cache (option calib): TensorRT uses placeholder scales, so "
                           "the timings hold but the engine's accuracy means nothing.")
        out = Path(request.workdir or tempfile.mkdtemp(prefix="mbx-trtexec-")) / f"trtexec-{request.precision}"
        out.mkdir(parents=True, exist_ok=True)
        onnx, rdir = request.model_path, opts.get("remote_dir", REMOTE_DIR)
        if remote:
            yield from run_tool(["mkdir", "-p", rdir], remote=remote)
            onnx = f"{rdir}/model.onnx"
            yield from copy(remote, request.model_path, onnx)
        version = ""
        for i, b in enumerate(request.batch_sizes):
            yield Progress(i / len(request.batch_sizes), f"building the batch-{b} engine")
            engine = out / f"model_bs{b}.engine"
            target = f"{rdir}/model_bs{b}.engine" if remote else str(engine)
            result = yield from run_tool([trtexec, f"--onnx={onnx}", f"--saveEngine={target}",
                                          *_shapes(name, fixed, b, chw), *flags,
                                          f"--device={device_index(request.device)}", "--skipInference"],
                                         remote=remote)
            version = version or parse_run(result.output).version
            if remote:
                yield from copy(remote, target, str(engine), upload=False)
            if not engine.is_file():
                raise PluginError(f"trtexec finished but no engine is at {engine}.")
        yield Progress(1.0, "engines built")
        return Artifact(str(out), request.precision, tuple(request.batch_sizes),
                        f"trtexec (TensorRT {version})" if version else "trtexec",
                        "one engine per batch size: " + ", ".join(f"model_bs{b}.engine" for b in request.batch_sizes))

    def profile(self, request):
        opts = dict(request.options)
        remote = remote_from_options(opts)
        trtexec = find_tool(tool_path(opts, "trtexec"), HOW, remote)
        name, fixed, chw = image_input(request.model_path)
        # trtexec warms up for a time, not a number of queries; it reports how many queries that was
        warm_ms = int(opts.get("warmup_ms", 200)) if request.warmup > 0 else 0
        rdir = opts.get("remote_dir", REMOTE_DIR)
        with tempfile.TemporaryDirectory(prefix="mbx-trtexec-") as tmp:
            artifact, start = yield from compiled_first(self.compile, request, tmp)
            if remote:
                yield from run_tool(["mkdir", "-p", rdir], remote=remote)
            for i, b in enumerate(request.batch_sizes):
                yield Progress(start + (1 - start) * i / len(request.batch_sizes), f"timing batch {b}")
                engine = Path(artifact.path) / f"model_bs{b}.engine"
                if not engine.is_file():
                    raise PluginError(f"the compiled models in {artifact.path} hold no engine for batch {b}; "
                                      f"compile with that batch size.")
                times = Path(tmp) / f"times_bs{b}.json"
                engine_arg, times_arg = str(engine), str(times)
                if remote:
                    engine_arg, times_arg = f"{rdir}/model_bs{b}.engine", f"{rdir}/times_bs{b}.json"
                    yield from copy(remote, str(engine), engine_arg)
                result = yield from run_tool([trtexec, f"--loadEngine={engine_arg}", *_shapes(name, fixed, b, chw),
                                              f"--iterations={request.iterations}", f"--warmUp={warm_ms}",
                                              "--duration=0", f"--exportTimes={times_arg}",
                                              f"--device={device_index(request.device)}"], remote=remote)
                if remote:
                    yield from copy(remote, times_arg, str(times), upload=False)
                run = parse_run(result.output)
                run.raw = read_times(times)
                yield measurement(run, b, request.precision, request.device, request.model_sha256, time.time(),
                                  "")
        yield Progress(1.0, "done")

    def parse_logs(self, request):
        runs = []
        times = {Path(p).name: p for p in request.paths if p.lower().endswith(".json")}
        for path in request.paths:
            if path.lower().endswith(".json"):
                continue
            text = Path(path).read_text(encoding="utf-8", errors="replace")
            for part in re.split(r"(?m)^(?=&&&& RUNNING)", text):
                run = parse_run(part)
                if run.qps is None:
                    continue
                export = run.args.get("--exportTimes")
                if export and Path(export).name in times:
                    run.raw = read_times(Path(times[Path(export).name]))
                runs.append((path, run))
        if not runs:
            raise PluginError("none of the logs holds a trtexec '=== Performance summary ===' with a Throughput "
                              "line: " + ", ".join(request.paths))
        for path, run in runs:
            batch = run.batch or request.batch_size
            if not batch:
                raise PluginError(f"{Path(path).name} does not say the batch size (its trtexec command line with "
                                  f"--shapes is not in the log): give it with --batch-size.")
            precision = run.precision or request.precision
            if not precision:
                raise PluginError(f"{Path(path).name} times a saved engine and does not say its precision: give "
                                  f"it (fp32, fp16 or int8).")
            device = request.device or f"cuda:{run.args.get('--device', '0')}"
            yield measurement(run, batch, precision, device, request.model_sha256, os.path.getmtime(path),
                              f"from log {Path(path).name}")


# --- parsing trtexec's output -----------------------------------------------------------------------------------

_STAT = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\)) = ([-+\d.eE]+) ms")


@dataclass
class TrtRun:
    qps: float | None = None
    stats: dict = field(default_factory=dict)  # "Latency", "GPU Compute Time", ... -> {"mean": ms, "p99": ms, ...}
    queries: int | None = None  # timed queries
    warmup: int = 0
    version: str = ""
    device_name: str = ""
    args: dict = field(default_factory=dict)  # the command line's --key=value options (flags map to "")
    raw: list = field(default_factory=list)  # per-query latencyMs from --exportTimes
    shape_batch: int | None = None  # from "Input inference shape : name=BxCxHxW"

    @property
    def batch(self) -> int | None:
        shapes = self.args.get("--shapes") or self.args.get("--optShapes")
        if shapes:
            # name:BxCxHxW[,name2:...]; a quoted name may hold ':' itself
            m = re.match(r"(?:'[^']*'|[^:,]+):(\d+)x", shapes)
            if m:
                return int(m.group(1))
        if self.args.get("--batch", "").isdigit():  # implicit-batch engines (TensorRT 7)
            return int(self.args["--batch"])
        return self.shape_batch

    @property
    def precision(self) -> str:
        if "--int8" in self.args or "--best" in self.args:
            return "int8"
        if "--fp16" in self.args:
            return "fp16"
        return "fp32" if "--onnx" in self.args else ""  # built from ONNX without a flag: TensorRT's fp32


def parse_run(text: str) -> TrtRun:
    """The figures of one trtexec run in its output (a log may hold several: split at '&&&& RUNNING')."""
    run = TrtRun()
    cmd = re.search(r"^&&&& RUNNING TensorRT\.trtexec \[TensorRT v(\d+)\] # (.*)$", text, re.M)
    if cmd:
        run.version = f"v{cmd.group(1)}"
        try:
            words = shlex.split(cmd.group(2))
        except ValueError:
            words = cmd.group(2).split()
        for word in words[1:]:
            key, _, value = word.partition("=")
            run.args[key] = value
    m = re.search(r"TensorRT version: ([\d.]+)", text)
    run.version = m.group(1) if m else run.version
    m = re.search(r"Selected Device: (.+?)\s*$", text, re.M)
    run.device_name = m.group(1) if m else ""
    m = re.search(r"Input inference shapes? ?: [^=\s]+=(\d+)x", text)
    run.shape_batch = int(m.group(1)) if m else None
    m = re.search(r"Warmup completed (\d+) queries", text)
    run.warmup = int(m.group(1)) if m else 0
    m = re.search(r"Timing trace has (\d+) queries", text)
    run.queries = int(m.group(1)) if m else None
    summary = text.split("=== Performance summary ===", 1)
    if len(summary) == 2:
        m = re.search(r"Throughput: ([-+\d.eE]+) qps", summary[1])
        run.qps = float(m.group(1)) if m else None
        for line in summary[1].splitlines():
            m = re.search(r"\] ([A-Za-z0-9 -]+): (min = .*)$", line) or re.match(r"([A-Za-z0-9 -]+): (min = .*)$",
                                                                                   line)
            if m:
                stats = {}
                for key, pct, value in _STAT.findall(m.group(2)):
                    stats[f"p{float(pct):g}" if pct else key] = float(value)
                run.stats[m.group(1).strip()] = stats
    return run


def read_times(path: Path) -> list[float]:
    """Per-query latencies (latencyMs: H2D + compute + D2H) from trtexec's --exportTimes file, [] if absent."""
    if not path.is_file():
        return []
    try:
        return [float(q["latencyMs"]) for q in json.loads(path.read_text(encoding="utf-8"))]
    except (ValueError, KeyError, TypeError) as exc:
        raise PluginError(f"{path} is not a trtexec --exportTimes file: {exc}") from exc


def measurement(run: TrtRun, batch: int, precision: str, device: str, sha: str, when: float,
                source: str) -> Measurement:
    if run.qps is None:
        raise PluginError("trtexec printed no '=== Performance summary ===' with a Throughput line.")
    # without per-query times, trtexec's own figures; an old trtexec prints no 90th percentile
    latency = reported_latency(run.raw, run.stats.get("Latency", {}))
    if latency is None:
        raise PluginError("trtexec's performance summary has no Latency line.")
    iterations = len(run.raw) or run.queries
    if not iterations:
        raise PluginError("trtexec's output does not say how many queries it timed ('Timing trace has N queries').")
    gpu = run.stats.get("GPU Compute Time", {})
    note = (f"trtexec Throughput {run.qps:g} qps x batch {batch}; latency is trtexec's Latency (H2D + GPU compute + "
            f"D2H per query)")
    if gpu:  # the statistics this trtexec printed, none made up
        stats = ", ".join(f"{k} {gpu[k]:g} ms" for k in ("mean", "median", "p99") if k in gpu)
        note += f"; GPU Compute Time (device compute): {stats}"
    if not run.raw:
        note += "; no per-query times (--exportTimes): the percentiles are trtexec's own"
    return Measurement(
        plugin=PLUGIN, device=device, tool="trtexec", tool_version=run.version or "unknown", model_sha256=sha,
        precision=precision, batch_size=batch, throughput=run.qps * batch, latency_ms=latency,
        iterations=iterations, warmup=run.warmup, meaning=END_TO_END, timestamp=when, raw_ms=tuple(run.raw),
        device_name=run.device_name, note=note + (f"; {source}" if source else ""))





def _shapes(name: str, fixed: int | None, batch: int, chw: tuple[int, int, int]) -> list[str]:
    if fixed is not None:
        if fixed != batch:
            raise PluginError(f"the model's batch size is fixed at {fixed}; for batch {batch} export it with a "
                              f"dynamic batch dimension.")
        return []  # trtexec refuses --shapes for a model without dynamic dimensions
    quoted = f"'{name}'" if ":" in name else name  # trtexec's way of quoting a name that holds ':'
    return [f"--shapes={quoted}:{batch}x{chw[0]}x{chw[1]}x{chw[2]}"]
