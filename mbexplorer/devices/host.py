"""Finding plugins and running their calls in a child process.

Discovery reads manifests only: a plugin's code is first imported in the child, on first use, where a
conformance check runs before the call; a plugin that fails it is unavailable for the rest of the session.
Every call is a generator job (:mod:`mbexplorer.core.jobs`): it yields the child's progress, log lines and
measurements as they come, and cancelling it (the driver's cancel test, or closing the generator) ends the
child's whole process group within about a second.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..core.errors import Cancelled
from ..core.jobs import Job, Log, Progress, checkpoint
from .api import (
    API_VERSION,
    CompileRequest,
    Device,
    LogRequest,
    Manifest,
    Measurement,
    PluginError,
    ProfileRequest,
)
from .child import decode_artifact, encode_request
from .conformance import measurement_problems
from .manifest import MANIFEST, api_major, parse_manifest, read_manifest
from .store import Store, data_home

ENTRY_POINT_GROUP = "mbexplorer.plugins"
BUILT_IN, USER, ENV, ENTRY_POINT = "built-in", "user folder", "MBEXPLORER_PLUGIN_PATH", "entry point"
POLL_S = 0.1  # how often a waiting job looks at its cancel test
TERM_GRACE_S = 1.0  # after SIGTERM, how long the plugin may clean up before its process group is killed
_LOG_TAIL = 200  # lines of the child's stderr kept for an error message

# plugins that failed their conformance check in this session: (name, location) -> reason
_failed: dict[tuple[str, str], str] = {}
# plugins that passed it: the check runs once per session
_checked: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class PluginInfo:
    name: str
    manifest: Manifest | None
    origin: str  # BUILT_IN, USER, ENV or ENTRY_POINT
    location: str  # the plugin's folder (for an entry point: the folder holding its manifest)
    available: bool
    reason: str = ""  # when unavailable: why, and what to do


# --- discovery ----------------------------------------------------------------------------------------------

def built_in_folder() -> Path:
    """The first-party plugins: inside the installed package (a wheel), else the checkout's top-level plugins/."""
    package = Path(__file__).resolve().parents[1]
    inside = package / "plugins"
    return inside if inside.is_dir() else package.parent / "plugins"


def user_folder() -> Path:
    return data_home() / "plugins"


def _env_folders() -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get("MBEXPLORER_PLUGIN_PATH", "").split(os.pathsep) if p]


def plugin_paths() -> list[Path]:
    """The folders searched, in order of precedence: built-in, the user folder, MBEXPLORER_PLUGIN_PATH."""
    return [built_in_folder(), user_folder(), *_env_folders()]


def _origin(folder: Path) -> str:
    if folder == built_in_folder():
        return BUILT_IN
    if folder == user_folder():
        return USER
    return ENV


def _plugin_folders(folder: Path) -> list[Path]:
    """A plugin folder itself, or the plugin folders inside a folder of them."""
    if (folder / MANIFEST).is_file():
        return [folder]
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / MANIFEST).is_file())


