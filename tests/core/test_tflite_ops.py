"""TFLite ops the shared models do not use, in synthetic models written with ``tflite_writer``: MAX_POOL_2D,
FULLY_CONNECTED (on a flattened NHWC tensor too), PAD, CONCATENATION, LOGISTIC, RELU, RELU6, MUL, ADD with a
fused activation, MEAN, RESHAPE, SOFTMAX, DEQUANTIZE, depthwise convolutions with a depth multiplier, SAME
and VALID padding. Each import runs in onnxruntime against the TFLite runtime (LiteRT) on random inputs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from tflite_writer import BO, BOpt, Graph

from mbexplorer.core.loading import load

interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")

RELU, RELU6 = 1, 3  # TFLite fused activation codes
SAME, VALID = 0, 1


def float_model(rng, depth_multiplier: int, fused: int, padding: int) -> bytes:
    g = Graph()
    x = g.t("input", [1, 9, 9, 4])
    g.inputs = [x]
    c = 4 * depth_multiplier
    side = 5 if padding == SAME else 4  # 9 px, 3x3, stride 2
    w = g.t("dw_w", [1, 3, 3, c], data=rng.normal(size=(1, 3, 3, c)))
    b = g.t("dw_b", [c], data=rng.normal(size=c))
    t1 = g.t("dw", [1, side, side, c])
    g.op(BO.DEPTHWISE_CONV_2D, [x, w, b], [t1], BOpt.DepthwiseConv2DOptions, "DepthwiseConv2DOptions",
         Padding=padding, StrideW=2, StrideH=2, DepthMultiplier=depth_multiplier, FusedActivationFunction=fused)
    p = side // 2
    t2 = g.t("maxpool", [1, p, p, c])
    g.op(BO.MAX_POOL_2D, [t1], [t2], BOpt.Pool2DOptions, "Pool2DOptions", Padding=VALID, StrideW=2, StrideH=2,
         FilterWidth=2, FilterHeight=2)
    pads = g.t("pads", [4, 2], np.int32, data=[[0, 0], [1, 0], [0, 1], [0, 0]])
    t3 = g.t("pad", [1, p + 1, p + 1, c])
    g.op(BO.PAD, [t2, pads], [t3], BOpt.PadOptions, "PadOptions")
    s = p + 1
    cw = g.t("c_w", [6, 1, 1, c], data=rng.normal(size=(6, 1, 1, c)))
    cb = g.t("c_b", [6], data=rng.normal(size=6))
    t4 = g.t("conv", [1, s, s, 6])
    g.op(BO.CONV_2D, [t3, cw, cb], [t4], BOpt.Conv2DOptions, "Conv2DOptions", Padding=SAME, StrideW=1, StrideH=1)
    t5 = g.t("sig", [1, s, s, 6])
    g.op(BO.LOGISTIC, [t4], [t5])
    t6 = g.t("relu", [1, s, s, 6])
    g.op(BO.RELU, [t4], [t6])
    t7 = g.t("cat", [1, s, s, 12])
    g.op(BO.CONCATENATION, [t5, t6], [t7], BOpt.ConcatenationOptions, "ConcatenationOptions", Axis=3)
    t8 = g.t("relu6", [1, s, s, 12])
    g.op(BO.RELU6, [t7], [t8])
    mc = g.t("mulc", [12], data=rng.normal(size=12))
    t9 = g.t("mul", [1, s, s, 12])
    g.op(BO.MUL, [t8, mc], [t9], BOpt.MulOptions, "MulOptions")
    t10 = g.t("add", [1, s, s, 12])
    g.op(BO.ADD, [t9, t7], [t10], BOpt.AddOptions, "AddOptions", FusedActivationFunction=RELU)
    axes = g.t("axes", [2], np.int32, data=[1, 2])
    t11 = g.t("mean", [1, 12])
    g.op(BO.MEAN, [t10, axes], [t11], BOpt.ReducerOptions, "ReducerOptions", KeepDims=0)
    fw = g.t("fc_w", [10, 12], data=rng.normal(size=(10, 12)))
    fb = g.t("fc_b", [10], data=rng.normal(size=10))
    t12 = g.t("fc", [1, 10])
    g.op(BO.FULLY_CONNECTED, [t11, fw, fb], [t12], BOpt.FullyConnectedOptions, "FullyConnectedOptions")
    n = s * s * 12
    shape = g.t("shape", [2], np.int32, data=[1, n])
    t13 = g.t("flat", [1, n])  # NHWC order: the importer must flatten in TFLite's order
    g.op(BO.RESHAPE, [t10, shape], [t13], BOpt.ReshapeOptions, "ReshapeOptions", NewShape=[1, n])
    fw2 = g.t("fc2_w", [10, n], data=rng.normal(size=(10, n)) * 0.1)
    t14 = g.t("fc2", [1, 10])
    g.op(BO.FULLY_CONNECTED, [t13, fw2, -1], [t14], BOpt.FullyConnectedOptions, "FullyConnectedOptions")
    t15 = g.t("sum", [1, 10])
    g.op(BO.ADD, [t12, t14], [t15], BOpt.AddOptions, "AddOptions")
    t16 = g.t("prob", [1, 10])
    g.op(BO.SOFTMAX, [t15], [t16], BOpt.SoftmaxOptions, "SoftmaxOptions", Beta=1.0)
    g.outputs = [t16, t10]
    return g.build()


def quant_model(rng, depth_multiplier: int) -> bytes:
    """uint8 per-tensor, as Coral's models: every activation and weight quantized, a DEQUANTIZE at the end."""
    u8 = np.uint8
    g = Graph()
    sx = 1 / 128
    x = g.t("input", [1, 8, 8, 4], u8, q=(sx, 128, 0))
    g.inputs = [x]
    c = 4 * depth_multiplier

    def weights(name, shape, scale):
        return g.t(name, shape, u8, data=rng.integers(100, 156, size=shape), q=(scale, 128, 0))

    def bias(name, n, scale):
        return g.t(name, [n], np.int32, data=rng.integers(-300, 300, n), q=(scale, 0, 0))

    s1 = 6 / 255
    t1 = g.t("dw", [1, 8, 8, c], u8, q=(s1, 0, 0))
    g.op(BO.DEPTHWISE_CONV_2D, [x, weights("dw_w", (1, 3, 3, c), 0.02), bias("dw_b", c, sx * 0.02)], [t1],
         BOpt.DepthwiseConv2DOptions, "DepthwiseConv2DOptions", Padding=SAME, StrideW=1, StrideH=1,
         DepthMultiplier=depth_multiplier, FusedActivationFunction=RELU6)
    t2 = g.t("maxpool", [1, 4, 4, c], u8, q=(s1, 0, 0))
    g.op(BO.MAX_POOL_2D, [t1], [t2], BOpt.Pool2DOptions, "Pool2DOptions", Padding=VALID, StrideW=2, StrideH=2,
         FilterWidth=2, FilterHeight=2)
    pads = g.t("pads", [4, 2], np.int32, data=[[0, 0], [1, 0], [0, 1], [0, 0]])
    t3 = g.t("pad", [1, 5, 5, c], u8, q=(s1, 0, 0))
    g.op(BO.PAD, [t2, pads], [t3], BOpt.PadOptions, "PadOptions")
    t4 = g.t("conv", [1, 5, 5, 6], u8, q=(0.05, 128, 0))
    g.op(BO.CONV_2D, [t3, weights("c_w", (6, 1, 1, c), 0.03), bias("c_b", 6, s1 * 0.03)], [t4],
         BOpt.Conv2DOptions, "Conv2DOptions", Padding=VALID, StrideW=1, StrideH=1)
    t5 = g.t("sig", [1, 5, 5, 6], u8, q=(1 / 256, 0, 0))
    g.op(BO.LOGISTIC, [t4], [t5])
    t6 = g.t("cat", [1, 5, 5, 12], u8, q=(0.06, 100, 0))  # inputs at other scales: requantized
    g.op(BO.CONCATENATION, [t5, t4], [t6], BOpt.ConcatenationOptions, "ConcatenationOptions", Axis=3)
    t7 = g.t("relu", [1, 5, 5, 12], u8, q=(0.06, 100, 0))
    g.op(BO.RELU, [t6], [t7])
    shape = g.t("shape", [2], np.int32, data=[1, 300])
    t8 = g.t("flat", [1, 300], u8, q=(0.06, 100, 0))
    g.op(BO.RESHAPE, [t7, shape], [t8], BOpt.ReshapeOptions, "ReshapeOptions", NewShape=[1, 300])
    t9 = g.t("fc", [1, 10], u8, q=(0.1, 120, 0))
    g.op(BO.FULLY_CONNECTED, [t8, weights("fc_w", (10, 300), 0.01), bias("fc_b", 10, 0.06 * 0.01)], [t9],
         BOpt.FullyConnectedOptions, "FullyConnectedOptions")
    t10 = g.t("prob", [1, 10], u8, q=(1 / 256, 0, 0))
    g.op(BO.SOFTMAX, [t9], [t10], BOpt.SoftmaxOptions, "SoftmaxOptions", Beta=1.0)
    t11 = g.t("prob_f", [1, 10], np.float32)
    g.op(BO.DEQUANTIZE, [t10], [t11])
    g.outputs = [t11, t4, t5, t6, t7, t9]
    return g.build()


