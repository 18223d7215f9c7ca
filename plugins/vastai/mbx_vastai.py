"""VastAI (Vastaitech) accelerator cards, as VastModelZOO's MobileNetV1 page runs them.

compile: ``vamc build cfg.yaml`` with a config written from the request (model, input shape, fp16 or int8; int8
calibrates on the images of the cal_data_dir option with the ImageNet preprocessing of the zoo's config: resize
256, centre crop, mean/std, changeable with the options resize, mean and std). vamc writes the model as three files
(<name>.so, .json, .params) whose common prefix vamp takes. The card batches at run time, so one model serves every
batch size. profile: ``vamp -m <prefix> --vdsp_params <json> -i <instances> -p <processes> -b <batch> -d <device>
--iterations N`` (-i is the instance count, as vamp's report says), here or on the card's host over ssh (options
host, user, port, key, known_hosts). The vdsp_params option names vamp's preprocessing JSON (the zoo ships one per
model, e.g. vdsp_params/ppcls-mobilenet_v1-vdsp_params.json).

The figures are vamp's: "throughput (qps)" counts samples (VastAI's profilers add batch x calls per second), so it
is already images per second; "e2e latency" is each call from the host, preprocessing and copies included
(END_TO_END), in microseconds; "model latency" (the model alone) goes in the note.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mbexplorer.devices import (
    END_TO_END,
    Artifact,
    CompileRequest,
    Device,
    Latency,
    Measurement,
    PluginError,
    Progress,
    compiled_first,
    copy,
    device_index,
    find_tool,
    image_input,
    remote_from_options,
    run_tool,
    tool_path,
)

PLUGIN = "vastai"
HOW_VAMC = ("vamc is VastAI's model compiler: get it from VastAI (VastModelZOO's docs/doc_vamc.md says how, "
            "https://github.com/Vastai/VastModelZOO) and put it on PATH.")
HOW_VAMP = ("vamp is VastAI's model profiler: install vastpipe and vamp as VastModelZOO's docs/doc_vamp.md says "
            "(https://github.com/Vastai/VastModelZOO), on the machine with the card; or name its folder with "
            "tool_dir.")
REMOTE_DIR = "/tmp/mbexplorer-vastai"
IMAGENET = {"resize": "256", "mean": "0.485,0.456,0.406", "std": "0.229,0.224,0.225"}  # the zoo's ppcls config


class Plugin:
    def devices(self) -> list[Device]:
        missing = "" if shutil.which("vamp") else (f"vamp was not found. {HOW_VAMP} To time on the card's host over "
                                                   f"ssh, give the host option (and user, port, key).")
        return [Device("vastai:0", "VastAI accelerator (device 0)", "npu", ("int8", "fp16"), not missing, missing)]

    def compile(self, request: CompileRequest):
        opts = dict(request.options)
        vamc = find_tool(opts.get("vamc", "vamc"), HOW_VAMC)
        if request.precision not in ("int8", "fp16"):
            raise PluginError(f"vamc builds int8 or fp16 models, not {request.precision}.")
        if request.precision == "int8" and not opts.get("cal_data_dir"):
            raise PluginError("int8 needs calibration images: give their folder with the cal_data_dir option (the "
                              "zoo calibrates MobileNetV1 on 1000 ImageNet validation images).")
        name, fixed, chw = image_input(request.model_path)
        if fixed not in (None, 1):
            raise PluginError(f"the model's batch size is fixed at {fixed}; vamp batches at run time from a batch-1 "
                              f"model: export it with batch 1 or a dynamic batch dimension.")
        out = Path(request.workdir or tempfile.mkdtemp(prefix="mbx-vastai-")) / f"vastai-{request.precision}"
        out.mkdir(parents=True, exist_ok=True)
        config = out / "vamc.yaml"
        config.write_text(vamc_config(request.model_path, name, chw, request.precision, opts, out / "model"),
                          encoding="utf-8")
        yield Progress(0.0, "vamc build")
        yield from run_tool([vamc, "build", str(config)], cwd=str(out))
        prefix = model_prefix(out / "model")  # vamc's own output names say nothing useful: find the files
        yield Progress(1.0, "compiled")
        return Artifact(str(out), request.precision, tuple(request.batch_sizes), "vamc",
                        f"one model for every batch size (the card batches at run time): {prefix}.so/.json/.params")

    def profile(self, request):
        opts = dict(request.options)
        remote = remote_from_options(opts)
        vamp = find_tool(tool_path(opts, "vamp"), HOW_VAMP, remote)
        vdsp = opts.get("vdsp_params", "")
        if not vdsp or not Path(vdsp).is_file():
            raise PluginError("vamp needs its preprocessing parameters: name the JSON with the vdsp_params option "
                              "(VastModelZOO ships one per model, e.g. vdsp_params/ppcls-mobilenet_v1-vdsp_params"
                              ".json)." + (f" {vdsp} does not exist." if vdsp else ""))
        rdir = opts.get("remote_dir", REMOTE_DIR)
        with tempfile.TemporaryDirectory(prefix="mbx-vastai-") as tmp:
            artifact, start = yield from compiled_first(self.compile, request, tmp, 0.3)
            prefix = model_prefix(Path(artifact.path) / "model")
            model, params = str(prefix), vdsp
            if remote:
                yield from run_tool(["mkdir", "-p", rdir], remote=remote)
                for suffix in (".so", ".json", ".params"):
                    yield from copy(remote, f"{prefix}{suffix}", f"{rdir}/{prefix.name}{suffix}")
                model, params = f"{rdir}/{prefix.name}", f"{rdir}/vdsp_params.json"
                yield from copy(remote, vdsp, params)
            for i, b in enumerate(request.batch_sizes):
                yield Progress(start + (1 - start) * i / len(request.batch_sizes), f"vamp: batch {b}")
                result = yield from run_tool([vamp, "-m", model, "--vdsp_params", params, "-i",
                                              opts.get("instances", "1"), "-p", opts.get("processes", "1"), "-b",
                                              str(b), "-d", device_index(request.device), "--iterations",
                                              str(request.iterations)], remote=remote)
                runs = parse_output(result.output)
                if not runs:
                    raise PluginError("vamp printed no report with throughput (qps) and latencies.")
                run = runs[-1]
                if run.batch != b:
                    raise PluginError(f"vamp ran batch {run.batch}, not the batch {b} it was asked for.")
                run.iterations = request.iterations
                yield measurement(run, request.precision, request.device, request.model_sha256, time.time(), "")
        yield Progress(1.0, "done")

    def parse_logs(self, request):
        found = [(p, r) for p in request.paths
                 for r in parse_output(Path(p).read_text(encoding="utf-8", errors="replace"))]
        if not found:
            raise PluginError("none of the logs holds a vamp report (throughput (qps), latency (us)): "
                              + ", ".join(request.paths))
        for path, run in found:
            if not run.batch:
                raise PluginError(f"{Path(path).name} does not say the batch size: give it with --batch-size.")
            precision = run.precision or request.precision
            if not precision:
                raise PluginError(f"{Path(path).name} does not say the model's precision (the vamp command line "
                                  f"with the model's -int8-/-fp16- name is not in it): give it.")
            if not run.iterations:
                raise PluginError(f"{Path(path).name} does not say how many iterations vamp ran (its command line "
                                  f"with --iterations is not in the log).")
            yield measurement(run, precision, request.device or f"vastai:{run.device}", request.model_sha256,
                              os.path.getmtime(path), f"from log {Path(path).name}")


def vamc_config(onnx: str, name: str, chw: tuple[int, int, int], precision: str, opts: dict, work_dir: Path) -> str:
    """vamc's build config in the zoo's format (model / engine / dataset / workspace). Strings are JSON strings,
    which YAML reads."""
    q = json.dumps
    lines = ["model:", "  name: \"model\"", "  inputs:", f"    {q(name)}: [1, {chw[0]}, {chw[1]}, {chw[2]}]",
             f"  checkpoint: {q(str(Path(onnx).resolve()))}", "engine:", "  type: \"vacc\"", "  common:",
             f"    do_quantization: {'true' if precision == 'int8' else 'false'}", "  add_extra_ops_to_graph:",
             "    type: null"]
    if precision == "int8":
        resize = int(opts.get("resize", IMAGENET["resize"]))
        mean = [float(v) for v in opts.get("mean", IMAGENET["mean"]).split(",")]
        std = [float(v) for v in opts.get("std", IMAGENET["std"]).split(",")]
        lines += ["  calibration:", "    quant_mode: \"percentile\"", "    per_channel: true", "dataset:",
                  f"  path: {q(str(Path(opts['cal_data_dir']).resolve()))}", "  sampler:",
                  f"    suffix: {q(opts.get('cal_suffix', 'JPEG'))}", "    get_data_num: 1000", "  transform_ops:",
                  "    - type: \"DecodeImage\"", "    - type: \"Resize\"", f"      size: [{resize}, {resize}]",
                  "    - type: \"CenterCrop\"", f"      crop_size: [{chw[1]}, {chw[2]}]", "    - type: \"Normalize\"",
                  f"      mean: {mean}", f"      std: {std}", "    - type: \"ToTensor\""]
    lines += ["workspace:", f"  work_dir: {q(str(work_dir))}", "  enable_ir: false", "  save_log: true", ""]
    return "\n".join(lines)


def model_prefix(work_dir: Path) -> Path:
    """The prefix of the model vamc wrote under work_dir: <prefix>.so beside <prefix>.json and <prefix>.params."""
    found = sorted((p for p in work_dir.rglob("*.so") if p.with_suffix(".json").is_file()
                    and p.with_suffix(".params").is_file()), key=lambda p: p.stat().st_mtime)
    if not found:
        raise PluginError(f"vamc wrote no model (<name>.so, .json and .params) under {work_dir}.")
    return found[-1].with_suffix("")


# --- parsing vamp's report -----------------------------------------------------------------------------------------

@dataclass
class VampRun:
    batch: int | None = None
    qps: float | None = None
    e2e: dict = field(default_factory=dict)  # microseconds: avg, min, max, p50, p90, p95, p99
    model: dict = field(default_factory=dict)
    instances: str = ""
    device: str = "0"
    utilization: str = ""
    iterations: int | None = None
    precision: str = ""
    version: str = ""


def _latencies(block: str) -> dict:
    return {k: float(v) for k, v in re.findall(r"(\w+) latency:\s*([\d.]+)", block)}


def parse_output(text: str) -> list[VampRun]:
    """Each report ("- number of instances ..." down to its latencies) with the vamp command line before it."""
    runs = []
    parts = re.split(r"(?m)^(?=\s*- number of instances)", text)
    for before, part in zip(parts, parts[1:]):
        run = VampRun()
        m = re.search(r"number of instances[^:]*:\s*(\d+)", part)
        run.instances = m.group(1) if m else ""
        m = re.search(r"devices:\s*\[\s*(\d+)", part)
        run.device = m.group(1) if m else "0"
        m = re.search(r"batch size:\s*(\d+)", part)
        run.batch = int(m.group(1)) if m else None
        m = re.search(r"throughput \(qps\):\s*([\d.eE+-]+)", part)
        run.qps = float(m.group(1)) if m else None
        m = re.search(r"ai utilize \(%\):\s*([\d.]+)", part)
        run.utilization = m.group(1) if m else ""
        for key, block in re.findall(r"(e2e latency|model latency|latency) \(us\):\s*\n((?:[ \t]*\w+ latency:.*\n?)+)",
                                     part):
            setattr(run, "model" if key == "model latency" else "e2e", _latencies(block))
        command = re.findall(r"^.*?\bvamp[\w.]*\s+(.*-m\s.*)$", before, re.M)  # the command line, if logged
        if command:
            words = shlex.split(command[-1])
            if "--iterations" in words[:-1]:
                run.iterations = int(words[words.index("--iterations") + 1])
            model = words[words.index("-m") + 1] if "-m" in words[:-1] else ""
            run.precision = "int8" if "-int8-" in model else "fp16" if "-fp16-" in model else ""
        v = re.findall(r"vamp_([\d.]+\d)", before)
        run.version = v[-1] if v else ""
        if run.qps is not None and run.e2e:
            runs.append(run)
    return runs


def measurement(run: VampRun, precision: str, device: str, sha: str, when: float, source: str) -> Measurement:
    e = {k: v / 1000 for k, v in run.e2e.items()}  # microseconds to milliseconds
    note = f"vamp: {run.instances or '?'} instance(s), throughput {run.qps:g} qps (samples: already images per second)"
    note += "; latency is vamp's e2e latency (host call, preprocessing and copies included)"
    if run.model:
        note += (f"; model latency (the model alone): avg {run.model.get('avg', 0) / 1000:g} ms, p50 "
                 f"{run.model.get('p50', 0) / 1000:g} ms, p99 {run.model.get('p99', 0) / 1000:g} ms")
    if run.utilization:
        note += f"; ai utilize {run.utilization}%"
    return Measurement(
        plugin=PLUGIN, device=device, tool="vamp", tool_version=run.version or "unknown", model_sha256=sha,
        precision=precision, batch_size=run.batch, throughput=run.qps,
        latency_ms=Latency(e["avg"], e["p50"], e["p90"], e["p99"]), iterations=run.iterations, warmup=0,
        meaning=END_TO_END, timestamp=when, note=note + (f"; {source}" if source else ""))
