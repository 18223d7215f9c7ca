"""Preprocessing presets and image loading: geometry, values, layouts, every image mode."""

import numpy as np
import pytest
from PIL import Image

from mbexplorer.core.decoding import ImageError, decode, image_files, read_pixels, to_rgb
from mbexplorer.core.errors import MbxError
from mbexplorer.core.preprocess import for_model, preset, source_preset
from mbexplorer.core.resizing import tf_bilinear


def gradient(w=640, h=480):
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], -1).astype(np.uint8))


def test_torchvision_matches_resize_centercrop_normalize_by_hand():
    img = gradient()
    p = preset("torchvision", 224)
    out = p(img)
    assert out.shape == (1, 3, 224, 224) and out.dtype == np.float32
    ref = img.resize((341, 256), Image.BILINEAR)  # int(256 * 640 / 480) = 341
    left, top = int(round((341 - 224) / 2)), 16
    ref = np.asarray(ref.crop((left, top, left + 224, top + 224)), np.float32) / 255
    ref = ((ref - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])).transpose(2, 0, 1)
    np.testing.assert_allclose(out[0], ref, atol=1e-5)


def test_torchvision_scales_the_crop_with_the_input_size():
    out = preset("torchvision", 160)(gradient())
    assert out.shape == (1, 3, 160, 160)
    assert "shorter side to 183, centre crop 160x160" in preset("torchvision", 160).describe()


def test_tfslim_central_crop_and_range():
    img = gradient()
    out = preset("tfslim", 224, layout="NHWC")(img)
    assert out.shape == (1, 224, 224, 3)
    assert -1.0 <= out.min() and out.max() <= 1.0
    # tf.image.central_crop: start int((640 - 560) / 2) = 40, int((480 - 420) / 2) = 30; no half-pixel centres
    crop = np.asarray(img, np.float32)[30:450, 40:600]
    ref = tf_bilinear(crop, 224, 224, half_pixel=False) / 127.5 - 1
    np.testing.assert_allclose(out[0], ref, atol=1e-5)


def test_coral_uint8_is_raw_truncated_pixels_of_the_whole_image():
    img = gradient()
    out = preset("coral", 128, layout="NHWC", dtype="uint8")(img)
    assert out.shape == (1, 128, 128, 3) and out.dtype == np.uint8
    ref = np.floor(tf_bilinear(np.asarray(img, np.float32), 128, 128)).astype(np.uint8)
    np.testing.assert_array_equal(out[0], ref)
    i8 = preset("coral", 128, layout="NHWC", dtype="int8")(img)
    np.testing.assert_array_equal(i8.astype(np.int16) + 128, out.astype(np.int16))
    f = preset("coral", 128, layout="NHWC", dtype="float32")(img)
    np.testing.assert_allclose(f, out / 127.5 - 1, atol=1e-6)


def test_tf_bilinear_half_pixel_no_antialias():
    a = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    np.testing.assert_allclose(tf_bilinear(a, 2, 2)[..., 0], [[2.5, 4.5], [10.5, 12.5]])  # centre samples
    np.testing.assert_allclose(tf_bilinear(a, 4, 4), a)  # identity at the same size
    up = tf_bilinear(np.array([[0.0, 10.0]], np.float32)[..., None], 1, 4)[0, :, 0]
    np.testing.assert_allclose(up, [0.0, 2.5, 7.5, 10.0])


def test_paddle_and_custom():
    p = preset("paddle", 224)
    assert (p.decoder, p.interpolation, p.sizing, p.layout) == ("cv2", "cv2", "paddle", "NCHW")
    assert preset("paddle", 224)(gradient()).shape == (1, 3, 224, 224)
    c = preset("custom", 96, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), channel_order="BGR", layout="NHWC")
    out = c(Image.new("RGB", (300, 200), (255, 0, 0)))
    assert out.shape == (1, 96, 96, 3)
    np.testing.assert_allclose(out[0, 0, 0], [-1.0, -1.0, 1.0], atol=1e-6)  # BGR order
    with pytest.raises(MbxError, match="unknown preprocessing preset"):
        preset("opencv")
    with pytest.raises(MbxError, match="unknown preprocessing option"):
        preset("custom", 96, gamma=2)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "PA", "RGBA", "CMYK", "1", "I;16", "I", "F", "YCbCr", "RGB"])