def litert_and_ours(path, inputs):
    it = interpreter_mod.Interpreter(model_path=str(path))
    it.allocate_tensors()
    model = load(path)
    sess = ort.InferenceSession(model.model.SerializeToString(), providers=["CPUExecutionProvider"])
    for x in inputs:
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        ours = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))
        for d in it.get_output_details():
            ref = it.get_tensor(d["index"])
            scale, zero = d["quantization"]
            yield d["name"], (ref.astype(np.float32) - zero) * scale if scale else ref, ours[d["name"]], scale


@pytest.mark.parametrize("depth_multiplier,fused,padding", [(2, RELU, SAME), (1, RELU6, SAME), (3, 0, VALID)])
def test_float_ops_match_litert(tmp_path, depth_multiplier, fused, padding):
    rng = np.random.default_rng(depth_multiplier)
    path = tmp_path / "synthetic.tflite"
    path.write_bytes(float_model(rng, depth_multiplier, fused, padding))
    inputs = [rng.normal(size=(1, 9, 9, 4)).astype(np.float32) for _ in range(4)]
    seen = set()
    for name, ref, ours, _ in litert_and_ours(path, inputs):
        assert ours.shape == ref.shape, name
        np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-4, err_msg=name)
        seen.add(name)
    assert seen == {"prob", "add"}


