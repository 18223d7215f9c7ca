import numpy as np
import onnxruntime as ort
import pytest

from mbexplorer.core.builder import build, make_divisible, parameter_shapes
from mbexplorer.core.errors import BuildError
from mbexplorer.core.families import FAMILIES


def _run(loaded, x):
    sess = ort.InferenceSession(loaded.model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_builds_run_in_onnxruntime_with_dynamic_batch(family, built):
    m = built(family)
    assert m.source_format == "builder"
    assert m.inputs[0].shape == ("batch", 3, 224, 224) and m.inputs[0].layout == "NCHW"
    rng = np.random.default_rng(1)
    for batch in (1, 3):
        y = _run(m, rng.random((batch, 3, 224, 224), dtype=np.float32))
        assert y.shape == (batch, 1000)
        assert np.isfinite(y).all() and y.std() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_folding_bn_keeps_the_function(family, built):
    x = np.random.default_rng(2).random((2, 3, 160, 160), dtype=np.float32)
    a = _run(built(family, 0.5, 160), x)
    b = _run(built(family, 0.5, 160, fold_bn=True), x)
    assert not any(n.op_type == "BatchNormalization" for n in built(family, 0.5, 160, fold_bn=True).graph.node)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(a).max())


def test_any_width_resolution_and_classes():
    m = build("mobilenet_v3_small", 0.35, 96, 10)
    y = _run(m, np.zeros((1, 3, 96, 96), np.float32))
    assert y.shape == (1, 10)
    m = build("mobilenet_v2", 2.0, 320, 5)
    assert m.inputs[0].shape[2:] == (320, 320) and m.outputs[0].shape == ("batch", 5)


def test_make_divisible_matches_torchvision():
    assert [make_divisible(c * 0.35) for c in (32, 16, 24, 64, 96, 160, 320)] == [16, 8, 8, 24, 32, 56, 112]
    assert make_divisible(1280 * 1.4) == 1792 and make_divisible(32 * 1.4) == 48


def test_channel_rounding_paddle_truncates():
    tv = parameter_shapes("mobilenet_v1", 0.35)
    pd = parameter_shapes("mobilenet_v1", 0.35, rounding="paddle")
    assert tv["conv_stem.weight"] == (16, 3, 3, 3)  # make_divisible(11.2) = 16
    assert pd["conv_stem.weight"] == (11, 3, 3, 3)  # int(11.2) = 11
    assert parameter_shapes("mobilenet_v1") == parameter_shapes("mobilenet_v1", rounding="paddle")


def test_channel_rounding_tfslim_v3():
    """TF-slim's mobilenet_v3: expansion = make_divisible(scaled input x factor), SE = make_divisible(exp / 4),
    last layer unscaled below width 1.0; identical to torchvision's rounding at width 1.0."""
    tv = parameter_shapes("mobilenet_v3_large", 0.75)
    tf = parameter_shapes("mobilenet_v3_large", 0.75, rounding="tfslim")
    assert tv["features.2.block.0.0.weight"] == (48, 16, 1, 1)  # make_divisible(64 * 0.75)
    assert tf["features.2.block.0.0.weight"] == (64, 16, 1, 1)  # make_divisible(16 * 4)
    assert tf["features.4.block.0.0.weight"] == (72, 24, 1, 1)  # 24 * 3, SE 72 / 4 -> 24
    assert tf["features.4.block.2.fc1.weight"] == (24, 72, 1, 1)
    assert tv["classifier.0.weight"] == (960, 720) and tf["classifier.0.weight"] == (1280, 720)
    small = parameter_shapes("mobilenet_v3_small", 0.75, rounding="tfslim")
    assert small["features.2.block.0.0.weight"] == (72, 16, 1, 1)  # 16 * 4.5
    assert small["classifier.0.weight"] == (1024, 432)
    assert parameter_shapes("mobilenet_v3_large", 1.25, rounding="tfslim")["classifier.0.weight"][0] == 1600
    for family in FAMILIES:
        assert parameter_shapes(family) == parameter_shapes(family, rounding="tfslim")
    assert parameter_shapes("mobilenet_v2", 0.75) == parameter_shapes("mobilenet_v2", 0.75, rounding="tfslim")
    y = _run(build("mobilenet_v3_small", 0.75, 96, rounding="tfslim"), np.zeros((1, 3, 96, 96), np.float32))
    assert y.shape == (1, 1000) and np.isfinite(y).all()


def test_parameter_names_follow_torchvision_and_timm():
    v2 = parameter_shapes("mobilenet_v2")
    assert v2["features.0.0.weight"] == (32, 3, 3, 3)
    assert v2["features.1.conv.0.0.weight"] == (32, 1, 3, 3)  # t=1: no expansion, dw first
    assert v2["features.2.conv.0.0.weight"] == (96, 16, 1, 1)
    assert v2["features.18.0.weight"] == (1280, 320, 1, 1)
    assert v2["classifier.1.weight"] == (1000, 1280)
    assert len(v2) == 262  # torchvision state dict: 314 keys less 52 num_batches_tracked
    v3 = parameter_shapes("mobilenet_v3_large")
    assert v3["features.4.block.2.fc1.weight"] == (24, 72, 1, 1)
    assert v3["classifier.3.weight"] == (1000, 1280)
    v1 = parameter_shapes("mobilenet_v1")
    assert v1["blocks.3.5.conv_pw.weight"] == (512, 512, 1, 1)
    assert v1["classifier.weight"] == (1000, 1024)


def test_weights_supplied_by_name_are_used():
    shapes = parameter_shapes("mobilenet_v1", 0.25, 128)
    w = np.full(shapes["classifier.bias"], 7.0, np.float32)
    m = build("mobilenet_v1", 0.25, 128, weights={"classifier.bias": w})
    y = _run(m, np.zeros((1, 3, 128, 128), np.float32))
    assert y.shape == (1, 1000)
    init = {t.name: t for t in m.graph.initializer}
    from onnx import numpy_helper

    np.testing.assert_array_equal(numpy_helper.to_array(init["classifier.bias"]), w)


def test_bad_weights_and_arguments_raise_build_errors():
    with pytest.raises(BuildError, match="shape"):
        build("mobilenet_v1", 0.25, 128, weights={"classifier.bias": np.zeros(3)})
    with pytest.raises(BuildError, match="not parameters"):
        build("mobilenet_v1", 0.25, 128, weights={"nope.weight": np.zeros(3)})
    with pytest.raises(BuildError, match="width"):
        build("mobilenet_v2", 3.0)
    with pytest.raises(BuildError, match="resolution"):
        build("mobilenet_v2", 1.0, 64)
    with pytest.raises(BuildError, match="family"):
        build("resnet50")
    with pytest.raises(BuildError, match="tfslim"):
        build("mobilenet_v2", rounding="keras")


def test_seeded_weights_are_deterministic():
    a = build("mobilenet_v3_small", 0.5, 128, seed=3).model.graph.initializer[0].raw_data
    b = build("mobilenet_v3_small", 0.5, 128, seed=3).model.graph.initializer[0].raw_data
    c = build("mobilenet_v3_small", 0.5, 128, seed=4).model.graph.initializer[0].raw_data
    assert a == b and a != c
