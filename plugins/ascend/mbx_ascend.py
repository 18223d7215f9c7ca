"""Huawei Ascend NPUs through the CANN toolchain, as the Ascend ModelZoo's MobileNetV1 page runs it.

devices: ``npu-smi info``'s table. compile: ``atc --framework=5 --model=X.onnx --input_format=NCHW
--input_shape=input:B,3,H,W --output=model_bsB --soc_version=Ascend310P3`` on this machine (the CANN toolkit),
one .om per batch size. profile: ``python3 -m ais_bench --model model_bsB.om --loop N --warmup_count W
--batchsize B ...`` here or on a board over ssh (options host, user, port, key, known_hosts); its summary JSON
holds every iteration's NPU compute time.

The figures are ais_bench's own: NPU_compute_time is the model's execution on the NPU, without the host-to-device
and device-to-host copies (DEVICE_COMPUTE), and its throughput is 1000 x batch / mean NPU_compute_time, already
in images per second. The copies' times go in the note.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mbexplorer.devices import (
    DEVICE_COMPUTE,
    Artifact,
    CompileRequest,
    Device,
    Measurement,
    PluginError,
    Progress,
    Remote,
    ToolMissing,
    compiled_first,
    copy,
    device_index,
    find_tool,
    image_input,
    remote_from_options,
    reported_latency,
    run_tool,
)

PLUGIN = "ascend"
HOW_ATC = ("atc comes with Huawei's CANN toolkit (https://www.hiascend.com/software/cann): install the "
           "Ascend-cann-toolkit and run `source /usr/local/Ascend/ascend-toolkit/set_env.sh` before mbexplorer.")
HOW_AIS = ("ais_bench is Ascend's inference benchmark: pip install its aclruntime and ais_bench wheels from the "
           "Ascend tools repository (https://gitee.com/ascend/tools, ais-bench_workload/tool/ais_bench) into the "
           "python3 that runs it (option python), with the CANN environment set.")
HOW_SMI = "npu-smi comes with the Ascend NPU driver (https://www.hiascend.com/hardware/firmware-drivers)."
REMOTE_DIR = "/tmp/mbexplorer-ascend"
PRECISION_MODES = {"fp16": "force_fp16", "fp32": "force_fp32"}  # atc's --precision_mode


class Plugin:
    def devices(self) -> list[Device]:
        try:
            out = subprocess.run(["npu-smi", "info"], capture_output=True, text=True, timeout=15)
            npus = parse_npu_smi(out.stdout)
        except (OSError, subprocess.SubprocessError):
            npus = []
        if not npus:
            return [Device("npu:0", "Ascend NPU", "npu", ("fp16", "fp32"), False,
                           f"npu-smi lists no Ascend NPU here. {HOW_SMI} To time on an Atlas board over ssh, give "
                           f"the host option (and user, port, key) and soc_version.")]
        # the NPU is usable without atc here (a board with only the runtime times a model compiled elsewhere)
        compiler = "found" if shutil.which("atc") else "not found (compile elsewhere)"
        return [Device(f"npu:{n['device']}", f"Ascend {n['name']}", "npu", ("fp16", "fp32"), True, "",
                       (("npu", n["npu"]), ("chip", n["chip"]), ("bus", n["bus"]), ("health", n["health"]),
                        ("memory", n["memory"]), ("soc_version", f"Ascend{n['name']}"), ("atc", compiler)))
                for n in npus]

    def compile(self, request: CompileRequest):
        opts = dict(request.options)
        atc = find_tool(opts.get("atc", "atc"), HOW_ATC)  # always here: the toolkit compiles, the board runs
        if request.precision not in PRECISION_MODES:
            raise PluginError(f"atc compiles fp16 or fp32 models, not {request.precision}: an int8 .om starts from "
                              f"a model quantized with AMCT.")
        soc = opts.get("soc_version") or (yield from _soc_version(request.device, remote_from_options(opts)))
        name, fixed, (c, h, w) = image_input(request.model_path)
        out = Path(request.workdir or tempfile.mkdtemp(prefix="mbx-ascend-")) / f"ascend-{request.precision}"
        out.mkdir(parents=True, exist_ok=True)
        for i, b in enumerate(request.batch_sizes):
            yield Progress(i / len(request.batch_sizes), f"atc: batch {b}")
            if fixed is not None and fixed != b:
                raise PluginError(f"the model's batch size is fixed at {fixed}; for batch {b} export it with a "
                                  f"dynamic batch dimension.")
            output = out / f"model_bs{b}"
            result = yield from run_tool([atc, "--framework=5", f"--model={request.model_path}",
                                          "--input_format=NCHW", f"--input_shape={name}:{b},{c},{h},{w}",
                                          f"--output={output}", f"--soc_version={soc}",
                                          f"--precision_mode={PRECISION_MODES[request.precision]}"])
            if "ATC run success" not in result.output or not output.with_suffix(".om").is_file():
                raise PluginError(f"atc did not report success or wrote no {output}.om:\n"
                                  + "\n".join(result.output.splitlines()[-15:]))
        yield Progress(1.0, "compiled")
        return Artifact(str(out), request.precision, tuple(request.batch_sizes), f"atc ({soc})",
                        "one .om per batch size: " + ", ".join(f"model_bs{b}.om" for b in request.batch_sizes))

    def profile(self, request):
        opts = dict(request.options)
        remote = remote_from_options(opts)
        python = find_tool(opts.get("python", "python3"), HOW_AIS, remote)
        version = yield from _ais_bench_version(python, remote)
        rdir = opts.get("remote_dir", REMOTE_DIR)
        with tempfile.TemporaryDirectory(prefix="mbx-ascend-") as tmp:
            artifact, start = yield from compiled_first(self.compile, request, tmp)
            out = f"{rdir}/ais_out" if remote else str(Path(tmp) / "ais_out")
            yield from run_tool(["mkdir", "-p", out], remote=remote)
            for i, b in enumerate(request.batch_sizes):
                yield Progress(start + (1 - start) * i / len(request.batch_sizes), f"ais_bench: batch {b}")
                om = Path(artifact.path) / f"model_bs{b}.om"
                if not om.is_file():
                    raise PluginError(f"the compiled models in {artifact.path} hold no .om for batch {b}; compile "
                                      f"with that batch size.")
                model = str(om)
                if remote:
                    model = f"{rdir}/model_bs{b}.om"
                    yield from copy(remote, str(om), model)
                result = yield from run_tool([python, "-m", "ais_bench", "--model", model, "--loop",
                                              str(request.iterations), "--warmup_count", str(request.warmup),
                                              "--batchsize", str(b), "--device", device_index(request.device),
                                              "--output", out, "--output_dirname", f"bs{b}",
                                              "--display_all_summary", "1"], remote=remote)
                summary = Path(tmp) / f"bs{b}_summary.json"
                if remote:
                    yield from copy(remote, f"{out}/bs{b}_summary.json", str(summary), upload=False)
                else:
                    summary = Path(out) / f"bs{b}_summary.json"
                runs = parse_output(result.output)
                if not runs:
                    raise PluginError("ais_bench printed no Performance Summary with a throughput line.")
                run = runs[-1]
                run.read_summary(summary)
                yield measurement(run, b, request.precision, request.device, request.model_sha256, version,
                                  time.time(), "", request.warmup)
        yield Progress(1.0, "done")

    def parse_logs(self, request):
        found = []
        for path in request.paths:
            if path.lower().endswith(".json"):
                run = AisRun(batch=None)
                run.read_summary(Path(path))
                run.throughput = run.summary_throughput
                runs = [run] if run.raw or run.compute else []
            else:
                runs = parse_output(Path(path).read_text(encoding="utf-8", errors="replace"))
            found += [(path, r) for r in runs]
        if not found:
            raise PluginError("none of the logs holds an ais_bench Performance Summary (or *_summary.json): "
                              + ", ".join(request.paths))
        for path, run in found:
            batch = run.batch or run.derived_batch or request.batch_size
            if not batch:
                raise PluginError(f"{Path(path).name} does not say the batch size: give it with --batch-size.")
            precision, note = request.precision, ""
            if not precision:
                precision, note = "fp16", "precision not in the log: atc's default (fp16) assumed; "
            yield measurement(run, batch, precision, request.device or f"npu:{run.device or 0}",
                              request.model_sha256, "unknown", os.path.getmtime(path),
                              f"{note}from log {Path(path).name}", 0)


# --- parsing ---------------------------------------------------------------------------------------------------

def parse_npu_smi(text: str) -> list[dict]:
    """The NPUs in `npu-smi info`'s table: each is a row "| NPU Name | Health | ..." and below it a row
    "| Chip [Device] | Bus-Id | AICore(%) Memory-Usage(MB) [HBM-Usage(MB)] |"."""
    npus, current = [], None
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []
        if len(cells) < 3:
            continue
        first = cells[0].split()
        if len(first) == 2 and first[0].isdigit() and re.fullmatch(r"[A-Za-z]+", cells[1]) \
                and cells[1] not in ("Health", "Bus"):
            current = {"npu": first[0], "name": first[1], "health": cells[1]}
            continue
        if current and re.match(r"[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:", cells[1]) and first and first[0].isdigit():
            usage = re.findall(r"(\d+)\s*/\s*(\d+)", cells[2])
            npus.append({**current, "chip": first[0], "device": first[1] if len(first) > 1 else current["npu"],
                         "bus": cells[1], "memory": f"{usage[-1][0]} / {usage[-1][1]} MB" if usage else ""})
            current = None
    return npus


_STAT = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\)) = ([-+\d.eE]+)")


def _stats(text: str) -> dict:
    return {(f"p{float(p):g}" if p else k): float(v) for k, p, v in _STAT.findall(text)}


@dataclass
class AisRun:
    batch: int | None  # as the throughput line says it
    throughput: float | None = None  # images per second, ais_bench's own figure
    compute: dict = field(default_factory=dict)  # NPU_compute_time stats, ms
    h2d: dict = field(default_factory=dict)
    d2h: dict = field(default_factory=dict)
    iterations: int | None = None  # from its progress bar
    device: str = ""
    raw: list = field(default_factory=list)  # npu_compute_time_list from the summary JSON
    summary_throughput: float | None = None

    @property
    def derived_batch(self) -> int | None:
        """throughput = 1000 x batch / mean: the batch it used, where the line leaves it out (old ais_infer)."""
        if not (self.throughput and self.compute.get("mean")):
            return None
        b = self.throughput * self.compute["mean"] / 1000
        return round(b) if round(b) >= 1 and abs(b - round(b)) < 0.005 * b else None

    def read_summary(self, path: Path) -> None:
        """What ais_bench wrote to <output>/<dirname>_summary.json: every iteration's NPU compute time."""
        if not path.is_file():
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self.raw = [float(t) for t in data.get("npu_compute_time_list") or []]
            self.compute = self.compute or {k: float(v) for k, v in data.get("NPU_compute_time", {}).items()
                                            if k != "count" and not k.startswith("percentile")}
            for key, attr in (("H2D_latency", "h2d"), ("D2H_latency", "d2h")):
                if not getattr(self, attr) and "mean" in data.get(key, {}):
                    setattr(self, attr, {"mean": float(data[key]["mean"])})
            self.summary_throughput = float(data["throughput"]) if "throughput" in data else None
        except (ValueError, TypeError, AttributeError) as exc:
            raise PluginError(f"{path} is not an ais_bench summary: {exc}") from exc


