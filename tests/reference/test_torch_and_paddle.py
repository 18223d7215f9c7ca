"""The torchvision, timm and paddle presets against their frameworks, decoding included: the resized and
cropped uint8 picture identical to the framework's, the float tensor within 1e-5 (max abs), for every shared
photo and awkward-size rendition at every size in SIZES. Also the alpha rule for every PIL and OpenCV
preset: dropped exactly as the reference loaders drop it, composited over white only when asked.

torchvision and timm run themselves. PaddleClas is not installed (it needs paddlepaddle), so its eval
operators are reproduced below from ppcls/data/preprocess/ops/operators.py, calling OpenCV for the decode and
the resize as they do.
"""

from __future__ import annotations

import contextlib
import importlib
import math

import numpy as np
import pytest
from conftest import SIZES, need
from PIL import Image

from mbexplorer.core import preprocess
from mbexplorer.core.preprocess import IMAGENET_MEAN, IMAGENET_STD

pytestmark = pytest.mark.shared
TOL = 1e-5

# torchvision imports triton, whose bundled LLVM segfaults the process when TensorFlow's is already loaded (the
# TensorFlow reference tests load it in a fixture): load the torch stack while tests are collected, before any runs.
for _module in ("torchvision.transforms", "timm.data"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_module)


@pytest.fixture(scope="module")
def pictures(photos, odd_photos):
    return list(photos) + list(odd_photos)


def _check(pre, pixels: np.ndarray, ref_geometry: np.ndarray, ref_tensor: np.ndarray, what: str) -> None:
    """Our preset on decoded ``pixels`` against the framework's uint8 crop (HxWx3) and NCHW float tensor."""
    geo = pre.geometry(pixels)
    assert geo.dtype == np.uint8 and geo.shape == ref_geometry.shape, what
    diff = np.abs(geo.astype(np.int16) - ref_geometry.astype(np.int16))
    assert diff.max() == 0, f"{what}: {np.count_nonzero(diff)} values off, max {diff.max()}"
    out = pre(pixels)
    assert out.dtype == np.float32 and out.shape == (1,) + ref_tensor.shape, what
    err = float(np.abs(out[0] - ref_tensor).max())
    assert err <= TOL, f"{what}: max abs {err}"


def _decoded(pre, path, ref: np.ndarray) -> np.ndarray:
    """The preset's own decode of ``path``, identical to the reference's; and ``tensor(path)`` runs it."""
    pixels = pre.load(path)
    assert pixels.dtype == np.uint8 and pixels.shape == ref.shape, path.name
    assert np.array_equal(pixels, ref), f"{path.name}: decoded pixels differ"
    np.testing.assert_array_equal(pre.tensor(path), pre(pixels))
    return pixels


# torchvision -------------------------------------------------------------------------------------------------

