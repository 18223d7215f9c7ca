"""Inputs checked once, in the core, and refused at once with one line: preprocessing values, options that do not
apply (warned about), input shapes that contradict the weights or the format, contradictory commands, the class
count; scores that are NaN; messages that say what happened."""

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image


def one_error(r, text):
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.startswith("mbexplorer: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert text in r.stderr, r.stderr
    assert r.stdout == ""


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (120, 100), (10, 200, 30)).save(path)
    return path


@pytest.mark.parametrize("option, message", [
    (("--scale", "nan"), "the scale must be a finite number above 0, not nan."),
    (("--scale", "0"), "the scale must be a finite number above 0, not 0.0."),
    (("--scale=-inf",), "the scale must be a finite number above 0"),
    (("--std", "0"), "the std must be three finite numbers above 0 (one per channel), not 0.0, 0.0, 0.0."),
    (("--std", "0.2,nan,0.2"), "the std must be three finite numbers above 0"),
    (("--mean", "inf"), "the mean must be three finite numbers (one per channel)"),
    (("--crop", "0"), "the crop must be a fraction above 0 and at most 1"),
    (("--crop", "1.5"), "the crop must be a fraction above 0 and at most 1"),
])
def test_bad_preprocessing_values_are_refused(tmp_path, model_file, image, mbx, option, message):
    model = model_file("mobilenet_v1", 0.25, 96)
    one_error(mbx("predict", model, image, *option), message)
    one_error(mbx("preprocess", image, "--size", "32", *option, "-o", tmp_path / "x.npy"), message)
    assert not (tmp_path / "x.npy").exists()


def test_options_that_do_not_apply_are_warned_about(tmp_path, image, mbx):
    r = mbx("preprocess", image, "--size", "32", "--dtype", "uint8", "--scale", "0.5", "--mean", "1",
            "-o", tmp_path / "x.npy")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ("warning: scale and mean are not used: the input takes raw uint8 pixels, with no scaling "
                        "or normalisation.\n")
    r = mbx("preprocess", image, "--size", "32", "--preset", "keras", "--crop", "0.5", "-o", tmp_path / "y.npy")
    assert r.returncode == 0 and r.stderr.startswith("warning: crop is not used: the whole picture is resized")
    r = mbx("preprocess", image, "--size", "32", "--scale", "0.5", "-o", tmp_path / "z.npy")
    assert r.returncode == 0 and r.stderr == ""


def test_predict_warns_about_values_a_raw_pixel_model_ignores(shared_dir, mbx):
    r = mbx("predict", shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite",
            shared_dir / "images" / "parrot.jpg", "--std", "0.5", "--json", "--top-k", "1")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ("warning: std is not used: the input takes raw uint8 pixels, with no scaling or "
                        "normalisation.\n")
    assert json.loads(r.stdout)["results"][0]["topk"][0]["index"] == 89


def test_a_broken_model_gives_a_per_image_error_never_nan(tmp_path, built, image, mbx):
    m = onnx.ModelProto()
    m.CopyFrom(built("mobilenet_v1", 0.25, 96, num_classes=4).model)
    for t in m.graph.initializer:
        if t.name == "classifier.weight":
            t.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(t).shape, np.inf, np.float32), t.name))
    onnx.save(m, str(tmp_path / "broken.onnx"))
    r = mbx("predict", tmp_path / "broken.onnx", image, "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr

    def no_nan(text):
        raise AssertionError(f"{text} in the JSON")

    d = json.loads(r.stdout, parse_constant=no_nan)
    assert d["results"] == [{"image": str(image), "error": d["results"][0]["error"]}]
    assert d["results"][0]["error"].startswith("broken gave no usable scores: ")
    assert "outputs are NaN or infinite" in d["results"][0]["error"]


def test_input_shapes_that_contradict_the_model_are_refused(tmp_path, model_file, mbx):
    model = model_file("mobilenet_v1", 0.25, 96)
    one_error(mbx("summary", model, "--input-shape", "input=1,4,96,96"),
              "input 'input' of mobilenet_v1_0.25_96 cannot be 1x4x96x96: that gives Conv 'conv_stem' 4 input "
              "channels where its weights take 3; keep its 3 channels")
    one_error(mbx("summary", model, "--input-shape", "image=1,3,96,96"),
              "mobilenet_v1_0.25_96 has no input 'image'; its inputs are input.")
    r = mbx("summary", model, "--input-shape", "input=1,3,128,128", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["model"]["inputs"][0]["shape"] == [1, 3, 128, 128]


def test_input_shape_is_not_silently_dropped_for_other_formats(shared_dir, mbx):
    r = mbx("summary", shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite", "--input-shape",
            "input=1,160,160,3")
    one_error(r, "the input shape input=1,160,160,3 cannot be applied: mobilenet_v1_0.25_128_quant is a tflite model")


def test_contradictions_are_errors_at_once(tmp_path, model_file, mbx, monkeypatch):
    import mbexplorer.gui.app as app

    monkeypatch.setattr(app, "run_gui", lambda **kw: pytest.fail("the window should not open"))
    model = model_file("mobilenet_v1", 0.25, 96)
    one_error(mbx("gui", model, "--build", "mobilenet_v2"), "give a model file or --build mobilenet_v2, not both")
    (tmp_path / "empty").mkdir()
    one_error(mbx("gui", model, "--images", tmp_path / "empty"), f"no images found in {tmp_path / 'empty'}")
    one_error(mbx("convert", model, "-o", tmp_path / "x.onnx", "--standard-qdq"),
              "is a float model: it has no Q/DQ to convert; drop --standard-qdq.")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("classes", ["0", "-3", "100001", "10000000000"])
def test_the_class_count_has_bounds(tmp_path, mbx, monkeypatch, classes):
    import mbexplorer.gui.app as app

    monkeypatch.setattr(app, "run_gui", lambda **kw: pytest.fail("the window should not open"))
    one_error(mbx("build", "mobilenet_v1", "--classes", classes, "-o", tmp_path / "x.onnx"),
              "--classes must be 1 ... 100,000 (got ")
    one_error(mbx("gui", "--build", "mobilenet_v1", "--classes", classes), "--classes must be 1 ... 100,000")
    assert not (tmp_path / "x.onnx").exists()


def test_a_missing_image_does_not_exist(tmp_path, model_file, image, mbx):
    missing = tmp_path / "gone.jpg"
    r = mbx("predict", model_file("mobilenet_v1", 0.25, 96), image, missing, "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["results"][1] == {"image": str(missing), "error": f"{missing} does not exist."}
    one_error(mbx("preprocess", missing, "--size", "32", "-o", tmp_path / "x.npy"), f"{missing} does not exist.")


def test_counts_of_one_are_singular(tmp_path, image, mbx):
    model = tmp_path / "three.onnx"
    assert mbx("build", "mobilenet_v1", "--width", "0.25", "--resolution", "96", "--classes", "3",
               "-o", model).returncode == 0
    labels = tmp_path / "one.txt"
    labels.write_text("cat\n")
    r = mbx("predict", model, image, "--labels", labels)
    assert r.returncode == 0 and "warning: one.txt has 1 name for 3 outputs, so it is not used" in r.stderr
    r = mbx("preprocess", image, "--size", "32", "-o", tmp_path / "x.npz")
    assert r.returncode == 0 and f"wrote {tmp_path / 'x.npz'}: 1 array, " in r.stdout
    r = mbx("preprocess", image, "--size", "32", "-o", tmp_path / "bins")
    assert r.returncode == 0 and ": 1 raw .bin file (little-endian" in r.stdout
