"""The Quantization tab's what-if pane: the float MobileNetV1 0.25 open, compared with its uint8 twin on shared
images, then quantized again by onnxruntime another way, through the window."""

import math
import os
import shutil

import numpy as np
import onnx
import pytest

from mbexplorer.core.compare import compare_job
from mbexplorer.core.decoding import image_files
from mbexplorer.core.inference import Classifier
from mbexplorer.core.jobs import run
from mbexplorer.core.loading import load
from mbexplorer.core.quantize import is_quantized, quantize_job
from mbexplorer.core.whatif import SETTINGS, worst_layer
from mbexplorer.gui.whatif_panel import LANE, layer_of

FLOAT = "mobilenet_v1_0.25_224_1_default_1.tflite"
QUANT = "mobilenet_v1_0.25_224_quant.tflite"
RUN_MS = 60_000


@pytest.fixture(scope="module")
def images(shared_dir):
    return image_files([shared_dir / "images"])[:3]


@pytest.fixture(scope="module")
def direct(shared_dir, images):
    """The comparison and a what-if run directly in the core: per-channel weights, the comparison's worst layer
    kept in float, calibrated and compared on the same images."""
    fm, qm = load(shared_dir / "models" / FLOAT), load(shared_dir / "models" / QUANT)
    baseline = run(compare_job(fm, qm, images)).to_dict()
    tensor, node, _ = worst_layer(fm, baseline)
    q = run(quantize_job(fm, images, per_channel=True, exclude=[node]))
    return {"tensor": tensor, "node": node, "whatif": run(compare_job(fm, q, images)).to_dict(),
            "top1": Classifier(fm).classify(images[0], k=1).topk[0].label}


@pytest.fixture
def compared(qtbot, window, open_and_wait, shared_dir, images):
    """The float model open, compared with its uint8 twin (a second file) on the images."""
    open_and_wait(window, shared_dir / "models" / FLOAT)
    panel = window.quantization
    panel.set_images(images)
    panel.compare_with_path(shared_dir / "models" / QUANT)
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.run()
    return window


def _finish(qtbot, job, signal):
    with qtbot.waitSignal(signal, timeout=RUN_MS):
        pass
    assert job.state == "finished", job.error


