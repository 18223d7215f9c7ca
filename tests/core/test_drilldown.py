"""drilldown.py: one tensor pair's histograms, quantization range, clipping and per-channel weight SQNR."""

import numpy as np
import pytest
from onnx import numpy_helper

from mbexplorer.core.compare import pair
from mbexplorer.core.decoding import image_files
from mbexplorer.core.drilldown import layer_detail
from mbexplorer.core.graph import GraphIndex
from mbexplorer.core.loading import load
from mbexplorer.core.preprocess import for_model
from mbexplorer.core.runtime import Session


@pytest.fixture(scope="module")
def setup(shared_dir):
    q = load(shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite")
    return q.float_twin, q, pair(q.float_twin, q).pairs, image_files([shared_dir / "images"])[:2]


def _float_values(model, tensor, images):
    s, pre = Session(model, extra_outputs=[tensor]), for_model(model)
    return np.concatenate([s.run({s.input_names[0]: pre.tensor(p)}, [tensor])[tensor].ravel() for p in images])


def test_quantized_activation(setup):
    f, q, pairs, images = setup
    p = next(x for x in pairs if x.op_type == "Clip")
    d = layer_detail(f, q, p, images)
    values = _float_values(f, p.name, images)
    assert d["values"] == values.size
    assert d["float_counts"].sum() == d["quant_counts"].sum() == values.size
    assert len(d["bin_edges"]) == len(d["float_counts"]) + 1 == 65
    assert 0 < len(d["scatter_float"]) == len(d["scatter_quant"]) <= 5000
    # the range from the QuantizeLinear's own initializers
    gq = GraphIndex(q)
    ql = gq.nodes[gq.producer[gq.nodes[gq.producer[p.quant_name]].input[0]]]
    assert ql.op_type == "QuantizeLinear"
    scale = float(numpy_helper.to_array(gq.initializers[ql.input[1]]))
    zp = numpy_helper.to_array(gq.initializers[ql.input[2]])
    info = np.iinfo(zp.dtype)
    lo, hi = (info.min - int(zp)) * scale, (info.max - int(zp)) * scale
    qp = d["quant"]
    assert qp["scale"] == scale and qp["zero_point"] == int(zp) and qp["dtype"] == zp.dtype.name
    assert qp["range"] == pytest.approx((lo, hi))
    assert d["clipped_fraction"] == pytest.approx(np.mean((values < lo) | (values > hi)))
    assert d["observed"] == pytest.approx((values.min(), values.max()))
    assert len(d["channel_sqnr_db"]) > 1  # the weights of the Conv behind the Clip


def test_conv_has_one_sqnr_per_output_channel(setup):
    f, q, pairs, images = setup
    # a fused ReLU6's output: the weights are those of the Conv behind it (its pre-activation is not compared)
    p = next(x for x in pairs if x.op_type == "Clip")
    d = layer_detail(f, q, p, images, bins=16)
    g = GraphIndex(f)
    conv = g.nodes[g.producer[g.nodes[g.producer[p.name]].input[0]]]
    assert conv.op_type == "Conv"
    w = g.weight_source(conv.input[1])
    assert len(d["channel_sqnr_db"]) == w.dims[0]
    assert d["float_counts"].sum() == d["values"]
    # the logits Conv (no activation) shows its own
    p = next(x for x in pairs if x.op_type == "Conv")
    w = g.weight_source(g.nodes[g.producer[p.name]].input[1])
    assert len(layer_detail(f, q, p, images, bins=16)["channel_sqnr_db"]) == w.dims[0]