@pytest.mark.parametrize("depth_multiplier", [1, 2])
def test_uint8_ops_match_litert(tmp_path, depth_multiplier):
    """Exact up to the CONCATENATION of inputs at other scales, where TFLite's requantization rounds ties
    away from zero and QuantizeLinear to even: one step there and after. A one-step difference of a logit
    (0.1) moves the uint8 softmax by several of its 1/256 steps."""
    rng = np.random.default_rng(10 + depth_multiplier)
    path = tmp_path / "synthetic_u8.tflite"
    path.write_bytes(quant_model(rng, depth_multiplier))
    model = load(path)
    assert model.float_twin is not None and model.inputs[0].dtype == "uint8"
    inputs = [rng.integers(0, 256, size=(1, 8, 8, 4)).astype(np.uint8) for _ in range(10)]
    worst = {}
    for name, ref, ours, scale in litert_and_ours(path, inputs):
        step = scale or 1 / 256
        worst[name] = max(worst.get(name, 0.0), float(np.abs(ours - ref).max() / step))
    assert worst["conv"] == 0 and worst["sig"] == 0, worst  # conv, depthwise x multiplier, pools, pad, logistic
    assert max(worst["cat"], worst["relu"], worst["fc"]) <= 1.0001, worst
    assert worst["prob_f"] <= 12, worst


