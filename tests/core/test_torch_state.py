"""PyTorch state-dict importer: builder weights written under torchvision / timm names come back as the same
function. The timm renaming here is written out independently of the importer's, from timm's module layout."""

from __future__ import annotations

import hashlib
import json
import struct
import sys

import numpy as np
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from mbexplorer.core.errors import ModelLoadError, NotAModelError, TruncatedModelError, UnsupportedFormatError
from mbexplorer.core.importers import torch_state
from mbexplorer.core.importers.torch_state import (
    StateDictMismatchError,
    UnknownArchitectureError,
    import_state_dict,
)

safetensors_numpy = pytest.importorskip("safetensors.numpy")

RES = 96  # small inputs keep the module fast; resolution is the caller's choice, not in the state dict

# --------------------------------------------------------------------------------------------------
# timm layout, written out from timm's arch_def (efficientnet.py / mobilenetv3.py)

TIMM_STAGES = {
    "mobilenet_v2": [1, 2, 3, 4, 3, 3, 1],
    "mobilenet_v3_large": [1, 2, 3, 4, 2, 3],  # + the ConvBnAct stage 6
    "mobilenet_v3_small": [1, 2, 3, 2, 3],  # + the ConvBnAct stage 5
}
V3_SE = {  # torchvision's use_se per bneck block
    "mobilenet_v3_large": [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1],
    "mobilenet_v3_small": [1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
}


def timm_modules(family: str) -> dict[str, str]:
    """torchvision module path -> timm module path."""
    if family == "mobilenet_v1":
        return {}
    pairs = {"features.0.0": "conv_stem", "features.0.1": "bn1"}
    n = 1
    stages = TIMM_STAGES[family]
    for s, count in enumerate(stages):
        for i in range(count):
            t = f"blocks.{s}.{i}"
            if family == "mobilenet_v2":
                f = f"features.{n}.conv"
                if s == 0:
                    pairs.update({f"{f}.0.0": f"{t}.conv_dw", f"{f}.0.1": f"{t}.bn1",
                                  f"{f}.1": f"{t}.conv_pw", f"{f}.2": f"{t}.bn2"})
                else:
                    pairs.update({f"{f}.0.0": f"{t}.conv_pw", f"{f}.0.1": f"{t}.bn1", f"{f}.1.0": f"{t}.conv_dw",
                                  f"{f}.1.1": f"{t}.bn2", f"{f}.2": f"{t}.conv_pwl", f"{f}.3": f"{t}.bn3"})
            else:
                f = f"features.{n}.block"
                se = V3_SE[family][n - 1]
                if s == 0:  # DepthwiseSeparableConv: dw, [se], pw
                    pairs.update({f"{f}.0.0": f"{t}.conv_dw", f"{f}.0.1": f"{t}.bn1"})
                    if se:
                        pairs.update({f"{f}.1.fc1": f"{t}.se.conv_reduce", f"{f}.1.fc2": f"{t}.se.conv_expand"})
                    pairs.update({f"{f}.{1 + se}.0": f"{t}.conv_pw", f"{f}.{1 + se}.1": f"{t}.bn2"})
                else:  # InvertedResidual: pw, dw, [se], pwl
                    pairs.update({f"{f}.0.0": f"{t}.conv_pw", f"{f}.0.1": f"{t}.bn1",
                                  f"{f}.1.0": f"{t}.conv_dw", f"{f}.1.1": f"{t}.bn2"})
                    if se:
                        pairs.update({f"{f}.2.fc1": f"{t}.se.conv_reduce", f"{f}.2.fc2": f"{t}.se.conv_expand"})
                    pairs.update({f"{f}.{2 + se}.0": f"{t}.conv_pwl", f"{f}.{2 + se}.1": f"{t}.bn3"})
            n += 1
    if family == "mobilenet_v2":
        pairs.update({f"features.{n}.0": "conv_head", f"features.{n}.1": "bn2", "classifier.1": "classifier"})
    else:
        last = f"blocks.{len(stages)}.0"
        pairs.update({f"features.{n}.0": f"{last}.conv", f"features.{n}.1": f"{last}.bn1",
                      "classifier.0": "conv_head", "classifier.3": "classifier"})
    return pairs


def builder_weights(loaded) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in loaded.graph.initializer if not t.name.startswith("const.")}


