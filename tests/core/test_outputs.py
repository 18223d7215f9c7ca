"""Outputs that never destroy data (``outputs``: checked before any work, written whole or not at all, and every
writer that uses it), and inputs checked once in the core: preprocessing values, input shapes, scores, missing
images, plurals."""

import errno
import json
import math
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from mbexplorer.core import outputs
from mbexplorer.core.costs import analyse
from mbexplorer.core.decoding import ImageError, decode, read_image
from mbexplorer.core.errors import InputShapeError, MbxError
from mbexplorer.core.export import export_tensors
from mbexplorer.core.formatting import plural
from mbexplorer.core.inference import Classifier
from mbexplorer.core.model import from_proto
from mbexplorer.core.outputs import check_output, write_atomically, write_together
from mbexplorer.core.preprocess import customise, option_warnings, preset


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


# check_output -------------------------------------------------------------------------------------

def test_check_output_refuses_what_could_only_fail_later(tmp_path):
    with pytest.raises(MbxError, match=f"cannot write .*: the folder {tmp_path / 'nope'} does not exist"):
        check_output(tmp_path / "nope" / "x.csv")
    with pytest.raises(MbxError, match="Is a directory"):
        check_output(tmp_path)
    assert check_output(tmp_path, folder_ok=True) == tmp_path
    (tmp_path / "file").write_text("x")
    with pytest.raises(MbxError, match="is a file, not a folder"):
        check_output(tmp_path / "file" / "x.csv")
    with pytest.raises(MbxError, match=r"will not write ONNX to m.tflite: its name has '.tflite'; it must end in "
                                       r"\.onnx"):
        check_output(tmp_path / "m.tflite", suffixes=(".onnx",), what="ONNX")
    with pytest.raises(MbxError, match="its name has no suffix"):
        check_output(tmp_path / "m", suffixes=(".onnx",), what="ONNX")
    assert check_output(tmp_path / "M.ONNX", suffixes=(".onnx",)) == tmp_path / "M.ONNX"  # any case


def test_check_output_refuses_an_unwritable_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs.os, "access", lambda path, mode: False)  # root may write anywhere: pretend
    with pytest.raises(MbxError, match=f"the folder {tmp_path} is not writable"):
        check_output(tmp_path / "x.csv")


def test_an_existing_file_needs_force(tmp_path):
    out = tmp_path / "x.csv"
    out.write_text("mine")
    with pytest.raises(MbxError, match="x.csv already exists; give --force to replace it"):
        check_output(out)
    assert check_output(out, force=True) == out
    assert out.read_text() == "mine"  # checking writes nothing


def test_never_over_an_input_however_it_is_spelt(tmp_path, monkeypatch):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.onnx").symlink_to(model)
    os.link(model, tmp_path / "hard.onnx")
    for spelling in (model, tmp_path / "sub" / ".." / "m.onnx", tmp_path / "link.onnx", tmp_path / "hard.onnx"):
        with pytest.raises(MbxError, match="will not write over .*: it is the input model"):
            check_output(spelling, inputs=[model], force=True, input_name="the input model")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MbxError, match="will not write over m.onnx"):
        check_output("m.onnx", inputs=[model], force=True)  # relative against absolute
    assert model.read_bytes() == b"model"


# writing whole or not at all ----------------------------------------------------------------------

def test_write_atomically_takes_bytes_text_or_a_writer(tmp_path):
    out = tmp_path / "x"
    write_atomically(out, b"one")
    assert out.read_bytes() == b"one"
    write_atomically(out, "twö")
    assert out.read_text(encoding="utf-8") == "twö"
    write_atomically(out, lambda f: f.write(b"three"))
    assert out.read_bytes() == b"three"
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes a file, not a private temporary
    assert listing(tmp_path) == ["x"]


