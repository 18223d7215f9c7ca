"""The child process a plugin call runs in (``python -m mbexplorer.devices.child``).

Protocol: one JSON request on stdin; JSON lines on stdout, one per event::

    {"type": "progress", "fraction": 0.5, "message": "..."}
    {"type": "log", "message": "...", "level": "info"}
    {"type": "measurement", "data": {...Measurement.to_dict()...}}
    {"type": "result", "data": ...}            # last line of a call that succeeded
    {"type": "error", "kind": "plugin" | "conformance" | "exception", "message": "...", "traceback": "..."}

The plugin, and every library and tool under it, may print: file descriptor 1 is pointed at stderr before the
plugin is imported and the protocol is written to a private copy of the original stdout.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict

from .api import Artifact, CompileRequest, LogRequest, Manifest, Measurement, PluginError, ProfileRequest
from .conformance import devices_problems, measurement_problems, object_problems

CALLS = {"devices": None, "compile": CompileRequest, "profile": ProfileRequest, "parse_logs": LogRequest}


# --- request and result codecs (the host uses them too) ------------------------------------------------------

def encode_request(request: object) -> dict:
    return asdict(request)


def decode_request(call: str, data: dict) -> object:
    cls = CALLS[call]
    d = dict(data)
    for key in ("batch_sizes", "paths"):
        if key in d:
            d[key] = tuple(d[key])
    if "options" in d:
        d["options"] = tuple(tuple(kv) for kv in d["options"])
    if d.get("artifact") is not None:
        d["artifact"] = decode_artifact(d["artifact"])
    return cls(**d)


def decode_artifact(d: dict) -> Artifact:
    return Artifact(**{**d, "batch_sizes": tuple(d["batch_sizes"])})


class Conformance(PluginError):
    """The plugin's object is not what the API asks for."""


def _make(manifest: Manifest, folder: str | None) -> object:
    if folder:
        sys.path.insert(0, folder)
    module_name, _, attr = manifest.entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise Conformance(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise Conformance(f"its entry {manifest.entry} names nothing: {module_name} has no {attr}")
    if not callable(factory):
        raise Conformance(f"its entry {manifest.entry} is not a class or function")
    try:
        return factory()
    except PluginError:
        raise
    except Exception as exc:
        raise Conformance(f"{manifest.entry}() failed: {type(exc).__name__}: {exc}") from exc


def _check(plugin: object, manifest: Manifest) -> list:
    """The conformance check; returns what devices() gave."""
    problems = object_problems(plugin, manifest)
    if problems:
        raise Conformance("; ".join(problems))
    devices = plugin.devices()
    problems = devices_problems(devices)
    if problems:
        raise Conformance("; ".join(problems))
    return devices


def _event(event: object) -> dict:
    from ..core.jobs import Log, Progress

    if isinstance(event, Measurement):
        problems = measurement_problems(event)
        if problems:
            raise PluginError(f"the plugin yielded a measurement that is not valid: {'; '.join(problems)}")
        return {"type": "measurement", "data": event.to_dict()}
    if isinstance(event, Progress):
        return {"type": "progress", "fraction": float(event.fraction), "message": str(event.message)}
    if isinstance(event, Log):
        return {"type": "log", "message": str(event.message), "level": event.level}
    raise PluginError(f"the plugin yielded a {type(event).__name__}; a job yields Progress, Log or Measurement")


def serve(request: dict, emit) -> None:
    """Carry out one request, emitting its events; the last is a result or an error."""
    manifest = Manifest(**{k: tuple(v) if isinstance(v, list) else v for k, v in request["manifest"].items()})
    call = request["call"]
    try:
        plugin = _make(manifest, request.get("folder"))
        devices = _check(plugin, manifest) if request.get("check") else None
        if call == "devices":
            if devices is None:
                devices = plugin.devices()
                problems = devices_problems(devices)
                if problems:
                    raise Conformance("; ".join(problems))
            emit({"type": "result", "data": [d.to_dict() for d in devices]})
            return
        job = getattr(plugin, call)(decode_request(call, request["request"]))
        try:
            while True:
                try:
                    event = next(job)
                except StopIteration as stop:
                    result = stop.value
                    break
                emit(_event(event))
        finally:
            job.close()
        if call == "compile":
            if not isinstance(result, Artifact):
                raise PluginError(f"compile returned {type(result).__name__}, not an Artifact")
            emit({"type": "result", "data": asdict(result)})
        else:
            emit({"type": "result", "data": None})
    except Conformance as exc:
        emit({"type": "error", "kind": "conformance", "message": str(exc), "traceback": traceback.format_exc()})
    except PluginError as exc:
        emit({"type": "error", "kind": "plugin", "message": str(exc), "traceback": traceback.format_exc()})
    except Exception as exc:
        emit({"type": "error", "kind": "exception", "message": f"{type(exc).__name__}: {exc}",
              "traceback": traceback.format_exc()})


def _watch_parent() -> None:
    """End this process group when the host dies (``kill -9`` of the app gives it no chance to cancel): the
    child is moved to init's care, so its parent id changes."""
    if os.name != "posix":
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def main() -> int:
    # The protocol gets a private copy of stdout; fd 1 (Python's prints, C libraries, tools that inherit it)
    # goes to stderr, which the host keeps as the job's log.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Cancel sends SIGTERM: unwind (the plugin's finally blocks run) rather than die on the spot
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    _watch_parent()

    def emit(event: dict) -> None:
        protocol.write(json.dumps(event) + "\n")
        protocol.flush()

    serve(json.loads(sys.stdin.read()), emit)
    protocol.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
