"""Profiling runs and their measurements, in SQLite under the app's data folder.

Each measurement is committed as it arrives (WAL journal), so a run whose process dies midway, even by
``kill -9``, keeps every finished point; such a run, still marked "running" with its recorder gone, reads as
"interrupted". Several processes may share the file (the app, the CLI): SQLite serialises their writes.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import MbxError
from .api import Measurement

SCHEMA_VERSION = 1
STATUSES = ("running", "done", "failed", "cancelled", "interrupted")
SOURCES = ("measured", "log")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plugin TEXT NOT NULL, device TEXT NOT NULL, device_name TEXT NOT NULL,
    model_path TEXT NOT NULL, model_sha256 TEXT NOT NULL, precision TEXT NOT NULL,
    status TEXT NOT NULL, started REAL NOT NULL, finished REAL, error TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL, settings TEXT NOT NULL,
    host TEXT NOT NULL, pid INTEGER NOT NULL  -- the recording process, to tell a live run from an interrupted one
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    batch_size INTEGER NOT NULL, throughput REAL NOT NULL, timestamp REAL NOT NULL,
    data TEXT NOT NULL  -- the whole Measurement as JSON (Measurement.to_dict)
);
CREATE INDEX IF NOT EXISTS measurements_run ON measurements(run_id);
"""


def data_home() -> Path:
    """The app's data folder: MBEXPLORER_HOME if set, else the platform's per-user data folder."""
    env = os.environ.get("MBEXPLORER_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "mbexplorer"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "mbexplorer"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mbexplorer"


@dataclass
class Run:
    id: int
    plugin: str
    device: str
    device_name: str
    model_path: str
    model_sha256: str
    precision: str
    status: str  # one of STATUSES
    started: float
    finished: float | None
    error: str
    source: str  # "measured" or "log"
    settings: dict
    measurements: list[Measurement] = field(default_factory=list)


class Store:
    """The runs database. Safe to share between threads (one connection behind a lock)."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else data_home() / "runs.sqlite"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread off: the GUI records on a worker thread and lists on the main one; the lock
            # below serialises them
            self._db = sqlite3.connect(str(self.path), timeout=10, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise MbxError(f"cannot open the runs database {self.path}: {exc}. Check the folder is writable "
                           f"(or set MBEXPLORER_HOME to another folder).") from exc
        self._lock = threading.Lock()
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise MbxError(f"{self.path} is not a runs database mbexplorer can read ({exc}). Move it aside; a "
                           f"new one is made in its place.") from exc

    def _open(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives the app's crash
        db.execute("PRAGMA foreign_keys=ON")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise MbxError(f"{self.path} was written by a newer mbexplorer (schema {version}; this one reads "
                           f"{SCHEMA_VERSION}). Update mbexplorer, or set MBEXPLORER_HOME to another folder.")
        with db:
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- recording ---------------------------------------------------------------------------------------

    def new_run(self, plugin: str, device: str, device_name: str, model_path: str, model_sha256: str,
                precision: str, settings: dict, source: str = "measured") -> int:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}")
        with self._lock, self._db:
            cur = self._db.execute(
                "INSERT INTO runs (plugin, device, device_name, model_path, model_sha256, precision, status, "
                "started, source, settings, host, pid) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                (plugin, device, device_name, str(model_path), model_sha256, precision, time.time(), source,
                 json.dumps(settings), socket.gethostname(), os.getpid()))
            return int(cur.lastrowid)

    def add(self, run_id: int, m: Measurement) -> None:
        """Store one measurement, committed at once (what a crash must not lose)."""
        with self._lock, self._db:
            self._db.execute("INSERT INTO measurements (run_id, batch_size, throughput, timestamp, data) "
                             "VALUES (?, ?, ?, ?, ?)",
                             (run_id, m.batch_size, m.throughput, m.timestamp, json.dumps(m.to_dict())))

    def update(self, run_id: int, *, device: str | None = None, device_name: str | None = None,
               precision: str | None = None) -> None:
        """Fill in what a run learns from its first measurement (a log names its device and precision)."""
        fields = {k: v for k, v in (("device", device), ("device_name", device_name), ("precision", precision))
                  if v}
        if fields:
            with self._lock, self._db:
                self._db.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                                 (*fields.values(), run_id))

    def finish(self, run_id: int, status: str, error: str = "") -> None:
        if status not in STATUSES or status == "running":
            raise ValueError(f"a run finishes as one of {STATUSES[1:]}")
        with self._lock, self._db:
            self._db.execute("UPDATE runs SET status = ?, finished = ?, error = ? WHERE id = ?",
                             (status, time.time(), error, run_id))

    # --- reading -----------------------------------------------------------------------------------------

    def runs(self) -> list[Run]:
        """Every run, newest first, with its measurements."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM runs ORDER BY started DESC, id DESC").fetchall()
            points = self._db.execute("SELECT run_id, data FROM measurements ORDER BY id").fetchall()
        by_run: dict[int, list[Measurement]] = {}
        for run_id, data in points:
            by_run.setdefault(run_id, []).append(Measurement.from_dict(json.loads(data)))
        return [_run(row, by_run.get(row[0], [])) for row in rows]

    def run(self, run_id: int) -> Run:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
            points = self._db.execute("SELECT data FROM measurements WHERE run_id = ? ORDER BY id",
                                      (run_id,)).fetchall()
        if row is None:
            raise MbxError(f"there is no run {run_id} in {self.path}; `mbexplorer runs` lists the stored runs.")
        return _run(row, [Measurement.from_dict(json.loads(d)) for (d,) in points])

    def delete(self, run_id: int) -> None:
        self.run(run_id)  # a clear error for an unknown id
        with self._lock, self._db:
            self._db.execute("DELETE FROM measurements WHERE run_id = ?", (run_id,))
            self._db.execute("DELETE FROM runs WHERE id = ?", (run_id,))


_COLUMNS = ("id, plugin, device, device_name, model_path, model_sha256, precision, status, started, finished, "
            "error, source, settings, host, pid")


def _run(row: tuple, measurements: list[Measurement]) -> Run:
    *fields, settings, host, pid = row
    run = Run(*fields, settings=json.loads(settings), measurements=measurements)
    if run.status == "running" and not _recording(host, pid):
        run.status = "interrupted"
    return run


def _recording(host: str, pid: int) -> bool:
    """Whether the process that recorded a run may still be at it. Another machine's (a shared home folder)
    cannot be checked: it counts as alive."""
    if host != socket.gethostname():
        return True
    return _alive(pid)


def _alive(pid: int) -> bool:
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now holds that id: ours is gone
        return False
    try:  # a killed process nobody has reaped yet (a zombie) records nothing any more
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
