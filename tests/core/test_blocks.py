"""Block grouping by structure: the same blocks whatever the names, node order, BN folding or Q/DQ wrapping."""

import random

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from mbexplorer.core.blocks import DS, HEAD, IR, OPS, STEM, V3, group_blocks
from mbexplorer.core.graph import GraphIndex
from mbexplorer.core.model import from_proto


def blocks_of(loaded):
    return group_blocks(GraphIndex(loaded)).blocks


def signature(blocks):
    return [(b.kind, b.residual, b.info.get("kernel"), b.info.get("stride"), b.info.get("se"), len(b.nodes))
            for b in blocks]


def test_mobilenet_v1_blocks(built):
    bs = blocks_of(built("mobilenet_v1"))
    assert [b.kind for b in bs] == [STEM] + [DS] * 13 + [HEAD]
    assert bs[0].name == "stem: conv 3x3 s2 → 32"
    assert bs[2].name == "block 2: dw 3x3 s2, pw 64→128"
    assert bs[-1].name == "head: pool, FC → 1000"
    assert not any(b.residual for b in bs)


def test_mobilenet_v2_blocks(built):
    bs = blocks_of(built("mobilenet_v2"))
    assert [b.kind for b in bs] == [STEM] + [IR] * 17 + [HEAD]
    assert sum(b.residual for b in bs) == 10
    assert bs[1].name == "block 1: dw 3x3 s1"  # t=1: no expansion
    assert bs[3].name == "block 3: expand x6, dw 3x3 s1, residual"
    assert bs[-1].name == "head: conv 1x1 → 1280, pool, FC → 1000"
    assert sum(len(b.nodes) for b in bs) == len(built("mobilenet_v2").graph.node)


def test_mobilenet_v3_large_blocks(built):
    bs = blocks_of(built("mobilenet_v3_large"))
    assert len(bs) == 17
    assert [b.info["se"] for b in bs[1:-1]] == [False] * 3 + [True] * 3 + [False] * 4 + [True] * 5
    assert bs[4].name == "block 4: expand x3, dw 5x5 s2, SE"
    assert bs[5].name == "block 5: expand x3, dw 5x5 s1, SE, residual"
    assert bs[7].name == "block 7: expand x6, dw 3x3 s2, h-swish"
    assert [b.kind for b in bs[1:4]] == [IR] * 3  # ReLU, no SE: structurally V2 blocks
    assert all(b.kind == V3 for b in bs[4:-1])
    assert bs[-1].name == "head: conv 1x1 → 960, pool, FC → 1280, FC → 1000"


def test_mobilenet_v3_small_blocks(built):
    bs = blocks_of(built("mobilenet_v3_small"))
    assert len(bs) == 13
    assert bs[1].name == "block 1: dw 3x3 s2, SE"
    assert bs[2].name == "block 2: expand x4.5, dw 3x3 s2"
    assert bs[9].name == "block 9: expand x6, dw 5x5 s2, SE, h-swish"


