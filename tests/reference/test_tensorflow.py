"""The TensorFlow-family presets (coral, tfslim, keras) against TensorFlow and Keras themselves.

Each reference below is the source's own pipeline, run here: uint8 results must be identical, float results
within 1e-5, on every shared photo and every awkward rendition, at every input size, decoding included.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import SIZES, need

from mbexplorer.core import preprocess
from mbexplorer.core.decoding import read_pixels
from mbexplorer.core.resizing import tf_bilinear

pytestmark = pytest.mark.shared
TOL = 1e-5


@pytest.fixture(scope="module")
def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's start-up chatter would bury a failure's output
    return need("tensorflow")


@pytest.fixture(scope="module")
def keras(tf):
    return need("keras")


@pytest.fixture(scope="module")
def pictures(photos, odd_photos, transparent_png):
    # the transparent PNG: every reference decoder drops alpha, and so must the presets
    return [*photos, *odd_photos, transparent_png]


def _is_jpeg(path) -> bool:
    return path.read_bytes()[:3] == b"\xff\xd8\xff"


# the references -----------------------------------------------------------------------------------------------
def coral_uint8(tf, path, s):
    """Coral's and TFLite's Python examples: PIL decode, tf.image.resize (bilinear, no antialias), cast."""
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB"))
    return tf.cast(tf.image.resize(img, (s, s), method="bilinear", antialias=False), tf.uint8)


def coral_float(tf, path, s):
    return ((tf.cast(coral_uint8(tf, path, s), tf.float32) - 127.5) / 127.5).numpy()


def tf_decode(tf, path):
    data = tf.io.read_file(str(path))
    if _is_jpeg(path):
        return tf.io.decode_jpeg(data, channels=3)  # the default dct_method, as TF-slim's readers use it
    return tf.io.decode_image(data, channels=3, expand_animations=False)


def tfslim(tf, path, s):
    """research/slim/preprocessing/inception_preprocessing.py preprocess_for_eval (resize_bilinear is v1's)."""
    img = tf.image.convert_image_dtype(tf_decode(tf, path), tf.float32)
    img = tf.image.central_crop(img, central_fraction=0.875)
    img = tf.compat.v1.image.resize_bilinear(img[None], [s, s], align_corners=False)[0]
    return ((img - 0.5) * 2.0).numpy()


def keras_mobilenet(keras, path, s, module="mobilenet"):
    x = keras.utils.img_to_array(keras.utils.load_img(path, target_size=(s, s)))
    return getattr(keras.applications, module).preprocess_input(x[None])[0]


# the comparisons ------------------------------------------------------------------------------------------------
def _check(pictures, ours, reference, tol):
    """Every picture at every size; a failure lists each offending case with its worst difference."""
    bad = []
    for path in pictures:
        for s in SIZES:
            want = np.asarray(reference(path, s))
            got = ours(path, s)
            assert got.shape == want.shape, (path.name, s, got.shape, want.shape)
            assert got.dtype == want.dtype, (path.name, s, got.dtype, want.dtype)
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            if diff.max() > tol:
                bad.append(f"{path.name} @{s}: max {diff.max():.3g}, {np.mean(diff > tol):.2%} of values")
    assert not bad, "\n".join(bad)


def _ours(name, **options):
    return lambda path, s: preprocess.preset(name, s, layout="NHWC", **options).tensor(path)[0]


@pytest.fixture(scope="module")
def coded_variants(photos, tmp_path_factory):
    """One picture in the codings a decoder treats differently: chroma subsampling, progressive, grey,
    CMYK (TF converts it itself), a 16-bit grey PNG (TF keeps the high byte)."""
    from PIL import Image

    out = tmp_path_factory.mktemp("codings")
    img = Image.open(photos[0]).convert("RGB").resize((301, 203))
    variants = {"444.jpg": dict(subsampling=0), "422.jpg": dict(subsampling=1), "progressive.jpg":
                dict(progressive=True), "q100.jpg": dict(quality=100)}
    for name, options in variants.items():
        img.save(out / name, **options)
    img.convert("L").save(out / "grey.jpg")
    img.convert("CMYK").save(out / "cmyk.jpg")
    grey16 = np.asarray(img.convert("L"), np.uint16) * 257 + np.arange(img.width, dtype=np.uint16) % 200
    Image.fromarray(grey16).save(out / "grey16.png")
    return sorted(out.iterdir())


def test_tf_decoder_is_tensorflows(tf, pictures, coded_variants):
    """Our "tf" decoder gives tf.io.decode_jpeg's (decode_image's) pixels exactly."""
    assert sum(map(_is_jpeg, pictures)) >= 7
    for path in [*pictures, *coded_variants]:
        np.testing.assert_array_equal(read_pixels(path, "tf"), tf_decode(tf, path).numpy(), err_msg=path.name)


@pytest.mark.parametrize("half_pixel, align_corners", [(True, False), (False, False), (False, True)])
def test_tf_bilinear_is_tensorflows_kernel(tf, pictures, half_pixel, align_corners):
    """The resize itself, bit for bit (a cast to uint8 truncates, so the floats must be TF's exactly)."""
    from PIL import Image

    for path in pictures[::3]:
        img = np.asarray(Image.open(path).convert("RGB"))
        for s in (*SIZES, 37):  # 37: an odd size
            if half_pixel:
                want = tf.image.resize(img, (s, s), method="bilinear", antialias=False)
            else:
                want = tf.compat.v1.image.resize_bilinear(img[None], [s, s], align_corners=align_corners)[0]
            got = tf_bilinear(img, s, s, half_pixel=half_pixel, align_corners=align_corners)
            np.testing.assert_array_equal(got, want.numpy(), err_msg=f"{path.name} @{s}")


def test_coral_uint8_is_identical(tf, pictures):
    _check(pictures, _ours("coral", dtype="uint8"), lambda p, s: coral_uint8(tf, p, s).numpy(), 0)


def test_coral_float(tf, pictures):
    _check(pictures, _ours("coral"), lambda p, s: coral_float(tf, p, s), TOL)


def test_tfslim(tf, pictures):
    _check(pictures, _ours("tfslim"), lambda p, s: tfslim(tf, p, s), TOL)


def test_keras(keras, pictures):
    _check(pictures, _ours("keras"), lambda p, s: keras_mobilenet(keras, p, s), TOL)


def test_keras_mobilenet_v2_preprocesses_as_v1(keras, photos):
    """One keras preset serves both: mobilenet_v2.preprocess_input is mobilenet's."""
    path = photos[0]
    np.testing.assert_array_equal(keras_mobilenet(keras, path, 224, "mobilenet_v2"), keras_mobilenet(keras, path, 224))


@pytest.mark.parametrize("name, dtype", [("coral", "uint8"), ("coral", "float32"), ("tfslim", "float32"),
                                         ("keras", "float32")])
def test_nchw_is_the_transposed_reference(tf, keras, odd_photos, name, dtype):
    path, s = odd_photos[2], 160  # a very tall JPEG: the transpose must not mix up height and width
    references = {("coral", "uint8"): lambda: coral_uint8(tf, path, s).numpy(),
                  ("coral", "float32"): lambda: coral_float(tf, path, s),
                  ("tfslim", "float32"): lambda: tfslim(tf, path, s),
                  ("keras", "float32"): lambda: keras_mobilenet(keras, path, s)}
    want = references[name, dtype]().transpose(2, 0, 1)[None]
    got = preprocess.preset(name, s, layout="NCHW", dtype=dtype).tensor(path)
    assert got.shape == want.shape == (1, 3, s, s) and got.dtype == want.dtype
    assert np.abs(got.astype(np.float64) - want).max() <= (TOL if dtype == "float32" else 0)