def test_every_mode_becomes_rgb(mode, tmp_path):
    base = gradient(64, 48)
    if mode == "I;16":
        img = Image.fromarray((np.asarray(base.convert("L"), np.uint16) * 257).astype("<u2"))
        assert img.mode == "I;16"
    elif mode == "F":
        img = Image.fromarray(np.asarray(base.convert("L"), np.float32) / 255.0, "F")
    else:
        img = base.convert(mode)
    rgb = to_rgb(img)
    assert rgb.mode == "RGB" and rgb.size == (64, 48)
    if mode in ("I;16", "I", "F", "L", "LA"):
        grey = np.asarray(base.convert("L"), np.int16)
        assert np.abs(np.asarray(rgb, np.int16)[..., 0] - grey).max() <= 1  # scaled, not clipped to white


def test_transparency_goes_over_white():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert to_rgb(img).getpixel((0, 0)) == (255, 255, 255)
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    assert to_rgb(img).getpixel((0, 0)) == (255, 0, 0)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif, quality=95)
    shown = decode(p)[0]
    assert shown.size == (20, 40)
    assert np.asarray(shown)[:10].mean() > 200  # the white strip is now on top


def test_non_images_raise_a_clear_error(tmp_path):
    t = tmp_path / "notes.txt"
    t.write_text("not an image")
    with pytest.raises(ImageError, match="notes.txt is not an image"):
        decode(t)
    broken = tmp_path / "broken.jpg"
    gradient().save(tmp_path / "ok.jpg")
    broken.write_bytes((tmp_path / "ok.jpg").read_bytes()[:300])
    with pytest.raises(ImageError, match="broken.jpg"):
        np.asarray(decode(broken)[0])
    with pytest.raises(ImageError, match="folder"):
        decode(tmp_path)
    for decoder in ("pil", "tf", "cv2"):  # every pipeline's decoder refuses them the same way
        with pytest.raises(ImageError, match="notes.txt is not an image"):
            read_pixels(t, decoder)
        with pytest.raises(ImageError, match="broken.jpg"):
            read_pixels(broken, decoder)
        with pytest.raises(ImageError, match="folder"):
            read_pixels(tmp_path, decoder)


def test_folders_expand_to_images(tmp_path):
    (tmp_path / "sub").mkdir()
    gradient().save(tmp_path / "b.png")
    gradient().save(tmp_path / "sub" / "a.jpg")
    (tmp_path / "readme.md").write_text("x")
    assert [p.name for p in image_files([tmp_path])] == ["b.png", "a.jpg"]


