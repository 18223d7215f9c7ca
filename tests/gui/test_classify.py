"""The Classify tab: drops, the worker, live settings (k re-slices, a preset re-runs), bad files, compare mode,
real images, and the window's drop routing."""

import gc
import os
import re

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402
from PySide6.QtWidgets import QDialogButtonBox, QWidget  # noqa: E402

from mbexplorer.core.dropping import route_drop  # noqa: E402

SMALL = ("mobilenet_v1", 0.25, 128)  # random weights: enough for the mechanics, and quick
RUN_MS = 30_000


def drop(window, *paths):
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    ev = QDropEvent(QPointF(100, 100), Qt.CopyAction, md, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(ev)
    return ev


def write_images(folder, n=6):
    """Synthetic photos of a few sizes and formats (gradients plus noise, so models see different inputs)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        h, w = (240, 320) if i % 2 else (300, 200)
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 / w, y * 255 / h, np.full((h, w), 40.0 * i)], -1)
        arr = np.clip(base + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
        p = folder / f"img_{i}.{('jpg', 'png', 'bmp')[i % 3]}"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


@pytest.fixture
def small_window(window, analyses):
    window.show_analysis(analyses(*SMALL), {"build": {"family": SMALL[0]}})
    return window


@pytest.fixture
def classified(qtbot, small_window, tmp_path):
    """A window whose Classify tab has classified a dropped folder of six images."""
    folder = tmp_path / "photos"
    write_images(folder)
    panel = small_window.classify
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        drop(small_window, folder)
    return small_window, panel


def rows(panel, slot="A"):
    return panel.details.views[slot].bars.rows


def test_drop_folder_classifies_on_the_worker(qtbot, small_window, tmp_path):
    folder = tmp_path / "photos"
    write_images(folder)
    panel = small_window.classify
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        drop(small_window, folder)
        # the drop returns at once: results arrive later, from the worker thread
        assert small_window.tabs.currentWidget() is panel
        assert panel.strip.count() == 6 and panel.job is not None
        assert not any(e.results for e in panel.entries)
    assert panel.runs == 1 and panel.job is None and not panel.job_status.isVisible()
    for i, entry in enumerate(panel.entries):
        assert entry.thumb is not None and entry.error is None and entry.size in ((200, 300), (320, 240))
        panel.select(i)
        scores = [t.score for t in rows(panel)]
        assert len(scores) == panel.k.value() == 5
        assert scores == sorted(scores, reverse=True)
        assert rows(panel)[0].index == entry.results["A"].top1
    view = panel.details.views["A"]
    assert view.title.text() == "mobilenet_v1_0.25_128"
    assert view.preprocess.text().startswith("torchvision: shorter side to 146")
    assert "latency" in view.timing.text() and "preprocess" in view.timing.text() and "decode" in view.timing.text()
    assert not panel.details.views["B"].isVisible()  # no compare model: one column


def test_k_reslices_without_running_again(qtbot, classified, tmp_path):
    _, panel = classified
    panel.select(2)
    top5 = [(t.index, t.score) for t in rows(panel)]
    runs, results = panel.runs, [e.results["A"] for e in panel.entries]
    panel.k.setValue(12)
    assert len(rows(panel)) == 12 and [(t.index, t.score) for t in rows(panel)[:5]] == top5
    panel.k.setValue(1)
    assert len(rows(panel)) == 1 and panel.details.views["A"].bars.height() < 40
    assert panel.runs == runs and panel.job is None
    assert [e.results["A"] for e in panel.entries] == results  # the same objects: nothing ran again
    # a label file only re-labels: names from the file when it fits the 1000 outputs, a note when not
    labels = tmp_path / "names.txt"
    labels.write_text("\n".join(f"thing {i}" for i in range(1000)))
    panel.set_labels(labels)
    assert rows(panel)[0].label == f"thing {top5[0][0]}"
    assert panel.details.views["A"].labels.text() == "labels: names.txt"
    labels.write_text("cat\ndog\n")
    panel.set_labels(labels)
    assert rows(panel)[0].label != "cat" and "not used" in panel.details.views["A"].labels.text()
    assert panel.runs == runs


def test_preset_change_runs_again(qtbot, classified):
    _, panel = classified
    view = panel.details.views["A"]
    assert view.preprocess.text().startswith("torchvision:")
    before = panel.entries[0].results["A"].prediction.scores
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.set_preset("tfslim")
        assert panel.result(panel.current(), "A")[1]  # until the new scores arrive, the old ones show greyed
    assert panel.runs == 2
    assert view.preprocess.text().startswith("tfslim: central crop 87.5%")
    assert "updating" not in view.title.text()
    assert all(panel.result(e, "A") == (e.results["A"], False) for e in panel.entries)
    assert not np.array_equal(panel.entries[0].results["A"].prediction.scores, before)
    sessions = {id(c.session) for c in panel.cache.values()}
    assert len(panel.cache) == 2 and len(sessions) == 1  # another preset, the same onnxruntime session


def test_runs_read_a_snapshot_of_the_cache(qtbot, classified, monkeypatch):
    """The classifier cache belongs to the UI thread (a run prunes it): a job gets a read-only copy and sends
    the classifiers it builds back as events."""
    import mbexplorer.gui.classify_panel as classify_panel

    given = []
    real = classify_panel.classify_job

    def spy(tasks, slots, cache, fast=False):
        given.append(cache)
        return real(tasks, slots, cache, fast)

    monkeypatch.setattr(classify_panel, "classify_job", spy)
    _, panel = classified
    before = dict(panel.cache)
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.set_preset("tfslim")
    (cache,) = given
    assert cache is not panel.cache and dict(cache) == before and len(before) == 1
    with pytest.raises(TypeError):
        cache[("A", 0, None, True)] = None
    assert len(panel.cache) == 2 and panel.cache[panel.key("A")].preprocess.name == "tfslim"


def test_custom_preprocessing_dialog(qtbot, classified):
    """custom… opens a dialog filled with what the model gets now; OK runs with every step as set, for both
    models; Cancel on a first visit goes back to the preset in force and runs nothing."""
    from mbexplorer.gui.preprocess_dialog import PreprocessDialog

    _, panel = classified
    custom = panel.preset.findData("custom")
    panel.preset.setCurrentIndex(custom)
    panel.preset.activated.emit(custom)  # what a click on the item does
    dlg = panel.custom_dialog
    assert isinstance(dlg, PreprocessDialog) and panel.runs == 1  # nothing runs while the dialog is open
    assert dlg.resize_mode.currentData() == "shorter" and dlg.std.text() == "0.229, 0.224, 0.225"
    dlg.reject()
    assert panel.preset.currentData() is None and panel.runs == 1
    dlg = panel.edit_custom()
    dlg.mean.setText("0.5")
    assert dlg.buttons.button(QDialogButtonBox.Ok).isEnabled()
    dlg.std.setText("0.5, x")
    assert not dlg.buttons.button(QDialogButtonBox.Ok).isEnabled() and "Std" in dlg.problem.text()
    dlg.std.setText("0.5")
    dlg.scale.setText("1/255")
    dlg.channel_order.setCurrentText("BGR")
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        dlg.accept()
    assert panel.preset.currentData() == "custom" and panel.runs == 2
    text = panel.details.views["A"].preprocess.text()
    assert text.startswith("custom: shorter side to 146") and "mean (0.5, 0.5, 0.5)" in text and "BGR" in text
    assert all(e.results["A"].key == panel.key("A") for e in panel.entries)


def test_large_jpeg_decodes_exactly_and_fast_on_request(qtbot, small_window, tmp_path):
    """The exact pipeline by default; ticking the approximate fast decode decodes a 1080p JPEG at 1/2 scale for
    the antialiased presets (the details say so); unticking it re-runs the CLI's exact path."""
    from mbexplorer.core.inference import Classifier
    from mbexplorer.core.preprocess import for_model

    rng = np.random.default_rng(3)
    big = tmp_path / "big.jpg"
    Image.fromarray((rng.random((27, 48, 3)) * 255).astype(np.uint8)).resize((1920, 1080), Image.BICUBIC).save(big)
    panel = small_window.classify
    assert not panel.fast.isChecked()
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        drop(small_window, big)
    entry = panel.entries[0]
    assert entry.decoded is None
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.fast.setChecked(True)
    assert entry.size == (1920, 1080) and entry.decoded == (960, 540)
    assert "1920 × 1080 px  (JPEG decoded at 1/2 scale)" in panel.details.info.text()
    fast_scores = entry.results["A"].prediction.scores
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.fast.setChecked(False)
    assert panel.runs == 3 and entry.decoded is None
    assert "decoded at" not in panel.details.info.text()
    exact = Classifier(panel.model, for_model(panel.model)).classify(big).scores
    np.testing.assert_array_equal(entry.results["A"].prediction.scores, exact)
    assert not np.array_equal(fast_scores, exact)
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.fast.setChecked(True)
        panel.set_preset("coral")  # TF-style resizing: decoded whole even with fast decoding on
    assert entry.decoded is None


def test_non_image_drop_keeps_results(qtbot, classified, tmp_path):
    window, panel = classified
    results = [e.results["A"] for e in panel.entries]
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture\n")
    drop(window, notes)
    assert window.last_error is not None and window.last_error.isVisible()
    assert "notes.txt is neither an image nor a model" in window.last_error.text()
    assert window.job is None and panel.job is None
    assert [e.results["A"] for e in panel.entries] == results and panel.strip.count() == 6
    assert window.analysis.model.name == "mobilenet_v1_0.25_128"


def test_unreadable_images_get_error_entries(qtbot, small_window, tmp_path):
    folder = tmp_path / "mixed"
    good = write_images(folder, 3)
    data = (folder / "img_0.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "fake.png").write_text("a text file with an image's name")
    panel = small_window.classify
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.add_paths([folder])
    bad = {e.path.name: e for e in panel.entries if e.error}
    assert set(bad) == {"truncated.jpg", "fake.png"}
    assert "fake.png is not an image" in bad["fake.png"].error
    assert all(panel.agreement_of(e) == "error" for e in bad.values())
    assert sum(1 for e in panel.entries if "A" in e.results) == len(good)
    panel.select(panel.entries.index(bad["truncated.jpg"]))
    assert "Cannot read this image" in panel.details.info.text()
    assert "5 images, 2 unreadable" in panel.hint.text()
    assert small_window.last_error is None  # a bad image is an entry in the strip, not a dialog


def test_compare_two_models(qtbot, classified, model_file):
    window, panel = classified
    a_results = [e.results["A"] for e in panel.entries]
    # the same build from the builder dialog: every top-1 agrees
    dlg = panel.compare_builder()
    dlg.set_values({"family": SMALL[0], "width": SMALL[1], "resolution": SMALL[2]})
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        dlg.accept()
    assert panel.agreement.text() == "6/6 agree on top-1"
    assert [e.results["A"] for e in panel.entries] == a_results  # only the compare model ran
    assert panel.details.views["B"].isVisible() and panel.details.banner.isVisible()
    assert panel.details.banner.text().startswith("✓  Same top-1")
    # another architecture: the count says how many agree, the strip and banner mark each image
    other = model_file("mobilenet_v3_small", 0.5, 96)
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.compare_with_path(other)
    assert panel.details.views["B"].title.text() == "mobilenet_v3_small_0.5_96"
    assert panel.details.views["B"].preprocess.text().startswith("torchvision: shorter side to 110, centre crop 96x96")
    agree = sum(e.results["A"].top1 == e.results["B"].top1 for e in panel.entries)
    assert re.fullmatch(rf"{agree}/6 agree on top-1", panel.agreement.text())
    marks = [panel.agreement_of(e) for e in panel.entries]
    assert marks.count("agree") == agree and marks.count("differ") == 6 - agree
    assert panel.details.banner.text()[0] == ("✓" if marks[panel.strip.currentRow()] == "agree" else "≠")
    assert [e.results["A"] for e in panel.entries] == a_results
    # k applies to both columns
    panel.k.setValue(3)
    assert len(rows(panel, "A")) == len(rows(panel, "B")) == 3
    panel.stop_compare()
    assert not panel.details.views["B"].isVisible() and panel.agreement.text() == ""


def test_compare_model_that_cannot_load(qtbot, classified, tmp_path):
    window, panel = classified
    bad = tmp_path / "broken.onnx"
    bad.write_text("not a model")
    panel.compare_with_path(bad)
    qtbot.waitUntil(lambda: window.last_error is not None and window.last_error.isVisible(), timeout=RUN_MS)
    assert "broken.onnx" in window.last_error.text()
    assert panel.compare is None and all("A" in e.results for e in panel.entries)


def test_model_without_image_input_says_so_once(qtbot, window, tmp_path, open_and_wait):
    from onnx import TensorProto, helper, save

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    save(proto, str(tmp_path / "vector.onnx"))
    open_and_wait(window, tmp_path / "vector.onnx")
    panel = window.classify
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.add_paths(write_images(tmp_path / "pics", 2))
    assert "vector cannot classify images: its input 'x' is 1×10" in window.last_error.text()
    assert all(e.thumb is not None and not e.results for e in panel.entries)
    assert "cannot classify images" in panel.details.views["A"].note.text()
    assert panel.run() is None  # not tried again for every request


def test_new_request_cancels_running_one(qtbot, small_window, tmp_path):
    panel = small_window.classify
    write_images(tmp_path / "many", 24)
    panel.add_paths([tmp_path / "many"])
    first = panel.job
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.set_preset("coral")
    assert first.is_cancel_requested() and first.wait(10_000)
    assert all(e.results["A"].key == panel.key("A") for e in panel.entries)
    # Cancel in the status bar stops a run; what arrived stays, the rest runs on the next request
    panel.set_preset("paddle")
    assert panel.job_status.isVisible()
    qtbot.mouseClick(panel.job_status.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.job is None, timeout=10_000)
    if panel.run() is not None:  # the images the cancelled run had not reached (if any: it may have finished)
        qtbot.waitUntil(lambda: panel.job is None, timeout=RUN_MS)
    assert all(e.results["A"].key == panel.key("A") for e in panel.entries)


@pytest.mark.shared
def test_real_images_and_model(qtbot, window, shared_dir, open_and_wait):
    open_and_wait(window, shared_dir / "models" / "mobilenet_v1_0.25_224_1_default_1.tflite")
    panel = window.classify
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        window.classify_images([shared_dir / "images"])
    names = [e.path.name for e in panel.entries]
    assert len(names) == 8 and "parrot.jpg" in names and "cat.bmp" in names
    assert all(e.error is None and e.thumb is not None and e.size for e in panel.entries)
    panel.select(names.index("parrot.jpg"))
    assert rows(panel)[0].label == "macaw" and rows(panel)[0].index == 89
    assert panel.details.views["A"].preprocess.text().startswith("coral:")
    assert panel.preset.itemText(0) == "auto (coral)"
    assert panel.details.views["A"].tensor_text.text().startswith("model input 1×224×224×3 float32\n")


@pytest.mark.shared
def test_agreement_by_class_across_1001_and_1000_outputs(qtbot, window, shared_dir, open_and_wait):
    """The float TFLite model (1001 outputs, background at 0) against the TF.js one (1000): macaw is index
    89 in one and 88 in the other, and the two agree."""
    open_and_wait(window, shared_dir / "models" / "mobilenet_v1_0.25_224_1_default_1.tflite")
    panel = window.classify
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        window.classify_images([shared_dir / "images" / "parrot.jpg", shared_dir / "images" / "bird.bmp"])
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.compare_with_path(shared_dir / "models" / "tfjs_mobilenet_v1_0.25_224")
    parrot = panel.entries[0]
    assert (parrot.results["A"].top1, parrot.results["B"].top1) == (89, 88)
    assert panel.top1(parrot, "A") == panel.top1(parrot, "B") == "macaw"
    assert panel.agreement_counts() == (2, 2)


def test_mixed_drop_opens_model_then_classifies(qtbot, window, tmp_path, model_file):
    folder = tmp_path / "photos"
    write_images(folder, 3)
    model = model_file(*SMALL, name="small.onnx")
    panel = window.classify
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        drop(window, model, folder)
        assert panel.job is None  # held until the model is on screen, so the images run once
    assert window.analysis.model.name == "small"
    assert panel.runs == 1 and {e.results["A"].model_name for e in panel.entries} == {"small"}
    # one image file alone goes to the Classify tab too
    extra = write_images(tmp_path / "more", 4)[-1]
    window.tabs.setCurrentIndex(0)
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        drop(window, extra)
    assert window.tabs.currentWidget() is panel and panel.strip.count() == 4 and panel.runs == 2
    # drops anywhere reach the window's handler (icon-mode lists accept drops of their own by default)
    assert [w for w in window.findChildren(QWidget) if w.acceptDrops()] == []
    file_menu = window.menuBar().actions()[0].menu()
    assert any(a.text() == "Open &images…" for a in file_menu.actions())


def test_closing_mid_run_stops_it(qtbot, small_window, tmp_path):
    panel = small_window.classify
    write_images(tmp_path / "many", 24)
    panel.add_paths([tmp_path / "many"])
    job = panel.job
    assert job is not None and small_window.tasks.jobs() == [job] and not gc.isenabled()
    small_window.close()  # waits for the run to see its cancel flag
    assert job.is_cancel_requested() and not job.is_running()
    assert small_window.tasks.jobs() == [] and panel.job is None


def test_route_drop_rules(tmp_path, model_file):
    imgs = write_images(tmp_path / "pics", 2)
    model = model_file(*SMALL)
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    renamed = tmp_path / "photo"  # a JPEG with no suffix: told by its bytes
    renamed.write_bytes(imgs[0].read_bytes())
    assert route_drop([imgs[0]]).images == [imgs[0]] and route_drop([imgs[0]]).model is None
    assert route_drop([renamed]).images == [renamed]
    assert route_drop([model]).model == model
    plan = route_drop([model, tmp_path / "pics", notes])
    assert plan.model == model and len(plan.images) == 2 and plan.skipped == [notes]
    assert "neither an image nor a model" in route_drop([notes]).message
    bad_model = tmp_path / "broken.onnx"
    bad_model.write_text("x")
    assert route_drop([bad_model]).model == bad_model  # the loader explains what is wrong with it
    assert "No model file" in route_drop([notes, tmp_path / "settings"]).message
    tfjs = tmp_path / "web_model"  # a TF.js folder is a model: opened, its weight shards are not images
    tfjs.mkdir()
    (tfjs / "model.json").write_text("{}")
    (tfjs / "group1-shard1of1").write_bytes(bytes(16))
    assert route_drop([tfjs]).model == tfjs and route_drop([tfjs]).images == []
    plan = route_drop([tmp_path / "pics", tfjs])
    assert plan.model == tfjs and len(plan.images) == 2
    assert route_drop([tmp_path]).model.suffix == ".onnx"  # ONNX first, before a TF.js folder inside
    assert route_drop([tmp_path / "pics", tmp_path / "web_model", notes]).model == tfjs


def test_preset_items_say_what_they_reproduce(qtbot, small_window):
    from mbexplorer.core.presets_info import AUTO, REFERENCES

    combo = small_window.classify.preset
    names = [combo.itemData(i) for i in range(combo.count())]
    assert names == [None, "torchvision", "timm", "tfslim", "keras", "tfjs", "coral", "paddle", "custom"]
    for i, name in enumerate(names[1:], 1):
        assert combo.itemData(i, Qt.ToolTipRole) == REFERENCES[name]
    # auto: how it picks, and the reference of the one it picked for the model shown
    assert combo.itemText(0) == "auto (torchvision)"
    assert combo.itemData(0, Qt.ToolTipRole) == (f"auto: the model's source picks the preset ({AUTO})\n"
                                                 f"torchvision: {REFERENCES['torchvision']}")


def test_details_show_the_tensor_the_model_saw(qtbot, classified):
    from mbexplorer.core.preprocess import for_model
    from mbexplorer.core.presets_info import REFERENCES

    _, panel = classified
    panel.select(1)  # img_1.png: lossless, so the fast decode is the exact one
    entry, view = panel.current(), panel.details.views["A"]
    tensor = entry.results["A"].tensor
    assert tensor.shape == (1, 3, 128, 128) and tensor.dtype == "float32" and tensor.image.dtype == np.uint8
    # the tensor turned back into pixels is the resized, cropped picture the preset made
    pre = for_model(panel.model)
    np.testing.assert_array_equal(tensor.image, pre.geometry(pre.load(entry.path)))
    exact = pre.tensor(entry.path)
    assert (tensor.min, tensor.max) == (float(exact.min()), float(exact.max()))
    assert view.reference.text() == f"reproduces {REFERENCES['torchvision']}"
    assert view.tensor_box.isVisibleTo(view)
    assert view.tensor_image.pixmap().size().toTuple() == (128, 128)
    lines = view.tensor_text.text().splitlines()
    assert lines[0] == "model input 1×3×128×128 float32"
    assert lines[1] == f"min {tensor.min:.4g}  ·  max {tensor.max:.4g}"
    assert lines[2] == "shown de-normalised: (x · std + mean) / scale"
    # a result kept is small: the picture, not the float tensor (thousands of images stay in memory)
    assert tensor.image.nbytes == 128 * 128 * 3
    panel.strip.setCurrentRow(-1)
    assert not view.tensor_box.isVisibleTo(view) and view.reference.text() == ""


def test_tensor_view_inverts_every_kind_of_values():
    """Raw uint8 as is, int8 back by 128, floats de-normalised (BGR turned back), large inputs shrunk."""
    from mbexplorer.core.classify import TENSOR_VIEW, tensor_view
    from mbexplorer.core.preprocess import preset

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    same = dict(resize="whole", interpolation="pil")  # a 100 px picture to a 100 px input: the pixels unchanged
    for pre in (preset("coral", 100, layout="NHWC", dtype="uint8", **same), preset("coral", 100, dtype="int8", **same),
                preset("keras", 100, **same), preset("paddle", 100, channel_order="BGR", **same),
                preset("torchvision", 100, layout="NHWC", **same)):
        view = tensor_view(pre(pixels), pre)
        np.testing.assert_array_equal(view.image, pixels, err_msg=pre.describe())
    big = preset("torchvision", 320, resize="whole")
    view = tensor_view(big(rng.integers(0, 256, (320, 320, 3), dtype=np.uint8)), big)
    assert view.image.shape == (TENSOR_VIEW, TENSOR_VIEW, 3) and view.shape == (1, 3, 320, 320)


def test_custom_dialog_offers_every_interpolation_decoder_and_alpha(qtbot, classified):
    from mbexplorer.core.presets_info import (
        ALPHA_TITLES,
        DECODER_TITLES,
        INTERPOLATION_TITLES,
        INTERPOLATIONS,
    )

    _, panel = classified
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.set_preset("timm")
    dlg = panel.edit_custom()  # starts from what the model gets now: timm
    def items(box):
        return [(box.itemData(i), box.itemText(i)) for i in range(box.count())]

    assert items(dlg.interpolation) == list(INTERPOLATION_TITLES.items())
    assert [k for k, _ in items(dlg.interpolation)] == list(INTERPOLATIONS)
    assert items(dlg.decoder) == list(DECODER_TITLES.items()) and items(dlg.alpha) == list(ALPHA_TITLES.items())
    assert (dlg.interpolation.currentData(), dlg.decoder.currentData(), dlg.alpha.currentData()) == \
        ("pil_bicubic", "pil", "drop")
    dlg.interpolation.setCurrentIndex(dlg.interpolation.findData("cv2"))
    dlg.decoder.setCurrentIndex(dlg.decoder.findData("cv2"))
    dlg.alpha.setCurrentIndex(dlg.alpha.findData("white"))
    options = dlg.options()
    assert (options["interpolation"], options["decoder"], options["alpha"], options["sizing"]) == \
        ("cv2", "cv2", "white", "timm")  # timm's rounding of the resize, which has no control, stays
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        dlg.accept()
    view = panel.details.views["A"]
    pre = panel.cache[panel.key("A")].preprocess
    assert (pre.name, pre.interpolation, pre.decoder, pre.alpha, pre.sizing) == \
        ("custom", "cv2", "cv2", "white", "timm")
    assert "OpenCV INTER_LINEAR" in view.preprocess.text() and view.preprocess.text().endswith("alpha over white")
    assert view.reference.text().startswith("reproduces custom:") and view.tensor_box.isVisibleTo(view)
    dlg = panel.edit_custom()  # reopened: the custom choices as set
    assert (dlg.interpolation.currentData(), dlg.decoder.currentData(), dlg.alpha.currentData()) == \
        ("cv2", "cv2", "white")
    dlg.reject()


def assert_strip_items_whole_and_clickable(qtbot, panel):
    """Every thumbnail item is laid out at its full size, and a click on one selects it."""
    strip = panel.strip
    for i in range(strip.count()):
        rect = strip.visualItemRect(strip.item(i))
        assert rect.height() == strip.item_size.height() > strip.iconSize().height(), (i, rect)
    target = min(2, strip.count() - 1)
    rect = strip.visualItemRect(strip.item(target))
    qtbot.mouseClick(strip.viewport(), Qt.LeftButton, pos=rect.center())
    assert strip.currentRow() == target and panel.current() is panel.entries[target]
    assert panel.details.info.text().startswith(panel.entries[target].path.name)


def test_images_added_while_the_tab_shows(qtbot, small_window, tmp_path, monkeypatch):
    """Add folder… / Add images… with the Classify tab on screen (not at start-up): the strip laid its items
    out before their icons existed and kept that ~14 px height (uniform item sizes), so thumbnails showed as
    slivers and clicks selected nothing."""
    from PySide6.QtWidgets import QFileDialog

    panel = small_window.classify
    small_window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(panel.strip.isVisible)
    paths = write_images(tmp_path / "photos", 4)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "photos"))
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.folder_button.click()
    assert panel.strip.count() == 4
    assert_strip_items_whole_and_clickable(qtbot, panel)
    # Clear, then Add images…
    panel.clear_button.click()
    assert panel.strip.count() == 0
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(p) for p in paths[:3]], ""))
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.add_button.click()
    assert panel.strip.count() == 3
    assert_strip_items_whole_and_clickable(qtbot, panel)
    # and more added to those
    extra = write_images(tmp_path / "more", 6)[4:]
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.add_paths(extra)
    assert panel.strip.count() == 5
    assert_strip_items_whole_and_clickable(qtbot, panel)