def parse_output(text: str) -> list[AisRun]:
    """Each run in ais_bench's output: its Performance Summary lines up to the throughput line."""
    runs, start = [], 0
    for m in re.finditer(r"^.*\bthroughput\b\s*(.*?):\s*([-+\d.eE]+)\s*$", text, re.M):
        part = text[start:m.end()]
        start = m.end()
        b = re.search(r"batchsize(?:\.mean)?\(([\d.]+)\)", m.group(1))
        run = AisRun(batch=int(float(b.group(1))) if b else None, throughput=float(m.group(2)))
        for key, attr in (("NPU_compute_time", "compute"), ("H2D_latency", "h2d"), ("D2H_latency", "d2h")):
            lines = re.findall(rf"{key} \(ms\): (.*)$", part, re.M)
            if lines:
                setattr(run, attr, _stats(lines[-1]))
        bars = re.findall(r"\|\s*(\d+)/(\d+) \[", part)
        run.iterations = int(bars[-1][1]) if bars else None
        d = re.search(r"open device (\d+) success", part)
        run.device = d.group(1) if d else ""
        if run.compute:
            runs.append(run)
    return runs


def measurement(run: AisRun, batch: int, precision: str, device: str, sha: str, version: str, when: float,
                source: str, warmup: int) -> Measurement:
    # without per-iteration times, ais_bench's summary: the median and the 99th percentile, not the 90th
    latency = reported_latency(run.raw, run.compute)
    if latency is None:
        raise PluginError("ais_bench printed no NPU_compute_time.")
    iterations = len(run.raw) or run.iterations
    if not iterations:
        raise PluginError("the log does not say how many iterations ais_bench ran (no progress bar or summary "
                          "JSON with the times).")
    throughput = run.throughput if run.throughput is not None else run.summary_throughput
    note = "ais_bench: throughput = 1000 x batch / mean NPU_compute_time (the NPU's compute, copies excluded)"
    if run.h2d.get("mean") is not None:
        note += f"; host-to-device copy mean {run.h2d['mean']:g} ms"
    if run.d2h.get("mean") is not None:
        note += f"; device-to-host copy mean {run.d2h['mean']:g} ms"
    if not run.raw:
        note += "; no per-iteration times (summary JSON): the 90th percentile is not reported"
    return Measurement(
        plugin=PLUGIN, device=device, tool="ais_bench", tool_version=version, model_sha256=sha, precision=precision,
        batch_size=batch, throughput=throughput, latency_ms=latency, iterations=iterations, warmup=warmup,
        meaning=DEVICE_COMPUTE, timestamp=when, raw_ms=tuple(run.raw), note=note + (f"; {source}" if source else ""))



def _ais_bench_version(python: str, remote: Remote | None):
    """ais_bench's version, which also proves it is installed in that python."""
    result = yield from run_tool([python, "-c", "import importlib.metadata as m; print(m.version('ais_bench'))"],
                                 remote=remote, check=False)
    lines = result.output.strip().splitlines()
    if result.returncode != 0 or not lines:
        where = f" on {remote.target}" if remote else ""
        raise ToolMissing(f"the ais_bench module{where} (in {python})", HOW_AIS)
    return lines[-1].strip()


def _soc_version(device: str, remote: Remote | None):
    """atc's --soc_version for the device: "Ascend" + the chip name npu-smi shows (the ModelZoo's rule)."""
    try:
        result = yield from run_tool(["npu-smi", "info"], remote=remote, check=False)
        npus = parse_npu_smi(result.output)
    except ToolMissing:
        npus = []
    index = device_index(device)
    match = [n for n in npus if n["device"] == index] or npus[:1]
    if not match:
        raise PluginError("set the soc_version option (e.g. Ascend310P3): npu-smi is not here to tell the chip; "
                          "`npu-smi info` on the machine with the NPU shows it in its Name column.")
    return f"Ascend{match[0]['name']}"
