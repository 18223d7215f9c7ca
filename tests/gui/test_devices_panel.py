"""The Devices tab: stored runs drawn point for point, published references kept apart from measurements, exports,
a live profile through the host streaming into the chart, cancel, and plugins that fail saying why.

Runs are recorded here through the Store API from real timings: onnxruntime inferences of a small MobileNetV1,
timed in the test (``measurement_from_times``), or the host's sample plugins run for real.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from mbexplorer.devices import DEVICE_COMPUTE, END_TO_END, host, measurement_from_times
from mbexplorer.devices.store import Store
from mbexplorer.gui.devices_chart import tip_text, x_of
from mbexplorer.gui.devices_panel import DevicesPanel, parse_options

SAMPLES = Path(__file__).resolve().parents[1] / "devices" / "sample_plugins"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A data folder of this test; no built-in plugin (the sample plugins are given where wanted); no other
    test's conformance results."""
    monkeypatch.setenv("MBEXPLORER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MBEXPLORER_PLUGIN_PATH", raising=False)
    monkeypatch.setattr(host, "_failed", {})
    monkeypatch.setattr(host, "_checked", set())
    return tmp_path / "home"


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    from mbexplorer.core.builder import build

    path = tmp_path_factory.mktemp("model") / "mobilenet_v1_0.25_96.onnx"
    onnx.save(build("mobilenet_v1", 0.25, 96).model, str(path))
    return path


def shown(v: float) -> str:
    """A figure as the chart prints it: 4 significant digits, whole numbers from 10,000 (a real CPU run of a
    small model crosses it)."""
    return f"{v:,.4g}" if v < 1e4 else f"{v:,.0f}"


