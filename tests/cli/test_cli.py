"""The command line. Most tests call ``main()`` in this process (the ``mbx`` fixture, conftest.py), as the
console script does (``sys.exit(main())``), and capture file descriptors 1 and 2, so that what C libraries write
is seen too. A few run a real process where only a process shows the behaviour: the script starts, start-up
imports, a reader closing the pipe, a full disk on stdout, nothing printed at exit."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mbexplorer import cli


def mbx_process(*args, timeout=180, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mbexplorer.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


def test_the_script_and_the_module_start():
    """The installed console script and ``python -m mbexplorer.cli`` really start (entry point, imports)."""
    script = Path(sys.executable).with_name("mbexplorer")
    runs = [mbx_process("--help")]
    if script.exists():  # installed with pip; a checkout run in place has only the module
        runs.append(subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60))
    for r in runs:
        assert r.returncode == 0 and r.stderr == ""
        assert r.stdout.startswith("usage: mbexplorer ")
        assert all(c in r.stdout for c in ("gui", "summary", "predict", "convert", "build"))
    r = mbx_process("summary", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: mbexplorer summary ") and "--convention" in r.stdout


def test_start_up_imports_only_what_parsing_needs():
    """`mbexplorer --help` stays instant: importing the CLI loads none of the heavy libraries (each command
    imports what it needs when it runs)."""
    heavy = ("onnx", "numpy", "onnxruntime", "PIL", "PySide6", "pyqtgraph", "h5py", "safetensors", "tflite")
    code = f"import sys, mbexplorer.cli; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[]\n"


def test_an_error_is_one_line_and_nothing_else_at_exit(tmp_path):
    """A real process: the one-line message and status 1, and nothing printed at exit (no traceback, no
    'Exception ignored' from a flush, no library's shutdown message)."""
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"hello world\n")
    r = mbx_process("summary", p)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("mbexplorer: error: ") and r.stderr.count("\n") == 1


def test_in_process_calls_leave_stdout_working(mbx, capfd):
    """main() in-process must not redirect the caller's stdout: _drop_stdout (the broken-pipe / full-disk path)
    leaves a stream that is not the process's real stdout alone."""
    cli._drop_stdout()
    print("still captured")
    assert capfd.readouterr().out == "still captured\n"
    for _ in range(2):  # no state carried from one call to the next
        r = mbx("build", "--help")
        assert r.returncode == 0 and r.stdout.startswith("usage: mbexplorer build ") and r.stderr == ""


