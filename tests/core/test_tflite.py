"""TFLite importer: every shared .tflite model against the TFLite runtime (LiteRT, default XNNPACK kernels) on
every shared image, the QDQ model's exact quantization parameters, the float twin, the tensor-name contract,
layout and padding, block grouping, and typed errors for damaged files.

Preprocessing is DATA.md's reference one: whole image to RGB, PIL bilinear resize to the input size, raw uint8
for quantized inputs, x / 127.5 - 1 for the float model. Each model's interpreter and sessions are built once
(module-scoped fixture) so the module stays fast.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from PIL import Image

from mbexplorer.core.errors import TruncatedModelError, UnsupportedOperatorError
from mbexplorer.core.importers.tflite import import_tflite
from mbexplorer.core.importers.tflite_ops import SUPPORTED_OPS, tensor_names
from mbexplorer.core.importers.tflite_read import read_tflite
from mbexplorer.core.loading import load

interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")
pytestmark = pytest.mark.shared

FLOAT = "mobilenet_v1_0.25_224_1_default_1.tflite"
QUANT = [
    "mobilenet_v1_0.25_128_quant.tflite",
    "mobilenet_v1_0.25_224_quant.tflite",
    "mobilenet_v1_0.5_160_quant.tflite",
    "mobilenet_v2_1.0_224_quant.tflite",
    "tf2_mobilenet_v2_1.0_224_ptq.tflite",
    "v3-small_224_1.0_uint8.tflite",
]
MODELS = [FLOAT] + QUANT
IMAGES = ["bird.bmp", "cat.bmp", "dragonfly.bmp", "grace_hopper.bmp", "hot_dog.jpg",
          "missvickie_potato_chips.bmp", "parrot.jpg", "sunflower.bmp"]
STEP = 1 / 256  # one step of the uint8 softmax output

# The issue asks for 3 output steps; the import matches LiteRT 2.3.0 (XNNPACK) exactly on every model and image.
# Three ops need TFLite's own integer arithmetic for that (importers/tflite_int.py): HARD_SWISH (V3-small was 59
# steps off as a float QDQ op), ADD of two 8-bit tensors (onnxruntime's float and fused paths each round some
# near-ties the other way) and per-channel int8 convolutions (tf2 was 8 steps off). LiteRT's own builtin kernels
# differ from its XNNPACK ones by up to 20 steps (tf2) and 51 (V3-small) on the same images.
MAX_STEPS = 0


@dataclass
class Case:
    file: str
    path: Path
    loaded: object
    interpreter: object
    scores_ref: np.ndarray  # [image, class], LiteRT output dequantized
    scores: np.ndarray  # the imported (QDQ or float) model under onnxruntime
    scores_twin: np.ndarray | None
    inputs: list = field(default_factory=list)


def _session(model) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def pictures(shared_dir) -> dict[str, Image.Image]:
    return {name: Image.open(shared_dir / "images" / name).convert("RGB") for name in IMAGES}


@pytest.fixture(scope="module", params=MODELS)
def case(request, shared_dir, pictures) -> Case:
    path = shared_dir / "models" / request.param
    loaded = load(path)
    it = interpreter_mod.Interpreter(model_path=str(path))
    it.allocate_tensors()
    ind, outd = it.get_input_details()[0], it.get_output_details()[0]
    h, w = (int(d) for d in ind["shape"][1:3])
    sess = _session(loaded.model)
    twin = _session(loaded.float_twin.model) if loaded.float_twin else None
    ref, ours, ours_twin, inputs = [], [], [], []
    for name in IMAGES:
        pixels = np.asarray(pictures[name].resize((w, h), Image.BILINEAR))[None]
        if ind["dtype"] == np.float32:
            x = (pixels.astype(np.float32) / 127.5 - 1.0).astype(np.float32)
        else:
            x = pixels.astype(ind["dtype"])
        inputs.append(x)
        it.set_tensor(ind["index"], x)
        it.invoke()
        raw = it.get_tensor(outd["index"])[0]
        scale, zp = outd["quantization"]
        ref.append((raw.astype(np.float32) - zp) * scale if scale else raw.astype(np.float32))
        ours.append(sess.run(None, {sess.get_inputs()[0].name: x})[0][0])
        if twin is not None:
            s, z = ind["quantization"]
            real = ((x.astype(np.float32) - z) * s).astype(np.float32)
            ours_twin.append(twin.run(None, {twin.get_inputs()[0].name: real})[0][0])
    return Case(request.param, path, loaded, it, np.array(ref), np.array(ours),
                np.array(ours_twin) if twin is not None else None, inputs)


# --------------------------------------------------------------------------------------------------
# parity


def test_scores_match_litert(case):
    diff = np.abs(case.scores - case.scores_ref).max(axis=1)
    ref_top, top = case.scores_ref.argmax(1), case.scores.argmax(1)
    agree = int((ref_top == top).sum())
    if case.file == FLOAT:
        print(f"\n{case.file}: max |diff| {diff.max():.2e}, top-1 {agree}/8")
        assert diff.max() <= 1e-4
    else:
        steps = np.rint(diff / STEP).astype(int)
        print(f"\n{case.file}: max diff per image (steps) {steps.tolist()}, top-1 {agree}/8")
        assert steps.max() <= MAX_STEPS
    for i, name in enumerate(IMAGES):
        assert top[i] == ref_top[i], f"{case.file} {name}: LiteRT {ref_top[i]}, import {top[i]}"


def _data_md_top1(shared_dir: Path) -> dict[tuple[str, str], int]:
    """Top-1 per (model, image) from the reference tables in DATA.md."""
    out, model = {}, None
    for line in (shared_dir / "DATA.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^`([^`]+\.tflite)` \(index", line)
        if m:
            model = m.group(1)
            continue
        m = re.match(r"^\| (\S+\.(?:bmp|jpg)) \| (\d+) ", line)
        if m and model:
            out[(model, m.group(1))] = int(m.group(2))
    return out


def test_top1_matches_data_md(case, shared_dir):
    table = _data_md_top1(shared_dir)
    for i, name in enumerate(IMAGES):
        expected = table[(case.file, name)]
        assert case.scores[i].argmax() == expected, f"{case.file} {name}"


def test_float_twin_classifies_like_the_qdq_model(case):
    if case.file == FLOAT:
        assert case.loaded.float_twin is None
        return
    agree = int((case.scores_twin.argmax(1) == case.scores.argmax(1)).sum())
    print(f"\n{case.file}: float twin agrees with the QDQ model on {agree}/8 images")
    assert agree >= 6
    assert np.allclose(case.scores_twin.sum(1), 1.0, atol=1e-3)


def test_batch_is_dynamic(case):
    x = np.concatenate([case.inputs[0], case.inputs[3], case.inputs[0]])
    assert case.loaded.inputs[0].shape[0] == "batch"
    out = _session(case.loaded.model).run(None, {case.loaded.inputs[0].name: x})[0]
    assert out.shape == (3, 1001)
    np.testing.assert_allclose(out[0], case.scores[0], atol=1e-6)
    np.testing.assert_allclose(out[1], case.scores[3], atol=1e-6)


# --------------------------------------------------------------------------------------------------
# the LoadedModel record, layout, names


def test_record_and_preprocessing(case):
    m = case.loaded
    data = case.path.read_bytes()
    import hashlib

    assert (m.source_format, m.name, m.source_path) == ("tflite", case.path.stem, case.path.resolve())
    assert m.sha256 == hashlib.sha256(data).hexdigest() and m.file_size == len(data)
    spec = m.inputs[0]
    size = case.interpreter.get_input_details()[0]["shape"][1]
    assert spec.shape == ("batch", size, size, 3) and spec.layout == "NHWC"
    assert m.outputs[0].dtype == "float32" and m.outputs[0].shape == ("batch", 1001)
    pre = m.preprocessing
    assert pre["source"] == "tflite" and pre["layout"] == "NHWC"
    if case.file == FLOAT:
        assert spec.dtype == "float32" and pre["normalization"] is None and m.labels is None
        return
    s, z = case.interpreter.get_input_details()[0]["quantization"]
    assert spec.dtype == "uint8"
    assert (pre["input_scale"], pre["input_zero_point"], pre["input_dtype"]) == (np.float32(s), z, "uint8")
    twin = m.float_twin
    assert twin.source_format == "tflite" and twin.sha256 == m.sha256 and twin.inputs[0].dtype == "float32"
    assert twin.inputs[0].shape == spec.shape
    assert twin.preprocessing["input_scale"] == pre["input_scale"] and "real = (q - zero_point) * scale" in \
        twin.preprocessing["note"]
    # the twin's preprocessing gives the real values the QDQ model makes of the same raw pixels
    from mbexplorer.core.preprocess import for_model

    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    q = for_model(m)(img).astype(np.float32)
    real = for_model(twin)(img)
    np.testing.assert_allclose(real, (q - z) * np.float32(s), atol=1e-6)
    assert f"(x - {z}) * " in for_model(twin).describe()
    if case.file == "v3-small_224_1.0_uint8.tflite":
        assert m.labels is None  # no labels file inside
    else:  # Coral / TF Lite support models carry their labels as TFLite metadata
        assert len(m.labels) == 1001 and m.labels[0] == "background" and twin.labels == m.labels


def _activation_names(path: Path) -> set[str]:
    g = read_tflite(path.read_bytes())
    names = tensor_names(g)
    return {names[t] for t in g.inputs} | {names[t] for op in g.operators for t in op.outputs}


def test_every_tflite_activation_is_a_float_tensor_of_both_models(case):
    acts = _activation_names(case.path)
    m = case.loaded
    for model in (m, m.float_twin) if m.float_twin else (m,):
        floats = {n for n, d in model.dtypes.items() if d == "float32"}
        assert acts <= floats, sorted(acts - floats)[:5]
    if m.float_twin:  # in the QDQ model each is the output of its DequantizeLinear
        producers = {o: n.op_type for n in m.graph.node for o in n.output}
        assert {producers[a] for a in acts} == {"DequantizeLinear"}


def test_float_and_uint8_twins_share_tensor_names(shared_dir):
    a = _activation_names(shared_dir / "models" / FLOAT)
    b = _activation_names(shared_dir / "models" / "mobilenet_v1_0.25_224_quant.tflite")
    assert a == b


@pytest.mark.filterwarnings("ignore:Warning. Enabling .experimental_preserve_all_tensors")
def test_qdq_activation_holds_the_tflite_value(shared_dir, pictures):
    """A named activation in the QDQ model is the TFLite tensor's real value (layer by layer)."""
    path = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    m = import_tflite(path)
    g = read_tflite(path.read_bytes())
    names = tensor_names(g)
    op = g.operators[1]  # the first depthwise conv
    t = op.outputs[0]
    it = interpreter_mod.Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    x = np.asarray(pictures["parrot.jpg"].resize((128, 128), Image.BILINEAR))[None]
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    q = g.tensors[t].quant
    expect = (it.get_tensor(t).astype(np.float32) - q.zero_point[0]) * q.scale[0]
    from onnx import helper

    proto = m.model.__class__()
    proto.CopyFrom(m.model)
    proto.graph.output.append(helper.make_tensor_value_info(names[t], 1, None))
    sess = _session(proto)
    got = sess.run([names[t]], {m.inputs[0].name: x})[0].transpose(0, 2, 3, 1)  # NCHW inside the graph
    np.testing.assert_allclose(got, expect, atol=1e-6)