def test_compare_fits_a_1280_by_768_screen(qtbot, classified):
    """Two models side by side at 1280x768: the window keeps its size, the toolbar wraps instead of clipping,
    the details need no horizontal scrollbar and both top-k lists are on screen."""
    window, panel = classified
    window.tabs.setCurrentWidget(panel)
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.compare_with_build({"family": "mobilenet_v3_small", "width": 0.5, "resolution": 96})
    window.resize(1280, 768)
    qtbot.waitUntil(lambda: window.size().width() == 1280 and window.size().height() == 768)
    qtbot.wait(50)  # layouts settle
    assert window.width() == 1280 and window.minimumSizeHint().width() <= 1280
    assert panel.minimumSizeHint().width() < 500  # the classify tab is not what makes the window wide
    for button in (panel.add_button, panel.compare_button, panel.export_button, panel.labels_button):
        right = button.mapTo(panel, button.rect().bottomRight())
        assert button.isVisible() and right.x() < panel.width() and right.y() < panel.strip.y(), button.text()
    scroll = panel.details_scroll
    assert not scroll.horizontalScrollBar().isVisible()
    viewport = scroll.viewport()
    for slot in ("A", "B"):
        bars = panel.details.views[slot].bars
        assert bars.isVisible() and len(bars.rows) == 5
        corners = [bars.mapTo(viewport, p) for p in (bars.rect().topLeft(), bars.rect().bottomRight())]
        assert all(viewport.rect().contains(p) for p in corners), slot


