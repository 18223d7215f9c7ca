"""The node inspector's facts (attributes, tensors, weight statistics, quantization), the search, and how a
quantized graph's activations are held (Q/DQ folded)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper

from mbexplorer.core.analysis import open_model
from mbexplorer.core.inspect import Storage, find_nodes, node_facts, node_output_quant, quant_text


@pytest.fixture(scope="module")
def v2(built):
    from mbexplorer.core.analysis import analyse_job, run

    return run(analyse_job(built("mobilenet_v2", 0.5, 128)))


@pytest.fixture(scope="module")
def quant(shared_dir):
    return open_model(shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite")


@pytest.fixture(scope="module")
def ptq(shared_dir):
    return open_model(shared_dir / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite")


def test_float_conv_facts(v2):
    conv = next(n for n in v2.index.nodes if n.op_type == "Conv")
    f = node_facts(v2, conv.name)
    assert f["op_type"] == "Conv" and f["block"] == v2.blocks.blocks[0].name
    attrs = dict(f["attributes"])
    assert attrs["kernel_shape"] == "[3, 3]" and attrs["strides"] == "[2, 2]"
    x, w = f["inputs"][:2]
    assert x["graph_input"] and x["dtype"] == "float32" and x["quantization"] is None
    assert w["constant"] and w["shape"] == [16, 3, 3, 3]
    assert f["outputs"][0]["shape"] == [1, 16, 64, 64] and f["outputs"][0]["consumers"]
    weight = f["weights"][0]
    arr = numpy_helper.to_array(v2.index.initializers[conv.input[1]])
    assert weight["shape"] == [16, 3, 3, 3] and weight["quantization"] is None
    for k, v in (("min", arr.min()), ("max", arr.max()), ("mean", arr.mean()), ("std", arr.std())):
        assert weight["stats"][k] == pytest.approx(float(v), rel=1e-5)
    assert f["costs"]["macs"] == v2.costs.by_name[conv.name].macs and f["costs"]["live_bytes"] > 0


def test_find_nodes_by_substring_case_insensitive(v2):
    found = find_nodes(v2, "FEATURES.3.")
    assert found and all("features.3." in n for n in found)
    assert found == [n for n in v2.index.names if "features.3." in n]  # execution order
    assert find_nodes(v2, "  ") == [] and find_nodes(v2, "no such node") == []


@pytest.mark.shared
def test_quantized_conv_facts(quant):
    gi = quant.index
    first, second = [n for n in gi.nodes if n.op_type == "Conv"][:2]
    f = node_facts(quant, second.name)  # the first depthwise conv
    w = f["weights"][0]
    assert w["dtype"] == "uint8" and w["quantization"]["scale"].size == 1
    assert w["real_stats"] is not None and w["real_stats"]["min"] < 0 < w["real_stats"]["max"]
    # its input is the stem's output: a float tensor in the ONNX graph, held as uint8 (the Q/DQ pair before it)
    x = f["inputs"][0]
    assert x["dtype"] == "float32" and x["held_as"] == "uint8" and x["producer"].endswith("/dequantize")
    stem = node_facts(quant, first.name)
    assert x["quantization"]["scale"][0] == stem["output_quantization"]["scale"][0]
    # a conv writes through its fused Relu6 into a uint8 tensor (zero point 0: Relu6's range starts at 0)
    assert f["output_dtype"] == "uint8" and quant_text(f["output_quantization"])[1] == "0"


@pytest.mark.shared
def test_storage_folds_qdq_pairs(quant):
    gi = quant.index
    st = quant.costs.storage
    assert isinstance(st, Storage)
    assert st.resolve("input") == "input_quantized"  # the DequantizeLinear of the graph input
    conv = next(i for i, n in enumerate(gi.nodes) if n.op_type == "Conv")
    out = gi.nodes[conv].output[0]
    assert gi.dtype(st.resolve(out)) == "uint8"
    assert st.resolve(gi.graph_outputs[0]).endswith("_quantized")


@pytest.mark.shared
def test_per_channel_weights(ptq):
    """TF2 post-training quantization: int8 weights with one scale per output channel."""
    gi = ptq.index
    i = next(i for i, n in enumerate(gi.nodes) if n.op_type == "DequantizeLinear" and i in gi.const_nodes
             and gi.shape(n.input[0]) and len(gi.shape(n.input[0])) == 4)
    dtype, q = node_output_quant(gi, ptq.costs.storage, i)
    channels = gi.shape(gi.nodes[i].input[0])[q["axis"]]
    assert dtype == "float32" and q["scale"].size == channels > 1
    assert quant_text(q) == (f"per-channel ({channels})", f"per-channel ({channels})")
    consumer = gi.names[gi.consumers[gi.nodes[i].output[0]][0]]
    w = next(w for w in node_facts(ptq, consumer)["weights"] if w["quantization"] is not None
             and w["quantization"]["scale"].size > 1)
    assert w["dtype"] == "int8" and np.all(w["quantization"]["zero_point"] == 0)