def test_torchvision_preset_is_torchvisions_eval_transform(pictures):
    need("torch")
    tv = need("torchvision.transforms")
    fn = need("torchvision.transforms.functional")
    values = tv.Compose([tv.ToTensor(), tv.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    geometries = {}
    for s in SIZES:
        resize = tv.Resize(round(s / 0.875))
        # the reference eval's Resize: bilinear, and on PIL images always antialiased (PIL's own filter)
        assert resize.interpolation == fn.InterpolationMode.BILINEAR and resize.antialias is True
        geometries[s] = tv.Compose([resize, tv.CenterCrop(s)])
    for p in pictures:
        img = Image.open(p).convert("RGB")
        pixels = _decoded(preprocess.preset("torchvision"), p, np.asarray(img))
        for s in SIZES:
            crop = geometries[s](img)
            _check(preprocess.preset("torchvision", s), pixels, np.asarray(crop), values(crop).numpy(),
                   f"{p.name} at {s}")


# timm --------------------------------------------------------------------------------------------------------

def test_timm_mobilenet_defaults_are_the_presets():
    timm = need("timm")
    need("timm.data")
    pre = preprocess.preset("timm", 224)
    for name in ("mobilenetv3_large_100", "mobilenetv3_small_100", "mobilenetv2_100"):
        cfg = timm.data.resolve_data_config({}, model=timm.create_model(name, pretrained=False))
        assert cfg["input_size"] == (3, 224, 224) and cfg["crop_mode"] == "center", name
        assert cfg["crop_pct"] == pre.crop_ratio and cfg["interpolation"] == "bicubic", name
        assert pre.interpolation == "pil_bicubic" and pre.sizing == "timm"
        assert np.allclose(cfg["mean"], pre.mean, atol=0) and np.allclose(cfg["std"], pre.std, atol=0), name


def test_timm_preset_is_timms_eval_transform(pictures):
    timm_data = need("timm.data")
    transforms = {}
    for s in SIZES:
        tf = timm_data.create_transform(input_size=(3, s, s), interpolation="bicubic", crop_pct=0.875,
                                        mean=IMAGENET_MEAN, std=IMAGENET_STD, is_training=False)
        # Resize(floor(s / crop_pct), bicubic), CenterCrop(s), ToTensor, Normalize
        assert len(tf.transforms) == 4 and tf.transforms[0].size == math.floor(s / 0.875), tf
        assert preprocess.preset("timm", s).resize_size() == tf.transforms[0].size
        transforms[s] = tf
    for p in pictures:
        img = Image.open(p).convert("RGB")
        pixels = _decoded(preprocess.preset("timm"), p, np.asarray(img))
        for s, tf in transforms.items():
            crop = tf.transforms[1](tf.transforms[0](img))
            _check(preprocess.preset("timm", s), pixels, np.asarray(crop), tf(img).numpy(), f"{p.name} at {s}")


@pytest.mark.parametrize("name", ["torchvision", "timm"])
def test_non_square_inputs_and_crops_larger_than_the_picture(name):
    """Non-square model inputs: timm resizes through ResizeKeepRatio, and a crop wider than the resized picture
    makes CenterCrop pad (crop - side) // 2 zeros first (odd differences are where rounding would miss)."""
    need("torch")
    tv = need("torchvision.transforms")
    timm_data = need("timm.data") if name == "timm" else None
    rng = np.random.default_rng(3)
    for w, h in ((97, 61), (61, 97), (100, 300), (1000, 255), (333, 1001)):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(pixels)
        for ch, cw in ((192, 256), (256, 192), (224, 259), (160, 190)):
            pre = preprocess.preset(name, ch, cw)
            if name == "timm":
                tf = timm_data.create_transform(input_size=(3, ch, cw), interpolation="bicubic", crop_pct=0.875,
                                                mean=IMAGENET_MEAN, std=IMAGENET_STD, is_training=False)
                crop, tensor = tf.transforms[1](tf.transforms[0](img)), tf(img)
            else:
                crop = tv.CenterCrop((ch, cw))(tv.Resize(pre.resize_size())(img))
                tensor = tv.Normalize(IMAGENET_MEAN, IMAGENET_STD)(tv.ToTensor()(crop))
            _check(pre, pixels, np.asarray(crop), tensor.numpy(), f"{w}x{h} to {ch}x{cw}")


# paddle ------------------------------------------------------------------------------------------------------
# PaddleClas's eval operators (ppcls/data/preprocess/ops/operators.py), behaviour for behaviour.

def _paddle_decode(cv2, data: bytes) -> np.ndarray:
    """DecodeImage(to_rgb=True)."""
    img = cv2.imdecode(np.frombuffer(data, dtype="uint8"), 1)
    assert img.shape[2] == 3
    return img[:, :, ::-1]


def _paddle_resize(cv2, img: np.ndarray, resize_short: int) -> np.ndarray:
    """ResizeImage(resize_short=...): UnifiedResize's cv2 backend with interpolation None is INTER_LINEAR."""
    img_h, img_w = img.shape[:2]
    percent = float(resize_short) / min(img_w, img_h)
    w = int(round(img_w * percent))
    h = int(round(img_h * percent))
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def _paddle_crop(img: np.ndarray, size: int) -> np.ndarray:
    """CropImage(size=...)."""
    w, h = size, size
    img_h, img_w = img.shape[:2]
    w_start = (img_w - w) // 2
    h_start = (img_h - h) // 2
    return img[h_start:h_start + h, w_start:w_start + w, :]


def _paddle_normalize(img: np.ndarray) -> np.ndarray:
    """NormalizeImage(scale=1/255, mean, std, order='') then ToCHWImage: float32 arithmetic throughout."""
    scale = np.float32(1.0 / 255.0)
    mean = np.array(IMAGENET_MEAN).reshape((1, 1, 3)).astype("float32")
    std = np.array(IMAGENET_STD).reshape((1, 1, 3)).astype("float32")
    img = (img.astype("float32") * scale - mean) / std
    return img.astype("float32").transpose((2, 0, 1))


def test_paddle_preset_is_paddleclas_eval_pipeline(pictures):
    cv2 = need("cv2")
    for s in SIZES:
        assert preprocess.preset("paddle", s).resize_size() == round(s / 0.875)  # resize_short 256 for 224
    for p in pictures:
        img = _paddle_decode(cv2, p.read_bytes())
        pixels = _decoded(preprocess.preset("paddle"), p, img)
        for s in SIZES:
            pre = preprocess.preset("paddle", s)
            crop = _paddle_crop(_paddle_resize(cv2, img, pre.resize_size()), s)
            _check(pre, pixels, crop, _paddle_normalize(crop), f"{p.name} at {s}")


# alpha -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["torchvision", "timm", "keras", "coral", "paddle"])
def test_alpha_dropped_as_the_reference_loader_drops_it_or_over_white(name, transparent_png):
    pre = preprocess.preset(name, 224)
    raw = np.asarray(Image.open(transparent_png))
    rgb, a = raw[..., :3], raw[..., 3]
    if pre.decoder == "cv2":
        cv2 = need("cv2")
        ref = cv2.imdecode(np.frombuffer(transparent_png.read_bytes(), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    else:
        assert pre.decoder == "pil"
        ref = np.asarray(Image.open(transparent_png).convert("RGB"))
    dropped = pre.load(transparent_png)
    np.testing.assert_array_equal(dropped, ref)
    np.testing.assert_array_equal(dropped, rgb)  # the hidden colour, alpha ignored

    white = preprocess.customise(pre, alpha="white").load(transparent_png)
    assert white.shape == rgb.shape and white.dtype == np.uint8
    np.testing.assert_array_equal(white[a == 255], rgb[a == 255])
    assert (white[a == 0] == 255).all()
    over = rgb.astype(np.float64) * (a[..., None] / 255.0) + 255.0 * (1 - a[..., None] / 255.0)
    assert np.abs(white.astype(np.float64) - over).max() <= 1.0
    assert (white[a < 255] != dropped[a < 255]).mean() > 0.9


def test_cv2_alpha_over_white_of_a_16_bit_picture(tmp_path):
    """A 16-bit RGBA PNG: dropped, OpenCV's 8-bit colour; over white, that colour where it is opaque."""
    cv2 = need("cv2")
    rng = np.random.default_rng(5)
    bgra = rng.integers(0, 65536, (40, 50, 4), dtype=np.uint16)
    bgra[..., 3] = 0
    bgra[10:30, ..., 3] = 65535
    p = tmp_path / "deep.png"
    cv2.imwrite(str(p), bgra)
    pre = preprocess.preset("paddle")
    dropped = pre.load(p)
    np.testing.assert_array_equal(dropped, cv2.imdecode(np.fromfile(p, np.uint8), cv2.IMREAD_COLOR)[..., ::-1])
    white = preprocess.customise(pre, alpha="white").load(p)
    np.testing.assert_array_equal(white[10:30], dropped[10:30])
    assert (white[:10] == 255).all() and (white[30:] == 255).all()