def test_random_weights_are_said_in_the_details(qtbot, classified, model_file):
    window, panel = classified
    view = panel.details.views["A"]
    assert view.warning.isVisible() and view.warning.text() == "random weights: predictions are meaningless"
    # a saved builder model says so too, the compared one as well
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.compare_with_path(model_file("mobilenet_v1", 0.25, 96))
    assert panel.details.views["B"].warning.isVisible()


@pytest.mark.shared
def test_quantized_top_k_marks_ties_and_stops_at_zero(qtbot, window, shared_dir, open_and_wait):
    open_and_wait(window, shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite")
    panel = window.classify
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        window.classify_images([shared_dir / "images" / "cat.bmp", shared_dir / "images" / "parrot.jpg"])
    panel.k.setValue(8)
    panel.select(0)  # cat.bmp: three classes, three tied at 0.004, the rest at 0
    bars = panel.details.views["A"].bars
    assert [t.index for t in bars.rows] == [286, 282, 283, 729, 754, 812]
    assert [e.tied for e in bars.entries] == [False, False, False, True, True, True]
    assert bars.footer == "995 more classes at 0.000"
    lines = bars.text().splitlines()
    assert lines[3].startswith("4= plastic bag") and lines[5].startswith("4= ") and lines[-1] == bars.footer
    assert bars.height() == 7 * 24 + 4  # six rows and the footer line
    assert not panel.details.views["A"].warning.isVisible()  # trained weights
    panel.select(1)  # parrot.jpg: one class, nothing else above 0
    assert [t.label for t in bars.rows] == ["macaw"] and bars.footer == "1000 more classes at 0.000"