def record(store: Store, model: Path, threads: int, batches=(1, 2, 4)) -> int:
    """A run of real onnxruntime timings on the CPU, stored as the host stores a plugin's."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sha = host.model_sha256(model)
    run_id = store.new_run("onnxruntime", "cpu", f"CPU, {threads} thread(s)", str(model), sha, "fp32",
                           {"batch_sizes": list(batches), "iterations": 8, "warmup": 1})
    for bs in batches:
        x = np.random.default_rng(bs).random((bs, 3, 96, 96), np.float32)
        sess.run(None, {name: x})
        times = []
        for _ in range(8):
            t0 = time.perf_counter()
            sess.run(None, {name: x})
            times.append((time.perf_counter() - t0) * 1000.0)
        store.add(run_id, measurement_from_times(
            times, batch_size=bs, plugin="onnxruntime", device="cpu", tool="onnxruntime",
            tool_version=ort.__version__, model_sha256=sha, precision="fp32", warmup=1, meaning=END_TO_END,
            timestamp=time.time(), device_name=f"CPU, {threads} thread(s)"))
    store.finish(run_id, "done")
    return run_id


@pytest.fixture
def stored(home, small_model):
    """Two real runs in the store (1 and 2 threads)."""
    store = Store()
    ids = [record(store, small_model, 1), record(store, small_model, 2)]
    yield store, ids
    store.close()


def make_panel(qtbot, plugins=(), **kw) -> DevicesPanel:
    panel = DevicesPanel(plugin_paths=[SAMPLES / p for p in plugins], **kw)
    qtbot.addWidget(panel)
    panel.resize(900, 640)
    with qtbot.waitSignal(panel.settled, timeout=30_000):
        panel.show()
    return panel


def shown_points(panel, key):
    d = panel.chart._drawn[key]
    return d.tp_dots.points(), d.lat_dots.points()


def test_lists_runs_and_draws_one_point_per_measurement_exactly(qtbot, stored):
    store, ids = stored
    panel = make_panel(qtbot)
    panel.chart.set_log(False)  # linear: y is the value itself
    runs = {r.id: r for r in store.runs()}
    assert [panel.run_list.topLevelItem(i).data(0, Qt.UserRole + 1) for i in range(2)] == ids[::-1]  # newest first
    assert panel.ticked_runs() == set(ids)  # shown at start
    for run_id in ids:
        tp, lat = shown_points(panel, f"run:{run_id}")
        ms = runs[run_id].measurements
        assert len(tp) == len(lat) == len(ms) == 3
        for point, m in zip(tp, ms):
            assert point.pos().x() == math.log2(m.batch_size) == x_of(m.batch_size)
            assert point.pos().y() == m.throughput
            tip = point.data()
            assert f"batch {m.batch_size}" in tip and f"{shown(m.throughput)} img/s" in tip
            assert f"p50 {m.latency_ms.p50:,.4g} ms" in tip and f"p99 {m.latency_ms.p99:,.4g} ms" in tip
        for point, m in zip(lat, ms):
            assert (point.pos().x(), point.pos().y()) == (math.log2(m.batch_size), m.latency_ms.p50)
    # on a log scale the y is log10 of the value, the ticks saying the values
    panel.chart.set_log(True)
    tp, _ = shown_points(panel, f"run:{ids[0]}")
    assert [p.pos().y() for p in tp] == [math.log10(m.throughput) for m in runs[ids[0]].measurements]
    # untick: the series goes
    panel.set_run_shown(ids[0], False)
    assert f"run:{ids[0]}" not in panel.chart._drawn and f"run:{ids[1]}" in panel.chart._drawn


def test_hovering_a_point_shows_its_numbers(qtbot, stored):
    store, ids = stored
    panel = make_panel(qtbot)
    panel.set_run_shown(ids[0], False)
    panel.chart.set_log(False)
    m = store.run(ids[1]).measurements[1]
    qtbot.wait(50)
    d = panel.chart._drawn[f"run:{ids[1]}"]
    vb = panel.chart.plot.plotItem.vb
    scene_pos = vb.mapViewToScene(d.tp_dots.points()[1].pos())
    view = panel.chart.plot
    qtbot.mouseMove(view.viewport(), view.mapFromScene(scene_pos))
    qtbot.waitUntil(lambda: bool(vb.toolTip()), timeout=3000)
    assert vb.toolTip() == tip_text(panel.chart.series_by_key(f"run:{ids[1]}"), panel.chart.series_by_key(
        f"run:{ids[1]}").points[1])
    assert f"{shown(m.throughput)} img/s" in vb.toolTip() and f"p90 {m.latency_ms.p90:,.4g} ms" in vb.toolTip()


def test_published_references_are_kept_apart_from_measurements(qtbot, stored):
    _store, ids = stored
    panel = make_panel(qtbot)
    assert not panel.chart.note.isVisible()  # one meaning shown: nothing to warn about
    panel.set_reference_shown("Ascend 310", True)
    panel.set_reference_shown("V100 TensorRT FP32", True)
    chart = panel.chart
    ref = chart.series_by_key("ref:Ascend 310")
    assert ref.published and ref.meaning == DEVICE_COMPUTE
    assert [(p.batch, p.throughput) for p in ref.points] == [(1, 4550.44), (4, 6736.0), (8, 7116.32), (16, 6938.0),
                                                             (32, 6176.84), (64, 5899.52)]
    legend = chart.legend_texts()
    assert any("Ascend 310 — published (device compute)" in t for t in legend)
    assert any(f"#{ids[0]} " in t and t.endswith("(end to end)") for t in legend)
    assert any("V100 TensorRT FP32 — published (meaning not stated)" in t for t in legend)
    assert chart.note.isVisible() and "device compute" in chart.note.text() and "end to end" in chart.note.text()
    # drawn differently: published dashed with hollow symbols; meaning by symbol shape
    pub, meas = chart._drawn["ref:Ascend 310"], chart._drawn[f"run:{ids[0]}"]
    assert pub.tp_line.opts["pen"].style() == Qt.DashLine and meas.tp_line.opts["pen"].style() == Qt.SolidLine
    assert (pub.tp_line.opts["symbol"], meas.tp_line.opts["symbol"]) == ("s", "o")
    # a latency-only page draws latency only (no throughput derived from it)
    v100 = chart._drawn["ref:V100 TensorRT FP32"]
    assert not v100.tp_line.isVisible() and len(v100.lat_dots.points()) == 3
    assert "as published" in v100.lat_dots.points()[0].data()
    colours = {chart.color(s.key) for s in chart.series}
    assert len(colours) == len(chart.series)  # every shown series its own colour


def test_exports_csv_equal_to_the_measurements_and_png_svg(qtbot, stored, tmp_path):
    store, ids = stored
    panel = make_panel(qtbot)
    panel.set_reference_shown("NVIDIA T4", True)
    assert panel.export(tmp_path / "chart.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "chart.csv").read_text(encoding="utf-8"))))
    measured = [r for r in rows if r["kind"] == "measured"]
    want = [m for run_id in sorted(ids) for m in store.run(run_id).measurements]
    assert len(measured) == len(want) == 6
    for row, m in zip(measured, want):
        assert int(row["batch_size"]) == m.batch_size and row["meaning"] == END_TO_END
        assert float(row["throughput_img_s"]) == m.throughput
        assert (float(row["latency_p50_ms"]), float(row["latency_p90_ms"]), float(row["latency_p99_ms"]),
                float(row["latency_mean_ms"])) == (m.latency_ms.p50, m.latency_ms.p90, m.latency_ms.p99,
                                                  m.latency_ms.mean)
    t4 = [r for r in rows if r["kind"] == "published"]
    assert [(int(r["batch_size"]), float(r["throughput_img_s"])) for r in t4][-1] == (64, 6657.6)
    assert all(r["latency_p50_ms"] == "" and "seeds/003" in r["source"] for r in t4)
    assert panel.export(tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert panel.export(tmp_path / "chart.svg")
    svg = (tmp_path / "chart.svg").read_text(encoding="utf-8")
    assert "<svg" in svg and "batch size" in svg
    # a folder that is not there: said, nothing written, the tab goes on
    with qtbot.waitSignal(panel.errorRaised) as blocker:
        assert not panel.export(tmp_path / "missing" / "chart.csv")
    assert "Cannot write" in blocker.args[1] and panel.error.isVisible()
    assert not (tmp_path / "missing").exists()


def test_deleting_runs_asks_first(qtbot, stored):
    store, ids = stored
    panel = make_panel(qtbot)
    item = next(panel.run_list.topLevelItem(i) for i in range(2)
                if panel.run_list.topLevelItem(i).data(0, Qt.UserRole + 1) == ids[0])
    item.setSelected(True)
    box = panel.delete_selected()
    box.button(QMessageBox.Cancel).click()
    assert len(store.runs()) == 2
    box = panel.delete_selected()
    box.button(QMessageBox.Yes).click()
    assert [r.id for r in store.runs()] == [ids[1]]
    assert panel.run_list.topLevelItemCount() == 1 and f"run:{ids[0]}" not in panel.chart._drawn


def test_a_live_profile_adds_points_as_they_arrive_and_cancel_leaves_the_tab_usable(qtbot, small_model):
    panel = make_panel(qtbot, plugins=("sleeper",))
    assert panel.choose_device("sleeper", "cpu")
    panel.add_model_file(small_model)
    panel.set_batch_sizes((1, 2, 4))
    panel.iterations.setValue(3)
    panel.warmup.setValue(0)
    panel.options.setText("delay_ms=2 pause_after_s=0.6")
    job = panel.start()
    assert job is not None and not panel.profile_button.isEnabled() and panel.cancel_button.isEnabled()

    def live_points():
        panel.chart.flush()
        s = panel.chart.series_by_key(f"live:{END_TO_END}")
        return [] if s is None else s.points

    qtbot.waitUntil(lambda: len(live_points()) == 1, timeout=20_000)
    assert job.state == "running"  # drawn while the job still runs, not at its end
    first = live_points()[0]
    assert first.batch == 1 and shown_points(panel, f"live:{END_TO_END}")[0][0].pos().x() == 0.0
    qtbot.waitUntil(lambda: len(live_points()) == 2, timeout=20_000)
    with qtbot.waitSignal(panel.runFinished, timeout=20_000):
        panel.cancel()
    # the cancelled run keeps what it measured, shown; the tab runs again
    run = panel.store.runs()[0]
    assert run.status == "cancelled" and [m.batch_size for m in run.measurements][:2] == [1, 2]
    assert panel.ticked_runs() == {run.id} and f"run:{run.id}" in panel.chart._drawn
    assert len(shown_points(panel, f"run:{run.id}")[0]) == len(run.measurements)
    assert "live:" not in " ".join(s.key for s in panel.chart.series)
    assert panel.profile_button.isEnabled() and not panel.cancel_button.isEnabled()
    # Compile alone, then Profile: the profile runs the compiled artifact
    panel.options.setText("delay_ms=1")
    with qtbot.waitSignal(panel.runFinished, timeout=20_000) as compiled:
        panel.start(do_compile=True, do_profile=False)
    artifact = compiled.args[0]
    assert Path(artifact.path).is_file() and artifact.batch_sizes == (1, 2, 4)
    with qtbot.waitSignal(panel.runFinished, timeout=20_000) as done:
        panel.start()
    run = done.args[0]
    assert run.status == "done" and [m.batch_size for m in run.measurements] == [1, 2, 4]
    assert run.settings["artifact"]["path"] == artifact.path
    assert "batch 4:" in panel.log.toPlainText() and "compiled: " in panel.log.toPlainText()


def test_failing_plugins_say_why_and_the_tab_stays_alive(qtbot, small_model):
    panel = make_panel(qtbot, plugins=("raiser", "broken_import"))
    tops = {panel.device_tree.topLevelItem(i).text(0): panel.device_tree.topLevelItem(i)
            for i in range(panel.device_tree.topLevelItemCount())}
    broken = tops["broken_import"]
    assert broken.text(1).startswith("unavailable: ") and broken.childCount() == 0
    assert broken.toolTip(1) and broken.toolTip(1) in broken.text(1)
    assert panel.choose_device("raiser", "cpu")
    panel.add_model_file(small_model)
    with qtbot.waitSignal(panel.errorRaised, timeout=20_000) as err:
        panel.start()
    assert "boom from the raiser plugin" in err.args[1]
    qtbot.waitUntil(lambda: panel.job is None, timeout=10_000)
    assert panel.error.isVisible() and "boom" in panel.error.toolTip()
    assert panel.store.runs()[0].status == "failed" and panel.profile_button.isEnabled()
    assert "about to fail" in panel.log.toPlainText()  # the plugin's own log line


def test_missing_inputs_are_said_not_run(qtbot):
    panel = make_panel(qtbot)
    with qtbot.waitSignal(panel.errorRaised) as err:
        assert panel.start() is None
    assert "device" in err.args[1]
    assert parse_options("soc_version=Ascend310P3, host=10.0.0.2") == (("soc_version", "Ascend310P3"),
                                                                       ("host", "10.0.0.2"))
    with pytest.raises(Exception, match="key=value"):
        parse_options("oops")


def test_the_window_has_the_tab_and_the_cli_screenshots_it(qtbot, stored, tmp_path, monkeypatch, qapp):
    from mbexplorer.gui.app import run_gui

    monkeypatch.setattr(host, "built_in_folder", lambda: tmp_path / "no-plugins")
    monkeypatch.setenv("MBEXPLORER_PLUGIN_PATH", str(SAMPLES / "sleeper"))
    out = tmp_path / "devices.png"
    assert run_gui(screenshot=out, tab="devices") == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.shared
def test_the_default_target_runs_the_open_model_here(qtbot, shared_dir):
    """Before the user picks, the target is an available device whose plugin takes the open model's own file and
    needs no vendor tool or board: LiteRT for a .tflite, onnxruntime for anything else (never a remote board)."""
    from mbexplorer.core.analysis import build_job, open_job, run
    from mbexplorer.core.state import State

    state = State()
    state.set_analysis(run(open_job(shared_dir / "models" / "mobilenet_v1_0.25_224_quant.tflite")))
    panel = DevicesPanel(state=state)  # the built-in plugins
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.settled, timeout=60_000):
        panel.show()
    qtbot.waitUntil(lambda: panel.chosen() is not None and panel.chosen()[0].name == "litert", timeout=60_000)
    state.set_analysis(run(build_job("mobilenet_v1", 0.25, 96)))
    panel.refresh_plugins()
    qtbot.waitUntil(lambda: panel.chosen() is not None and panel.chosen()[0].name == "onnxruntime", timeout=30_000)


def test_logs_from_elsewhere_become_a_stored_run(qtbot):
    """Import logs…: the plugin parses its tool's log (written on a board) into a run, stored and drawn like a
    measured one; the batch size comes from the log, else from the one batch size ticked."""
    from mbexplorer.devices import LogRequest
    from mbexplorer.devices.host import discover, find, logs_job

    panel = make_panel(qtbot, plugins=("sleeper",))
    assert panel.choose_device("sleeper", "cpu") and panel.logs_button.isEnabled()
    log = SAMPLES / "sleeper" / "logs" / "bs4.log"
    with qtbot.waitSignal(panel.runFinished, timeout=30_000):
        assert panel.import_logs([log]) is not None
    run_ = panel.store.runs()[0]
    assert run_.source == "log" and run_.status == "done" and panel.ticked_runs() == {run_.id}
    # the same figures as the host reading it directly
    info = find("sleeper", discover([SAMPLES / "sleeper"], entry_points=False))
    direct = []
    from mbexplorer.core.jobs import run as drive
    drive(logs_job(info, LogRequest((str(log),))), lambda e: direct.append(e) if hasattr(e, "throughput") else None)
    assert [(m.batch_size, m.throughput) for m in run_.measurements] == [(m.batch_size, m.throughput) for m in direct]
    assert len(shown_points(panel, f"run:{run_.id}")[0]) == len(direct)
    # a log without its batch size: the one ticked batch size is taken
    panel.set_batch_sizes((2,))
    with qtbot.waitSignal(panel.runFinished, timeout=30_000):
        panel.import_logs([SAMPLES / "sleeper" / "logs" / "no_batch.log"])
    assert {m.batch_size for m in panel.store.runs()[0].measurements} == {2}


def test_node_timings_become_the_graphs_latency_overlay(qtbot):
    """onnxruntime's node_timings=1 on the open model: the measured time per node is an overlay of the block
    graph, keyed by the model's own node names, in ms, summed per block."""
    from mbexplorer.core.analysis import build_job, run
    from mbexplorer.core.state import State
    from mbexplorer.devices import node_timings
    from mbexplorer.gui.devices_panel import LATENCY_OVERLAY

    state = State()
    state.set_analysis(run(build_job("mobilenet_v1", 0.25, 96)))
    panel = DevicesPanel(state=state)  # the built-in plugins
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.settled, timeout=60_000):
        panel.show()
    assert panel.choose_device("onnxruntime", "cpu")
    panel.set_batch_sizes((1,))
    panel.iterations.setValue(3)
    panel.warmup.setValue(1)
    panel.options.setText("node_timings=1")
    with qtbot.waitSignal(panel.runFinished, timeout=60_000):
        panel.start()
    assert panel.store.runs()[0].measurements, panel.log.toPlainText()
    [m] = panel.store.runs()[0].measurements
    data = node_timings(m)
    assert data is not None and LATENCY_OVERLAY in state.available_overlays()
    ov = state.overlay_for(LATENCY_OVERLAY)
    names = set(state.analysis.index.names)
    expected = {n: v / 1000.0 for n, v in data["nodes"].items() if n in names}
    assert len(expected) > 20  # the convs at least, by the model's own node names
    assert ov.values == pytest.approx(expected) and ov.unit == "ms" and ov.aggregate == "sum"
    assert sum(ov.block_values.values()) == pytest.approx(sum(expected.values()))
    assert m.precision == "fp32"  # the float model's own precision, not the previous device's int8
