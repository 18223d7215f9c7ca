"""Running a vendor tool from a plugin: an argument list (never a shell string), here or on a board over ssh.

The plugin's job runs in a child process of its own session (the host's runner starts it so); a tool started
here joins that process group, so cancelling the job ends the tool and everything it spawned with it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from ..core.jobs import Log, checkpoint
from .api import PluginError, ToolMissing


@dataclass(frozen=True)
class Remote:
    """A board reached with OpenSSH's ``ssh`` (key-based; BatchMode, so it never waits for a password)."""

    host: str
    user: str = ""
    port: int = 22
    key: str = ""  # an identity file; default: ssh's own
    options: tuple[str, ...] = ()  # more ``-o Key=Value`` settings (e.g. a known_hosts file for tests)

    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def argv(self, args: Sequence[str]) -> list[str]:
        """The local argument list running ``args`` on the board. ssh hands the remote side one command line,
        which its shell splits again, so each argument is quoted for it (shlex.quote), never joined raw."""
        cmd = ["ssh", "-p", str(self.port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        for o in self.options:
            cmd += ["-o", o]
        if self.key:
            cmd += ["-i", self.key]
        return cmd + [self.target, "--", " ".join(shlex.quote(a) for a in args)]


@dataclass(frozen=True)
class ToolResult:
    args: tuple[str, ...]
    returncode: int
    output: str  # stdout and stderr together, as the tool printed them


def remote_from_options(options: dict) -> Remote | None:
    """The board named by a request's options host, user, port, key and known_hosts; None to run here."""
    if not options.get("host"):
        return None
    try:
        port = int(options.get("port") or 22)
    except ValueError:
        raise PluginError(f"the port option {options['port']!r} is not a number.") from None
    known = options.get("known_hosts", "")
    return Remote(options["host"], options.get("user", ""), port, options.get("key", ""),
                  (f"UserKnownHostsFile={known}",) if known else ())


def tool_path(options: dict, name: str) -> str:
    """A tool's name, or its path in the folder the option tool_dir names (a tool not on the board's PATH)."""
    return f"{options['tool_dir'].rstrip('/')}/{name}" if options.get("tool_dir") else name


def copy(remote: Remote, src: str, dst: str, upload: bool = True) -> Generator[Log, None, ToolResult]:
    """Copy a file to the board (or back from it, ``upload=False``) with OpenSSH's scp, with ssh's connection
    settings; a job like :func:`run_tool`."""
    cmd = ["scp", "-q", "-P", str(remote.port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    for o in remote.options:
        cmd += ["-o", o]
    if remote.key:
        cmd += ["-i", remote.key]
    return (yield from run_tool(cmd + ([src, f"{remote.target}:{dst}"] if upload else [f"{remote.target}:{src}", dst])))


def find_tool(name: str, how: str, remote: Remote | None = None) -> str:
    """The path of executable ``name`` (on PATH here; on a board, ``name`` itself after ``command -v`` finds
    it there). Raises :class:`ToolMissing` with ``how`` (where to get it) when it is absent."""
    if remote is None:
        path = shutil.which(name)
        if path is None:
            raise ToolMissing(name, how)
        return path
    r = subprocess.run(remote.argv(["sh", "-c", f"command -v {shlex.quote(name)}"]), capture_output=True,
                       text=True, timeout=30)
    if r.returncode == 255:  # ssh's own failure: the board, not the tool
        raise PluginError(f"cannot reach {remote.target} over ssh: {r.stderr.strip() or 'ssh failed'}")
    if r.returncode != 0 or not r.stdout.strip():
        raise ToolMissing(f"{name} on {remote.target}", how)
    return name


def run_tool(args: Sequence[str], *, cwd: str | None = None, env: dict | None = None, remote: Remote | None = None,
             check: bool = True) -> Generator[Log, None, ToolResult]:
    """Run a tool, yielding each output line as a :class:`Log` as it comes, and return its :class:`ToolResult`.
    ``check``: a non-zero exit raises :class:`PluginError` with the last lines of output."""
    args = [str(a) for a in args]
    argv = remote.argv(args) if remote else args
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1)
    except FileNotFoundError as e:
        raise ToolMissing(argv[0], "Install it or put it on PATH.") from e
    lines = []
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            yield Log(line)
            checkpoint()
        rc = proc.wait()
    finally:
        if proc.poll() is None:  # closed or cancelled midway: the tool must not outlive the job
            proc.kill()
            proc.wait()
        proc.stdout.close()
    result = ToolResult(tuple(args), rc, "\n".join(lines))
    if check and rc != 0:
        tail = "\n".join(lines[-15:])
        where = f" on {remote.target}" if remote else ""
        raise PluginError(f"{os.path.basename(args[0])}{where} failed (exit code {rc}):\n{tail}")
    return result
