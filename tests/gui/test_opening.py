"""Opening models: drag and drop, bad files, recent files, input shapes, cancelling, the builder dialog."""

import gc
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import onnx  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from mbexplorer.core.jobs import Progress  # noqa: E402
from mbexplorer.gui.main_window import MainWindow  # noqa: E402
from mbexplorer.gui.recent import MAX_RECENT, RecentFiles  # noqa: E402


def drop(window, *paths):
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    ev = QDropEvent(QPointF(100, 100), Qt.CopyAction, md, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(ev)
    return ev


@pytest.fixture
def v1_file(tmp_path, built):
    path = tmp_path / "small_v1.onnx"
    onnx.save(built("mobilenet_v1", 0.25, 128).model, str(path))
    return path


def test_drop_model_file_opens_it(qtbot, v2_window, v1_file):
    with qtbot.waitSignal(v2_window.model_shown, timeout=30_000):
        ev = drop(v2_window, v1_file)
    assert ev.isAccepted()
    assert v2_window.analysis.model.name == "small_v1"
    assert v2_window.source["path"] == str(v1_file)
    assert "small_v1" in v2_window.windowTitle()
    assert len(v2_window.graph.block_items) == len(v2_window.analysis.blocks.blocks)


@pytest.mark.parametrize("kind", ["text", "empty", "truncated"])
def test_bad_drop_shows_error_and_keeps_model(qtbot, v2_window, tmp_path, built, kind):
    path = tmp_path / f"bad_{kind}.onnx"
    if kind == "text":
        path.write_text("this is not a model\n" * 10)
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        data = built("mobilenet_v1", 0.25, 128).model.SerializeToString()
        path.write_bytes(data[: len(data) // 3])
    before = v2_window.analysis
    with qtbot.waitSignal(v2_window.load_failed, timeout=30_000) as blocker:
        drop(v2_window, path)
    message = blocker.args[0]
    assert message and path.name in message
    assert v2_window.last_error is not None and v2_window.last_error.isVisible()
    assert v2_window.last_error.text() == message
    assert "still open" in v2_window.last_error.informativeText()
    assert v2_window.analysis is before
    assert len(v2_window.graph.block_items) == 19
    assert v2_window.layers.proxy.rowCount() == 153
    assert "mobilenet_v2" in v2_window.windowTitle()
    assert str(path) not in RecentFiles().paths()


def test_drop_folder_opens_model_inside(qtbot, window, tmp_path, v1_file):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "README.txt").write_text("weights from the training run")
    (folder / "model.onnx").write_bytes(v1_file.read_bytes())
    with qtbot.waitSignal(window.model_shown, timeout=30_000):
        drop(window, folder)
    assert window.analysis.model.name == "model"


def test_drop_without_any_model_says_so(v2_window, tmp_path):
    a, b = tmp_path / "notes.txt", tmp_path / "labels.txt"
    a.write_text("x")
    b.write_text("y")
    drop(v2_window, a, b)
    assert v2_window.job is None  # nothing was started
    assert "No model file" in v2_window.last_error.text()
    assert v2_window.analysis.model.name == "mobilenet_v2_1_224"


def test_recent_files_persist_and_prune(qtbot, window, tmp_path, v1_file, open_and_wait):
    second = tmp_path / "second.onnx"
    second.write_bytes(v1_file.read_bytes())
    open_and_wait(window, v1_file)
    open_and_wait(window, second)
    assert RecentFiles().paths() == [str(second), str(v1_file)]
    # a new window (a new session) lists them in File > Open Recent
    other = MainWindow()
    qtbot.addWidget(other)
    other._fill_recent_menu()
    labels = [a.text() for a in other.recent_menu.actions() if a.text()]
    assert any("second.onnx" in t for t in labels) and any("small_v1.onnx" in t for t in labels)
    recent_action = next(a for a in other.recent_menu.actions() if "small_v1.onnx" in a.text())
    with qtbot.waitSignal(other.model_shown, timeout=30_000):
        recent_action.trigger()
    assert other.analysis.model.name == "small_v1"
    assert RecentFiles().paths()[0] == str(v1_file)
    # missing files are pruned, the list is capped
    second.unlink()
    assert RecentFiles().paths() == [str(v1_file)]
    for i in range(MAX_RECENT + 3):
        p = tmp_path / f"m{i}.onnx"
        p.write_bytes(b"x")
        RecentFiles().add(p)
    assert len(RecentFiles().paths()) == MAX_RECENT
    assert RecentFiles().paths()[0].endswith(f"m{MAX_RECENT + 2}.onnx")


def test_symbolic_input_asks_for_a_shape(qtbot, window, tmp_path, built):
    proto = onnx.ModelProto()
    proto.CopyFrom(built("mobilenet_v1", 0.25, 128).model)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    del proto.graph.value_info[:]
    path = tmp_path / "dynamic.onnx"
    onnx.save(proto, str(path))
    window.open_path(path)
    qtbot.waitUntil(lambda: window.shape_dialog is not None and window.shape_dialog.isVisible(), timeout=30_000)
    dlg = window.shape_dialog
    assert "input" in dlg.labelText()
    assert dlg.textValue().count(",") == 3
    dlg.setTextValue("1,3,160,160")
    with qtbot.waitSignal(window.model_shown, timeout=30_000):
        dlg.accept()
    assert window.analysis.model.inputs[0].shape[2:] == (160, 160)
    assert window.source["input_shapes"] == {"input": [1, 3, 160, 160]}


def _slow_job(steps=200):
    for i in range(steps):
        time.sleep(0.02)
        yield Progress(i / steps, f"step {i}")
    raise AssertionError("the job should have been cancelled")


def test_cancel_during_job(qtbot, v2_window):
    w = v2_window
    before = w.analysis
    job = w.start_job(_slow_job, "Slow job…", {"path": None})
    assert w.job_status.isVisible() and w.job_status.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: w.job_status.bar.value() > 0, timeout=10_000)
    with qtbot.waitSignal(w.job_cancelled, timeout=10_000):
        qtbot.mouseClick(w.job_status.cancel_button, Qt.LeftButton)
    assert job.state == "cancelled"
    assert not w.job_status.isVisible()
    assert w.analysis is before and len(w.graph.block_items) == 19
    assert "Cancelled" in w.statusBar().currentMessage()
    assert job.wait(5_000)
    qtbot.waitUntil(lambda: w.tasks.jobs() == [], timeout=5_000)  # forgotten once its thread has stopped


def test_new_job_replaces_running_one(qtbot, v2_window, v1_file):
    w = v2_window
    slow = w.start_job(_slow_job, "Slow job…", {"path": None})
    with qtbot.waitSignal(w.model_shown, timeout=30_000):
        w.open_path(v1_file)
    assert slow.is_cancel_requested()
    assert w.analysis.model.name == "small_v1"
    assert slow.wait(5_000)


def test_closing_mid_job_stops_it(qtbot, window):
    job = window.start_job(_slow_job, "Slow job…", {"path": None})
    assert window.tasks.jobs() == [job] and not gc.isenabled()  # the UI thread's timer collects, not the job's
    window.close()  # waits for the job to see its cancel flag
    assert job.is_cancel_requested() and not job.is_running()
    assert window.tasks.jobs() == [] and window.job is None


def test_builder_dialog_builds(qtbot, window):
    dlg = window.builder_dialog_open()
    assert dlg.isVisible()
    dlg.set_values({"family": "mobilenet_v3_small", "width": 0.5, "resolution": 160})
    assert dlg.values() == {"family": "mobilenet_v3_small", "width": 0.5, "resolution": 160,
                            "num_classes": 1000, "fold_bn": False, "rounding": "torchvision"}
    assert dlg.width_spin.minimum() == 0.25 and dlg.width_spin.maximum() == 2.0
    assert dlg.resolution.minimum() == 96 and dlg.resolution.maximum() == 320
    with qtbot.waitSignal(window.model_shown, timeout=30_000):
        dlg.accept()
    assert window.analysis.model.name == "mobilenet_v3_small_0.5_160"
    assert len(window.graph.block_items) == 13


def test_builder_error_is_shown(qtbot, v2_window):
    with qtbot.waitSignal(v2_window.load_failed, timeout=30_000):
        v2_window.build_model(family="mobilenet_v2", width=5.0)
    assert "width" in v2_window.last_error.text()
    assert v2_window.analysis.model.name == "mobilenet_v2_1_224"


def test_drop_picks_the_model_by_its_bytes(tmp_path, v1_file):
    from mbexplorer.core.dropping import route_drop

    notes = tmp_path / "a_notes.txt"
    notes.write_text("x")
    renamed = tmp_path / "b_weights.bin"
    renamed.write_bytes(v1_file.read_bytes())  # ONNX under another name, found by its bytes
    assert route_drop([notes, renamed]).model == renamed
    assert route_drop([notes, v1_file, renamed]).model == v1_file  # ONNX by name and bytes, first in order
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(56))
    assert route_drop([other]).model.name == "model.tflite"  # a folder: the model file inside it
    empty = tmp_path / "empty"
    empty.mkdir()
    plan = route_drop([empty])
    assert plan.model is None and "No model file" in plan.message