def test_keep_a_row_in_float_requantize_and_compare(qtbot, compared, direct, images, tmp_path):
    panel, pane = compared.quantization, compared.quantization.whatif
    assert pane.float_model is compared.state.analysis.model and pane.images == images
    # the comparison's worst tensor, picked in the table: its layer goes to the keep-in-float list
    row = next(r for r in range(panel.table.rowCount()) if panel.table.item(r, 1).value == direct["tensor"])
    panel.table.selectRow(row)
    assert panel.keep_button.isEnabled()
    panel.keep_button.click()
    assert [pane.keep_list.item(i).text() for i in range(pane.keep_list.count())] == [direct["node"]]
    pane.weights.setCurrentIndex(pane.weights.findData(True))
    job = pane.start()
    assert job.lane == LANE
    _finish(qtbot, job, pane.resultShown)
    outcome = pane.outcome
    assert outcome.choice.keep == (direct["node"],) and outcome.choice.per_channel
    # the kept node is float in the what-if model: its weights are the float initializer, not dequantized ones
    # (its input may still be: the layer before it is quantized)
    kept = next(n for n in outcome.model.graph.node if n.name == direct["node"])
    weights = {t.name: t for t in outcome.model.graph.initializer}[kept.input[1]]
    assert weights.data_type == onnx.TensorProto.FLOAT and is_quantized(outcome.model)
    # the figures: those of quantize_job + compare_job run directly with the same settings
    want = direct["whatif"]
    assert outcome.output == want["output"] and outcome.images == len(images) == outcome.calibration
    assert [(t["name"], t["sqnr_db"]) for t in outcome.comparison["tensors"]] == \
        [(t["name"], t["sqnr_db"]) for t in want["tensors"]]
    base = panel.result["output"]
    assert pane.summary.item(0, 1).text() == f"{base['sqnr_db']:.2f} dB"
    assert pane.summary.item(1, 1).text() == f"{want['output']['sqnr_db']:.2f} dB"
    assert pane.summary.item(2, 1).text() == f"{want['output']['sqnr_db'] - base['sqnr_db']:+.2f} dB"
    assert pane.summary.item(1, 2).text() == f"{want['output']['top1_agreement']:.1%}"
    # the chart: the what-if's series over the comparison's, each tensor at the comparison's place, in the legend
    line, dots = panel.whatif_curves["sqnr_db"]
    x_of = {t["name"]: i for i, t in enumerate(panel.result["tensors"])}
    finite = [t for t in want["tensors"] if t["name"] in x_of and not math.isnan(t["sqnr_db"])]
    assert sorted(p.pos().x() for p in dots.points()) == sorted(x_of[t["name"]] for t in finite)
    assert "what-if accumulated" in [label.text for _, label in panel.legend.items]
    # top-5 of the first image, side by side: the float model's top-1 is the one classify gives
    qtbot.waitUntil(lambda: pane.topk.item(0, 0) is not None and pane.topk.item(0, 2) is not None, timeout=RUN_MS)
    assert pane.topk.item(0, 0).text().endswith("  " + direct["top1"])
    # saved: a loadable ONNX model, written whole
    out = tmp_path / "whatif.onnx"
    assert pane.save(out)
    saved = load(out)
    assert is_quantized(saved) and np.isfinite(Classifier(saved).classify(images[0]).scores).all()
    # another row through the table's context menu; the first removed from the list: no longer kept
    other = next(t for t in panel.result["tensors"]
                 if layer_of(pane.float_model, t["name"], t["node"]) != direct["node"])
    panel.table.selectRow(next(r for r in range(panel.table.rowCount())
                               if panel.table.item(r, 1).value == other["name"]))
    menu = panel.table_menu()
    [action] = [a for a in menu.actions() if a.text() == "Keep in float (what-if)"]
    action.trigger()
    menu.close()
    assert pane.keep_list.count() == 2
    pane.keep_list.item(0).setSelected(True)
    pane.remove_button.click()
    assert pane.choice().keep == (pane.keep_list.item(0).text(),) != (direct["node"],)
    # a new comparison of the same models: the what-if shown goes (it would not match), the kept layers stay
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.run()
    assert pane.outcome is None and not dots.isVisible() and pane.keep_list.count() == 1
    assert "what-if accumulated" not in [label.text for _, label in panel.legend.items]