def test_build_then_summary_json_has_exact_figures(tmp_path, mbx):
    out = tmp_path / "v1.onnx"
    r = mbx("build", "mobilenet_v1", "--width", "1.0", "--resolution", "224", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and out.stat().st_size > 16_000_000
    r = mbx("summary", out, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["totals"]["macs"] == 568_740_352 and d["totals"]["params"] == 4_210_088
    assert d["totals"]["flops"] == 2 * 568_740_352
    assert [b["kind"] for b in d["blocks"]].count("depthwise_separable") == 13
    assert d["layers"][0]["op_type"] == "Conv" and d["layers"][0]["output_shapes"] == [[1, 32, 112, 112]]
    assert d["not_counted"] == []


def test_summary_conventions_and_csv(tmp_path, mbx):
    model = tmp_path / "v1.onnx"
    assert mbx("build", "mobilenet_v1", "--width", "0.25", "--rounding", "paddle", "-o", model).returncode == 0
    csv_path = tmp_path / "layers.csv"
    r = mbx("summary", model, "--convention", "paddle", "--csv", csv_path)
    assert r.returncode == 0, r.stderr
    assert "43,564,416" in r.stdout  # PaddleClas MobileNetV1_x0_25: 43.56 MFLOPs
    assert "paddle" in r.stdout and "block 13: dw 3x3 s1, pw 256→256" in r.stdout
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("name,op_type,block,input_shapes,output_shapes,params,macs,flops")
    assert len(lines) > 80


def test_build_options(tmp_path, mbx):
    out = tmp_path / "v3.onnx"
    r = mbx("build", "mobilenet_v3_small", "--width", "0.75", "--resolution", "160", "--classes", "10", "--fold-bn",
            "-o", out)
    assert r.returncode == 0, r.stderr
    d = json.loads(mbx("summary", out, "--json").stdout)
    assert d["model"]["inputs"][0]["shape"] == ["batch", 3, 160, 160]
    assert d["model"]["outputs"][0]["shape"] == ["batch", 10]
    assert not any(layer["op_type"] == "BatchNormalization" for layer in d["layers"])


@pytest.mark.parametrize("content", [b"", b"hello world\n", b"\x08\x07\x12\x04abc"])
def test_bad_input_is_one_line_no_traceback(tmp_path, content, mbx):
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    r = mbx("summary", p)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("mbexplorer: error: ")
    assert "Traceback" not in r.stderr


def test_directory_unknown_op_and_bad_build_args(tmp_path, mbx):
    r = mbx("summary", tmp_path)
    assert r.returncode == 1 and "folder" in r.stderr and "Traceback" not in r.stderr
    import onnx
    from onnx import helper

    node = helper.make_node("Mystery", ["x"], ["y"], domain="org.nowhere")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("y", 1, [1, 3, 4, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("org.nowhere", 1)])
    onnx.save(m, str(tmp_path / "m.onnx"))
    r = mbx("summary", tmp_path / "m.onnx")
    assert r.returncode == 1 and "Mystery" in r.stderr and r.stderr.count("\n") == 1
    r = mbx("build", "mobilenet_v2", "--width", "5", "-o", tmp_path / "x.onnx")
    assert r.returncode == 1 and "width 5 is outside" in r.stderr


def test_input_shape_option(tmp_path, mbx):
    import onnx
    from onnx import helper

    node = helper.make_node("Relu", ["x"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, ["n", 3, "h", "w"])],
                          [helper.make_tensor_value_info("y", 1, ["n", 3, "h", "w"])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "d.onnx"))
    r = mbx("summary", tmp_path / "d.onnx")
    assert r.returncode == 1 and "--input-shape x=" in r.stderr
    r = mbx("summary", tmp_path / "d.onnx", "--input-shape", "x=1,3,64,64", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["layers"][0]["output_shapes"] == [[1, 3, 64, 64]]


def test_predict_json_with_a_bad_file_among_good_ones(tmp_path, mbx):
    from PIL import Image

    model = tmp_path / "v1.onnx"
    assert mbx("build", "mobilenet_v1", "--width", "0.25", "--resolution", "128", "-o", model).returncode == 0
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (300, 200), (200, 10, 10)).save(folder / "red.png")
    Image.new("L", (100, 150), 90).save(folder / "grey.jpg")
    (tmp_path / "notes.txt").write_text("hello")
    r = mbx("predict", model, folder, tmp_path / "notes.txt", "--top-k", "3", "--json")
    assert r.returncode == 1  # one file failed; the others were still classified
    assert "Traceback" not in r.stderr
    d = json.loads(r.stdout)
    assert d["model"] == "v1" and d["preset"] == "torchvision"
    res = {Path(x["image"]).name: x for x in d["results"]}
    assert len(res["red.png"]["topk"]) == 3 and set(res["red.png"]["topk"][0]) == {"index", "label", "score"}
    assert res["red.png"]["latency_ms"] > 0
    assert "not an image" in res["notes.txt"]["error"]
    r = mbx("predict", model, folder / "red.png", "--preset", "tfslim")
    assert r.returncode == 0 and "tfslim: central crop 87.5%" in r.stdout


def test_convert_tflite_with_float_twin_and_predict(shared_dir, tmp_path, mbx):
    src = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    q, f = tmp_path / "q.onnx", tmp_path / "f.onnx"
    r = mbx("convert", src, "-o", q, "--float-twin", f)
    assert r.returncode == 0, r.stderr
    assert q.stat().st_size > 0 and f.stat().st_size > q.stat().st_size  # float weights are 4x larger
    r = mbx("predict", src, shared_dir / "images" / "parrot.jpg", "--json", "--top-k", "1")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["preset"] == "coral" and d["results"][0]["topk"][0]["index"] == 89  # macaw
    assert d["results"][0]["topk"][0]["label"] == "macaw"
    r = mbx("convert", tmp_path / "q.onnx", "-o", tmp_path / "x.onnx", "--float-twin", tmp_path / "y.onnx")
    assert r.returncode == 1 and "no float twin" in r.stderr


def test_predict_refuses_what_would_print_nothing(tmp_path, model_file, mbx):
    model = model_file("mobilenet_v1", 0.25, 96)
    (tmp_path / "empty").mkdir()
    r = mbx("predict", model, tmp_path / "empty")
    assert r.returncode == 1 and "no images found" in r.stderr and "Traceback" not in r.stderr
    img = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (120, 100), (10, 200, 30)).save(img)
    r = mbx("predict", model, img, "--top-k", "0")
    assert r.returncode == 1 and "--top-k must be at least 1" in r.stderr
    labels = tmp_path / "three.txt"
    labels.write_text("a\nb\nc\n")
    r = mbx("predict", model, img, "--labels", labels, "--json")
    assert r.returncode == 0 and "three.txt has 3 names for 1000 outputs" in r.stderr
    assert json.loads(r.stdout)["results"][0]["topk"][0]["label"] != "a"  # ImageNet's names, as warned


