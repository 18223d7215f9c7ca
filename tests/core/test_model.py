"""Loading: format sniffing from content, typed errors with useful messages, shapes, external data."""

import hashlib

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from PIL import Image

from mbexplorer.core.errors import (
    ExternalDataError,
    InputShapeError,
    InvalidGraphError,
    ModelLoadError,
    NotAModelError,
    TruncatedModelError,
    UnknownOperatorError,
    UnsupportedFormatError,
    UnsupportedOpsetError,
)
from mbexplorer.core.loading import load


def test_load_onnx_fills_the_model_record(model_file):
    path = model_file("mobilenet_v2", 0.5, 160)
    m = load(path)
    assert m.source_format == "onnx" and m.source_path == path.resolve()
    assert m.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert m.file_size == path.stat().st_size
    assert m.opset == 17 and "mbexplorer" in m.producer
    (inp,) = m.inputs
    assert (inp.name, inp.shape, inp.dtype, inp.layout) == ("input", ("batch", 3, 160, 160), "float32", "NCHW")
    assert m.outputs[0].shape == ("batch", 1000)
    assert m.shapes["features.0.0.out"] == (1, 16, 80, 80)  # resolved at batch 1
    assert m.preprocessing is None and m.labels is None  # filled by importers later


def test_format_is_sniffed_from_content_not_extension(model_file, tmp_path):
    src = model_file("mobilenet_v1", 0.25, 128)
    odd = tmp_path / "weights.bin"
    odd.write_bytes(src.read_bytes())
    assert load(odd).name == "weights"
    fake = tmp_path / "model.onnx"
    Image.new("RGB", (8, 8)).save(fake, format="PNG")
    with pytest.raises(NotAModelError, match="PNG image"):
        load(fake)


def test_nhwc_layout_is_recognised():
    from mbexplorer.core.model import _layout

    assert _layout((1, 224, 224, 3)) == "NHWC" and _layout(("n", 3, 96, 96)) == "NCHW" and _layout((1, 1000)) is None


@pytest.mark.parametrize("content,error,words", [
    (b"", NotAModelError, r"empty \(0 bytes\)"),
    (b"name,score\ncat,1\n", NotAModelError, "text file"),
    (b"\x1c\x00\x00\x00TFL3" + bytes(64), TruncatedModelError, "TensorFlow Lite"),
    (b"\x89HDF\r\n\x1a\n" + bytes(64), TruncatedModelError, "starts like an HDF5 file"),
    (b"PK\x03\x04" + bytes(64), UnsupportedFormatError, "zip archive"),
    (bytes([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff] * 20), NotAModelError, "not a model.*TFLite.*Keras.*PyTorch"),
])
def test_bad_files_raise_typed_errors(tmp_path, content, error, words):
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    with pytest.raises(error, match=words) as info:
        load(p)
    assert "\n" not in str(info.value)