def to_timm(family: str, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if family == "mobilenet_v1":
        return dict(weights)
    mods = timm_modules(family)
    out = {}
    for name, value in weights.items():
        mod, param = name.rsplit(".", 1)
        assert mod in mods, f"test renaming misses {name}"
        out[f"{mods[mod]}.{param}"] = value
    if family.startswith("mobilenet_v3"):
        out["conv_head.weight"] = out["conv_head.weight"][:, :, None, None]  # timm's head is a 1x1 conv
        for key in [k for k in out if k.endswith(".running_var")]:  # timm V3 BN eps 1e-5, torchvision 1e-3
            bn = key[: -len(".running_var")]
            var = out[key].astype(np.float64)
            out[f"{bn}.weight"] = (out[f"{bn}.weight"] * np.sqrt(var + 1e-5) / np.sqrt(var + 1e-3)).astype(np.float32)
    return out


def with_counters(sd: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(sd)
    for k in sd:
        if k.endswith(".running_var"):
            out[k[: -len("running_var")] + "num_batches_tracked"] = np.array(1234, dtype=np.int64)
    return out


def run(loaded, x):
    sess = ort.InferenceSession(loaded.model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def props(loaded) -> dict[str, str]:
    return {p.key: p.value for p in loaded.model.metadata_props}


def save(path, sd):
    safetensors_numpy.save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(7).random((2, 3, RES, RES), dtype=np.float32)


def assert_same_function(imported, original, x):
    a, b = run(original, x), run(imported, x)
    assert np.abs(a).max() > 0
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# Round trips

CASES = [
    # family, width, classes, rounding, namings
    ("mobilenet_v2", 0.5, 1000, "torchvision", ("torchvision", "timm")),
    ("mobilenet_v2", 1.0, 10, "torchvision", ("torchvision", "timm")),
    ("mobilenet_v2", 0.35, 1000, "paddle", ("torchvision",)),
    ("mobilenet_v3_large", 1.0, 1000, "torchvision", ("torchvision", "timm")),
    ("mobilenet_v3_large", 0.5, 10, "torchvision", ("torchvision",)),
    ("mobilenet_v3_small", 0.75, 1000, "torchvision", ("torchvision", "timm")),
    ("mobilenet_v3_small", 1.0, 10, "torchvision", ("timm",)),
    ("mobilenet_v1", 0.25, 1000, "torchvision", ("timm",)),
    ("mobilenet_v1", 1.0, 10, "torchvision", ("timm",)),
]


@pytest.mark.parametrize(
    "family,width,classes,rounding,naming",
    [(f, w, c, r, n) for f, w, c, r, ns in CASES for n in ns],
    ids=lambda v: str(v),
)
def test_round_trip_gives_the_same_model(tmp_path, built, x, family, width, classes, rounding, naming):
    original = built(family, width, RES, num_classes=classes, rounding=rounding)
    sd = builder_weights(original)
    if naming == "timm":
        sd = to_timm(family, sd)
    path = save(tmp_path / f"{family}_{naming}.safetensors", with_counters(sd))

    m = import_state_dict(path, resolution=RES)

    meta = props(m)
    assert (meta["family"], float(meta["width"]), int(meta["num_classes"])) == (family, width, classes)
    assert meta["channel_rounding"] == rounding
    assert m.source_format == naming and m.name == path.stem
    assert m.source_path == path.resolve() and m.file_size == path.stat().st_size
    assert m.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert m.inputs[0].shape == ("batch", 3, RES, RES) and m.outputs[0].shape == ("batch", classes)
    assert_same_function(m, original, x)


def test_default_resolution_is_224_and_overrides_are_honoured(tmp_path, built):
    original = built("mobilenet_v3_small", 0.75, RES)
    path = save(tmp_path / "small.safetensors", builder_weights(original))
    m = import_state_dict(path)
    assert m.inputs[0].shape == ("batch", 3, 224, 224)
    m = import_state_dict(path, family="mobilenet_v3_small", width=0.75, resolution=128, num_classes=1000)
    assert props(m)["width"] == "0.75" and m.inputs[0].shape[2:] == (128, 128)
    with pytest.raises(StateDictMismatchError, match="not mobilenet_v2"):
        import_state_dict(path, family="mobilenet_v2")
    with pytest.raises(StateDictMismatchError, match="1000 classes, not the 10"):
        import_state_dict(path, num_classes=10)
    with pytest.raises(StateDictMismatchError, match="width 0.5 as given"):
        import_state_dict(path, width=0.5)


# --------------------------------------------------------------------------------------------------
# Wrappers, prefixes, counters


def test_checkpoint_wrappers_prefixes_and_counters(tmp_path, built, x, monkeypatch):
    original = built("mobilenet_v2", 0.5, RES)
    sd = with_counters({f"module.{k}": v for k, v in builder_weights(original).items()})
    path = save(tmp_path / "prefixed.safetensors", sd)
    assert_same_function(import_state_dict(path, resolution=RES), original, x)

    # a training checkpoint as torch.load returns it (without needing torch here)
    checkpoint = {"epoch": 90, "optimizer": {"state": {}, "param_groups": []}, "arch": "mobilenet_v2",
                  "state_dict": sd, "state_dict_ema": {"module.nothing": np.zeros(1, np.float32)}}
    monkeypatch.setattr(torch_state, "_read_raw", lambda p: checkpoint)
    m = import_state_dict(path, resolution=RES)
    assert_same_function(m, original, x)
    monkeypatch.setattr(torch_state, "_read_raw", lambda p: {"model": {"model.module." + k: v for k, v in sd.items()}})
    assert_same_function(import_state_dict(path, resolution=RES), original, x)


def test_bfloat16_and_float16_tensors_are_read(tmp_path):
    values = np.array([1.0, -2.5, 3.140625], np.float32)
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    half = values.astype(np.float16).tobytes()
    header = json.dumps({"a": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]},
                         "b": {"dtype": "F16", "shape": [3], "data_offsets": [6, 12]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + raw + half)
    sd = torch_state.read_state_dict(path)
    assert sd["a"].dtype == np.float32 and sd["b"].dtype == np.float32
    np.testing.assert_array_equal(sd["a"], values)
    np.testing.assert_array_equal(sd["b"], values)


# --------------------------------------------------------------------------------------------------
# Errors


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and len(msg) < 600
    return msg


def test_missing_key(tmp_path, built):
    sd = builder_weights(built("mobilenet_v2", 0.5, RES))
    del sd["features.5.conv.1.1.running_var"]
    with pytest.raises(StateDictMismatchError) as e:
        import_state_dict(save(tmp_path / "m.safetensors", sd))
    msg = one_line(e)
    assert "torchvision mobilenet_v2" in msg and "1 missing: features.5.conv.1.1.running_var" in msg


def test_missing_key_is_named_in_timm_terms(tmp_path, built):
    sd = to_timm("mobilenet_v3_large", builder_weights(built("mobilenet_v3_large", 1.0, RES)))
    del sd["blocks.2.1.se.conv_expand.bias"]
    with pytest.raises(StateDictMismatchError) as e:
        import_state_dict(save(tmp_path / "m.safetensors", sd))
    assert "timm mobilenetv3_large" in one_line(e) and "blocks.2.1.se.conv_expand.bias" in one_line(e)


def test_wrong_shape_and_extra_key(tmp_path, built):
    sd = builder_weights(built("mobilenet_v3_small", 0.75, RES))
    sd["features.4.block.1.0.weight"] = np.zeros((72, 1, 3, 3), np.float32)  # a 3x3 where the arch has 5x5
    sd["features.4.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(StateDictMismatchError) as e:
        import_state_dict(save(tmp_path / "m.safetensors", sd))
    msg = one_line(e)
    assert "torchvision mobilenet_v3_small" in msg
    assert "features.4.block.1.0.weight is (72, 1, 3, 3), needs (72, 1, 5, 5)" in msg
    assert "unexpected: features.4.extra.weight" in msg


def test_timm_v3_width_that_torchvision_cannot_express(tmp_path, built):
    # timm keeps the V3 stem at 16 channels below width 0.75; the builder (torchvision) scales it to 8
    sd = to_timm("mobilenet_v3_small", builder_weights(built("mobilenet_v3_small", 0.5, RES)))
    rng = np.random.default_rng(0)
    sd["conv_stem.weight"] = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    for p in ("weight", "bias", "running_mean", "running_var"):
        sd[f"bn1.{p}"] = np.ones(16, np.float32)
    sd["blocks.0.0.conv_dw.weight"] = np.ones((16, 1, 3, 3), np.float32)
    with pytest.raises(StateDictMismatchError) as e:
        import_state_dict(save(tmp_path / "mobilenetv3_small_050.safetensors", sd))
    msg = one_line(e)
    assert "timm mobilenetv3_small" in msg and "conv_stem.weight is (16, 3, 3, 3), needs (8, 3, 3, 3)" in msg
    assert "timm scales MobileNetV3" in msg


def test_unknown_architecture(tmp_path):
    z = np.zeros((4,), np.float32)
    sd = {"conv1.weight": np.zeros((64, 3, 7, 7), np.float32), "bn1.weight": z, "bn1.bias": z,
          "layer1.0.conv1.weight": np.zeros((64, 64, 3, 3), np.float32), "fc.weight": np.zeros((1000, 512), np.float32),
          "fc.bias": np.zeros(1000, np.float32)}
    with pytest.raises(UnknownArchitectureError) as e:
        import_state_dict(save(tmp_path / "resnet18.safetensors", sd))
    msg = one_line(e)
    assert msg.startswith("resnet18.safetensors:") and "'bn1.bias'" in msg and "not a MobileNet" in msg
    assert isinstance(e.value, UnsupportedFormatError)


@pytest.mark.parametrize("content", [b"this is not a safetensors file at all" * 3,
                                     b"\x20\x00\x00\x00\x00\x00\x00\x00{\"a\":"])
def test_corrupt_safetensors(tmp_path, content):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(TruncatedModelError) as e:
        import_state_dict(path)
    assert "broken.safetensors" in one_line(e) and "truncated or corrupt" in one_line(e)


def test_truncated_safetensors(tmp_path, built):
    path = save(tmp_path / "cut.safetensors", builder_weights(built("mobilenet_v1", 0.25, RES)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedModelError) as e:
        import_state_dict(path)
    msg = one_line(e)
    assert msg.startswith("cut.safetensors cannot be read as safetensors") and "truncated or corrupt" in msg


def test_empty_and_unknown_files(tmp_path):
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(NotAModelError) as e:
        import_state_dict(tmp_path / "empty.safetensors")
    assert one_line(e).startswith("empty.safetensors is empty (0 bytes): it is not a state dict.")
    (tmp_path / "weights.npz").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(UnknownArchitectureError) as e:
        import_state_dict(tmp_path / "weights.npz")
    assert one_line(e).startswith("weights.npz is neither a .safetensors nor a PyTorch .pth file; save the state "
                                  "dict with safetensors.torch.save_file(")
    with pytest.raises(ModelLoadError) as e:
        import_state_dict(tmp_path / "nope.safetensors")
    assert type(e.value) is ModelLoadError and one_line(e) == f"{tmp_path / 'nope.safetensors'} does not exist."


def test_pth_without_torch_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    path = tmp_path / "model.pth"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    with pytest.raises(UnsupportedFormatError) as e:
        import_state_dict(path)
    assert one_line(e) == ("model.pth: reading .pth needs PyTorch (pip install torch); "
                           "or save the state dict as .safetensors.")


# --------------------------------------------------------------------------------------------------
# .pth through torch (skipped without it)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("family,width,naming", [("mobilenet_v2", 0.5, "timm"), ("mobilenet_v3_large", 1.0, "timm"),
                                                  ("mobilenet_v3_small", 0.75, "torchvision")])
def test_pth_round_trip(tmp_path, built, x, torch, family, width, naming):
    original = built(family, width, RES)
    sd = builder_weights(original)
    if naming == "timm":
        sd = to_timm(family, sd)
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in with_counters(sd).items()}
    plain = tmp_path / "plain.pth"
    torch.save(tensors, plain)
    m = import_state_dict(plain, resolution=RES)
    assert m.source_format == naming and props(m)["family"] == family
    assert_same_function(m, original, x)

    wrapped = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in tensors.items()},
                "optimizer": {"lr": 0.1}}, wrapped)
    assert_same_function(import_state_dict(wrapped, resolution=RES), original, x)


