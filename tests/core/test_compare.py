"""compare.py: pairing, and figures equal to numpy on tensors exposed by Session(extra_outputs=...)."""

import math

import numpy as np
import pytest

from mbexplorer.core.compare import Accumulators, Partial, compare_job, isolated_model, measure, pair
from mbexplorer.core.decoding import image_files
from mbexplorer.core.jobs import Cancelled, run
from mbexplorer.core.loading import load
from mbexplorer.core.preprocess import for_model
from mbexplorer.core.runtime import Session


@pytest.fixture(scope="module")
def twin(shared_dir):
    q = load(shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite")
    return q.float_twin, q


def _images(shared_dir, n):
    return image_files([shared_dir / "images"])[:n]


def test_twin_pairs_every_activation_by_name(twin):
    f, q = twin
    p = pair(f, q)
    # every Conv's fused ReLU6: its pre-activation value lives inside onnxruntime's int8 kernel, not compared
    assert not p.unmatched and len(p.pairs) == 31 and len(p.fused) == 27
    assert all(t.endswith("_preact") and t.removesuffix("_preact") in {x.name for x in p.pairs} for t in p.fused)
    assert all(x.by == "name" and x.name == x.quant_name for x in p.pairs)
    assert all(x.block for x in p.pairs)
    # by position alone, the same tensors come out (AvgPool's quantized twin is its value before rounding)
    same = [x for x in pair(f, q, by_name=False).pairs if x.name == x.quant_name]
    assert len(same) >= 30


def test_separate_files_pair_by_position(shared_dir):
    f = load(shared_dir / "models" / "mobilenet_v1_0.25_224_1_default_1.tflite")
    q = load(shared_dir / "models" / "mobilenet_v1_0.25_224_quant.tflite")
    p = pair(f, q)
    assert (len(p.pairs), len(p.fused)) == (31, 27)  # the two converters kept the same names
    p = pair(f, q, by_name=False)
    assert (len(p.pairs), len(p.fused)) == (30, 27) and p.unmatched == ["MobilenetV1/Logits/SpatialSqueeze"]


def test_figures_equal_numpy(twin, shared_dir):
    f, q = twin
    images = _images(shared_dir, 3)
    events = []
    c = run(compare_job(f, q, images), events.append)
    assert [e.images for e in events if isinstance(e, Partial)] == [1, 2, 3]
    res = c.to_dict()
    names = [t["name"] for t in res["tensors"]]
    qnames = [t["quant_name"] for t in res["tensors"]]
    out = f.outputs[0].name
    fs, qs = Session(f, extra_outputs=names), Session(q, extra_outputs=qnames)
    fp, qp = for_model(f), for_model(q)
    fv = {n: [] for n in names + [out]}
    qv = {n: [] for n in qnames + [out]}
    for path in images:
        fr = fs.run({fs.input_names[0]: fp.tensor(path)})
        qr = qs.run({qs.input_names[0]: qp.tensor(path)})
        for n in fv:
            fv[n].append(fr[n].astype(np.float64).ravel())
        for n in qv:
            qv[n].append(qr[n].astype(np.float64).ravel())
    for t in res["tensors"]:
        a, b = np.concatenate(fv[t["name"]]), np.concatenate(qv[t["quant_name"]])
        e = a - b
        with np.errstate(divide="ignore"):  # the input's Transpose is identical in both: inf dB
            sqnr = 10 * np.log10((a @ a) / (e @ e))
        want = {"sqnr_db": sqnr, "mse": np.mean(e * e), "max_abs": np.abs(e).max(),
                "cosine": (a @ b) / np.linalg.norm(a) / np.linalg.norm(b),
                "rel_l2": np.linalg.norm(e) / np.linalg.norm(a)}
        for k, v in want.items():
            assert t[k] == pytest.approx(v, rel=1e-6), (t["name"], k)
        # every layer's isolated error but the input's Transpose (fed the quantized model's integer input)
        assert (t["isolated_sqnr_db"] is None) == (t["name"] == "input_nchw")
    fo, qo = fv[out], qv[out]
    top1 = np.mean([np.argmax(x) == np.argmax(y) for x, y in zip(fo, qo)])
    top5 = np.mean([np.argmax(x) in np.argsort(-y, kind="stable")[:5] for x, y in zip(fo, qo)])
    a, b = np.concatenate(fo), np.concatenate(qo)
    assert res["output"]["top1_agreement"] == pytest.approx(top1)
    assert res["output"]["top5_agreement"] == pytest.approx(top5)
    assert res["output"]["sqnr_db"] == pytest.approx(10 * np.log10((a @ a) / ((a - b) @ (a - b))), rel=1e-6)
    # a float twin holds the dequantized weights exactly
    assert len(res["weights"]) == 28 and all(w["sqnr_db"] == math.inf for w in res["weights"])


def test_memory_flat(twin, shared_dir):
    f, q = twin
    small = run(compare_job(f, q, _images(shared_dir, 2)))
    large = run(compare_job(f, q, _images(shared_dir, 6)))
    assert large.images == 6
    assert small.acc.sums.nbytes == large.acc.sums.nbytes == len(small.pairing.pairs) * 6 * 8


def test_weights_per_channel(shared_dir):
    q = load(shared_dir / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite")
    f = q.float_twin
    from mbexplorer.core.compare import weight_errors
    assert all(w["sqnr_db"] == math.inf for w in weight_errors(f, q))  # per-channel scales read right
    # a float model whose one channel of one depthwise weight moved: that channel is the worst, at numpy's SQNR
    import onnx
    from onnx import numpy_helper

    from mbexplorer.core.model import from_proto
    ws = weight_errors(f, q)
    dw = next(w for w in ws if "depthwise" in w["name"])
    proto = onnx.ModelProto()
    proto.CopyFrom(f.model)
    init = next(t for t in proto.graph.initializer if t.name == dw["name"])
    arr = numpy_helper.to_array(init).copy()
    orig = arr[5].astype(np.float64)
    arr[5] *= 1.01
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    moved_model = from_proto(proto, name="moved", source_format="onnx")
    moved = next(w for w in weight_errors(moved_model, q) if w["name"] == dw["name"])
    assert moved["worst_channel"] == 5
    new = arr[5].astype(np.float64)
    assert moved["worst_channel_sqnr_db"] == pytest.approx(10 * np.log10((new**2).sum() / ((new - orig) ** 2).sum()),
                                                           rel=1e-5)


def _dq(x, scale, zp, lo=0, hi=255):
    """QuantizeLinear then DequantizeLinear, as onnxruntime computes them (round half to even, saturate)."""
    return ((np.clip(np.rint(x / scale) + zp, lo, hi) - zp) * scale).astype(np.float32)


def test_isolated_equals_a_direct_computation(twin, shared_dir):
    """One layer computed here from the float model's values: a depthwise Conv with its fused ReLU6 (input and
    output quantized, dequantized weights). Its pre-activation is inside the int8 kernel: not compared."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    from mbexplorer.core.compare import constant
    from mbexplorer.core.graph import GraphIndex

    f, q = twin
    images = _images(shared_dir, 2)
    res = {t["name"]: t for t in run(compare_job(f, q, images)).to_dict()["tensors"]}
    gq = GraphIndex(q)
    init = {t.name: numpy_helper.to_array(t) for t in q.model.graph.initializer}
    base = "MobilenetV1/MobilenetV1/Conv2d_1_depthwise/Relu6"
    relu_in, conv_out, relu_out = "MobilenetV1/MobilenetV1/Conv2d_0/Relu6", base + "_preact", base
    conv = gq.nodes[gq.producer[conv_out]]
    w, b = (constant(gq, x).astype(np.float32) for x in conv.input[1:3])
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"])
    node.attribute.extend(conv.attribute)
    g = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    conv_s = ort.InferenceSession(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
                                  .SerializeToString(), providers=["CPUExecutionProvider"])

    def qparams(t):  # the scale and zero point of the QuantizeLinear before the DQ making ``t``
        dq = gq.nodes[gq.producer[t]]
        return init[dq.input[1]], init[dq.input[2]].astype(np.float64)

    assert conv_out not in res and conv_out in pair(f, q).fused
    fs = Session(f, extra_outputs=[relu_in, relu_out])
    sums = {relu_out: [0.0, 0.0]}
    for path in images:
        fr = fs.run({fs.input_names[0]: for_model(f).tensor(path)})
        x = _dq(fr[relu_in], *qparams(relu_in))
        # the layer as the int8 kernel computes it: conv, ReLU6, then quantized
        got = {relu_out: _dq(np.clip(conv_s.run(None, {"x": x})[0], 0, 6), *qparams(relu_out))}
        for t, v in got.items():
            a, e = fr[t].astype(np.float64).ravel(), (fr[t] - v).astype(np.float64).ravel()
            sums[t][0] += a @ a
            sums[t][1] += e @ e
    for t, (s2, e2) in sums.items():
        assert res[t]["isolated_sqnr_db"] == pytest.approx(10 * np.log10(s2 / e2), rel=1e-4), t


def test_isolated_on_one_quantized_layer(shared_dir):
    """A float model with one Conv quantized: that layer's isolated and accumulated errors agree, the Q/DQ on its
    input shows at the tensor it quantizes (the only two errors upstream of the layer), and every other layer's
    isolated error is nil (inf, or above 120 dB)."""
    from mbexplorer.core.quantize import quantize_job

    f = load(shared_dir / "models" / "mobilenet_v1_0.25_224_1_default_1.tflite")
    images = _images(shared_dir, 3)
    keep = "MobilenetV1/MobilenetV1/Conv2d_1_pointwise/Relu6"
    q = run(quantize_job(f, images[:2], exclude=[n.name for n in f.graph.node if n.name != keep]))
    p = pair(f, q)
    assert not p.unmatched and not isolated_model(f, q, p).why
    rows = run(compare_job(f, q, images)).to_dict()["tensors"]
    # nil: identical, or float rounding (onnxruntime's AveragePool kernel in the two sessions sums in another order)
    finite = [t for t in rows if t["isolated_sqnr_db"] < 120]
    assert [t["name"] for t in finite] == ["MobilenetV1/MobilenetV1/Conv2d_1_depthwise/Relu6", keep + "_preact"]
    for t in finite:
        assert 20 < t["isolated_sqnr_db"] < 80
        assert t["isolated_sqnr_db"] == pytest.approx(t["sqnr_db"], rel=1e-6)
    after = rows[rows.index(finite[1]) + 1:]
    assert after and all(t["sqnr_db"] < 60 for t in after)  # accumulated downstream, isolated nil


def test_unpaired_input_has_no_isolated_error(twin):
    f, q = twin
    p = pair(f, q)
    why = isolated_model(f, q, p).why
    assert [p.pairs[k].name for k in why] == ["input_nchw"] and "no float counterpart" in why[0]


def test_measure_equals_float64_sums():
    """Chunked float32 dot products (any length, a remainder after the last whole chunk) against numpy's float64
    sums of the same values; float16 is measured in float64; ``full=False`` measures Σ(f−q)² and the count."""
    rng = np.random.default_rng(0)
    fs, qs = [], []
    for n in (1, 1023, 1024, 5000, 300_001):
        f = rng.standard_normal(n).astype(np.float32) * 3
        fs.append(f.reshape(1, -1) if n == 300_001 else f)
        qs.append((f + rng.standard_normal(n).astype(np.float32) * 0.01).reshape(fs[-1].shape))
    fs.append(rng.standard_normal(2000).astype(np.float16))
    qs.append((fs[-1] + np.float16(0.25)).astype(np.float16))
    got = measure(fs, qs)
    for row, f, q in zip(got, fs, qs):
        a, b = f.astype(np.float64).ravel(), q.astype(np.float64).ravel()
        want = [a @ a, (a - b) @ (a - b), a @ b, b @ b, np.abs(a - b).max(), a.size]
        np.testing.assert_allclose(row, want, rtol=2e-7)
    assert got[-1][1] == pytest.approx(2000 * 0.25 ** 2, rel=1e-3)  # float16 steps: f + 0.25 rounds to its grid
    # Σf·q comes from the other three sums: for two unrelated tensors (cosine near 0) it keeps its absolute error,
    # a cosine within 1e-7 (shown with five decimals)
    f, q = rng.standard_normal(100_000).astype(np.float32), rng.standard_normal(100_000).astype(np.float32)
    unrelated = Accumulators.zeros(1)
    unrelated.update(0, f, q)
    a, b = f.astype(np.float64), q.astype(np.float64)
    assert unrelated.stats(0)["cosine"] == pytest.approx(a @ b / np.sqrt((a @ a) * (b @ b)), abs=1e-7)
    kept = {}  # a scratch buffer kept between calls: the same figures, the same buffer
    np.testing.assert_array_equal(measure(fs, qs, scratch=kept), got)
    buffers = dict(kept)
    np.testing.assert_array_equal(measure(fs, qs, scratch=kept), got)
    assert set(kept) == {np.dtype(np.float32), np.dtype(np.float64)} and all(kept[k] is buffers[k] for k in kept)
    short = measure(fs, qs, full=False)
    np.testing.assert_array_equal(short[:, [1, 5]], got[:, [1, 5]])
    assert not short[:, [0, 2, 3, 4]].any()
    acc = Accumulators.zeros(2)
    acc.add([1], got[:1])
    acc.add([1], got[:1])
    assert acc.sums[0].tolist() == [0.0] * 6 and acc.sums[1].tolist() == [*(2 * got[0, :4]), got[0, 4], 2.0]


def test_an_unreadable_image_is_skipped(twin, shared_dir, tmp_path):
    """Between two images, a broken file: a warning, the others measured as if it were not there."""
    f, q = twin
    good = _images(shared_dir, 2)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a picture")
    events = []
    c = run(compare_job(f, q, [good[0], broken, good[1]]), events.append)
    assert c.images == 2 and c.failed == [str(broken)]
    assert [e.images for e in events if isinstance(e, Partial)] == [1, 2]
    assert any(getattr(e, "level", "") == "warning" and "broken.jpg" in e.message for e in events)
    assert c.to_dict() == run(compare_job(f, q, good)).to_dict()


def test_cancel_stops_the_comparison(twin, shared_dir):
    import threading

    f, q = twin
    threads = threading.active_count()
    partials = []
    with pytest.raises(Cancelled):
        run(compare_job(f, q, _images(shared_dir, 5)), lambda e: partials.append(e) if isinstance(e, Partial)
            else None, cancelled=lambda: bool(partials))
    assert [p.images for p in partials] == [1]
    assert threading.active_count() == threads  # the worker threads are gone


def test_the_quantized_model_computes_as_it_does_alone(shared_dir):
    """Exposing a value inside a fused int8 kernel (a fused ReLU6's pre-activation) made onnxruntime compute the
    layer another way: 3 of the 8 shared images' MobileNetV2 uint8 outputs changed. The comparison's quantized
    outputs are now those of the model run on its own, exactly."""
    q = load(shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite")
    f, images = q.float_twin, _images(shared_dir, 8)
    got = run(compare_job(f, q, images)).to_dict()["output"]
    fs, qs = Session(f), Session(q)
    acc, top1 = Accumulators.zeros(1), 0
    for path in images:
        a = fs.run({fs.input_names[0]: for_model(f).tensor(path)})[fs.output_names[0]].ravel()
        b = qs.run({qs.input_names[0]: for_model(q).tensor(path)})[qs.output_names[0]].ravel()
        acc.update(0, a, b)
        top1 += int(np.argmax(a)) == int(np.argmax(b))
    assert got["sqnr_db"] == pytest.approx(acc.stats(0)["sqnr_db"], rel=1e-6)
    assert got["top1_agreement"] == top1 / len(images)
