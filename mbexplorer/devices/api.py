"""The device-plugin API, version 1 (what a plugin writes against: import it as ``mbexplorer.devices``).

A plugin is a folder (or an installed distribution) with a manifest, ``plugin.toml``, that the host reads without
importing the plugin::

    name = "onnxruntime"                 # unique; what `--plugin NAME` takes
    api = "1.0"                          # the API version written against: major must equal API_VERSION's
    version = "1.0.0"                    # the plugin's own version
    entry = "mbx_onnxruntime:Plugin"     # module:attribute, the module importable from the plugin's folder
    summary = "onnxruntime: CPU, CUDA and TensorRT execution providers"
    formats = ["onnx"]                   # model files it takes: "onnx", "tflite"
    capabilities = ["compile", "profile", "node_timings", "from_log"]
    requires = ["onnxruntime"]           # Python modules it needs (looked up, not imported)
    tools = []                           # executables it needs on PATH (or on the board) for anything at all
    homepage = "https://onnxruntime.ai"  # where to get the runtime or toolchain, said when it is missing

``entry`` names a class (or a factory) called with no arguments; the object it returns has:

* ``devices() -> list[Device]`` — cheap: looks, starts nothing long (no compilation, no model loaded).
* ``compile(request: CompileRequest)`` — a job (a generator: yields :class:`Progress` / :class:`Log`,
  *returns* an :class:`Artifact`).
* ``profile(request: ProfileRequest)`` — a job that yields a :class:`Measurement` as each batch size finishes
  (plus progress and log lines) and returns nothing.
* ``parse_logs(request: LogRequest)`` — only with the ``from_log`` capability: a job yielding the measurements
  in logs the vendor tool wrote elsewhere.

The host runs every call in a child process: a plugin that raises, hangs or crashes fails its job, never the
app. A job is cancelled by ending that process and everything it started, so a plugin needs no cancel logic of
its own; it still cleans up in ``finally:`` (the generator is closed on a normal cancel). Vendor tools are run
with :func:`mbexplorer.devices.run_tool` (an argument list, never a shell string; locally or over ssh).

Figures: a :class:`Measurement` says what it measured (``meaning``): the time on the host around each call, or
the device's own compute time as the vendor tool reports it. Throughput is always images per second (a tool
that counts batches per second is converted by the plugin).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.errors import MbxError
from ..core.jobs import Log, Progress, checkpoint, nested, warn

API_VERSION = (1, 0)  # (major, minor): a plugin written for 1.x runs on any 1.y >= x

# what a measurement's time covers
END_TO_END = "host_end_to_end"  # wall time on the host around each inference call (copies included)
DEVICE_COMPUTE = "device_compute"  # the device's own compute time, as the vendor tool reports it
MEANINGS = {END_TO_END: "end to end on the host", DEVICE_COMPUTE: "compute on the device"}

PRECISIONS = ("fp32", "fp16", "int8")
KINDS = ("cpu", "gpu", "npu")
CAPABILITIES = ("compile", "profile", "node_timings", "from_log")


class PluginError(MbxError):
    """A plugin could not do what was asked; the message says why and what to do."""


class ToolMissing(PluginError):
    """A runtime or vendor tool the plugin needs is not installed (or not on the board)."""

    def __init__(self, tool: str, how: str):
        super().__init__(f"{tool} was not found. {how}")
        self.tool, self.how = tool, how


@dataclass(frozen=True)
class Device:
    id: str  # unique within the plugin, stable across runs: "cpu", "cuda:0", "npu:0", "rdk@192.168.1.10"
    name: str  # for people: "Intel Xeon Platinum 8375C (2 threads)"
    kind: str  # one of KINDS
    precisions: tuple[str, ...] = ("fp32",)
    available: bool = True
    reason: str = ""  # when not available: why, and what to do
    details: tuple[tuple[str, str], ...] = ()  # (key, value) pairs shown as they are: driver, SoC, memory, ...

    def to_dict(self) -> dict:
        d = asdict(self)
        d["precisions"], d["details"] = list(self.precisions), dict(self.details)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Device:
        return cls(d["id"], d["name"], d["kind"], tuple(d.get("precisions", ("fp32",))), d.get("available", True),
                   d.get("reason", ""), tuple(dict(d.get("details", {})).items()))


@dataclass(frozen=True)
class CompileRequest:
    model_path: str  # the ONNX model (what every plugin takes)
    device: str  # Device.id
    precision: str = "fp32"
    batch_sizes: tuple[int, ...] = (1,)
    workdir: str = ""  # a folder of the host's for the artifacts; the plugin writes nothing elsewhere
    source_path: str = ""  # the file the user opened, when it is not the ONNX model (a .tflite for LiteRT)
    options: tuple[tuple[str, str], ...] = ()  # plugin-specific settings (soc_version, board host, ...)

    def option(self, key: str, default: str = "") -> str:
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class Artifact:
    path: str  # the compiled model (or folder); may equal the input when there is nothing to compile
    precision: str
    batch_sizes: tuple[int, ...]
    tool: str  # what made it: "onnxruntime 1.32.0", "atc (CANN 8.0)"
    description: str = ""


@dataclass(frozen=True)
class ProfileRequest:
    model_path: str
    device: str
    precision: str = "fp32"
    batch_sizes: tuple[int, ...] = (1,)
    iterations: int = 100  # timed iterations per batch size
    warmup: int = 10  # untimed iterations first
    workdir: str = ""
    source_path: str = ""
    artifact: Artifact | None = None  # compile's result, when compile ran first
    model_sha256: str = ""  # of the file the user opened, filled in by the host
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str, default: str = "") -> str:
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class LogRequest:
    paths: tuple[str, ...]  # log files the vendor tool wrote elsewhere
    model_sha256: str = ""
    batch_size: int | None = None  # when the log does not say it
    precision: str = ""  # when the log does not say it
    device: str = ""


@dataclass(frozen=True)
class Latency:
    """Per call, in milliseconds. A percentile the tool does not report is None (never filled in from the mean:
    hrt_model_exec, for one, reports only an average)."""

    mean: float
    p50: float | None
    p90: float | None
    p99: float | None


@dataclass(frozen=True)
class Measurement:
    plugin: str
    device: str  # Device.id
    tool: str  # "onnxruntime", "trtexec", "ais_bench", ...
    tool_version: str
    model_sha256: str
    precision: str
    batch_size: int
    throughput: float  # images per second
    latency_ms: Latency  # per batch (one call), in milliseconds
    iterations: int
    warmup: int
    meaning: str  # END_TO_END or DEVICE_COMPUTE
    timestamp: float  # seconds since the epoch (UTC)
    raw_ms: tuple[float, ...] = ()  # per-iteration times, where the tool gives them
    device_name: str = ""
    note: str = ""  # anything a person should know about this number (e.g. "from log xyz.txt")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["raw_ms"] = list(self.raw_ms)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Measurement:
        d = dict(d)
        d["latency_ms"] = Latency(**d["latency_ms"])
        d["raw_ms"] = tuple(d.get("raw_ms") or ())
        return cls(**d)


def device_index(device: str) -> str:
    """The number a vendor tool takes for a device id ("npu:1" -> "1"); "0" for an id without one."""
    tail = device.rpartition(":")[2]
    return tail if tail.isdigit() else "0"


def percentile(sorted_ms: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted values, linearly interpolated (numpy's default method)."""
    if not sorted_ms:
        raise ValueError("no times")
    pos = (len(sorted_ms) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_ms) - 1)
    return sorted_ms[lo] + (sorted_ms[hi] - sorted_ms[lo]) * (pos - lo)