def test_pth_half_precision(tmp_path, built, x, torch):
    original = built("mobilenet_v1", 0.25, RES)
    sd = {k: torch.from_numpy(np.array(v)).to(torch.bfloat16) for k, v in builder_weights(original).items()}
    torch.save(sd, tmp_path / "bf16.pth")
    m = import_state_dict(tmp_path / "bf16.pth", resolution=RES)
    assert props(m)["family"] == "mobilenet_v1" and run(m, x).shape == (2, 1000)


class _Net:  # a pickled object that weights_only=True refuses
    def __init__(self):
        self.w = np.zeros(3)


def test_pth_with_pickled_objects_or_corrupt(tmp_path, torch):
    torch.save({"model": _Net()}, tmp_path / "whole.pth")
    with pytest.raises(UnsupportedFormatError) as e:
        import_state_dict(tmp_path / "whole.pth")
    assert "state_dict()" in one_line(e)
    data = (tmp_path / "whole.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedModelError) as e:
        import_state_dict(tmp_path / "cut.pth")
    assert "cut.pth" in one_line(e)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script itself is deprecated
def test_torchscript_archive_is_named(tmp_path, torch):
    torch.jit.script(torch.nn.Linear(3, 4)).save(str(tmp_path / "scripted.pt"))
    with pytest.raises(UnsupportedFormatError) as e:
        import_state_dict(tmp_path / "scripted.pt")
    assert "TorchScript" in one_line(e)