def test_a_failure_midway_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "x.bin"
    out.write_bytes(b"old data")

    def half_then_full(f):
        f.write(b"new")
        f.flush()
        full_disk()

    with pytest.raises(OSError) as info:
        write_atomically(out, half_then_full)
    assert info.value.errno == errno.ENOSPC
    assert out.read_bytes() == b"old data" and listing(tmp_path) == ["x.bin"]
    monkeypatch.setattr(outputs.os, "fsync", full_disk)  # the disk fills while syncing
    with pytest.raises(OSError):
        write_atomically(out, b"new data")
    assert out.read_bytes() == b"old data" and listing(tmp_path) == ["x.bin"]
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C midway too
        write_atomically(out, lambda f: (_ for _ in ()).throw(KeyboardInterrupt))
    assert out.read_bytes() == b"old data" and listing(tmp_path) == ["x.bin"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_device_is_an_oserror_and_nothing_else(tmp_path):
    # /dev/full as a writer's destination: every write fails with ENOSPC, as on a full disk
    def onto_dev_full(f):
        with open("/dev/full", "wb") as full:
            full.write(b"x" * 65536)
            full.flush()

    (tmp_path / "x").write_bytes(b"old")
    with pytest.raises(OSError) as info:
        write_atomically(tmp_path / "x", onto_dev_full)
    assert info.value.errno == errno.ENOSPC and (tmp_path / "x").read_bytes() == b"old"
    assert listing(tmp_path) == ["x"]


def test_write_together_renames_nothing_until_all_are_written(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"old a")
    b.write_bytes(b"old b")

    def fails(f):
        full_disk()

    with pytest.raises(OSError):
        write_together({a: b"new a", b: fails})
    assert (a.read_bytes(), b.read_bytes()) == (b"old a", b"old b") and listing(tmp_path) == ["a", "b"]
    write_together({a: b"new a", b: b"new b"})
    assert (a.read_bytes(), b.read_bytes()) == (b"new a", b"new b") and listing(tmp_path) == ["a", "b"]


def test_cost_csv_and_tensor_exports_keep_the_old_file_on_failure(tmp_path, built, monkeypatch):
    report = analyse(built("mobilenet_v1", 0.25, 96))
    csv = tmp_path / "layers.csv"
    report.write_csv(csv, "paper")
    assert csv.read_text() == report.to_csv("paper")
    img = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(img)
    npy = tmp_path / "x.npy"
    npy.write_bytes(b"old tensors")
    with pytest.raises(MbxError, match="x.npy already exists"):
        export_tensors([img], preset("torchvision", 32), npy)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(outputs.os, "fsync", full_disk)
    with pytest.raises(OSError):
        report.write_csv(csv, "torchvision")
    for name in ("x.npy", "x.npz"):
        with pytest.raises(OSError):
            export_tensors([img], preset("torchvision", 32), tmp_path / name, force=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing new, nothing changed


def test_bin_files_in_an_existing_folder_need_force(tmp_path):
    img = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(img)
    bins = tmp_path / "bins"
    bins.mkdir()
    (bins / "a.bin").write_bytes(b"old")
    with pytest.raises(MbxError, match="a.bin already exists; give --force"):
        export_tensors([img], preset("torchvision", 32), bins)
    assert (bins / "a.bin").read_bytes() == b"old" and listing(bins) == ["a.bin"]
    export_tensors([img], preset("torchvision", 32), bins, force=True)
    assert (bins / "a.bin").stat().st_size == 3 * 32 * 32 * 4 and listing(bins) == ["a.bin"]


# inputs checked once ------------------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"scale": float("nan")}, "the scale must be a finite number above 0, not nan"),
    ({"scale": 0.0}, "the scale must be a finite number above 0"),
    ({"scale": -1 / 255}, "the scale must be a finite number above 0"),
    ({"scale": float("inf")}, "the scale must be a finite number above 0, not inf"),
    ({"std": (0.2, 0.0, 0.2)}, "the std must be three finite numbers above 0"),
    ({"std": (0.2, float("nan"), 0.2)}, "the std must be three finite numbers above 0"),
    ({"mean": (0.5, float("inf"), 0.5)}, r"the mean must be three finite numbers \(one per channel\)"),
    ({"crop_ratio": 0.0}, "the crop must be a fraction above 0 and at most 1"),
    ({"crop_ratio": 1.5}, "the crop must be a fraction above 0 and at most 1"),
    ({"crop_ratio": float("nan")}, "the crop must be a fraction above 0 and at most 1"),
])
def test_preprocessing_values_are_checked(options, message):
    with pytest.raises(MbxError, match=message):
        customise(preset("torchvision", 64), **options)
    with pytest.raises(MbxError, match=message):  # a preset with options goes through the same check
        preset("keras", 64, **options)


def test_good_values_pass_and_negative_means_are_fine():
    p = customise(preset("torchvision", 64), scale=1 / 127.5, mean=(-1.0, 0.0, 1.0), std=(2.0, 2.0, 2.0),
                  crop_ratio=1.0)
    assert p.name == "custom" and p.mean == (-1.0, 0.0, 1.0)


