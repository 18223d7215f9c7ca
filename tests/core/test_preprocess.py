"""Preprocessing presets and image loading: geometry, values, layouts, every image mode."""

import numpy as np
import pytest
from PIL import Image

from mbexplorer.core.errors import MbxError
from mbexplorer.core.preprocess import (
    ImageError,
    decode,
    image_files,
    preset,
    tf_bilinear,
    to_rgb,
)


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


def test_inception_central_crop_and_range():
    img = gradient()
    out = preset("inception", 224, layout="NHWC")(img)
    assert out.shape == (1, 224, 224, 3)
    assert -1.0 <= out.min() and out.max() <= 1.0
    crop = img.crop((40, 30, 600, 450))  # 87.5 % of 640x480, centred
    ref = np.asarray(crop.resize((224, 224), Image.BILINEAR), np.float32) / 127.5 - 1
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
    assert p.interpolation == "tf" and p.layout == "NCHW"
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


def test_crop_box_resize_equals_resize_then_crop():
    """The presets resize only the crop's box; the pixels are those of resizing the whole and cropping."""
    img = photo()
    out = preset("torchvision", 224, layout="NHWC", dtype="uint8")(img)[0].astype(int)
    ref = np.asarray(img.resize((455, 256), Image.BILINEAR).crop((116, 16, 340, 240))).astype(int)
    diff = np.abs(out - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float rounding of sample positions only
    out = preset("inception", 224, layout="NHWC", dtype="uint8")(img)[0]
    ref = np.asarray(img.crop((120, 67, 1800, 1012)).resize((224, 224), Image.BILINEAR))
    np.testing.assert_array_equal(out, ref)  # crop first, then resize: exactly TF-slim's order


def test_tf_bilinear_window_is_a_slice_of_the_whole():
    arr = np.asarray(photo(300, 200))
    whole = tf_bilinear(arr.astype(np.float32), 150, 171)
    part = tf_bilinear(arr, 150, 171, rows=(3, 131), cols=(20, 148))  # uint8 in, gathered before converting
    np.testing.assert_array_equal(part, whole[3:131, 20:148])
    p = preset("paddle", 128, layout="NHWC", dtype="uint8")
    short = round(128 / p.crop_ratio)
    ref = np.clip(np.round(tf_bilinear(arr.astype(np.float32), short, int(short * 300 / 200))), 0, 255)
    left, top = int(round((int(short * 300 / 200) - 128) / 2)), int(round((short - 128) / 2))
    np.testing.assert_array_equal(p(Image.fromarray(arr))[0], ref[top:top + 128, left:left + 128].astype(np.uint8))


def test_crop_larger_than_the_picture_pads_with_black():
    # a wide input from a square picture: the shorter side resized to 256 is narrower than the 320 crop
    p = preset("torchvision", 224, 320, layout="NHWC", dtype="uint8")
    out = p(Image.new("RGB", (500, 500), (200, 100, 50)))[0]
    assert out.shape == (224, 320, 3)
    assert (out[:, :20] == 0).all() and (out[:, 160] == (200, 100, 50)).all()


def test_float_values_from_the_table_equal_the_formula():
    img = photo(400, 300)
    p = preset("torchvision", 224)
    pixels = np.asarray(p.geometry(img), np.float32)
    ref = (pixels / 255 - np.array(p.mean, np.float32)) / np.array(p.std, np.float32)
    np.testing.assert_allclose(p(img)[0], ref.transpose(2, 0, 1), atol=2e-6)
    # mean and std are in the tensor's channel order (BGR models give theirs in BGR)
    bgr = preset("custom", 224, channel_order="BGR", layout="NHWC", mean=p.mean[::-1], std=p.std[::-1])(img)[0]
    np.testing.assert_allclose(bgr[..., ::-1], p(img)[0].transpose(1, 2, 0), atol=2e-6)


def test_jpeg_draft_decodes_smaller_and_keeps_the_crop_in_place(tmp_path):
    p = tmp_path / "big.jpg"
    photo().save(p, quality=90)
    full, size = decode(p)
    assert full.size == size == (1920, 1080)
    tv = preset("torchvision", 224)
    small, size = decode(p, draft_for=tv)
    assert size == (1920, 1080) and small.size == (960, 540)  # 1/2 scale: still >= 2 x 256
    exact, fast = tv(full), tv(small, size)
    assert np.abs(fast - exact).mean() < 0.05  # the same part of the picture, slightly softer
    # without the full size the crop would be placed for a 960x540 picture: still in place (same aspect)
    coral = preset("coral", 224)
    img, size = decode(p, draft_for=coral)
    assert img.size == (1920, 1080)  # TF-style resizing samples single pixels: always the whole image
    with pytest.raises(ValueError, match="full-resolution"):
        coral(small, (1920, 1080))
    png = tmp_path / "big.png"
    photo(600, 400).save(png)
    assert decode(png, draft_for=tv)[0].size == (600, 400)  # only JPEGs have reduced decoding


def test_exif_rotated_draft_reports_the_upright_size(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rot.jpg"
    photo(1920, 1080).save(p, exif=exif, quality=90)
    img, size = decode(p, draft_for=preset("torchvision", 224))
    assert size == (1080, 1920) and img.size == (540, 960)