def photo(w=1920, h=1080, seed=0):
    """A photo-like picture: smooth shapes plus fine texture, so resampling differences show."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray((rng.random((h // 40, w // 40, 3)) * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    grain = rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(small, np.float32) + grain, 0, 255).astype(np.uint8))


def test_torchvision_resizes_the_whole_picture_then_crops():
    """Exactly Resize then CenterCrop (resizing only the crop's box moved 1.8 % of values by a level)."""
    img = photo()
    out = preset("torchvision", 224, layout="NHWC", dtype="uint8")(img)[0]
    ref = np.asarray(img.resize((455, 256), Image.BILINEAR).crop((116, 16, 340, 240)))
    np.testing.assert_array_equal(out, ref)


def test_tf_bilinear_window_is_a_slice_of_the_whole():
    arr = np.asarray(photo(300, 200))
    whole = tf_bilinear(arr.astype(np.float32), 150, 171)
    part = tf_bilinear(arr, 150, 171, rows=(3, 131), cols=(20, 148))  # uint8 in, gathered before converting
    np.testing.assert_array_equal(part, whole[3:131, 20:148])


def test_sizing_rules_of_each_source():
    """Shorter-side sizes and crop offsets: torchvision truncates the long side and rounds the offset, timm
    floors size / crop_pct, PaddleClas rounds both sides from one scale and floor-halves the offset."""
    tv, timm, paddle = preset("torchvision", 192), preset("timm", 192), preset("paddle", 192)
    assert (tv.resize_size(), timm.resize_size(), paddle.resize_size()) == (219, 219, 219)
    assert (preset("torchvision", 160).resize_size(), preset("timm", 160).resize_size()) == (183, 182)
    assert tv._shorter_size(333, 1001) == (219, 658) and paddle._shorter_size(333, 1001) == (219, 658)
    assert tv._shorter_size(1001, 333) == (658, 219)
    assert tv._shorter_size(97, 61) == (348, 219) and paddle._shorter_size(97, 61) == (348, 219)
    assert tv._shorter_size(640, 479) == (292, 219) and paddle._shorter_size(640, 479) == (293, 219)
    assert tv._crop_offsets(293, 219) == (50, 14) and paddle._crop_offsets(293, 219) == (50, 13)


def test_source_picks_the_preset():
    class M:
        def __init__(self, fmt, producer=""):
            self.source_format, self.producer = fmt, producer

    picks = {fmt: source_preset(M(fmt)) for fmt in ("tflite", "keras", "tfjs", "torchvision", "timm", "onnx",
                                                     "builder")}
    assert picks == {"tflite": "coral", "keras": "keras", "tfjs": "tfjs", "torchvision": "torchvision",
                     "timm": "timm", "onnx": "torchvision", "builder": "torchvision"}
    assert source_preset(M("onnx", "PaddlePaddle 2.6")) == "paddle"


def test_crop_larger_than_the_picture_pads_with_black():
    # a wide input from a square picture: the shorter side resized to 256 is narrower than the 320 crop
    p = preset("torchvision", 224, 320, layout="NHWC", dtype="uint8")
    out = p(Image.new("RGB", (500, 500), (200, 100, 50)))[0]
    assert out.shape == (224, 320, 3)
    assert (out[:, :20] == 0).all() and (out[:, 160] == (200, 100, 50)).all()


def test_float_values_from_the_table_equal_the_formula():
    img = photo(400, 300)
    p = preset("torchvision", 224)
    pixels = np.asarray(p.geometry(np.asarray(img)), np.float32)
    ref = (pixels / 255 - np.array(p.mean, np.float32)) / np.array(p.std, np.float32)
    np.testing.assert_allclose(p(img)[0], ref.transpose(2, 0, 1), atol=2e-6)
    # mean and std are in the tensor's channel order (BGR models give theirs in BGR)
    bgr = preset("custom", 224, channel_order="BGR", layout="NHWC", mean=p.mean[::-1], std=p.std[::-1])(img)[0]
    np.testing.assert_allclose(bgr[..., ::-1], p(img)[0].transpose(1, 2, 0), atol=2e-6)


def test_jpeg_draft_decodes_smaller_and_keeps_the_crop_in_place(tmp_path):
    from mbexplorer.core.preprocess import draft_size, load_approximate

    p = tmp_path / "big.jpg"
    photo().save(p, quality=90)
    tv = preset("torchvision", 224)
    exact = tv.tensor(p)
    small, size = load_approximate(p, tv)
    assert size == (1920, 1080) and small.size == (960, 540)  # 1/2 scale: still >= 2 x 256
    fast = tv(small, size)
    assert np.abs(fast - exact).mean() < 0.05  # the same part of the picture, slightly softer
    for name in ("coral", "tfslim", "tfjs", "paddle"):  # they sample the whole picture: always exact
        pre = preset(name, 224)
        assert draft_size(pre) is None
        pixels, full = load_approximate(p, pre)
        assert full is None and np.asarray(pixels).shape == (1080, 1920, 3)
    png = tmp_path / "big.png"
    photo(600, 400).save(png)
    assert load_approximate(png, tv)[0].size == (600, 400)  # only JPEGs have reduced decoding


def test_exif_rotated_picture(tmp_path):
    """Shown upright; decoded as each pipeline decodes it: PIL and TensorFlow ignore EXIF, OpenCV turns it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rot.jpg"
    photo(1920, 1080).save(p, exif=exif, quality=90)
    img, size = decode(p, (224, 224))
    assert size == (1080, 1920) and img.size == (540, 960)  # 1/2 scale leaves >= 2 x 224
    assert read_pixels(p, "pil").shape == (1080, 1920, 3)
    assert read_pixels(p, "tf").shape == (1080, 1920, 3)
    assert read_pixels(p, "cv2").shape == (1920, 1080, 3)


def test_alpha_is_dropped_unless_white_is_asked(tmp_path):
    p = tmp_path / "t.png"
    Image.new("RGBA", (8, 8), (200, 10, 10, 0)).save(p)
    for decoder in ("pil", "tf", "cv2"):
        assert tuple(read_pixels(p, decoder)[0, 0]) == (200, 10, 10)
        assert tuple(read_pixels(p, decoder, alpha="white")[0, 0]) == (255, 255, 255)


def test_for_model_follows_the_input(built):
    m = built("mobilenet_v1", 0.25, 128)
    p = for_model(m)
    assert (p.name, p.height, p.width, p.layout, p.dtype) == ("torchvision", 128, 128, "NCHW", "float32")
