"""`mbexplorer plugins`, `profile` and `runs` with the sample plugins (tests/devices/sample_plugins), a data
folder in tmp_path, and the issue's JSON shapes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mbexplorer.devices import host

SAMPLES = Path(__file__).resolve().parents[1] / "devices" / "sample_plugins"
LOGS = SAMPLES / "sleeper" / "logs"


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("MBEXPLORER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MBEXPLORER_PLUGIN_PATH", str(SAMPLES))
    monkeypatch.setattr(host, "_failed", {})
    monkeypatch.setattr(host, "_checked", set())
    # the first-party plugins have tests of their own; here only the samples are listed (and quickly)
    monkeypatch.setattr(host, "built_in_folder", lambda: tmp_path / "no-built-in-plugins")


@pytest.fixture
def model(model_file):
    return model_file("mobilenet_v1", 0.25, 128)


def test_plugins_lists_availability_reasons_and_devices(mbx):
    r = mbx("plugins", "--json")
    assert r.returncode == 0, r.stderr
    plugins = {p["name"]: p for p in json.loads(r.stdout)["plugins"]}
    sleeper = plugins["sleeper"]
    assert sleeper["available"] and sleeper["origin"] == "MBEXPLORER_PLUGIN_PATH" and sleeper["version"] == "0.1.0"
    assert [(d["id"], d["available"]) for d in sleeper["devices"]] == [("cpu", True), ("npu:0", False)]
    assert "no NPU" in sleeper["devices"][1]["reason"]
    # listing ran the conformance check: the broken ones are unavailable, with the reason
    assert not plugins["nonconformant"]["available"]
    assert "has no compile() method" in plugins["nonconformant"]["reason"]
    assert "cannot be imported (on purpose)" in plugins["broken_import"]["reason"]
    table = mbx("plugins")
    assert table.returncode == 0
    assert "sleeper 0.1.0 (MBEXPLORER_PLUGIN_PATH): available" in table.stdout
    assert "npu:0" in table.stdout and "unavailable: no NPU" in table.stdout


def test_profile_prints_a_row_per_batch_size_and_stores_the_run(mbx, model):
    r = mbx("profile", model, "--plugin", "sleeper", "--batch-sizes", "1,2", "--iterations", "4", "--warmup", "1",
            "--option", "delay_ms=1")
    assert r.returncode == 0, r.stderr
    rows = [ln.split() for ln in r.stdout.splitlines() if ln.split() and ln.split()[0].isdigit()]
    assert [row[0] for row in rows] == ["1", "2"] and all(row[-1] == "4" for row in rows)
    assert "run 1 done: 2 measurements (end to end on the host)" in r.stdout

    j = mbx("profile", model, "--plugin", "sleeper", "--device", "cpu", "--batch-sizes", "1,4",
            "--iterations", "3", "--json")
    assert j.returncode == 0, j.stderr
    out = json.loads(j.stdout)
    assert out["plugin"] == "sleeper" and out["device"] == "cpu" and out["run"] == 2
    assert out["meaning"] == "host_end_to_end" and out["status"] == "done"
    for m, bs in zip(out["measurements"], (1, 4)):
        assert m["batch_size"] == bs and m["iterations"] == 3
        assert set(m["latency_ms"]) == {"mean", "p50", "p90", "p99"}
        assert m["throughput"] == pytest.approx(bs * 1000 / m["latency_ms"]["mean"])
    assert out["settings"]["artifact"]["tool"] == "sleeper 0.1"  # compiled first

    runs = json.loads(mbx("runs", "--json").stdout)["runs"]
    assert [(r["run"], r["status"], r["points"]) for r in runs] == [(2, "done", 2), (1, "done", 2)]
    shown = json.loads(mbx("runs", "show", "2", "--json").stdout)
    assert shown["measurements"] == out["measurements"]
    table = mbx("runs", "compare", "1", "2")
    assert table.returncode == 0 and "run 1" in table.stdout and "x)" in table.stdout
    assert mbx("runs", "delete", "1").stdout.startswith("deleted run 1")
    assert [r["run"] for r in json.loads(mbx("runs", "--json").stdout)["runs"]] == [2]


def test_profile_from_logs(mbx, model):
    r = mbx("profile", model, "--plugin", "sleeper", "--from-log", LOGS / "bs4.log", LOGS / "no_batch.log",
            "--batch-size", "8", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["device"] == "npu:0" and out["precision"] == "int8" and out["status"] == "done"
    assert [m["batch_size"] for m in out["measurements"]] == [4, 8]
    assert [m["iterations"] for m in out["measurements"]] == [20, 10]
    listed = json.loads(mbx("runs", "--json").stdout)["runs"]
    assert listed[0]["source"] == "log"
    bad = mbx("profile", model, "--plugin", "sleeper", "--from-log", LOGS / "no_batch.log")
    assert bad.returncode == 1 and "does not say its batch size; give --batch-size" in bad.stderr


@pytest.mark.parametrize("args, message", [
    (["--plugin", "nope"], "there is no plugin named 'nope' (known: "),
    (["--plugin", "nonconformant"], "has no compile() method"),
    (["--plugin", "sleeper", "--device", "tpu"], "has no device 'tpu' (its devices: cpu, npu:0)"),
    (["--plugin", "sleeper", "--device", "npu:0"], "the device npu:0 is unavailable: no NPU"),
    (["--plugin", "sleeper", "--precision", "int8"], "no available device for int8"),
    (["--plugin", "sleeper", "--batch-size", "4"], "--batch-size goes with --from-log"),
    (["--plugin", "raiser"], "RuntimeError: boom from the raiser plugin (run 1 is recorded as failed"),
    (["--plugin", "crasher"], "crashed (signal 11, SIGSEGV)"),
])
def test_profile_errors_are_one_line(mbx, model, args, message):
    r = mbx("profile", model, *args)
    assert r.returncode == 1
    assert message in r.stderr and r.stderr.count("mbexplorer: error:") == 1 and "Traceback" not in r.stderr


def test_bad_arguments(mbx, model, tmp_path):
    assert mbx("profile", model, "--plugin", "sleeper", "--batch-sizes", "1,0").returncode == 2
    assert mbx("profile", model, "--plugin", "sleeper", "--option", "novalue").returncode == 2
    r = mbx("profile", tmp_path / "missing.onnx", "--plugin", "sleeper")
    assert r.returncode == 1 and "missing.onnx does not exist" in r.stderr
    r = mbx("runs", "show", "7")
    assert r.returncode == 1 and "there is no run 7" in r.stderr


@pytest.mark.shared
def test_a_tflite_model_is_imported_first(mbx, shared_dir, tmp_path):
    src = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    r = mbx("profile", src, "--plugin", "sleeper", "--iterations", "2", "--warmup", "0", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model_path"] == str(src.resolve())  # the file the user gave, not the imported ONNX
    onnx_path = Path(out["settings"]["model_path"])
    assert onnx_path.suffix == ".onnx" and onnx_path.is_relative_to(tmp_path / "home")
    assert src.stat().st_size == 525598  # never written over


def test_ctrl_c_cancels_and_records_the_finished_points(tmp_path, model):
    env = {**os.environ, "MBEXPLORER_HOME": str(tmp_path / "home"), "MBEXPLORER_PLUGIN_PATH": str(SAMPLES)}
    proc = subprocess.Popen([sys.executable, "-m", "mbexplorer.cli", "profile", str(model), "--plugin", "sleeper",
                             "--batch-sizes", "1,2", "--iterations", "2", "--option", "pause_after_s=60",
                             "--verbose"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:
            if line.split()[:1] == ["1"]:  # the row of batch size 1: that point is stored
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    plugin_pid = int(next(ln for ln in err.splitlines() if "sleeper pid" in ln).split()[-1])
    assert proc.returncode == 130, err
    assert "cancelled: run 1 is recorded with 1 point" in err
    with pytest.raises(ProcessLookupError):
        os.kill(plugin_pid, 0)  # the plugin's process group ended before the command returned
    from mbexplorer.devices.store import Store

    with Store(tmp_path / "home" / "runs.sqlite") as s:
        (r,) = s.runs()
    assert r.status == "cancelled" and [m.batch_size for m in r.measurements] == [1]
