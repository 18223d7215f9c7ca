"""equalize.py: cross-layer equalization keeps the outputs and evens out per-channel weight ranges."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mbexplorer.core.decoding import image_files
from mbexplorer.core.equalize import equalize, equalize_report
from mbexplorer.core.loading import load
from mbexplorer.core.model import from_proto
from mbexplorer.core.preprocess import for_model

W1 = np.array([[4.0, -1.0], [0.5, 1.0]], np.float32).reshape(2, 2, 1, 1)  # output-channel ranges 4, 1
W2 = np.array([[1.0, -4.0]], np.float32).reshape(1, 2, 1, 1)  # input-channel ranges 1, 4
B1 = np.array([0.5, -0.25], np.float32)


def two_convs(act: str):
    """x -> Conv(W1, B1) -> act -> Conv(W2) -> y, 1x1 convs on 2 channels."""
    acts = {"relu": [helper.make_node("Relu", ["a"], ["r"], name="act")],
            "relu6": [helper.make_node("Clip", ["a", "lo", "hi"], ["r"], name="act")]}[act]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], name="conv1"), *acts,
             helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2")]
    inits = [numpy_helper.from_array(v, n) for n, v in
             (("w1", W1), ("b1", B1), ("w2", W2), ("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32)))]
    graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 3, 3])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return from_proto(proto, name="two", source_format="onnx")


def run(m, x):
    s = ort.InferenceSession(m.model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {m.inputs[0].name: x})[0]


def weights(m):
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


@pytest.mark.parametrize("act", ["relu", "relu6"])
def test_hand_made_pair_gets_the_scales_worked_out_by_hand(act):
    m = two_convs(act)
    e, report = equalize_report(m)
    # s = sqrt(r1 / r2) = sqrt([4, 1] / [1, 4]) = [2, 0.5]; both channels end with range sqrt(r1 * r2) = 2
    s = np.array([2.0, 0.5], np.float32)
    w = weights(e)
    np.testing.assert_allclose(w["w1"], W1 / s.reshape(2, 1, 1, 1), rtol=1e-6)
    np.testing.assert_allclose(w["b1"], B1 / s, rtol=1e-6)
    np.testing.assert_allclose(w["w2"], W2 * s.reshape(1, 2, 1, 1), rtol=1e-6)
    assert report.pairs == 1 and not report.skipped
    if act == "relu6":  # the clip point moves per channel: 6 / s, as Relu -> Min
        assert [n.op_type for n in e.graph.node] == ["Conv", "Relu", "Min", "Conv"]
        bound = next(v for k, v in w.items() if k.endswith("cle_bound"))
        np.testing.assert_allclose(bound.ravel(), [3.0, 12.0])
    x = np.random.default_rng(0).normal(0, 4, (1, 2, 3, 3)).astype(np.float32)  # reaches the clip point
    np.testing.assert_allclose(run(e, x), run(m, x), rtol=1e-5, atol=1e-5)


def test_relu6_skip_mode_leaves_the_pair_and_says_why():
    m = two_convs("relu6")
    e, report = equalize_report(m, relu6="skip")
    assert report.pairs == 0 and sum(report.skipped.values()) == 1 and "ReLU6" in next(iter(report.skipped))
    np.testing.assert_array_equal(weights(e)["w1"], W1)


def _dw_range_ratios(m):
    """max/min channel range of every depthwise conv's weight (dead channels left out)."""
    w = weights(m)
    out = []
    for n in m.graph.node:
        if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute):
            r = np.abs(w[n.input[1]]).reshape(w[n.input[1]].shape[0], -1).max(1)
            r = r[r > 1e-6 * r.max()]
            out.append(r.max() / r.min())
    return np.array(out)


@pytest.mark.parametrize("path", ["mobilenet_v1_0.25_224_1_default_1.tflite", "mobilenet_v2_1.0_224_quant.tflite"])
def test_real_model_keeps_its_outputs_and_evens_depthwise_ranges(shared_dir, path):
    m = load(shared_dir / "models" / path)
    m = m.float_twin or m
    e = equalize(m)
    pre = for_model(m)
    for image in image_files([shared_dir / "images"]):
        x = pre.tensor(image)
        a, b = run(m, x), run(e, x)
        assert np.abs(a - b).max() < 1e-4 * np.abs(a).max()
    before, after = _dw_range_ratios(m), _dw_range_ratios(e)
    assert len(before) == len(after) > 10
    assert np.median(after) < np.median(before) / 3  # V1: 23 -> 2.2, V2: 36 -> 3.2


def test_built_model_bn_folded_and_outputs_kept(built, shared_dir):
    m = built("mobilenet_v1", 0.25, 96)
    e, report = equalize_report(m)
    assert report.folded_bn == 27 and report.pairs == 26
    assert "BatchNormalization" not in {n.op_type for n in e.graph.node}
    x = for_model(m).tensor(image_files([shared_dir / "images"])[0])
    a, b = run(m, x), run(e, x)
    assert np.abs(a - b).max() < 1e-4 * np.abs(a).max()
    assert np.median(_dw_range_ratios(e)) < np.median(_dw_range_ratios(m))
