"""The plugin test kit's contract, run on the sample plugin (as a first-party plugin's tests run it), and the kit
failing a plugin that breaks the contract."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from devices_helpers import SAMPLES

from mbexplorer.devices.testkit import PluginContract

LOGS = SAMPLES / "sleeper" / "logs"


class TestSleeperContract(PluginContract):
    plugin_dir = SAMPLES / "sleeper"
    sample_logs = (LOGS / "bs4.log",)
    model_path = LOGS / "bs4.log"  # the sleeper never reads its model: any file saves building one
    options = {"delay_ms": "0.5"}


class TestNoBatchSizeLog(PluginContract):
    plugin_dir = SAMPLES / "sleeper"
    sample_logs = (LOGS / "no_batch.log",)
    log_batch_size = 8

    # only the log contract here; the rest ran above
    test_devices_through_the_host = test_compile_gives_an_artifact = test_profile_gives_valid_measurements = None


def test_the_kit_fails_a_plugin_that_breaks_the_contract(tmp_path):
    test = tmp_path / "test_broken.py"
    test.write_text(textwrap.dedent(f"""
        from pathlib import Path
        from mbexplorer.devices.testkit import PluginContract

        class TestBroken(PluginContract):
            plugin_dir = Path({str(SAMPLES / "nonconformant")!r})
    """))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    summary = out.stdout.strip().splitlines()[-1]
    # manifest and discovery pass; devices() returns dicts: the devices test fails and the tests needing a
    # device error; it does not read logs
    for part in ("1 failed", "2 passed", "1 skipped", "2 errors"):
        assert part in summary, out.stdout[-3000:]
    assert "conformance check" in out.stdout


def test_a_percentile_the_tool_does_not_report_is_none_never_a_made_up_number():
    """hrt_model_exec prints only an average: its p50/p90/p99 are None, which conformance accepts, while a
    NaN, a negative or a decreasing percentile is refused."""
    from dataclasses import replace

    from mbexplorer.devices import END_TO_END, Latency, Measurement
    from mbexplorer.devices.conformance import measurement_problems

    m = Measurement(plugin="p", device="d", tool="t", tool_version="1", model_sha256="", precision="int8",
                    batch_size=1, throughput=100.0, latency_ms=Latency(10.0, None, None, None), iterations=5,
                    warmup=0, meaning=END_TO_END, timestamp=1.0)
    assert measurement_problems(m) == []
    assert measurement_problems(replace(m, latency_ms=Latency(10.0, 9.0, None, 12.0))) == []
    assert measurement_problems(replace(m, latency_ms=Latency(10.0, float("nan"), None, None)))
    assert measurement_problems(replace(m, latency_ms=Latency(10.0, 12.0, None, 9.0)))
    assert Measurement.from_dict(m.to_dict()) == m