def test_options_that_do_not_apply_are_warned_about():
    raw = preset("coral", 64, dtype="uint8", scale=0.5, mean=(1.0, 1.0, 1.0))
    assert option_warnings(raw, {"scale": 0.5, "mean": (1.0, 1.0, 1.0)}) == [
        "scale and mean are not used: the input takes raw uint8 pixels, with no scaling or normalisation."]
    assert option_warnings(preset("coral", 64, dtype="int8"), {"std": (1, 1, 1)})[0].startswith(
        "std is not used: the input takes raw int8 pixels")
    whole = preset("keras", 64, crop_ratio=0.5)
    assert option_warnings(whole, {"crop_ratio": 0.5}) == [
        "crop is not used: the whole picture is resized, with no crop (the shorter-side and central resizes crop)."]
    applied = {"scale": 0.5, "crop_ratio": 0.5}
    assert option_warnings(preset("torchvision", 64, **applied), applied) == []


def _with_nan_bias(built):
    m = onnx.ModelProto()
    m.CopyFrom(built("mobilenet_v1", 0.25, 96, num_classes=4).model)
    for i, t in enumerate(m.graph.initializer):
        if t.name == "classifier.bias":
            bias = numpy_helper.to_array(t).copy()
            bias[1] = np.nan
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(bias, t.name))
    return from_proto(m, name="broken", source_format="onnx")


def test_a_nan_score_is_an_error_not_a_result(built):
    clf = Classifier(_with_nan_bias(built))
    with pytest.raises(MbxError, match=r"broken gave no usable scores: 1 of its 4 outputs is NaN or infinite"):
        clf.classify(Image.new("RGB", (64, 64), (9, 9, 9)))
    good = Classifier(built("mobilenet_v1", 0.25, 96, num_classes=4)).classify(Image.new("RGB", (64, 64)))
    assert all(math.isfinite(t.score) for t in good.topk)
    json.dumps([t.score for t in good.topk], allow_nan=False)


def _proto(built, **kw):
    m = onnx.ModelProto()
    m.CopyFrom(built("mobilenet_v1", 0.25, 96, **kw).model)
    return m


def test_an_input_shape_that_contradicts_the_weights_is_refused(built):
    with pytest.raises(InputShapeError, match=r"input 'input' of m cannot be 1x4x96x96: that gives Conv 'conv_stem' 4 "
                                              r"input channels where its weights take 3; keep its 3 channels"):
        from_proto(_proto(built), name="m", source_format="onnx", input_shapes={"input": [1, 4, 96, 96]})
    with pytest.raises(InputShapeError, match="1 input channel where its weights take 3"):
        from_proto(_proto(built), name="m", source_format="onnx", input_shapes={"input": [1, 1, 96, 96]})
    with pytest.raises(InputShapeError, match="m has no input 'image'; its inputs are input"):
        from_proto(_proto(built), name="m", source_format="onnx", input_shapes={"image": [1, 3, 96, 96]})
    with pytest.raises(InputShapeError, match="has 4 dimensions, the given shape 3"):
        from_proto(_proto(built), name="m", source_format="onnx", input_shapes={"input": [1, 3, 96]})
    m = from_proto(_proto(built), name="m", source_format="onnx", input_shapes={"input": [2, 3, 64, 80]})
    assert m.inputs[0].shape == (2, 3, 64, 80)  # what the weights allow still changes


def test_a_gemm_fed_the_wrong_size_is_refused():
    from onnx import helper

    w = numpy_helper.from_array(np.ones((10, 5), np.float32), "w")
    g = helper.make_graph([helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "w"], ["y"],
                                                                                     name="fc")],
                          "g", [helper.make_tensor_value_info("x", 1, ["n", 10])],
                          [helper.make_tensor_value_info("y", 1, ["n", 5])], [w])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(InputShapeError, match="input 'x' of d cannot be 1x12: that gives Gemm 'fc' 12 input features "
                                              "where its weights take 10"):
        from_proto(proto, name="d", source_format="onnx", input_shapes={"x": [1, 12]})


def test_a_missing_image_says_so(tmp_path):
    missing = tmp_path / "gone.jpg"
    for read in (read_image, decode):
        with pytest.raises(ImageError, match=f"^{missing} does not exist.$"):
            read(missing)
    (tmp_path / "bad.jpg").write_text("not a picture")
    with pytest.raises(ImageError, match="bad.jpg is not an image this app can read"):
        read_image(tmp_path / "bad.jpg")


def test_plural():
    assert [plural(n, "layer") for n in (0, 1, 2)] == ["0 layers", "1 layer", "2 layers"]
    assert plural(1, "class", "classes") == "1 class" and plural(1000, "class", "classes") == "1000 classes"
    assert plural(12345, "op", spec=",") == "12,345 ops"