def test_save_never_overwrites_on_failure(qtbot, compared, monkeypatch, tmp_path, shared_dir):
    pane = compared.quantization.whatif
    _finish(qtbot, pane.start(), pane.resultShown)
    errors = []
    pane.errorRaised.connect(lambda title, message: errors.append(message))
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "whatif.onnx"
    out.write_bytes(b"the user's file")

    def full(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert not pane.save(out)
    assert out.read_bytes() == b"the user's file" and os.listdir(folder) == ["whatif.onnx"]
    assert "No space left on device" in errors[-1]
    monkeypatch.undo()
    # nor over a model of the comparison, however it is spelt
    source = tmp_path / "float.tflite"
    shutil.copy(shared_dir / "models" / FLOAT, source)
    pane.float_model.source_path = source
    assert not pane.save(tmp_path / "." / "float.tflite") and "must end in .onnx" in errors[-1]
    link = tmp_path / "float.onnx"
    link.symlink_to(source)
    assert not pane.save(link) and "will not write over float.onnx" in errors[-1]
    assert source.read_bytes() == (shared_dir / "models" / FLOAT).read_bytes()


def test_cancel_then_try_each_change(qtbot, compared):
    pane = compared.quantization.whatif
    job = pane.start()
    with qtbot.waitSignal(job.cancelled, timeout=RUN_MS):
        pane.cancel()
    assert pane.job is None and pane.outcome is None and pane.apply_button.isEnabled()
    # still usable: each change measured, the best named as whatif_job found it
    job = pane.try_each()
    _finish(qtbot, job, pane.triesShown)
    rows = pane.tries["settings"]
    assert pane.tries_table.rowCount() == len(rows) == len(SETTINGS)
    best = max(rows, key=lambda r: r["output_sqnr_db"])
    r = rows.index(best)
    assert pane.tries_table.item(r, 0).font().bold() and not pane.tries_table.item((r + 1) % len(rows), 0).font().bold()
    if best["label"] == SETTINGS[0].label:
        assert pane.verdict.text().startswith("No change beat the baseline")
    else:
        assert pane.verdict.text() == (f"Helps most here: {best['label']} ("
                                       f"{best['output_sqnr_db'] - rows[0]['output_sqnr_db']:+.2f} dB output SQNR "
                                       f"over {SETTINGS[0].label})")
    # choosing a row puts its setting in the controls
    cle = next(i for i, row in enumerate(rows) if row["cle"] and row["per_channel"])
    pane.tries_table.selectRow(cle)
    assert pane.choice().per_channel and pane.choice().cle and pane.choice().method == "minmax"
    # and re-quantized so, it measures what whatif_job measured for that row (CLE: outputs against the float model)
    _finish(qtbot, pane.start(), pane.resultShown)
    assert pane.outcome.output == {"sqnr_db": rows[cle]["output_sqnr_db"], "top1_agreement": rows[cle]["top1"],
                                   "top5_agreement": rows[cle]["top5"]}
    assert pane.outcome.worst[1] == rows[cle]["worst_node"]


def test_an_unreadable_calibration_image_is_said_and_the_app_stays(qtbot, window, open_and_wait, shared_dir,
                                                                  images, tmp_path):
    copies = []
    for p in images[:2]:
        copies.append(tmp_path / p.name)
        shutil.copy(p, copies[-1])
    open_and_wait(window, shared_dir / "models" / FLOAT)
    panel, pane = window.quantization, window.quantization.whatif
    panel.set_images(copies)
    panel.compare_with_path(shared_dir / "models" / QUANT)
    with qtbot.waitSignal(panel.runFinished, timeout=RUN_MS):
        panel.run()
    copies[1].write_bytes(b"not an image any more")  # changed on disk after the comparison
    job = pane.start()
    with qtbot.waitSignal(job.failed, timeout=RUN_MS):
        pass
    qtbot.waitUntil(lambda: window.last_error is not None and window.last_error.isVisible(), timeout=5_000)
    assert copies[1].name in window.last_error.text() and window.last_error.windowTitle() == "What-if failed"
    assert pane.outcome is None and pane.job is None and pane.apply_button.isEnabled()
    assert window.isVisible() and panel.result is not None  # the comparison is still shown


def test_no_comparison_no_whatif(qtbot, window):
    pane = window.quantization.whatif
    assert not pane.apply_button.isEnabled() and not pane.try_button.isEnabled()
    errors = []
    pane.errorRaised.connect(lambda title, message: errors.append(message))
    assert pane.start() is None and pane.try_each() is None
    assert errors and errors[0].startswith("Run a comparison first")


def test_layer_of_a_tensor(shared_dir):
    """The node kept in float for a tensor row: the conv behind its activation, else the row's own node."""
    fm = load(shared_dir / "models" / FLOAT)
    convs = {n.name for n in fm.graph.node if n.op_type == "Conv"}
    clip = next(n for n in fm.graph.node if n.op_type == "Clip")
    assert layer_of(fm, clip.output[0], clip.name) in convs
    soft = next(n for n in fm.graph.node if n.op_type == "Softmax")
    assert layer_of(fm, soft.output[0], soft.name) == soft.name
