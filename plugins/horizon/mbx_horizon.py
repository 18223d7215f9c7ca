"""D-Robotics (Horizon Robotics) boards, RDK X5 first, through the OpenExplorer toolchain.

compile (here, in the OpenExplorer docker or environment): ``hb_mapper makertbin --config cfg.yaml --model-type
onnx`` with a config written from the request (the model, its input, march bayes-e for the X5, calibration images
from the cal_data_dir option), one .bin per batch size. profile (on the board, over ssh: options host, user, port,
key, known_hosts; or here when mbexplorer runs on the board): the .bin is copied over with scp and timed with
``hrt_model_exec perf --model_file x.bin --thread_num T --frame_count N``.

The figures are hrt_model_exec's: its "Average latency" per frame, timed on the board around each inference
(END_TO_END, the board being the host), and its "Frame rate" in frames per second; a frame is one call of the
model, so images per second are FPS x the model's batch. It reports the mean latency, not percentiles: p50, p90
and p99 stay unknown (None, as the API records a percentile a tool does not report) and the note says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
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
    find_tool,
    image_input,
    remote_from_options,
    run_tool,
    tool_path,
    warn,
)

PLUGIN = "horizon"
HOW_MAPPER = ("hb_mapper comes with D-Robotics' OpenExplorer toolchain (the RDK X5 OE docker image, "
              "https://developer.d-robotics.cc/rdk_doc/en/Advanced_development/toolchain_development/overview): run "
              "mbexplorer inside it, or put hb_mapper on PATH.")
HOW_HRT = ("hrt_model_exec is part of the RDK board's system image (/usr/bin on RDK OS); on another image copy it "
           "from OpenExplorer's samples/ucp_tutorial/tools/hrt_model_exec, or name its folder with tool_dir.")
REMOTE_DIR = "/tmp/mbexplorer-horizon"
MARCH = {"rdk-x5": "bayes-e"}


class Plugin:
    def devices(self) -> list[Device]:
        # a board is reached over ssh with the request's options: nothing to look at here without starting ssh
        return [Device("rdk-x5", "RDK X5 (BPU Bayes-e, 10 TOPS)", "npu", ("int8",), True, "",
                       (("march", "bayes-e"), ("reached", "over ssh: options host, user, port, key (or run on the "
                                                          "board itself)")))]

    def compile(self, request: CompileRequest):
        opts = dict(request.options)
        mapper = find_tool(opts.get("hb_mapper", "hb_mapper"), HOW_MAPPER)
        if request.precision != "int8":
            raise PluginError(f"the BPU runs int8 models: ask for int8, not {request.precision}.")
        march = opts.get("march") or MARCH.get(request.device, "bayes-e")
        name, fixed, (c, h, w) = image_input(request.model_path)
        cal = opts.get("cal_data_dir", "")
        if not cal:
            yield warn("no calibration data (option cal_data_dir): hb_mapper skips calibration, so the timings hold "
                       "but the model's accuracy means nothing.")
        out = Path(request.workdir or tempfile.mkdtemp(prefix="mbx-horizon-")) / "horizon-int8"
        out.mkdir(parents=True, exist_ok=True)
        version = ""
        for i, b in enumerate(request.batch_sizes):
            yield Progress(i / len(request.batch_sizes), f"hb_mapper: batch {b}")
            if fixed not in (None, 1, b):
                raise PluginError(f"the model's batch size is fixed at {fixed}; export it with batch 1 or a dynamic "
                                  f"batch dimension.")
            work = out / f"bs{b}"
            work.mkdir(exist_ok=True)
            config = work / "config.yaml"
            config.write_text(mapper_config(request.model_path, march, name, b, (c, h, w), cal, work / "model_output",
                                            f"model_bs{b}"), encoding="utf-8")
            result = yield from run_tool([mapper, "makertbin", "--config", str(config), "--model-type", "onnx"],
                                         cwd=str(work))
            made = work / "model_output" / f"model_bs{b}.bin"
            if "Convert to runtime bin file successfully" not in result.output or not made.is_file():
                raise PluginError(f"hb_mapper did not report success or wrote no {made}:\n"
                                  + "\n".join(result.output.splitlines()[-15:]))
            shutil.copyfile(made, out / f"model_bs{b}.bin")
            m = re.search(r"hb_mapper version ([\w.]+)", result.output)
            version = version or (m.group(1) if m else "")
        yield Progress(1.0, "compiled")
        tool = f"hb_mapper {version} ({march})" if version else f"hb_mapper ({march})"
        return Artifact(str(out), "int8", tuple(request.batch_sizes), tool,
                        "one .bin per batch size: " + ", ".join(f"model_bs{b}.bin" for b in request.batch_sizes))

    def profile(self, request):
        opts = dict(request.options)
        remote = remote_from_options(opts)
        hrt = find_tool(tool_path(opts, "hrt_model_exec"), HOW_HRT, remote)
        threads = opts.get("thread_num", "1")
        rdir = opts.get("remote_dir", REMOTE_DIR)
        with tempfile.TemporaryDirectory(prefix="mbx-horizon-") as tmp:
            artifact, start = yield from compiled_first(self.compile, request, tmp)
            if remote:
                yield from run_tool(["mkdir", "-p", rdir], remote=remote)
            for i, b in enumerate(request.batch_sizes):
                yield Progress(start + (1 - start) * i / len(request.batch_sizes), f"hrt_model_exec: batch {b}")
                model = Path(artifact.path) / f"model_bs{b}.bin"
                if not model.is_file():
                    raise PluginError(f"the compiled models in {artifact.path} hold no .bin for batch {b}; compile "
                                      f"with that batch size.")
                target = str(model)
                if remote:
                    target = f"{rdir}/model_bs{b}.bin"
                    yield from copy(remote, str(model), target)
                args = [hrt, "perf", "--model_file", target, "--thread_num", threads, "--frame_count",
                        str(request.iterations)]
                if opts.get("core_id"):
                    args += ["--core_id", opts["core_id"]]
                result = yield from run_tool(args, remote=remote)
                runs = parse_output(result.output)
                if not runs:
                    raise PluginError("hrt_model_exec printed no 'Perf result' with its latency and frame rate.")
                note = "hrt_model_exec perf has no warm-up: every frame is timed" if request.warmup else ""
                yield measurement(runs[-1], b, request.device, request.model_sha256, time.time(), note)
        yield Progress(1.0, "done")

    def parse_logs(self, request):
        found = [(p, r) for p in request.paths
                 for r in parse_output(Path(p).read_text(encoding="utf-8", errors="replace"))]
        if not found:
            raise PluginError("none of the logs holds hrt_model_exec perf's 'Perf result' (Average latency, Frame "
                              "rate): " + ", ".join(request.paths))
        if not request.batch_size:
            raise PluginError("hrt_model_exec's output does not say the model's batch size: give it with "
                              "--batch-size (1 for the model zoo's .bin models).")
        for path, run in found:
            yield measurement(run, request.batch_size, request.device or "rdk-x5", request.model_sha256,
                              os.path.getmtime(path), f"from log {Path(path).name}")


def mapper_config(onnx: str, march: str, name: str, batch: int, chw: tuple[int, int, int], cal: str,
                  working_dir: Path, prefix: str) -> str:
    """hb_mapper's YAML for the model as it is: a float NCHW input (featuremap) taken without preprocessing, since
    the ONNX model already expects normalised tensors. Strings are written as JSON strings, which YAML reads."""
    q = json.dumps
    lines = ["model_parameters:", f"  onnx_model: {q(str(Path(onnx).resolve()))}", f"  march: {q(march)}",
             f"  working_dir: {q(str(working_dir))}", f"  output_model_file_prefix: {q(prefix)}",
             "input_parameters:", f"  input_name: {q(name)}", f"  input_shape: {q('x'.join(map(str, (1, *chw))))}"]
    if batch > 1:
        lines.append(f"  input_batch: {batch}")  # hb_mapper's way to a batch: on a batch-1 input shape
    lines += ["  input_type_rt: \"featuremap\"", "  input_layout_rt: \"NCHW\"", "  input_type_train: \"featuremap\"",
              "  input_layout_train: \"NCHW\"", "  norm_type: \"no_preprocess\"", "calibration_parameters:"]
    if cal:
        lines += [f"  cal_data_dir: {q(str(Path(cal).resolve()))}", "  cal_data_type: \"float32\"",
                  "  calibration_type: \"default\""]
    else:
        lines.append("  calibration_type: \"skip\"")
    lines += ["compiler_parameters:", "  compile_mode: \"latency\"", "  optimize_level: \"O3\"", ""]
    return "\n".join(lines)


# --- parsing hrt_model_exec perf's output -------------------------------------------------------------------------

@dataclass
class PerfRun:
    threads: int
    frames: int
    latency_ms: float  # Average latency per frame
    fps: float  # Frame rate
    min_ms: float | None = None
    max_ms: float | None = None
    version: str = ""
    soc: str = ""


def parse_output(text: str) -> list[PerfRun]:
    """Each "Running condition: ... Perf result: ..." block, with the periodic lines and banner before it."""
    runs, start = [], 0
    block = re.compile(r"Running condition:.*?Thread\s+number\s+is:\s*(\d+).*?Frame\s+count\s+is:\s*(\d+)"
                       r".*?Average\s+latency\s+is:\s*([\d.]+)\s*ms.*?Frame\s+rate\s+is:\s*([\d.]+)\s*FPS", re.S)
    for m in block.finditer(text):
        before = text[start:m.start()]
        start = m.end()
        run = PerfRun(int(m.group(1)), int(m.group(2)), float(m.group(3)), float(m.group(4)))
        spread = re.findall(r"thread max latency:\s*([\d.]+)\s*ms,\s*thread min latency:\s*([\d.]+)\s*ms", before)
        if spread:
            run.max_ms, run.min_ms = float(spread[-1][0]), float(spread[-1][1])
        v = re.search(r"\[DNN\]\s*Runtime version\s*=\s*([\d.]+)", before) or \
            re.search(r"BPU Platform Version\(([\d.]+)\)", before)
        run.version = v.group(1) if v else ""
        s = re.search(r"soc info\((\w+)\)", before)
        run.soc = s.group(1) if s else ""
        runs.append(run)
    return runs


def measurement(run: PerfRun, batch: int, device: str, sha: str, when: float, extra: str) -> Measurement:
    note = (f"hrt_model_exec perf: {run.threads} thread(s), {run.frames} frames, {run.fps:g} FPS x batch {batch}; "
            f"latency is its Average latency per frame on the board")
    if run.min_ms is not None:
        note += f" (min {run.min_ms:g} ms, max {run.max_ms:g} ms)"
    note += "; it reports no percentiles, so p50, p90 and p99 are unknown"
    return Measurement(
        plugin=PLUGIN, device=device, tool="hrt_model_exec", tool_version=run.version or "unknown", model_sha256=sha,
        precision="int8", batch_size=batch, throughput=run.fps * batch,
        latency_ms=Latency(run.latency_ms, None, None, None), iterations=run.frames, warmup=0,
        meaning=END_TO_END, timestamp=when, device_name=f"RDK {run.soc.upper()}" if run.soc else "",
        note=note + (f"; {extra}" if extra else ""))