def test_layout_and_tf_same_padding(shared_dir):
    m = load(shared_dir / "models" / FLOAT)
    nodes = list(m.graph.node)
    assert nodes[0].op_type == "Transpose" and list(nodes[0].attribute[0].ints) == [0, 3, 1, 2]
    conv0 = next(n for n in nodes if n.op_type == "Conv")
    attrs = {a.name: list(a.ints) for a in conv0.attribute if a.ints}
    assert attrs["strides"] == [2, 2] and attrs["pads"] == [0, 0, 1, 1]  # 224 -> 112: the extra row/col at the end
    assert m.shapes[conv0.output[0]] == (1, 8, 112, 112)
    pool = next(n for n in nodes if n.op_type == "AveragePool")
    assert {a.name: a.i for a in pool.attribute}["count_include_pad"] == 0
    dws = [n for n in nodes if n.op_type == "Conv" and {a.name: a.i for a in n.attribute}["group"] > 1]
    assert len(dws) == 13
    assert conv0.name == "MobilenetV1/MobilenetV1/Conv2d_0/Relu6"  # node names follow the TFLite tensors


# --------------------------------------------------------------------------------------------------
# exact quantization parameters


def _dq_params(model, name: str):
    """(integer data, scale, zero point, axis) of the DequantizeLinear that writes ``name``."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == name)
    axis = next((a.i for a in node.attribute if a.name == "axis"), None)
    return inits.get(node.input[0]), inits[node.input[1]], inits[node.input[2]], axis


def test_uint8_per_tensor_parameters_are_exact(shared_dir):
    path = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    m = load(path)
    g = read_tflite(path.read_bytes())
    names = tensor_names(g)
    conv = g.operators[0]
    x, w, b = (g.tensors[i] for i in conv.inputs)
    data, scale, zp, axis = _dq_params(m.model, names[w.index])
    assert data.dtype == np.uint8 and axis is None
    np.testing.assert_array_equal(data, w.data.transpose(0, 3, 1, 2))  # OHWI -> OIHW, still the file's integers
    assert scale.dtype == np.float32 and scale == w.quant.scale[0] and zp == w.quant.zero_point[0] == 157
    bdata, bscale, bzp, _ = _dq_params(m.model, names[b.index])
    assert bdata.dtype == np.int32 and bscale == b.quant.scale[0] and bzp == 0
    np.testing.assert_array_equal(bdata, b.data)
    _, s, z, _ = _dq_params(m.model, "input")  # the graph input's DequantizeLinear
    assert (s, z) == (np.float32(1 / 128), 128) and z.dtype == np.uint8
    out = g.tensors[g.outputs[0]]
    _, s, z, _ = _dq_params(m.model, names[out.index])
    assert (s, z) == (np.float32(1 / 256), 0)
    act = g.tensors[conv.outputs[0]]
    q = next(n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.name == f"{names[act.index]}/quantize")
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    assert inits[q.input[1]] == act.quant.scale[0] and inits[q.input[2]] == act.quant.zero_point[0]


def test_int8_per_channel_parameters_and_axis(shared_dir):
    path = shared_dir / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    m = load(path)
    g = read_tflite(path.read_bytes())
    names = tensor_names(g)
    conv = next(op for op in g.operators if op.op == "CONV_2D")
    dw = next(op for op in g.operators if op.op == "DEPTHWISE_CONV_2D")
    for op, perm in ((conv, (0, 3, 1, 2)), (dw, (3, 0, 1, 2))):
        w, b = g.tensors[op.inputs[1]], g.tensors[op.inputs[2]]
        assert w.quant.per_channel and w.quant.axis == (0 if op is conv else 3)
        data, scale, zp, axis = _dq_params(m.model, names[w.index])
        assert data.dtype == np.int8 and axis == 0  # output channels lead in ONNX weights
        np.testing.assert_array_equal(data, w.data.transpose(perm))
        np.testing.assert_array_equal(scale, w.quant.scale)
        assert zp.dtype == np.int8 and not zp.any() and zp.shape == scale.shape
        bdata, bscale, bzp, baxis = _dq_params(m.model, names[b.index])
        assert bdata.dtype == np.int32 and baxis == 0 and bzp.dtype == np.int32
        np.testing.assert_array_equal(bscale, b.quant.scale)
    # the QUANTIZE ops at both ends: uint8 -> int8 after the input, int8 -> uint8 before the output
    first, last = g.operators[0], g.operators[-1]
    assert first.op == last.op == "QUANTIZE"
    _, s, z, _ = _dq_params(m.model, names[first.outputs[0]])
    assert z.dtype == np.int8 and z == -1 and s == g.tensors[first.outputs[0]].quant.scale[0]
    _, s, z, _ = _dq_params(m.model, names[last.outputs[0]])
    assert z.dtype == np.uint8 and z == 0 and s == np.float32(1 / 256)


def test_float_twin_weights_are_the_dequantized_integers(shared_dir):
    path = shared_dir / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    m = load(path)
    g = read_tflite(path.read_bytes())
    names = tensor_names(g)
    dw = next(op for op in g.operators if op.op == "DEPTHWISE_CONV_2D")
    w = g.tensors[dw.inputs[1]]
    twin = {t.name: numpy_helper.to_array(t) for t in m.float_twin.graph.initializer}
    expect = (w.data.astype(np.float32) * w.quant.scale.astype(np.float32)).transpose(3, 0, 1, 2)
    np.testing.assert_array_equal(twin[names[w.index]], expect)
    ops = {n.op_type for n in m.float_twin.graph.node}
    assert not ops & {"QuantizeLinear", "DequantizeLinear"}


# --------------------------------------------------------------------------------------------------
# block grouping on imported graphs


def _blocks(loaded):
    from mbexplorer.core.analysis import analyse_job, run

    return run(analyse_job(loaded)).blocks.blocks


@pytest.mark.parametrize("file,which", [("mobilenet_v1_0.25_128_quant.tflite", "qdq"),
                                        ("mobilenet_v1_0.25_128_quant.tflite", "twin"), (FLOAT, "qdq")])
def test_v1_groups_into_13_depthwise_separable_blocks(shared_dir, file, which):
    m = load(shared_dir / "models" / file)
    blocks = _blocks(m if which == "qdq" else m.float_twin)
    assert [b.kind for b in blocks] == ["stem"] + ["depthwise_separable"] * 13 + ["head"]
    assert blocks[0].name.startswith("stem: conv 3x3 s2") and "softmax" in blocks[-1].name


@pytest.mark.parametrize("which", ["qdq", "twin"])
def test_v2_groups_into_17_inverted_residual_blocks(shared_dir, which):
    m = load(shared_dir / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite")
    blocks = _blocks(m if which == "qdq" else m.float_twin)
    assert [b.kind for b in blocks] == ["stem"] + ["inverted_residual"] * 17 + ["head"]
    assert sum(b.residual for b in blocks) == 10
    assert blocks[2].name == "block 2: expand x6, dw 3x3 s2"


def _check_v3_small(blocks):
    body = blocks[1:-1]
    assert blocks[0].kind == "stem" and blocks[-1].kind == "head" and len(body) == 11
    assert [b.info["se"] for b in body] == [True, False, False] + [True] * 8
    assert all("h-swish" in b.name for b in body[3:])
    assert blocks[1].name == "block 1: dw 3x3 s2, SE"


def test_v3_small_float_twin_groups_into_11_blocks_with_se_and_hswish(shared_dir):
    _check_v3_small(_blocks(load(shared_dir / "models" / "v3-small_224_1.0_uint8.tflite").float_twin))


def test_v3_small_qdq_groups_into_11_blocks_with_se_and_hswish(shared_dir):
    _check_v3_small(_blocks(load(shared_dir / "models" / "v3-small_224_1.0_uint8.tflite")))


# --------------------------------------------------------------------------------------------------
# damaged and unsupported files


def test_truncated_file_is_a_typed_error(shared_dir, tmp_path):
    p = tmp_path / "cut.tflite"
    p.write_bytes((shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite").read_bytes()[:1000])
    with pytest.raises(TruncatedModelError, match="truncated or corrupt"):
        load(p)


@pytest.mark.parametrize("seed", range(12))
def test_tfl3_magic_with_garbage_is_a_typed_error(tmp_path, seed):
    rng = np.random.default_rng(seed)
    body = rng.integers(0, 256, int(rng.integers(0, 6000)), dtype=np.uint8).tobytes()
    p = tmp_path / "garbage.tflite"
    p.write_bytes(struct.pack("<I", int(rng.integers(0, 2**32))) + b"TFL3" + body)
    with pytest.raises(TruncatedModelError) as info:
        load(p)
    msg = str(info.value)
    assert msg.startswith("garbage.tflite starts like a TensorFlow Lite model but its flatbuffer cannot be read")
    assert "truncated or corrupt" in msg and "\n" not in msg


# The damaged files below that load, and why. Each case changes 12 of the file's first 4000 bytes: the root
# tables (up to byte 484), the metadata buffer (484-1531), then Conv2d_10_pointwise's weights; odd cases are
# also cut short. Four whole files load, as they should: every changed byte is in those weights or in the
# optional metadata. Where the metadata becomes unreadable (case 12: its buffer; case 22: the length of its
# name, byte 86), its normalization is dropped, as for a file without metadata.
# case -> whether the metadata's normalization is still read
_DAMAGE_THAT_LOADS = {6: True, 12: False, 20: True, 22: False}


def test_damaged_real_files_raise_only_typed_errors(shared_dir, tmp_path):
    src = shared_dir / "models" / "mobilenet_v1_0.25_224_quant.tflite"
    data = src.read_bytes()
    ref = load(src)
    ref_weights = {t.name: numpy_helper.to_array(t) for t in ref.model.graph.initializer}

    def structure(m):
        return [(n.op_type, list(n.input), list(n.output)) for n in m.model.graph.node]

    rng = np.random.default_rng(7)
    for i in range(25):
        b = bytearray(data[: int(rng.integers(8, len(data)))] if i % 2 else data)
        for k in rng.integers(8, 4000, 12):
            b[k] = int(rng.integers(0, 256))
        p = tmp_path / f"bad{i}.tflite"
        p.write_bytes(bytes(b))
        if i not in _DAMAGE_THAT_LOADS:
            with pytest.raises(TruncatedModelError) as info:
                load(p)
            msg = str(info.value)
            assert msg.startswith(f"bad{i}.tflite starts like a TensorFlow Lite model but its flatbuffer cannot be "
                                  "read") and "truncated or corrupt" in msg and "\n" not in msg, (i, msg)
            continue
        m = load(p)
        assert structure(m) == structure(ref), i
        changed = [t.name for t in m.model.graph.initializer
                   if not np.array_equal(numpy_helper.to_array(t), ref_weights[t.name])]
        assert changed == ["MobilenetV1/MobilenetV1/Conv2d_10_pointwise/weights_quant/FakeQuantWithMinMaxVars_"
                           "quantized"], i
        assert ("metadata_normalization" in m.preprocessing) == _DAMAGE_THAT_LOADS[i], i


def _with_opcode(data: bytes, old: str, new: int) -> bytes:
    """The file with operator code ``old`` (a builtin name) rewritten to builtin code ``new``."""
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator

    buf = bytearray(data)
    model = tflite.Model.GetRootAs(buf, 0)
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        if max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()) == getattr(BuiltinOperator, old):
            tab = oc._tab
            for slot, fmt in ((4, "<b"), (10, "<i")):  # deprecated_builtin_code (int8), builtin_code (int32)
                off = tab.Offset(slot)
                if off:
                    struct.pack_into(fmt, buf, tab.Pos + off, new)
    return bytes(buf)


def test_unsupported_op_names_the_op_and_the_tensor(shared_dir, tmp_path):
    from tflite.BuiltinOperator import BuiltinOperator

    data = (shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    p = tmp_path / "lstm.tflite"
    p.write_bytes(_with_opcode(data, "SOFTMAX", BuiltinOperator.LSTM))
    with pytest.raises(UnsupportedOperatorError) as info:
        load(p)
    msg = str(info.value)
    assert msg.startswith("TFLite op LSTM (tensor 'MobilenetV1/Predictions/Reshape_1') is not supported")
    assert "supported: " in msg and "CONV_2D" in msg and "HARD_SWISH" in msg
    assert len(SUPPORTED_OPS) >= 20