@pytest.mark.parametrize("dtype,in_q,out_q,float_misses", [
    (np.uint8, (0.0235, 128), (0.0213, 10), 0),  # V3-small-like: inputs around 0, outputs mostly positive
    (np.uint8, (0.1, 60), (0.08, 3), 33),  # a wide range: saturation at both ends of [-3, 3]
    (np.int8, (0.05, -5), (0.04, -100), 12),
    (np.uint8, (0.004, 128), (0.003, 128), 0),  # narrow: the relu-ish multiplier shifts right
])
def test_quantized_hard_swish_is_tflites_integer_kernel(tmp_path, dtype, in_q, out_q, float_misses):
    """Every one of the 256 inputs: the QDQ model's HardSwish (a table of TFLite's fixed-point kernel)
    gives LiteRT's output exactly, where the float formula misses ``float_misses`` of them by a step."""
    g = Graph()
    x = g.t("input", [1, 16, 16, 1], dtype, q=(in_q[0], in_q[1], 0))
    y = g.t("hswish", [1, 16, 16, 1], dtype, q=(out_q[0], out_q[1], 0))
    g.inputs, g.outputs = [x], [y]
    g.op(BO.HARD_SWISH, [x], [y])
    path = tmp_path / "hswish.tflite"
    path.write_bytes(g.build())
    info = np.iinfo(dtype)
    q = np.arange(info.min, info.max + 1).astype(dtype).reshape(1, 16, 16, 1)
    [(_, ref, ours, scale)] = list(litert_and_ours(path, [q]))
    np.testing.assert_array_equal(np.rint(ours / scale), np.rint(ref / scale))
    model = load(path)
    node = next(n for n in model.model.graph.node if n.op_type == "HardSwish")
    assert node.domain == "mbexplorer.tflite" and model.float_twin.model.functions == []
    real = (q.astype(np.float32) - in_q[1]) * np.float32(in_q[0])
    plain = np.clip(np.rint(real * np.clip(real + 3, 0, 6) / 6 / np.float32(out_q[0])) + out_q[1], info.min, info.max)
    assert int((np.rint(ref / scale).ravel() + out_q[1] != plain.ravel()).sum()) == float_misses


@pytest.mark.parametrize("dtype,a_q,b_q,out_q", [
    (np.uint8, (0.05, 120), (0.04, 130), (0.07, 125)),
    (np.uint8, (0.0235, 0), (0.25, 200), (0.3, 60)),  # very different scales
    (np.int8, (0.1, -3), (0.12, 10), (0.2, -1)),
])
def test_quantized_add_is_xnnpacks_integer_sum(tmp_path, dtype, a_q, b_q, out_q):
    """All 65,536 pairs of 8-bit inputs: the QDQ model's Add (XNNPACK's fixed-point sum in int64 ONNX ops)
    gives LiteRT's output exactly."""
    g = Graph()
    a = g.t("a", [1, 256, 256, 1], dtype, q=(a_q[0], a_q[1], 0))
    b = g.t("b", [1, 256, 256, 1], dtype, q=(b_q[0], b_q[1], 0))
    y = g.t("sum", [1, 256, 256, 1], dtype, q=(out_q[0], out_q[1], 0))
    g.inputs, g.outputs = [a, b], [y]
    g.op(BO.ADD, [a, b], [y], BOpt.AddOptions, "AddOptions")
    path = tmp_path / "add.tflite"
    path.write_bytes(g.build())
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1)
    qa = np.repeat(values, 256).astype(dtype).reshape(1, 256, 256, 1)
    qb = np.tile(values, 256).astype(dtype).reshape(1, 256, 256, 1)
    it = interpreter_mod.Interpreter(model_path=str(path))
    it.allocate_tensors()
    ins = {d["name"]: d["index"] for d in it.get_input_details()}
    it.set_tensor(ins["a"], qa)
    it.set_tensor(ins["b"], qb)
    it.invoke()
    ref = it.get_tensor(it.get_output_details()[0]["index"]).astype(np.int64)
    model = load(path)
    assert next(n for n in model.model.graph.node if n.op_type == "Add").domain == "mbexplorer.tflite"
    sess = ort.InferenceSession(model.model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: (qa if i.name.startswith("a") else qb) for i in sess.get_inputs()}
    ours = sess.run(None, feeds)[0]
    np.testing.assert_array_equal(np.rint(ours / np.float32(out_q[0])).astype(np.int64) + out_q[1], ref)


