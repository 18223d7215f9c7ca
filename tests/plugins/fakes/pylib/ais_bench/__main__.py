"""A stand-in for `python3 -m ais_bench` (Ascend's ais_bench 0.0.2) on a machine without an NPU: its options
(an unknown one fails as argparse does), its log lines and Performance Summary, and its <output>/<dirname>_summary.json
with every iteration's NPU compute time.

Times come from the environment: FAKE_AIS_NPU_MS (a comma list in ms, cycled; default 2.5), FAKE_AIS_H2D_MS and
FAKE_AIS_D2H_MS (default 0.5 / 0.1). Every call is appended to calls.jsonl in the fake tools' folder.
"""

import json
import os
import statistics
import sys
from pathlib import Path

BIN = Path(__file__).resolve().parents[2]
with open(BIN / "calls.jsonl", "a") as f:
    f.write(json.dumps({"tool": "ais_bench", "argv": sys.argv}) + "\n")

OPTIONS = {"model", "input", "output", "output_dirname", "outfmt", "loop", "warmup_count", "device", "batchsize",
           "display_all_summary", "debug", "pure_data_type", "run_mode"}
USAGE = "usage: __main__.py [-h] --model MODEL [--input INPUT] [--output OUTPUT] [--loop LOOP] ..."


def error(message):
    print(USAGE, file=sys.stderr)
    print(f"__main__.py: error: {message}", file=sys.stderr)
    sys.exit(2)


args, rest = {}, sys.argv[1:]
while rest:
    key = rest.pop(0)
    name, eq, value = key.partition("=")
    if not name.startswith("--") or name[2:] not in OPTIONS:
        error(f"unrecognized arguments: {key}")
    if not eq:
        if not rest:
            error(f"argument {name}: expected one argument")
        value = rest.pop(0)
    args[name[2:]] = value
if "model" not in args:
    error("the following arguments are required: --model")


def truth(v):
    if v.lower() in ("1", "true"):
        return True
    if v.lower() in ("0", "false"):
        return False
    error(f"argument --display_all_summary: invalid str2bool value: '{v}'")


def floats(name, default):
    return [float(v) for v in os.environ.get(name, default).split(",")]


loop, warmup = int(args.get("loop", 1)), int(args.get("warmup_count", 1))
device = int(args.get("device", 0))
show_all = truth(args.get("display_all_summary", "0"))
print("[INFO] acl init success")
print(f"[INFO] open device {device} success")
print("[INFO] create new context")
try:
    om = json.loads(Path(args["model"]).read_text())
except (OSError, ValueError):
    print(f"[ERROR] load model from file failed, model file is {args['model']}")
    sys.exit(1)
print(f"[INFO] load model {args['model']} success")
if os.environ.get("FAKE_AIS_FAIL"):
    print("[ERROR] aclmdlExecute failed, ret[507011]")
    print("EZ9999: Inner Error! The error from device(0), there is an aicore error")
    sys.exit(1)
print("[INFO] create model description success")
model_batch = int(om["input_shape"].rpartition(":")[2].split(",")[0])
batch = int(args.get("batchsize", model_batch))
if warmup:
    print(f"[INFO] warm up {warmup} done")
npu = floats("FAKE_AIS_NPU_MS", "2.5")
h2d, d2h = floats("FAKE_AIS_H2D_MS", "0.5")[0], floats("FAKE_AIS_D2H_MS", "0.1")[0]
times = [npu[i % len(npu)] for i in range(loop)]
print(f"Inference array Processing: 100%|██████████| {loop}/{loop} [00:00<00:00, {1000 / times[0]:.2f}it/s]")


def info(values):
    s = sorted(values)
    n = len(s)
    pos = (n - 1) * 0.99
    lo = int(pos)
    p99 = s[lo] + (s[min(lo + 1, n - 1)] - s[lo]) * (pos - lo)  # numpy's percentile
    return {"min": s[0], "max": s[-1], "mean": sum(s) / n, "median": statistics.median(s), "percentile(99%)": p99}


def line(name, st):
    return (f"[INFO] {name} (ms): min = {st['min']}, max = {st['max']}, mean = {st['mean']}, "
            f"median = {st['median']}, percentile(99%) = {st['percentile(99%)']}")


compute, h2d_info, d2h_info = info(times), info([h2d] * loop), info([d2h] * loop)
throughput = 1000 * batch / compute["mean"]
print("[INFO] -----------------Performance Summary------------------")
if show_all:
    print(line("H2D_latency", h2d_info))
print(line("NPU_compute_time", compute))
if show_all:
    print(line("D2H_latency", d2h_info))
print(f"[INFO] throughput 1000*batchsize.mean({batch})/NPU_compute_time.mean({compute['mean']}): {throughput}")
print("[INFO] ------------------------------------------------------")
if "output" in args:
    dirname = args.get("output_dirname", "2025_12_02-10_00_00")
    (Path(args["output"]) / dirname).mkdir(exist_ok=True)  # --output must exist
    (Path(args["output"]) / dirname / "pure_infer_data_0.bin").write_bytes(b"\0" * 16)
    summary = {"filesinfo": {}, "NPU_compute_time": {**compute, "count": loop},
               "H2D_latency": {**h2d_info, "count": loop}, "D2H_latency": {**d2h_info, "count": loop},
               "npu_compute_time_list": times, "throughput": throughput, "pid": os.getpid()}
    (Path(args["output"]) / f"{dirname}_summary.json").write_text(json.dumps(summary))
print("[INFO] unload model success, model Id is 1")
print("[INFO] end to reset device is 0")
print("[INFO] end to finalize acl")