def _anonymise(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """Rename every node and tensor and shuffle the node list: what another exporter might write."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    rng = random.Random(seed)
    keep = {vi.name for vi in g.input} | {vi.name for vi in g.output}
    names = {}
    for n in g.node:
        for t in list(n.input) + list(n.output):
            if t and t not in keep and t not in names:
                names[t] = f"t{len(names)}_{rng.randrange(10**6)}"
    for t in g.initializer:
        t.name = names.get(t.name, t.name)
    for n in g.node:
        n.name = f"/m/n{rng.randrange(10**6)}"
        n.input[:] = [names.get(t, t) for t in n.input]
        n.output[:] = [names.get(t, t) for t in n.output]
    nodes = list(g.node)
    rng.shuffle(nodes)
    del g.node[:]
    g.node.extend(nodes)
    return m


@pytest.mark.parametrize("family", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"])
def test_grouping_ignores_names_and_node_order(built, family):
    ref = built(family, 0.5, 128)
    other = from_proto(_anonymise(ref.model), name="anon", source_format="onnx")
    assert signature(blocks_of(other)) == signature(blocks_of(ref))
    assert [b.name for b in blocks_of(other)] == [b.name for b in blocks_of(ref)]


@pytest.mark.parametrize("family", ["mobilenet_v2", "mobilenet_v3_small"])
def test_grouping_with_folded_bn(built, family):
    a = blocks_of(built(family, 0.5, 128))
    b = blocks_of(built(family, 0.5, 128, fold_bn=True))
    assert [x.name for x in a] == [x.name for x in b]


def _qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Quantize-dequantize every conv/FC weight (int8 initializer + DequantizeLinear) and every activation
    (QuantizeLinear + DequantizeLinear after each op): the shape of a QDQ model from a quantizer."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    new_nodes = []
    extra = []
    for n in g.node:
        if n.op_type in ("Conv", "Gemm"):
            w_name = n.input[1]
            w = numpy_helper.to_array(inits[w_name])
            scale = np.float32(max(np.abs(w).max(), 1e-8) / 127)
            q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
            extra += [numpy_helper.from_array(q, w_name + "_q"),
                      numpy_helper.from_array(np.array(scale), w_name + "_s")]
            new_nodes.append(helper.make_node("DequantizeLinear", [w_name + "_q", w_name + "_s"], [w_name + "_dq"],
                                              name=w_name + "_DQ"))
            n.input[1] = w_name + "_dq"
        new_nodes.append(n)
        if n.op_type in ("Conv", "Relu", "Clip", "Add", "HardSwish", "Mul", "BatchNormalization"):
            out = n.output[0]
            n.output[0] = out + "_raw"
            s, z = out + "_as", out + "_az"
            extra += [numpy_helper.from_array(np.array(0.05, np.float32), s),
                      numpy_helper.from_array(np.array(0, np.int8), z)]
            new_nodes.append(helper.make_node("QuantizeLinear", [out + "_raw", s, z], [out + "_q"], name=out + "_Q"))
            new_nodes.append(helper.make_node("DequantizeLinear", [out + "_q", s, z], [out], name=out + "_DQA"))
    used = {t for n in new_nodes for t in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep + extra)
    del g.node[:]
    g.node.extend(new_nodes)
    return m


def test_grouping_of_a_qdq_model(built):
    ref = built("mobilenet_v2", 0.5, 128)
    q = from_proto(_qdq(ref.model), name="qdq", source_format="onnx")
    sess = ort.InferenceSession(q.model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"input": np.zeros((1, 3, 128, 128), np.float32)})[0].shape == (1, 1000)
    a, b = blocks_of(ref), blocks_of(q)
    assert [x.name for x in a] == [x.name for x in b]
    # weight DequantizeLinear nodes belong to the block of the conv they feed
    gi = GraphIndex(q)
    bg = group_blocks(gi)
    for i, n in enumerate(gi.nodes):
        if n.op_type == "DequantizeLinear" and i in gi.const_nodes:
            conv = gi.consumers[n.output[0]][0]
            assert bg.node_block[gi.names[i]] == bg.node_block[gi.names[conv]]
    # and the costs see the int8 weights through them: same MACs and params, 1-byte weights
    from mbexplorer.core.costs import analyse

    ra, rb = analyse(ref), analyse(q, gi, bg)
    assert ra.totals()["macs"] == rb.totals()["macs"]
    assert ra.totals()["params"] == rb.totals()["params"]
    conv = next(n for n in rb.nodes if n.op_type == "Conv")
    assert conv.weight_bytes == ra.params(conv)


def test_non_mobilenet_graph_falls_back_to_op_groups():
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(3):
        w = numpy_helper.from_array(rng.standard_normal((8, 3 if i == 0 else 8, 3, 3)).astype(np.float32), f"w{i}")
        inits.append(w)
        nodes.append(helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        x = f"r{i}"
    g = helper.make_graph(nodes, "plain", [helper.make_tensor_value_info("x", 1, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info(x, 1, [1, 8, 16, 16])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    bs = blocks_of(from_proto(m, name="plain", source_format="onnx"))
    assert [b.kind for b in bs] == [OPS] * 3
    assert [b.nodes for b in bs] == [["conv0", "relu0"], ["conv1", "relu1"], ["conv2", "relu2"]]
    assert [b.name for b in bs] == ["ops 1: Conv, Relu", "ops 2: Conv, Relu", "ops 3: Conv, Relu"]  # what they hold


def test_block_edges_follow_the_data(built):
    bg = group_blocks(GraphIndex(built("mobilenet_v2", 0.5, 128)))
    assert bg.edges == [(i, i + 1) for i in range(len(bg.blocks) - 1)]
    assert {b.name for b in bg.blocks if b.residual} == {b.name for b in bg.blocks if "residual" in b.name}


def _torch_style(model: onnx.ModelProto) -> onnx.ModelProto:
    """What older torch.onnx exports write: Flatten as Shape/Gather/Unsqueeze/Concat/Reshape, and h-swish
    decomposed into x * HardSigmoid(x)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    out = []
    g.initializer.extend([numpy_helper.from_array(np.array(0, np.int64), "c0"),
                          numpy_helper.from_array(np.array([-1], np.int64), "cm1")])
    for n in g.node:
        if n.op_type == "Flatten":
            x, y = n.input[0], n.output[0]
            out += [helper.make_node("Shape", [x], [y + "_shape"]),
                    helper.make_node("Gather", [y + "_shape", "c0"], [y + "_n"], axis=0),
                    helper.make_node("Unsqueeze", [y + "_n", "c0u"], [y + "_nu"]),
                    helper.make_node("Concat", [y + "_nu", "cm1"], [y + "_dims"], axis=0),
                    helper.make_node("Reshape", [x, y + "_dims"], [y])]
        elif n.op_type == "HardSwish":
            x, y = n.input[0], n.output[0]
            out += [helper.make_node("HardSigmoid", [x], [y + "_hs"], alpha=1 / 6, beta=0.5),
                    helper.make_node("Mul", [x, y + "_hs"], [y])]
        else:
            out.append(n)
    g.initializer.append(numpy_helper.from_array(np.array([0], np.int64), "c0u"))
    del g.node[:]
    g.node.extend(out)
    return m


def test_grouping_of_a_torch_style_export(built):
    ref = built("mobilenet_v3_small", 0.5, 128)
    t = from_proto(_torch_style(ref.model), name="torch", source_format="onnx")
    x = np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32)
    run = lambda m: ort.InferenceSession(m.model.SerializeToString(),  # noqa: E731
                                         providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(run(t), run(ref), rtol=1e-4, atol=1e-5)
    assert [b.name for b in blocks_of(t)] == [b.name for b in blocks_of(ref)]