def test_truncated_onnx(model_file, tmp_path):
    data = model_file("mobilenet_v1", 0.25, 128).read_bytes()
    for cut in (len(data) // 3, len(data) - 10):
        p = tmp_path / f"cut{cut}.onnx"
        p.write_bytes(data[:cut])
        with pytest.raises(TruncatedModelError, match="truncated"):
            load(p)


def test_directory_and_missing_file(tmp_path):
    # exact types (not a subclass, which pytest.raises would accept) and the whole message
    with pytest.raises(NotAModelError) as info:
        load(tmp_path)
    assert type(info.value) is NotAModelError
    assert str(info.value) == f"{tmp_path} is a folder, not a model file. Choose the model file inside it."
    (tmp_path / "tfjs").mkdir()
    (tmp_path / "tfjs" / "model.json").write_text("{}")
    with pytest.raises(NotAModelError) as info:
        load(tmp_path / "tfjs")  # a folder with a model.json goes to the TF.js importer
    assert type(info.value) is NotAModelError
    assert str(info.value) == ("model.json is JSON but not a TF.js model: it has no 'modelTopology' and "
                               "'weightsManifest'.")
    with pytest.raises(ModelLoadError) as info:
        load(tmp_path / "nope.onnx")
    assert type(info.value) is ModelLoadError  # not NotAModelError: there is no file to judge
    assert str(info.value) == f"{tmp_path / 'nope.onnx'} does not exist."


def _tiny(op="Relu", domain="", opset=17, shape=(1, 3, 8, 8)):
    node = helper.make_node(op, ["x"], ["y"], name="n0", domain=domain)
    g = helper.make_graph([node], "tiny", [helper.make_tensor_value_info("x", 1, list(shape))],
                          [helper.make_tensor_value_info("y", 1, list(shape))])
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(g, opset_imports=imports, ir_version=8)


def test_unknown_operator(tmp_path):
    p = tmp_path / "custom.onnx"
    onnx.save(_tiny("FancyActivation", "com.example"), str(p))
    with pytest.raises(UnknownOperatorError, match="FancyActivation.*com.example"):
        load(p)
    onnx.save(_tiny("Gelu", "com.microsoft"), str(p))  # onnxruntime's contrib ops are known
    assert load(p).opset == 17


def test_unsupported_opset(tmp_path):
    p = tmp_path / "old.onnx"
    m = _tiny(opset=5)
    onnx.save(m, str(p))
    with pytest.raises(UnsupportedOpsetError, match="opset 5.*version_converter"):
        load(p)


def test_input_size_not_fixed(tmp_path):
    p = tmp_path / "dyn.onnx"
    onnx.save(_tiny(shape=("n", 3, "h", "w")), str(p))
    with pytest.raises(InputShapeError, match="--input-shape x=1,3,224,224"):
        load(p)
    m = load(p, {"x": (1, 3, 32, 32)})
    assert m.inputs[0].shape == (1, 3, 32, 32) and m.shapes["y"] == (1, 3, 32, 32)
    with pytest.raises(InputShapeError, match="no input 'z'"):
        load(p, {"z": (1, 3, 32, 32)})
    with pytest.raises(InputShapeError, match="at least 1"):
        load(p, {"x": (1, 3, 0, -1)})


def test_input_of_unknown_rank_needs_a_shape(tmp_path):
    p = tmp_path / "norank.onnx"
    m = _tiny()
    for vi in (m.graph.input[0], m.graph.output[0]):
        vi.type.tensor_type.ClearField("shape")  # no shape at all, not a scalar
    onnx.save(m, str(p))
    with pytest.raises(InputShapeError, match="unknown rank.*--input-shape x="):
        load(p)
    assert load(p, {"x": (1, 3, 4, 4)}).shapes["y"] == (1, 3, 4, 4)


def test_deleted_initializers_are_refused(built):
    from mbexplorer.core.model import from_proto

    m = onnx.ModelProto()
    m.CopyFrom(built("mobilenet_v1", 0.25, 96).model)
    kept = list(m.graph.initializer)[::2]
    del m.graph.initializer[:]
    m.graph.initializer.extend(kept)
    with pytest.raises(InvalidGraphError, match=r"node '.+' reads tensor '.+', which is not .*export it again") as info:
        from_proto(m, name="half", source_format="onnx")
    assert "\n" not in str(info.value)


def test_graph_output_produced_by_nothing_is_refused(built):
    from mbexplorer.core.model import from_proto

    m = onnx.ModelProto()
    m.CopyFrom(built("mobilenet_v1", 0.25, 96).model)
    del m.graph.node[-2:]
    with pytest.raises(InvalidGraphError, match="graph output 'logits' is produced by no node"):
        from_proto(m, name="cut", source_format="onnx")


def test_constants_and_omitted_optional_inputs_are_fine():
    from mbexplorer.core.model import from_proto

    # Clip with its optional min omitted ("") and max from a Constant node.
    nodes = [helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(np.array(6, np.float32))),
             helper.make_node("Clip", ["x", "", "hi"], ["y"], name="clip")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 3])],
                          [helper.make_tensor_value_info("y", 1, [1, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    assert from_proto(m, name="clip", source_format="onnx").shapes["y"] == (1, 3)


def _with_external(tmp_path, location):
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c")
    g = helper.make_graph([node], "ext", [helper.make_tensor_value_info("x", 1, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("y", 1, [1, 4, 4, 4])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.external_data_helper.set_external_data(m.graph.initializer[0], location)
    m.graph.initializer[0].ClearField("raw_data")
    m.graph.initializer[0].data_location = onnx.TensorProto.EXTERNAL
    d = tmp_path / "model"
    d.mkdir(exist_ok=True)
    p = d / "m.onnx"
    onnx.save(m, str(p))
    return p


def test_external_data_inside_the_folder_only(tmp_path):
    p = _with_external(tmp_path, "w.bin")
    (p.parent / "w.bin").write_bytes(np.ones((4, 3, 1, 1), np.float32).tobytes())
    m = load(p)
    assert numpy_helper.to_array(m.graph.initializer[0]).sum() == 12
    (tmp_path / "secret.bin").write_bytes(bytes(48))
    with pytest.raises(ExternalDataError, match="outside its folder"):
        load(_with_external(tmp_path, "../secret.bin"))
    with pytest.raises(ExternalDataError, match="missing"):
        load(_with_external(tmp_path, "gone.bin"))


def test_shared_tflite_goes_to_its_importer(shared_dir):
    m = load(shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite")
    assert m.source_format == "tflite" and m.float_twin is not None
    tfjs = load(shared_dir / "models" / "tfjs_mobilenet_v1_0.25_224")
    assert tfjs.source_format == "tfjs" and tfjs.inputs[0].layout == "NHWC"
    assert load(shared_dir / "models" / "tfjs_mobilenet_v1_0.25_224" / "model.json").sha256 == tfjs.sha256


def test_state_dicts_go_to_their_importer(tmp_path, built):
    from safetensors.numpy import save_file

    m = built("mobilenet_v3_small", 0.5, 128)
    weights = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer if not t.name.startswith("const.")}
    p = tmp_path / "v3s.bin"  # the extension says nothing; the content does
    save_file(weights, str(p))
    loaded = load(p)
    assert loaded.source_format == "torchvision" and loaded.name == "v3s"
    assert loaded.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("value", ['["cat", "dog", "bird"]', '{"0": "cat", "2": "bird", "1": "dog"}',
                                   "cat\ndog\nbird\n"])
def test_labels_embedded_in_onnx_metadata(tmp_path, value):
    m = _tiny()
    onnx.helper.set_model_props(m, {"names": value})
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    assert load(p).labels == ["cat", "dog", "bird"]


def _unnamed_and_duplicates():
    """A chain x -> y whose nodes are unnamed, share names, or carry a name a generated one would take;
    listed backwards, so names follow the sorted order, not the file's."""
    chain = [("Relu", ""), ("Neg", "dup"), ("Abs", "dup"), ("Relu", "dup_1"), ("Sigmoid", "Relu_0"), ("Relu", "")]
    tensors = ["x", "a", "b", "c", "d", "e", "y"]
    nodes = [helper.make_node(op, [tensors[i]], [tensors[i + 1]], name=name) for i, (op, name) in enumerate(chain)]
    g = helper.make_graph(nodes[::-1], "names", [helper.make_tensor_value_info("x", 1, [1, 3])],
                          [helper.make_tensor_value_info("y", 1, [1, 3])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_every_node_gets_a_unique_name_in_the_model(tmp_path):
    from mbexplorer.core.graph import GraphIndex
    from mbexplorer.core.model import from_proto

    loaded = from_proto(_unnamed_and_duplicates(), name="names", source_format="onnx")
    names = [n.name for n in loaded.model.graph.node]
    # a named node keeps its name (the first of duplicates too); the others never take a name in use
    assert names == ["Relu_0_1", "dup", "dup_2", "dup_1", "Relu_0", "Relu_5"]
    assert GraphIndex(loaded).names == names
    p = tmp_path / "named.onnx"
    onnx.save(loaded.model, str(p))
    assert [n.name for n in onnx.load(str(p)).graph.node] == names
    assert [n.name for n in load(p).graph.node] == names  # loading again renames nothing


def test_onnxruntime_profiles_name_the_nodes(tmp_path):
    """The point of writing names into the model: onnxruntime's per-node profile refers to the same nodes
    (instead of names of its own for unnamed ones) as the app's tables."""
    import json

    import onnxruntime as ort
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail

    from mbexplorer.core.model import from_proto

    with pytest.raises(Fail, match="two nodes with same node name"):  # as written, it does not even load
        ort.InferenceSession(_unnamed_and_duplicates().SerializeToString(), providers=["CPUExecutionProvider"])
    loaded = from_proto(_unnamed_and_duplicates(), name="names", source_format="onnx")
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(tmp_path / "profile")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(loaded.model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    sess.run(None, {"x": np.ones((1, 3), np.float32)})
    with open(sess.end_profiling()) as f:
        events = json.load(f)
    profiled = {e["name"].removesuffix("_kernel_time") for e in events
                if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")}
    assert profiled == {n.name for n in loaded.model.graph.node}


def test_a_shape_given_for_an_imported_model_is_refused_not_dropped(shared_dir):
    """TFLite, Keras and PyTorch files fix their input sizes: a different one given (CLI --input-shape, or the
    window's Set input shape) is an InputShapeError, never silently ignored; the file's own shape is fine."""
    from mbexplorer.core.errors import InputShapeError
    from mbexplorer.core.loading import load

    path = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    name = load(path).inputs[0].name
    assert load(path, {name: [1, 128, 128, 3]}).inputs[0].shape[1:] == (128, 128, 3)
    with pytest.raises(InputShapeError, match="cannot be applied: .* is a tflite model whose input sizes its file"):
        load(path, {name: [1, 160, 160, 3]})
    with pytest.raises(InputShapeError, match="cannot be applied"):
        load(path, {"nonexistent": [1, 3, 128, 128]})
