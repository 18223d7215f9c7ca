"""Resizing kernels with each framework's own arithmetic, so a preset's pixels are the framework's pixels.

* ``tf_bilinear``: TensorFlow's ``ResizeBilinear`` kernel (``tf.image.resize(method='bilinear',
  antialias=False)`` with half-pixel centres; ``tf.compat.v1.image.resize_bilinear`` with the legacy
  scaler; ``align_corners``), in float32 exactly as its C++ computes: scale = float(in) / float(out), the
  sample position in float32, lower index floor, upper index ceil (clamped), and the blend ``a + (b - a) * f``
  along x, then along y.
* ``tfjs_bilinear``: TensorFlow.js's CPU ``resizeBilinear``: the same formulas in JavaScript doubles.
* ``pil``: Pillow's resampling filters on the whole picture (antialiased bilinear and bicubic, nearest), as
  torchvision's and Keras's PIL paths call them.
* ``cv2_linear``: OpenCV's ``cv2.resize(..., INTER_LINEAR)`` itself: its 8-bit fixed-point arithmetic (and
  the IPP or SIMD path a build dispatches to) cannot be reproduced to the bit in numpy, so PaddleClas's
  pipeline runs OpenCV.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import MbxError

_F = np.float32

PIL_FILTERS = {"pil": Image.BILINEAR, "pil_bicubic": Image.BICUBIC, "pil_nearest": Image.NEAREST}


def _axis(out_n: int, in_n: int, window: tuple[int, int] | None, half_pixel: bool, align_corners: bool):
    """Per output index: lower and upper source index and the float32 weight of the upper one."""
    lo_o, hi_o = window or (0, out_n)
    if align_corners and out_n > 1:
        scale = _F(in_n - 1) / _F(out_n - 1)
    else:
        scale = _F(in_n) / _F(out_n)
    i = np.arange(lo_o, hi_o, dtype=_F)
    x = (i + _F(0.5)) * scale - _F(0.5) if half_pixel else i * scale
    x = x.astype(_F)
    floor = np.floor(x)
    lo = np.clip(floor, 0, in_n - 1).astype(np.intp)
    hi = np.clip(np.ceil(x), 0, in_n - 1).astype(np.intp)
    return lo, hi, (x - floor).astype(_F)


def tf_bilinear(arr: np.ndarray, out_h: int, out_w: int, *, half_pixel: bool = True, align_corners: bool = False,
                rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None) -> np.ndarray:
    """TensorFlow's bilinear resize of an HxWxC array (any dtype) to float32.

    ``half_pixel``: ``tf.image.resize`` (TF2); False: ``tf.compat.v1.image.resize_bilinear``'s legacy scaler.
    ``rows``/``cols``: compute only that window [start, stop) of the out_h x out_w result (a centre crop). Only
    the source rows and columns the samples touch are gathered before the float conversion, so an 8-bit photo
    is never converted whole."""
    return _blend(arr, _axis(out_h, arr.shape[0], rows, half_pixel, align_corners),
                  _axis(out_w, arr.shape[1], cols, half_pixel, align_corners), _F)


def _blend(arr: np.ndarray, ys, xs, dtype) -> np.ndarray:
    """The bilinear blend both kernels share, ``a + (b - a) * f`` across then down, in ``dtype`` (the weights'
    type: float32 for TensorFlow, float64 for TF.js). Only the gathered samples are converted."""
    (y0, y1, fy), (x0, x1, fx) = ys, xs
    fx = fx[None, :, None]
    r0, r1 = arr[y0], arr[y1]
    tl, tr = r0[:, x0].astype(dtype), r0[:, x1].astype(dtype)
    bl, br = r1[:, x0].astype(dtype), r1[:, x1].astype(dtype)
    top = tl + (tr - tl) * fx
    bottom = bl + (br - bl) * fx
    return top + (bottom - top) * fy[:, None, None]


def _tfjs_axis(out_n: int, in_n: int, align_corners: bool):
    """tfjs-backend-cpu's ResizeBilinear source positions: JS numbers are doubles, so its ratio, positions and
    weights are float64 (TensorFlow's float32 ones land up to ~1e-4 away on large pictures)."""
    if align_corners and out_n > 1:
        ratio = (in_n - 1) / (out_n - 1)
    else:
        ratio = in_n / out_n
    x = ratio * np.arange(out_n, dtype=np.float64)
    floor = np.maximum(0.0, np.floor(x))
    hi = np.minimum(in_n - 1, np.ceil(x))
    return floor.astype(np.intp), hi.astype(np.intp), x - floor


def tfjs_bilinear(arr: np.ndarray, out_h: int, out_w: int, *, align_corners: bool = True) -> np.ndarray:
    """TensorFlow.js's ``tf.image.resizeBilinear(arr, [out_h, out_w], alignCorners)`` (CPU backend, no half-pixel
    centres) of an HxWxC array to float32: the kernel's float64 arithmetic, rounded once to float32 as its
    Float32Array result is."""
    return _blend(arr, _tfjs_axis(out_h, arr.shape[0], align_corners), _tfjs_axis(out_w, arr.shape[1], align_corners),
                  np.float64).astype(np.float32)


def pil(image: np.ndarray | Image.Image, out_h: int, out_w: int, method: str = "pil") -> np.ndarray:
    """Pillow's ``Image.resize`` of the whole picture (an RGB PIL image, or HxWx3 uint8) with the named filter
    (``PIL_FILTERS``)."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.ascontiguousarray(image))
    if image.size != (out_w, out_h):
        image = image.resize((out_w, out_h), PIL_FILTERS[method])
    return np.asarray(image)


def cv2_linear(arr: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``cv2.resize(arr, (out_w, out_h), interpolation=cv2.INTER_LINEAR)``."""
    cv2 = import_cv2()
    return cv2.resize(arr, (out_w, out_h), interpolation=cv2.INTER_LINEAR)


def import_cv2():
    try:
        import cv2
    except ImportError as exc:  # a broken or missing install: say what to do
        raise MbxError("the paddle preset runs OpenCV, which is not installed here: "
                       "pip install opencv-python-headless") from exc
    return cv2