def test_one_huge_image_does_not_stop_the_others(tmp_path, model_file, mbx):
    from PIL import Image

    model = model_file("mobilenet_v1", 0.25, 96)
    good, huge = tmp_path / "good.png", tmp_path / "huge.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    Image.new("1", (20_000, 20_000)).save(huge)  # 400 MP: PIL refuses it as a decompression bomb
    r = mbx("predict", model, huge, good, "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    res = json.loads(r.stdout)["results"]
    assert "too large to decode safely" in res[0]["error"] and res[1]["topk"]


def test_csv_that_cannot_be_written_is_a_user_error(tmp_path, model_file, mbx):
    model = model_file("mobilenet_v1", 0.25, 96)
    for target, why in ((tmp_path / "nope" / "x.csv", f"the folder {tmp_path / 'nope'} does not exist."),
                        (tmp_path, "Is a directory")):
        r = mbx("summary", model, "--csv", target)
        assert r.returncode == 1, r.stderr
        assert r.stderr == f"mbexplorer: error: cannot write {target}: {why}\n"


def test_output_that_cannot_be_written_is_a_user_error_and_leaves_nothing(tmp_path, mbx):
    (tmp_path / "taken.onnx").mkdir()
    for target, why in ((tmp_path / "nope" / "x.onnx", f"the folder {tmp_path / 'nope'} does not exist."),
                        (tmp_path / "taken.onnx", "Is a directory")):
        r = mbx("build", "mobilenet_v1", "--width", "0.25", "--resolution", "96", "-o", target)
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr == f"mbexplorer: error: cannot write {target}: {why}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["taken.onnx"]  # no temporary file left behind


def test_reader_closing_the_pipe_is_quiet(model_file):
    # `mbexplorer summary m.onnx --json | head -1`: the reader leaves after one line; no message, SIGPIPE's
    # status. The output (86 KB) is larger than a pipe holds (64 KiB), so the writer is still writing when the
    # reader leaves, however stdout is buffered (a short output would fit in the pipe and exit 0).
    model = model_file("mobilenet_v3_large", 0.25, 96)
    p = subprocess.Popen([sys.executable, "-m", "mbexplorer.cli", "summary", str(model), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    assert p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=180) == 141 and err == ""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_disk_on_stdout_is_one_line(model_file):
    model = model_file("mobilenet_v1", 0.25, 96)
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "mbexplorer.cli", "summary", str(model), "--json"], stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=180)
    assert r.returncode == 1 and r.stderr == "mbexplorer: error: cannot write the output: No space left on device\n"


