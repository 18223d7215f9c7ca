"""The plugin test kit: contract tests every plugin passes, first-party or not.

In a plugin's tests, subclass :class:`PluginContract` (the subclass's name starts with ``Test`` so pytest
collects it) and say where the plugin is::

    from mbexplorer.devices.testkit import PluginContract

    class TestMyPlugin(PluginContract):
        plugin_dir = Path(__file__).parent.parent          # the folder holding plugin.toml
        sample_logs = [Path(__file__).parent / "data" / "run.log"]   # with the from_log capability
        log_batch_size = None                               # when the sample logs do not say it

Everything runs through the host, as the app runs it: discovery from the manifest, then each call in a child
process. The profile test uses the first available device (skipped, with the devices' reasons, when there is
none) and a small MobileNet it builds, unless ``model_path`` names one. Nothing is registered globally: the
fixtures are the class's own.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..core.jobs import run
from . import host
from .api import API_VERSION, MEANINGS, PRECISIONS, Artifact, CompileRequest, Device, LogRequest, ProfileRequest
from .conformance import measurement_problems
from .host import PluginInfo, compile_job, devices_job, discover, logs_job, model_sha256, profile_job
from .manifest import MANIFEST, api_major, read_manifest
from .store import Store


class PluginContract:
    plugin_dir: str | os.PathLike | None = None
    sample_logs: tuple = ()  # log files the vendor tool wrote, for the from_log capability
    log_batch_size: int | None = None
    model_path: str | os.PathLike | None = None  # the model to profile; default: a small MobileNet v1
    batch_sizes: tuple[int, ...] = (1, 2)
    iterations: int = 3
    warmup: int = 1
    options: dict = {}  # plugin options for compile and profile
    devices_timeout: float = 120.0

    # --- fixtures -----------------------------------------------------------------------------------------

    @pytest.fixture
    def plugin(self) -> PluginInfo:
        if self.plugin_dir is None:
            pytest.fail(f"{type(self).__name__} must set plugin_dir (the folder holding {MANIFEST})")
        infos = discover([Path(self.plugin_dir)], entry_points=False)
        if len(infos) != 1:
            pytest.fail(f"{self.plugin_dir} must hold exactly one plugin; found {[i.name for i in infos]}")
        return infos[0]

    @pytest.fixture
    def available(self, plugin: PluginInfo) -> PluginInfo:
        failed = host._failed.get((plugin.name, plugin.location))
        if failed:  # the plugin's own fault, found by an earlier test: a failure, never a skip
            pytest.fail(f"{plugin.name} is unavailable: {failed}")
        if not plugin.available:
            pytest.skip(f"{plugin.name} is unavailable here: {plugin.reason}")
        return plugin

    @pytest.fixture
    def device(self, available: PluginInfo) -> Device:
        devices = run(devices_job(available, timeout=self.devices_timeout))
        usable = [d for d in devices if d.available]
        if not usable:
            why = "; ".join(f"{d.id}: {d.reason}" for d in devices) or "it lists no device"
            pytest.skip(f"no device of {available.name} is available here ({why})")
        return usable[0]

    @pytest.fixture
    def model(self, tmp_path: Path) -> Path:
        if self.model_path is not None:
            return Path(self.model_path)
        from ..core.builder import build
        from ..core.onnx_write import save_model

        path = tmp_path / "mobilenet_v1_0.25_128.onnx"
        save_model(build("mobilenet_v1", 0.25, 128).model, path)
        return path

    @pytest.fixture
    def store(self, tmp_path: Path):
        with Store(tmp_path / "runs.sqlite") as s:
            yield s

    # --- the contract -------------------------------------------------------------------------------------

    def test_manifest_is_valid(self):
        manifest = read_manifest(Path(self.plugin_dir))
        assert api_major(manifest.api) == API_VERSION[0], f"written for API {manifest.api}, not {API_VERSION[0]}.x"
        assert "profile" in manifest.capabilities or "from_log" in manifest.capabilities, \
            "a device plugin profiles, or at least reads the logs of a tool that does"

    def test_discovered_without_errors(self, plugin: PluginInfo):
        assert plugin.manifest is not None, plugin.reason
        # unavailable is allowed only for a reason the user can act on (a runtime not installed), said plainly
        assert plugin.available or len(plugin.reason) > 10

    def test_devices_through_the_host(self, available: PluginInfo):
        devices = run(devices_job(available, timeout=self.devices_timeout))
        assert isinstance(devices, list)
        for d in devices:
            assert isinstance(d, Device) and d.id and d.name
            assert set(d.precisions) <= set(PRECISIONS)
            assert d.available or d.reason, f"{d.id} is unavailable without a reason"

    def test_compile_gives_an_artifact(self, available: PluginInfo, device: Device, model: Path, tmp_path: Path):
        if "compile" not in available.manifest.capabilities:
            pytest.skip("the plugin does not compile")
        work = tmp_path / "work"
        work.mkdir()
        request = CompileRequest(str(model), device.id, device.precisions[0], self.batch_sizes, str(work),
                                 options=tuple(self.options.items()))
        artifact = run(compile_job(available, request))
        assert isinstance(artifact, Artifact)
        assert Path(artifact.path).exists(), f"compile's artifact {artifact.path} does not exist"
        assert artifact.tool

    def test_profile_gives_valid_measurements(self, available: PluginInfo, device: Device, model: Path,
                                              store: Store, tmp_path: Path):
        if "profile" not in available.manifest.capabilities:
            pytest.skip("the plugin does not profile")
        sha = model_sha256(model)
        request = ProfileRequest(str(model), device.id, device.precisions[0], self.batch_sizes, self.iterations,
                                 self.warmup, str(tmp_path), model_sha256=sha, options=tuple(self.options.items()))
        streamed = []
        result = run(profile_job(available, request, store, device.name),
                     lambda e: streamed.append(e) if hasattr(e, "throughput") else None)
        assert result.status == "done", result.error
        assert [m.batch_size for m in result.measurements] == list(self.batch_sizes)
        assert len(streamed) == len(self.batch_sizes)
        for m in result.measurements:
            check_measurement(m, available.name, device.id)
            assert m.model_sha256 == sha
            assert m.precision == device.precisions[0]
        assert store.run(result.id).measurements == result.measurements

    def test_from_log(self, plugin: PluginInfo, store: Store):
        if plugin.manifest is None or "from_log" not in plugin.manifest.capabilities:
            pytest.skip("the plugin does not read logs")
        if not self.sample_logs:
            pytest.fail("the plugin declares from_log: set sample_logs to logs its tool wrote")
        if not plugin.available:
            pytest.skip(f"{plugin.name} is unavailable here: {plugin.reason}")
        request = LogRequest(tuple(str(p) for p in self.sample_logs), "0" * 64, self.log_batch_size)
        result = run(logs_job(plugin, request, store, model_path="model.onnx"))
        assert result.status == "done" and result.source == "log", result.error
        assert result.measurements
        for m in result.measurements:
            check_measurement(m, plugin.name, m.device)


def check_measurement(m, plugin: str, device: str) -> None:
    """Assert that a measurement is valid and says where it came from (for a plugin's own tests too)."""
    assert not measurement_problems(m), measurement_problems(m)
    assert m.plugin == plugin, f"measurement.plugin is {m.plugin!r}, not the plugin's name {plugin!r}"
    assert m.device == device
    assert m.meaning in MEANINGS
    assert m.tool and m.tool_version, "tool and tool_version say what measured it"
    if m.raw_ms:
        assert len(m.raw_ms) == m.iterations, "raw_ms holds one time per timed iteration"
