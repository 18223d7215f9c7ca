"""A synthetic MobileNet-like ONNX graph of about N nodes (inverted-residual blocks at a tiny size), for
measuring how analysis and layout scale with graph size rather than with tensor size."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def synthetic_graph(target_nodes: int = 10_000, channels: int = 8, size: int = 8) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    c, hidden = channels, channels * 2

    def conv(x, name, cin, cout, groups=1, k=1):
        w = numpy_helper.from_array((rng.standard_normal((cout, cin // groups, k, k)) * 0.1).astype(np.float32),
                                    name + ".w")
        inits.append(w)
        nodes.append(helper.make_node("Conv", [x, w.name], [name], name=name, group=groups, kernel_shape=[k, k],
                                      pads=[k // 2] * 4))
        return name

    def bn(x, name, ch):
        for p, v in (("s", 1.0), ("b", 0.0), ("m", 0.0), ("v", 1.0)):
            inits.append(numpy_helper.from_array(np.full(ch, v, np.float32), f"{name}.{p}"))
        nodes.append(helper.make_node("BatchNormalization", [x] + [f"{name}.{p}" for p in "sbmv"], [name], name=name))
        return name

    def relu(x, name):
        nodes.append(helper.make_node("Relu", [x], [name], name=name))
        return name

    x = relu(bn(conv("input", "stem", 3, c, k=3), "stem.bn", c), "stem.act")
    i = 0
    while len(nodes) < target_nodes - 12:
        p = f"b{i}"
        y = relu(bn(conv(x, p + ".exp", c, hidden), p + ".exp.bn", hidden), p + ".exp.act")
        y = relu(bn(conv(y, p + ".dw", hidden, hidden, groups=hidden, k=3), p + ".dw.bn", hidden), p + ".dw.act")
        y = bn(conv(y, p + ".proj", hidden, c), p + ".proj.bn", c)
        nodes.append(helper.make_node("Add", [x, y], [p + ".add"], name=p + ".add"))
        x = p + ".add"
        i += 1
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], name="flat"))
    w = numpy_helper.from_array(rng.standard_normal((10, c)).astype(np.float32), "fc.w")
    inits.append(w)
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w"], ["logits"], name="fc", transB=1))
    g = helper.make_graph(nodes, "synthetic", [helper.make_tensor_value_info("input", 1, [1, 3, size, size])],
                          [helper.make_tensor_value_info("logits", 1, [1, 10])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def photo_jpeg(path, size: tuple[int, int] = (1920, 1080), quality: int = 90) -> None:
    """A 1080p photo for the decode and preprocessing benchmarks: a ../shared image scaled up (smooth noise
    when ../shared is absent)."""
    from pathlib import Path

    from PIL import Image

    src = Path(__file__).resolve().parents[2] / "shared" / "images" / "parrot.jpg"
    if src.exists():
        img = Image.open(src).convert("RGB").resize(size, Image.BICUBIC)
    else:
        rng = np.random.default_rng(0)
        img = Image.fromarray((rng.random((68, 120, 3)) * 255).astype(np.uint8)).resize(size, Image.BICUBIC)
    img.save(path, quality=quality)