def _checked_info(manifest: Manifest, origin: str, location: str, folder: Path | None) -> PluginInfo:
    """A PluginInfo with the checks that need no import: API version, entry module present, requirements."""

    def unavailable(reason: str) -> PluginInfo:
        return PluginInfo(manifest.name, manifest, origin, location, False, reason)

    major = api_major(manifest.api)
    if major != API_VERSION[0]:
        return unavailable(f"written for plugin API {manifest.api}; this mbexplorer has API "
                           f"{API_VERSION[0]}.{API_VERSION[1]}. Install a version of the plugin for API "
                           f"{API_VERSION[0]}.x.")
    minor = manifest.api.strip().split(".")[1:2]
    if minor and minor[0].isdigit() and int(minor[0]) > API_VERSION[1]:
        return unavailable(f"needs plugin API {manifest.api}; this mbexplorer has API "
                           f"{API_VERSION[0]}.{API_VERSION[1]}. Update mbexplorer.")
    top = manifest.entry.partition(":")[0].split(".")[0]
    if folder is not None:
        if not ((folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()):
            return unavailable(f"its entry module {top} is not in {folder} (expected {top}.py).")
    elif importlib.util.find_spec(top) is None:  # a top-level name: looked up, not imported
        return unavailable(f"its entry module {top} is not installed; reinstall the plugin's package.")
    for requirement in manifest.requires:
        # Only the top-level name: finding a submodule's spec imports its parent package, and discovery imports
        # nothing.
        if importlib.util.find_spec(requirement.split(".")[0]) is None:
            where = f" (see {manifest.homepage})" if manifest.homepage else ""
            return unavailable(f"needs the Python module {requirement}, which is not installed: "
                               f"pip install {requirement.split('.')[0]}{where}.")
    failed = _failed.get((manifest.name, location))
    if failed:
        return unavailable(failed)
    return PluginInfo(manifest.name, manifest, origin, location, True)


def _from_folders(folders: Iterable[tuple[Path, str]]) -> list[PluginInfo]:
    found = []
    for folder, origin in folders:
        for plugin_dir in _plugin_folders(folder):
            try:
                manifest = read_manifest(plugin_dir / MANIFEST)
            except PluginError as exc:
                found.append(PluginInfo(plugin_dir.name, None, origin, str(plugin_dir), False, str(exc)))
                continue
            found.append(_checked_info(manifest, origin, str(plugin_dir), plugin_dir))
    return found


def _from_entry_points() -> list[PluginInfo]:
    """Plugins installed as distributions: entry point ``name = "module:attr"`` in the group, with the manifest
    among the distribution's files (read as a file: the module is not imported)."""
    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        where = f"the distribution {dist.metadata['Name'] if dist else '?'}"
        files = [f for f in (dist.files or []) if f.name == MANIFEST] if dist else []
        top = ep.value.partition(":")[0].split(".")[0]
        # the manifest in the entry module's package; else (a single-file module) the one naming this plugin
        mine = [f for f in files if f.parts[0] == top] or [f for f in files if _names(f, ep.name)]
        if not mine:
            found.append(PluginInfo(ep.name, None, ENTRY_POINT, where, False,
                                    f"{where} declares the plugin {ep.name} but ships no {MANIFEST} in its {top} "
                                    f"package; reinstall it, or ask its author to include the manifest."))
            continue
        path = Path(mine[0].locate())
        try:
            manifest = parse_manifest(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            found.append(PluginInfo(ep.name, None, ENTRY_POINT, str(path), False, f"cannot read {path}: {exc}"))
            continue
        except PluginError as exc:
            found.append(PluginInfo(ep.name, None, ENTRY_POINT, str(path.parent), False, str(exc)))
            continue
        if manifest.name != ep.name:
            found.append(PluginInfo(ep.name, manifest, ENTRY_POINT, str(path.parent), False,
                                    f"its entry point is named {ep.name} but its manifest {path} names "
                                    f"{manifest.name}; they must agree."))
            continue
        # the entry point is what the distribution installed: it wins over the manifest's entry
        found.append(_checked_info(replace(manifest, entry=ep.value), ENTRY_POINT, str(path.parent), None))
    return found


def _names(file, name: str) -> bool:
    try:
        return parse_manifest(Path(file.locate()).read_text(encoding="utf-8"), str(file)).name == name
    except (OSError, UnicodeDecodeError, PluginError):
        return False


def discover(paths: Iterable[Path] | None = None, entry_points: bool | None = None) -> list[PluginInfo]:
    """Every plugin found, sorted by name: the folders of :func:`plugin_paths` (or ``paths``) and, by default
    when ``paths`` is not given, the entry-point group. Reads manifests; imports nothing. Where two plugins
    share a name the first available one (in the order searched) is used and the other is unavailable."""
    if entry_points is None:
        entry_points = paths is None
    folders, seen_folders = [], set()
    for p in plugin_paths() if paths is None else paths:
        p = Path(p)
        key = os.path.realpath(p)
        if key not in seen_folders:  # the same folder listed twice (a path in MBEXPLORER_PLUGIN_PATH too)
            seen_folders.add(key)
            folders.append((p, _origin(p)))
    found = _from_folders(folders) + (_from_entry_points() if entry_points else [])
    used: dict[str, PluginInfo] = {}
    out = []
    for info in found:
        if info.available and info.name in used:
            first = used[info.name]
            info = replace(info, available=False,
                           reason=f"another plugin named {info.name} is used instead, from {first.location} "
                                  f"({first.origin}); remove or rename one of them.")
        elif info.available:
            used[info.name] = info
        out.append(info)
    return sorted(out, key=lambda i: i.name)


def find(name: str, plugins: list[PluginInfo] | None = None) -> PluginInfo:
    """The available plugin called ``name``. Raises PluginError naming the known plugins, or saying why it is
    unavailable."""
    plugins = discover() if plugins is None else plugins
    matches = [p for p in plugins if p.name == name]
    if not matches:
        known = ", ".join(sorted({p.name for p in plugins})) or "none"
        raise PluginError(f"there is no plugin named {name!r} (known: {known}). `mbexplorer plugins` lists them; "
                          f"MBEXPLORER_PLUGIN_PATH adds plugin folders.")
    for info in matches:
        failed = _failed.get((info.name, info.location))
        if info.available and not failed:
            return info
    info = matches[0]
    reason = _failed.get((info.name, info.location)) or info.reason
    raise PluginError(f"the plugin {name} is unavailable: {reason}")


def _require(info: PluginInfo, capability: str, what: str) -> None:
    if info.manifest is None or capability not in info.manifest.capabilities:
        caps = ", ".join(info.manifest.capabilities) if info.manifest else "nothing"
        raise PluginError(f"the plugin {info.name} cannot {what}: its manifest declares {caps}.")


# --- running a call in a child process --------------------------------------------------------------------

def _spawn() -> subprocess.Popen:
    package_parent = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    # so the child finds this mbexplorer even when it runs from a checkout that is not installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH", "")) if p)
    kwargs: dict = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True  # its own process group: cancel ends it and all it started
    else:
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    return subprocess.Popen([sys.executable, "-m", "mbexplorer.devices.child"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, **kwargs)


def _end(proc: subprocess.Popen) -> None:
    """End the child and everything in its process group: SIGTERM (its finally blocks run), then SIGKILL."""
    if os.name != "posix":
        if proc.poll() is None:
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True)
        proc.wait()
        return
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(TERM_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    # What is left of the group (a tool that ignored SIGTERM, a grandchild of a child that exited): while any
    # member lives, the group id cannot be reused, so this never reaches another process.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _pump(stream, kind: str, events: queue.Queue) -> None:
    for raw in iter(stream.readline, b""):
        events.put((kind, raw.decode("utf-8", errors="replace").rstrip("\r\n")))
    events.put((kind, None))


def _signal_name(number: int) -> str:
    try:
        return f"signal {number}, {signal.Signals(number).name}"
    except ValueError:
        return f"signal {number}"


def _call(info: PluginInfo, call: str, request: object, timeout: float | None = None) -> Job:
    """Run one plugin call in a child process: yields its Progress, Log (the protocol's and each line the child
    wrote to stderr) and Measurement events; returns the result's data. Raises PluginError."""
    if info.manifest is None or not info.available:
        raise PluginError(f"the plugin {info.name} is unavailable: {info.reason}")
    key = (info.name, info.location)
    if key in _failed:
        raise PluginError(f"the plugin {info.name} is unavailable: {_failed[key]}")
    check = key not in _checked
    payload = {"manifest": asdict(info.manifest), "call": call, "check": check,
               "folder": None if info.origin == ENTRY_POINT else info.location,
               "request": None if request is None else encode_request(request)}
    events: queue.Queue = queue.Queue()
    tail: deque[str] = deque(maxlen=_LOG_TAIL)
    proc = _spawn()
    readers = [threading.Thread(target=_pump, args=(proc.stdout, "out", events), daemon=True),
               threading.Thread(target=_pump, args=(proc.stderr, "err", events), daemon=True)]
    for t in readers:
        t.start()
    result, got_result, error, last_err = None, False, None, ""
    try:
        try:
            proc.stdin.write(json.dumps(payload).encode())
            proc.stdin.close()
        except OSError:  # the child died at once; its stderr says why
            pass
        deadline = None if timeout is None else time.monotonic() + timeout
        protocol_open = True
        while protocol_open:
            try:
                kind, line = events.get(timeout=POLL_S)
            except queue.Empty:
                checkpoint()
                if deadline is not None and time.monotonic() > deadline:
                    raise PluginError(f"the plugin {info.name} did not answer within {timeout:g} s ({call}); "
                                      f"it was stopped.") from None
                continue
            if line is None:
                protocol_open = kind != "out"  # the child's stderr may stay open in a tool it left behind
                continue
            if kind == "err":
                tail.append(line)
                last_err = line if line.strip() else last_err
                yield Log(line)
                continue
            try:
                event = json.loads(line)
                etype = event["type"]
            except (ValueError, KeyError, TypeError):
                tail.append(line)
                yield Log(line)
                continue
            if etype == "progress":
                yield Progress(max(0.0, min(1.0, float(event["fraction"]))), event.get("message", ""))
            elif etype == "log":
                tail.append(event["message"])
                yield Log(event["message"], event.get("level", "info"))
            elif etype == "measurement":
                m = Measurement.from_dict(event["data"])
                problems = measurement_problems(m)
                if problems:
                    raise PluginError(f"the plugin {info.name} gave a measurement that is not valid: "
                                      f"{'; '.join(problems)}")
                yield m
            elif etype == "result":
                result, got_result = event["data"], True
            elif etype == "error":
                error = event
        try:
            # the protocol is closed: the child is exiting (a plugin's leftover thread may hold it up; once it
            # has answered, that is not worth waiting for)
            rc = proc.wait(2 if got_result or error else 5)
        except subprocess.TimeoutExpired:
            rc = None
    finally:
        _end(proc)
        until = time.monotonic() + 0.5  # a tool that escaped the process group may keep stderr open: not waited
        for t in readers:
            t.join(max(0.0, until - time.monotonic()))
    while not events.empty():  # the last stderr lines, read while the child ended
        kind, line = events.get()
        if kind == "err" and line is not None:
            tail.append(line)
            last_err = line if line.strip() else last_err
    if error is not None:
        if error.get("kind") == "conformance":
            reason = f"it failed the conformance check: {error['message']}"
            _failed[key] = reason
            exc = _plugin_error(f"the plugin {info.name} is unavailable: {reason}", error, tail)
            exc.reason = reason  # what a listing shows as the plugin's reason
            raise exc
        _checked.add(key)
        if error.get("kind") == "plugin":
            raise _plugin_error(error["message"], error, tail)
        raise _plugin_error(f"the plugin {info.name} failed ({call}): {error['message']}", error, tail)
    if not got_result:
        how = (f"crashed ({_signal_name(-rc)})" if rc is not None and rc < 0
               else f"exited with code {rc} before finishing" if rc is not None else "stopped answering")
        raise _plugin_error(f"the plugin {info.name} {how} during {call}" + (f": {last_err}" if last_err else ""),
                            {}, tail)
    _checked.add(key)
    return result


def _plugin_error(message: str, error: dict, tail: Iterable[str]) -> PluginError:
    exc = PluginError(message)
    exc.traceback = error.get("traceback", "")
    exc.log = "\n".join(tail)
    return exc


def error_text(exc: BaseException) -> str:
    """What a failed run records: the message, the plugin's traceback and the last of its log."""
    parts = [str(exc)]
    if getattr(exc, "traceback", ""):
        parts.append(exc.traceback.rstrip())
    if getattr(exc, "log", ""):
        parts.append("log:\n" + exc.log)
    return "\n\n".join(parts)


# --- the jobs -------------------------------------------------------------------------------------------------

def model_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def devices_job(info: PluginInfo, timeout: float | None = 60.0) -> Job:
    """The plugin's devices (a job returning list[Device]); ``timeout``: a plugin that takes longer fails."""
    data = yield from _call(info, "devices", None, timeout=timeout)
    return [Device.from_dict(d) for d in data]


def compile_job(info: PluginInfo, request: CompileRequest) -> Job:
    """Compile for a device (a job returning the Artifact)."""
    _require(info, "compile", "compile")
    data = yield from _call(info, "compile", request)
    return decode_artifact(data)


def profile_job(info: PluginInfo, request: ProfileRequest, store: Store | None = None, device_name: str = "") -> Job:
    """Profile on a device: yields Progress, Log and each Measurement (stored as it arrives); returns the Run,
    whose final status (done, failed, cancelled) is recorded whatever happens."""
    _require(info, "profile", "profile")
    settings = {"batch_sizes": list(request.batch_sizes), "iterations": request.iterations,
                "warmup": request.warmup, "options": dict(request.options), "model_path": request.model_path,
                "artifact": asdict(request.artifact) if request.artifact else None}
    return (yield from _recorded(info, "profile", request, store, settings, "measured", device_name,
                                 request.source_path or request.model_path, request.model_sha256))


def logs_job(info: PluginInfo, request: LogRequest, store: Store | None = None, model_path: str = "",
             device_name: str = "") -> Job:
    """Measurements from logs the vendor tool wrote elsewhere, stored as a run (source "log") like a live one."""
    _require(info, "from_log", "read logs")
    for p in request.paths:
        if not Path(p).is_file():
            raise PluginError(f"the log {p} does not exist or is not a file.")
    request = replace(request, paths=tuple(str(Path(p).resolve()) for p in request.paths))
    settings = {"logs": list(request.paths), "batch_size": request.batch_size}
    return (yield from _recorded(info, "parse_logs", request, store, settings, "log", device_name, model_path,
                                 request.model_sha256))


def _recorded(info: PluginInfo, call: str, request, store: Store | None, settings: dict, source: str,
              device_name: str, model_path: str, sha: str) -> Job:
    own = store is None
    store = Store() if own else store
    try:
        run_id = store.new_run(info.name, request.device, device_name, model_path, sha, request.precision,
                               settings, source)
        status, error, first = "failed", "", None
        job = _call(info, call, request)
        try:
            while True:
                try:
                    event = next(job)
                except StopIteration:
                    break
                if isinstance(event, Measurement):
                    event = replace(event, model_sha256=event.model_sha256 or sha,
                                    device_name=event.device_name or device_name)
                    store.add(run_id, event)
                    if first is None:
                        first = event
                        # a log says which device and precision it measured; the request may not have
                        store.update(run_id, device=event.device, device_name=event.device_name,
                                     precision=event.precision)
                yield event
            if first is None:
                raise PluginError(f"the plugin {info.name} finished without a measurement"
                                  + (" (the logs hold none it recognises)." if source == "log" else "."))
            status = "done"
        except (Cancelled, GeneratorExit, KeyboardInterrupt):
            status = "cancelled"
            raise
        except BaseException as exc:
            error = error_text(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
            raise
        finally:
            job.close()
            store.finish(run_id, status, error)
        return store.run(run_id)
    finally:
        if own:
            store.close()
