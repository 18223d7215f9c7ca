"""The onnxruntime session layer: parity with a bare session, extra outputs, optimisation levels, errors."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mbexplorer.core.errors import MbxError
from mbexplorer.core.model import from_proto
from mbexplorer.core.runtime import OPTIMIZATION, Session, intermediate_tensors, with_outputs


@pytest.fixture(scope="module")
def v1(built):
    return built("mobilenet_v1", 0.25, 128)


def _x(batch=1, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 3, 128, 128)).astype(np.float32)


def _raw(proto, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _cut(proto, tensor):
    """The model with ``tensor`` as its only output: what the graph computes there, nothing exposed extra."""
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))
    return m


def test_run_matches_a_bare_session_exactly(v1):
    s = Session(v1)
    assert s.input_names == ["input"] and s.output_names == ["logits"]
    assert s.providers == ["CPUExecutionProvider"]
    assert s.inputs[0].shape[1:] == [3, 128, 128] and s.outputs[0].type == "tensor(float)"
    for x in (_x(), _x(batch=2, seed=1)):
        got = s.run({"input": x})
        assert list(got) == ["logits"]
        np.testing.assert_array_equal(got["logits"], _raw(v1.model).run(None, {"input": x})[0])


@pytest.mark.parametrize("level", list(OPTIMIZATION))
def test_optimisation_levels_agree(v1, level):
    x = _x()
    ref = Session(v1, optimization="disabled").run({"input": x})["logits"]
    np.testing.assert_allclose(Session(v1, optimization=level, threads=1).run({"input": x})["logits"], ref,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("level", list(OPTIMIZATION))
def test_extra_outputs_are_what_a_cut_model_computes(v1, level):
    """conv_stem.out feeds a BatchNormalization and bn1.out a Clip: both pairs fuse at "basic" and up unless
    onnxruntime keeps tensors that are graph outputs, which is what the layer relies on."""
    tensors = ["conv_stem.out", "bn1.out", "blocks.0.0.conv_dw.out"]
    assert all(v1.graph.node[i].output[0] == t for i, t in zip((0, 1, 3), tensors))
    x = _x()
    s = Session(v1, optimization=level, extra_outputs=tensors)
    assert s.output_names == ["logits", *tensors]
    got = s.run({"input": x})
    for t in tensors:
        ref = _raw(_cut(v1.model, t), ort.GraphOptimizationLevel.ORT_DISABLE_ALL).run(None, {"input": x})[0]
        np.testing.assert_allclose(got[t], ref, rtol=1e-5, atol=1e-5)
    # the model's own output is unchanged by what else is exposed
    np.testing.assert_allclose(got["logits"], Session(v1).run({"input": x})["logits"], rtol=1e-5, atol=1e-5)
    only = s.run({"input": x}, ["bn1.out"])
    assert list(only) == ["bn1.out"]
    np.testing.assert_array_equal(only["bn1.out"], got["bn1.out"])


def test_onnxruntime_keeps_a_fusion_apart_when_its_inner_tensor_is_an_output(v1, tmp_path):
    """Why the layer keeps the optimisation level asked for: Conv+BatchNormalization fuses at "basic", but not
    when the Conv's output is a graph output."""
    def batch_norms(proto):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
        ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        nodes = onnx.load(opts.optimized_model_filepath).graph.node
        return [n.name for n in nodes if n.op_type == "BatchNormalization"]

    assert batch_norms(v1.model) == []
    assert batch_norms(with_outputs(v1, ["conv_stem.out"])) == ["bn1"]


def test_extra_outputs_leave_the_callers_model_alone(v1):
    before = v1.model.SerializeToString()
    Session(v1, extra_outputs=["bn1.out"])
    copy = with_outputs(v1, ["bn1.out"])
    bare = onnx.ModelProto()
    bare.CopyFrom(v1.model)
    Session(bare, extra_outputs=["bn1.out"])
    assert v1.model.SerializeToString() == before and bare.SerializeToString() == before
    assert [o.name for o in copy.graph.output] == ["logits", "bn1.out"]
    assert copy.graph.output[-1].type.tensor_type.elem_type == TensorProto.FLOAT


def test_extra_output_types_from_the_record_and_from_a_bare_proto():
    """A quantized tensor is declared uint8 whether the type comes from the record or from shape inference."""
    g = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
         helper.make_node("Relu", ["d"], ["y"])],
        "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.array(0.5, np.float32), "s"),
         numpy_helper.from_array(np.array(128, np.uint8), "z")])
    loaded = from_proto(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
                        name="qdq", source_format="onnx")
    x = np.array([[-1.0, 0.2, 3.0, 70.0]], np.float32)
    for model in (loaded, loaded.model):
        assert with_outputs(model, ["q"]).graph.output[-1].type.tensor_type.elem_type == TensorProto.UINT8
        q = Session(model, extra_outputs=["q"]).run({"x": x})["q"]
        assert q.dtype == np.uint8 and q.tolist() == [[126, 128, 134, 255]]
    assert intermediate_tensors(loaded) == ["q", "d"]  # not the output, nor the initializers


def test_every_intermediate_tensor_can_be_exposed(v1):
    names = intermediate_tensors(v1)
    assert names[:2] == ["conv_stem.out", "bn1.out"] and "logits" not in names
    assert not set(names) & {t.name for t in v1.graph.initializer}
    got = Session(v1, extra_outputs=names).run({"input": _x()})
    assert set(got) == {"logits", *names}


def test_errors_name_what_is_wrong(v1):
    with pytest.raises(MbxError, match="NoSuchExecutionProvider.*available: .*CPUExecutionProvider"):
        Session(v1, providers=["NoSuchExecutionProvider"])
    with pytest.raises(MbxError, match="NoSuchExecutionProvider"):
        Session(v1, providers=[("NoSuchExecutionProvider", {})])
    with pytest.raises(MbxError, match="'fastest'.*disabled, basic, extended, all"):
        Session(v1, optimization="fastest")
    with pytest.raises(MbxError, match="'no.such.tensor'"):
        Session(v1, extra_outputs=["bn1.out", "no.such.tensor"])
    with pytest.raises(MbxError, match="'conv_stem.weight'"):  # an initializer is no node's output
        with_outputs(v1, ["conv_stem.weight"])


def test_threads_that_do_not_spin_compute_the_same(v1):
    """spin=False (compare's sessions, which take turns with each other and with numpy) changes only how idle
    intra-op threads wait."""
    x = _x()
    still = Session(v1, spin=False)
    opts = still.session.get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    np.testing.assert_array_equal(still.run({"input": x})["logits"], Session(v1).run({"input": x})["logits"])