def latency_of(times_ms: Sequence[float]) -> Latency:
    """Mean and percentiles of per-iteration times."""
    s = sorted(times_ms)
    return Latency(sum(s) / len(s), percentile(s, 50), percentile(s, 90), percentile(s, 99))


def reported_latency(raw_ms: Sequence[float], stats: dict) -> Latency | None:
    """A tool's latency: the statistics of its per-iteration times where it gave them, else the figures it printed
    (``stats``: mean, median, p90, p99; one it did not print is None, never made up); None without a mean."""
    if raw_ms:
        return latency_of(raw_ms)
    if "mean" not in stats:
        return None
    return Latency(stats["mean"], stats.get("median"), stats.get("p90"), stats.get("p99"))


def measurement_from_times(times_ms: Sequence[float], *, batch_size: int, **fields: Any) -> Measurement:
    """A :class:`Measurement` from per-iteration times of one call on ``batch_size`` images each: throughput is
    ``batch_size`` images per mean call time. ``fields``: the other Measurement fields (iterations defaults to the
    number of times, raw_ms to the times themselves)."""
    lat = latency_of(times_ms)
    fields.setdefault("iterations", len(times_ms))
    fields.setdefault("raw_ms", tuple(float(t) for t in times_ms))
    return Measurement(batch_size=batch_size, throughput=batch_size * 1000.0 / lat.mean, latency_ms=lat, **fields)


def compiled_first(compile, request: ProfileRequest, workdir: str, share: float = 0.5):
    """A profile's artifact: the request's own (compile ran before), or ``compile``'s result for the profile's
    model, device, precision and batch sizes, written in the request's workdir (else ``workdir``) within the first
    ``share`` of progress. A job; returns (artifact, the fraction where the profile's own progress starts)."""
    if request.artifact is not None:
        return request.artifact, 0.0
    req = CompileRequest(request.model_path, request.device, request.precision, request.batch_sizes,
                         request.workdir or workdir, request.source_path, request.options)
    return (yield from nested(compile(req), 0.0, share)), share


@dataclass(frozen=True)
class Manifest:
    name: str
    api: str
    version: str
    entry: str
    summary: str = ""
    formats: tuple[str, ...] = ("onnx",)
    capabilities: tuple[str, ...] = ("compile", "profile")
    requires: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    homepage: str = ""
    extra: dict = field(default_factory=dict, compare=False)  # keys the host does not know, kept as read


Event = Progress | Log | Measurement
PluginJob = Generator[Event, None, Any]

__all__ = ["API_VERSION", "CAPABILITIES", "DEVICE_COMPUTE", "END_TO_END", "KINDS", "MEANINGS", "PRECISIONS",
           "Artifact", "CompileRequest", "Device", "Event", "Latency", "Log", "LogRequest", "Manifest", "Measurement",
           "PluginError", "PluginJob", "ProfileRequest", "Progress", "ToolMissing", "checkpoint", "compiled_first",
           "device_index", "latency_of", "measurement_from_times", "nested", "percentile", "reported_latency", "warn"]
