"""Shared fixtures for the first-party device plugins' tests (plugins/): each plugin loaded as the host loads it,
fake vendor tools on PATH for the hardware we cannot have, and a real sshd on 127.0.0.1 standing in for a board.

Add fixtures here; do not remove or change another plugin's.
"""

from __future__ import annotations

import getpass
import importlib.util
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mbexplorer.core.jobs import run

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
FAKES = Path(__file__).resolve().parent / "fakes"
LOGS = Path(__file__).resolve().parent / "logs"


@pytest.fixture
def load_plugin():
    """``load_plugin("trtexec")``: the object plugins/trtexec's entry makes, imported from its file."""

    def load(name: str):
        path = PLUGINS / name / f"mbx_{name}.py"
        spec = importlib.util.spec_from_file_location(f"mbx_{name}_under_test", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # as an import would: dataclasses look their module up
        spec.loader.exec_module(module)
        return module.Plugin()

    return load


@pytest.fixture
def drive():
    """``drive(job)`` runs a plugin job to its end: returns (result, events)."""

    def go(job):
        events = []
        result = run(job, events.append)
        return result, events

    return go


@pytest.fixture
def small_model(model_file) -> Path:
    """A MobileNet v1 0.25 at 128 px with a dynamic batch dimension (input "input")."""
    return model_file("mobilenet_v1", 0.25, 128)


class FakeTools:
    """The fake vendor tools copied into a folder of their own (on PATH), with what each call asked."""

    def __init__(self, folder: Path):
        self.bin = folder

    def calls(self, tool: str) -> list[list[str]]:
        """The argument lists (without the program) the fake ``tool`` was called with, in order."""
        log = self.bin / "calls.jsonl"
        if not log.is_file():
            return []
        entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        return [e["argv"][1:] for e in entries if e.get("tool", Path(e["argv"][0]).name) == tool]


def install_fakes(folder: Path) -> FakeTools:
    """Copy tests/plugins/fakes into ``folder`` and make the tools executable (the repository keeps them as plain
    files)."""
    shutil.copytree(FAKES, folder, dirs_exist_ok=True)
    for tool in folder.iterdir():
        if tool.is_file() and not tool.suffix:
            tool.chmod(tool.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return FakeTools(folder)


@pytest.fixture
def fakes(tmp_path, monkeypatch) -> FakeTools:
    """The fake tools on PATH (and the fake ais_bench package on PYTHONPATH, for ``python3 -m ais_bench``)."""
    tools = install_fakes(tmp_path / "fakebin")
    monkeypatch.setenv("PATH", f"{tools.bin}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(tools.bin / "pylib"),
                                                                  os.environ.get("PYTHONPATH", "")) if p))
    for name in [k for k in os.environ if k.startswith("FAKE_")]:
        monkeypatch.delenv(name)
    return tools


@pytest.fixture
def no_tools(tmp_path, monkeypatch) -> Path:
    """PATH holds python3 and nothing else: every vendor tool is absent."""
    folder = tmp_path / "emptybin"
    folder.mkdir()
    (folder / "python3").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(folder))
    return folder


# --- a board over ssh: a real sshd on 127.0.0.1 ----------------------------------------------------------------

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Board:
    """An sshd on 127.0.0.1 that lets the current user in with a key of its own; the plugin options reaching it."""

    def __init__(self, folder: Path, port: int, key: Path, known_hosts: Path):
        self.folder, self.port, self.key, self.known_hosts = folder, port, key, known_hosts

    def options(self, **more: str) -> tuple[tuple[str, str], ...]:
        base = {"host": "127.0.0.1", "port": str(self.port), "user": getpass.getuser(), "key": str(self.key),
                "known_hosts": str(self.known_hosts), "remote_dir": str(self.folder / "remote")}
        return tuple({**base, **more}.items())


@pytest.fixture
def board_tools(tmp_path) -> FakeTools:
    """The fake tools in a folder of the board's own, on no PATH: a plugin reaches them with the tool_dir option."""
    return install_fakes(tmp_path / "board-tools")


@pytest.fixture(scope="session")
def board(tmp_path_factory):
    """A real OpenSSH server for the session (apt-get install openssh-server). Skipped when sshd is not installed,
    unless CI is set: then the test fails, so CI never passes without the ssh path tested."""
    if not (os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("ssh-keygen") and shutil.which("scp")):
        msg = (f"{SSHD} (or ssh, ssh-keygen, scp) is not installed: apt-get install openssh-server "
               f"openssh-client")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    folder = tmp_path_factory.mktemp("board")
    os.chmod(folder, 0o755)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True,
                       capture_output=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    (folder / "authorized_keys").chmod(0o600)
    port = _free_port()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {(folder / 'host_key.pub').read_text()}")
    config = folder / "sshd_config"
    config.write_text("\n".join([
        "ListenAddress 127.0.0.1", f"HostKey {folder / 'host_key'}", f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", "PubkeyAuthentication yes",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "StrictModes no",  # the key files live in a temporary folder
        "PermitRootLogin prohibit-password",  # CI containers run as root; keys only
        "Subsystem sftp internal-sftp",  # scp speaks SFTP since OpenSSH 9
        "LogLevel ERROR", ""]))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation folder, as root
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config), "-p", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            pytest.fail(f"sshd did not start: {proc.stdout.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("sshd did not listen within 10 s")
            time.sleep(0.05)
    try:
        yield Board(folder, port, folder / "client_key", folder / "known_hosts")
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