def test_broken_graphs_and_bad_shapes_are_refused(tmp_path, built, mbx):
    import onnx
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(built("mobilenet_v1", 0.25, 96).model)
    del m.graph.initializer[::2]
    onnx.save(m, str(tmp_path / "half.onnx"))
    r = mbx("summary", tmp_path / "half.onnx")
    assert r.returncode == 1 and "is not a graph input" in r.stderr and r.stderr.count("\n") == 1
    node = helper.make_node("Relu", ["x"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, None)],
                          [helper.make_tensor_value_info("y", 1, None)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "norank.onnx"))
    r = mbx("summary", tmp_path / "norank.onnx")
    assert r.returncode == 1 and "unknown rank" in r.stderr and "--input-shape x=" in r.stderr
    r = mbx("summary", tmp_path / "norank.onnx", "--input-shape", "x=0,-1,2,3")
    assert r.returncode == 2 and "every size must be at least 1" in r.stderr


def test_long_block_names_are_not_cut(model_file, mbx):
    r = mbx("summary", model_file("mobilenet_v3_large", 0.25, 96))  # V3-Large has names over 52 characters
    assert r.returncode == 0, r.stderr
    assert "block 12: expand x5.25, dw 3x3 s1, SE, h-swish, residual " in r.stdout
    rows = [line for line in r.stdout.splitlines() if line.startswith(("block ", "stem", "head", "total"))]
    assert len({len(line) for line in rows}) == 1  # one column width: the numbers still line up


def test_predict_custom_preprocessing_reproduces_data_md(shared_dir, mbx):
    """DATA.md's reference preprocessing (whole image, PIL bilinear, raw pixels) as a custom preset from the
    command line gives its table's top-3 for the 0.25/128 Coral model on cat.bmp."""
    model = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    r = mbx("predict", model, shared_dir / "images" / "cat.bmp", "--resize", "whole", "--interpolation", "pil",
            "--top-k", "3", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["preset"] == "custom" and d["preprocessing"].startswith("custom: whole image to 128x128 (PIL bilinear)")
    top = [(t["index"], round(t["score"], 3)) for t in d["results"][0]["topk"]]
    assert top == [(286, 0.133), (283, 0.117), (282, 0.078)]


def test_predict_custom_values_and_bad_options(tmp_path, model_file, mbx):
    from PIL import Image

    model = model_file("mobilenet_v1", 0.25, 96)
    img = tmp_path / "a.png"
    Image.new("RGB", (120, 100), (10, 200, 30)).save(img)
    r = mbx("predict", model, img, "--preset", "tfslim", "--mean", "0.5", "--std", "0.5,0.5,0.5",
            "--scale", str(1 / 255), "--channel-order", "BGR", "--json")
    assert r.returncode == 0, r.stderr
    text = json.loads(r.stdout)["preprocessing"]
    assert text.startswith("custom: central crop 87.5%") and "mean (0.5, 0.5, 0.5)" in text and "BGR" in text
    r = mbx("predict", model, img, "--mean", "1,2")
    assert r.returncode == 2 and "not one or three numbers" in r.stderr


def test_summary_marks_sums_that_leave_ops_out(tmp_path, mbx):
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.ones((3, 8, 3, 3), np.float32), "w")
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="deconv")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", 1, [1, 8, 10, 10])], [w])
    path = tmp_path / "deconv.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    r = mbx("summary", path)
    assert r.returncode == 0, r.stderr
    total = next(line for line in r.stdout.splitlines() if line.startswith("total"))
    assert total.split() == ["total", "1", "216", "0+", "0+"]  # params counted; MACs and FLOPs are not
    assert "+ not counted under 'paper': ConvTranspose" in r.stdout
    r = mbx("build", "mobilenet_v2", "-o", tmp_path / "v2.onnx")
    plain = mbx("summary", tmp_path / "v2.onnx").stdout
    assert "+" not in next(line for line in plain.splitlines() if line.startswith("total"))