def per_channel_conv_model(rng, depthwise: bool, weight_range: int) -> bytes:
    """int8 activations, symmetric per-channel int8 weights, int32 bias: TF2 post-training quantization."""
    i8 = np.int8
    g = Graph()
    sx = 0.02
    x = g.t("input", [1, 12, 12, 8], i8, q=(sx, -3, 0))
    g.inputs = [x]
    cout = 8 if depthwise else 16
    shape = (1, 3, 3, cout) if depthwise else (cout, 3, 3, 8)
    wscale = rng.uniform(0.002, 0.02, cout).astype(np.float32)
    w = g.t("w", shape, i8, data=rng.integers(-weight_range, weight_range + 1, shape),
            q=(wscale, np.zeros(cout, np.int64), 3 if depthwise else 0))
    b = g.t("b", [cout], np.int32, data=rng.integers(-5000, 5000, cout), q=(wscale * sx, np.zeros(cout, np.int64), 0))
    y = g.t("conv", [1, 6, 6, cout], i8, q=(0.05, 5, 0))
    if depthwise:
        g.op(BO.DEPTHWISE_CONV_2D, [x, w, b], [y], BOpt.DepthwiseConv2DOptions, "DepthwiseConv2DOptions",
             Padding=SAME, StrideW=2, StrideH=2, DepthMultiplier=1, FusedActivationFunction=RELU6)
    else:
        g.op(BO.CONV_2D, [x, w, b], [y], BOpt.Conv2DOptions, "Conv2DOptions", Padding=SAME, StrideW=2,
             StrideH=2, FusedActivationFunction=0)
    g.outputs = [y]
    return g.build()


@pytest.mark.parametrize("depthwise", [False, True])
def test_per_channel_int8_convolution_is_exact(tmp_path, depthwise):
    """XNNPACK's qs8 per-channel convolution (int32 sums, float32 requantization, ties to even), on random
    inputs: every output value is LiteRT's."""
    rng = np.random.default_rng(20 + depthwise)
    path = tmp_path / "conv.tflite"
    path.write_bytes(per_channel_conv_model(rng, depthwise, 127))
    model = load(path)
    conv = next(n for n in model.model.graph.node if n.op_type == "Conv")
    assert conv.domain == "mbexplorer.tflite" and conv.input[1].endswith("w")  # still reads Conv(x, w, b)
    inputs = [rng.integers(-128, 128, (1, 12, 12, 8)).astype(np.int8) for _ in range(20)]
    for _, ref, ours, scale in litert_and_ours(path, inputs):
        np.testing.assert_array_equal(np.rint(ours / scale), np.rint(ref / scale))


def test_integer_sums_beyond_float_precision_fall_back_to_plain_qdq():
    from mbexplorer.core.importers.tflite_int import conv_is_exact_in_float

    w = np.full((4, 3, 3, 8), 100, np.int8)  # 72 x 100 x 255 < 2^24
    assert conv_is_exact_in_float(w, 0, np.int8, depthwise=False)
    assert not conv_is_exact_in_float(np.full((4, 3, 3, 960), 100, np.int8), 0, np.int8, depthwise=False)
    assert conv_is_exact_in_float(np.full((1, 3, 3, 960), 127, np.int8), -128, np.int8, depthwise=True)


def test_standard_qdq_has_only_standard_ops(shared_dir):
    from mbexplorer.core.importers.tflite_int import standard_qdq

    model = load(shared_dir / "models" / "v3-small_224_1.0_uint8.tflite")
    assert model.model.functions
    plain = standard_qdq(model.model)
    assert not plain.functions and {n.domain for n in plain.graph.node} == {""}
    assert [o.domain for o in plain.opset_import] == [""]
    names = lambda m: [n.name for n in m.graph.node]  # noqa: E731
    assert names(plain) == names(model.model)  # the same nodes, tensor names and integers
    x = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3)).astype(np.uint8)
    outs = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {
        model.inputs[0].name: x})[0] for m in (model.model, plain)]
    assert outs[0].argmax() == outs[1].argmax()
