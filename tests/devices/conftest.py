"""Device-layer fixtures: the sample plugins, an isolated data folder, and a clean session state per test."""

from __future__ import annotations

import pytest
from devices_helpers import SAMPLES

from mbexplorer.devices import host


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test sees the user's data folder or plugin path, nor another test's conformance results."""
    monkeypatch.setenv("MBEXPLORER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MBEXPLORER_PLUGIN_PATH", raising=False)
    monkeypatch.setattr(host, "_failed", {})
    monkeypatch.setattr(host, "_checked", set())


@pytest.fixture
def samples() -> dict[str, host.PluginInfo]:
    return {p.name: p for p in host.discover([SAMPLES], entry_points=False)}