def test_convert_standard_qdq_for_other_tools(shared_dir, tmp_path, mbx):
    import onnx

    src = shared_dir / "models" / "v3-small_224_1.0_uint8.tflite"
    exact, plain = tmp_path / "exact.onnx", tmp_path / "plain.onnx"
    assert mbx("convert", src, "-o", exact).returncode == 0
    r = mbx("convert", src, "-o", plain, "--standard-qdq")
    assert r.returncode == 0, r.stderr
    a, b = onnx.load(str(exact)), onnx.load(str(plain))
    assert a.functions and {n.domain for n in a.graph.node} == {"", "mbexplorer.tflite"}
    assert not b.functions and {n.domain for n in b.graph.node} == {""}
    r = mbx("predict", plain, shared_dir / "images" / "parrot.jpg", "--preset", "coral", "--json", "--top-k", "1")
    assert r.returncode == 0 and json.loads(r.stdout)["results"][0]["topk"][0]["index"] == 89


def test_predict_says_when_a_model_does_not_take_images(tmp_path, mbx):
    """predict runs the Classify tab's job, and its check of the model's input: one line, not an internal error."""
    import onnx
    from onnx import TensorProto, helper
    from PIL import Image

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "vec",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])])
    model = tmp_path / "vec.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), model)
    img = tmp_path / "a.png"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(img)
    r = mbx("predict", model, img)
    assert r.returncode == 1
    assert r.stderr == ("mbexplorer: error: vec cannot classify images: its input 'x' is 1×10, not an image batch "
                        "(N×C×H×W or N×H×W×C).\n")


def test_predict_help_names_every_preset_and_what_it_reproduces(mbx):
    from mbexplorer.core import decoding, preprocess
    from mbexplorer.core.presets_info import AUTO, INTERPOLATIONS, PRESETS, REFERENCES

    # the numpy-free copies the parser uses are the ones preprocessing runs on
    assert preprocess.PRESETS is PRESETS and preprocess.REFERENCES is REFERENCES
    assert INTERPOLATIONS == preprocess.INTERPOLATIONS and cli.DECODERS == decoding.DECODERS
    r = mbx("predict", "--help")
    assert r.returncode == 0
    for name in ("torchvision", "timm", "tfslim", "keras", "tfjs", "coral", "paddle"):
        assert f"  {name:<12} {REFERENCES[name]}\n" in r.stdout
    assert " ".join(r.stdout.split()).count(AUTO) == 1  # which preset auto picks per source, wrapped
    for option in ("--decoder {pil,tf,cv2}", "--alpha {drop,white}", "tfjs: TF.js bilinear, align corners"):
        assert option in " ".join(r.stdout.split())
    r = mbx("predict", "model.onnx", "a.png", "--preset", "inception")
    assert r.returncode == 2 and "invalid choice: 'inception'" in r.stderr


def test_predict_takes_every_interpolation_decoder_and_alpha(tmp_path, model_file, mbx):
    from PIL import Image

    from mbexplorer.core.presets_info import INTERPOLATIONS

    model = model_file("mobilenet_v1", 0.25, 96)
    img = tmp_path / "a.png"
    Image.new("RGBA", (120, 100), (10, 200, 30, 100)).save(img)
    texts = set()
    for name in INTERPOLATIONS:
        r = mbx("predict", model, img, "--interpolation", name, "--decoder", "cv2", "--alpha", "white", "--json")
        assert r.returncode == 0, r.stderr
        text = json.loads(r.stdout)["preprocessing"]
        assert text.startswith("custom: shorter side to 110, centre crop 96x96") and text.endswith(", alpha over white")
        texts.add(text)
    assert len(texts) == len(INTERPOLATIONS)  # each names its own kernel
