"""What a plugin must satisfy: the object its entry makes, and every measurement it yields. Checked by the host
(in the child, on a plugin's first use; on each measurement as it arrives) and by the plugin test kit."""

from __future__ import annotations

import math

from .api import KINDS, MEANINGS, PRECISIONS, Device, Manifest, Measurement

# the method each declared capability needs (node_timings comes with profile: it has no method of its own)
METHODS = {"compile": "compile", "profile": "profile", "from_log": "parse_logs"}


def object_problems(plugin: object, manifest: Manifest) -> list[str]:
    """What the entry's object lacks: devices(), and a method for each declared capability."""
    problems = []
    if not callable(getattr(plugin, "devices", None)):
        problems.append("it has no devices() method")
    for capability in manifest.capabilities:
        method = METHODS.get(capability)
        if method and not callable(getattr(plugin, method, None)):
            problems.append(f"it declares '{capability}' but has no {method}() method")
    return problems


def devices_problems(devices: object) -> list[str]:
    """What is wrong with what devices() returned."""
    if not isinstance(devices, list | tuple):
        return [f"devices() returned {type(devices).__name__}, not a list of Device"]
    problems, ids = [], set()
    for d in devices:
        if not isinstance(d, Device):
            problems.append(f"devices() returned a {type(d).__name__}, not a mbexplorer.devices.Device")
            continue
        if not d.id or d.id in ids:
            problems.append(f"device id {d.id!r} is empty or not unique")
        ids.add(d.id)
        if d.kind not in KINDS:
            problems.append(f"device {d.id}: kind {d.kind!r} is not one of {', '.join(KINDS)}")
        bad = [p for p in d.precisions if p not in PRECISIONS]
        if bad:
            problems.append(f"device {d.id}: precisions {bad} are not among {', '.join(PRECISIONS)}")
        if not d.available and not d.reason:
            problems.append(f"device {d.id} is unavailable without a reason")
    return problems


def measurement_problems(m: object) -> list[str]:
    """What is wrong with a yielded measurement: types, units and ranges (a figure must be a real one)."""
    if not isinstance(m, Measurement):
        return [f"yielded a {type(m).__name__}, not a Measurement"]
    problems = []

    def positive(name: str, v: object) -> None:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            problems.append(f"{name} must be a positive finite number, not {v!r}")

    if isinstance(m.batch_size, bool) or not isinstance(m.batch_size, int) or m.batch_size < 1:
        problems.append(f"batch_size must be a whole number >= 1, not {m.batch_size!r}")
    positive("throughput (images/s)", m.throughput)
    lat = m.latency_ms
    positive("latency_ms.mean", getattr(lat, "mean", None))
    reported = []  # percentiles the tool gave; None says it gave none
    for key in ("p50", "p90", "p99"):
        v = getattr(lat, key, None)
        if v is not None:
            positive(f"latency_ms.{key}", v)
            reported.append(v)
    if not problems and reported != sorted(reported):
        problems.append(f"latency percentiles must not decrease: p50 {lat.p50}, p90 {lat.p90}, p99 {lat.p99}")
    if isinstance(m.iterations, bool) or not isinstance(m.iterations, int) or m.iterations < 1:
        problems.append(f"iterations must be a whole number >= 1, not {m.iterations!r}")
    if isinstance(m.warmup, bool) or not isinstance(m.warmup, int) or m.warmup < 0:
        problems.append(f"warmup must be a whole number >= 0, not {m.warmup!r}")
    if m.meaning not in MEANINGS:
        problems.append(f"meaning {m.meaning!r} is not one of {', '.join(MEANINGS)}")
    if m.precision not in PRECISIONS:
        problems.append(f"precision {m.precision!r} is not one of {', '.join(PRECISIONS)}")
    for name in ("plugin", "device", "tool"):
        if not isinstance(getattr(m, name), str) or not getattr(m, name):
            problems.append(f"{name} must be a non-empty string")
    positive("timestamp", m.timestamp)
    for t in m.raw_ms:
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
            problems.append(f"raw_ms holds {t!r}, not a time in milliseconds")
            break
    return problems
