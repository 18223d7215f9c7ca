"""Preprocessing presets: each reproduces the pipeline a model's source feeds it, to the bit.

Every preset names the reference it reproduces (``REFERENCES``) and is tested against that framework itself
(tests/reference/: TensorFlow and Keras, torchvision and timm, OpenCV,
TensorFlow.js in node): uint8 results identical, float results within 1e-5, decoding
included, for any picture size.

  torchvision  Image.open().convert('RGB'), Resize(round(size / 0.875)) (PIL bilinear, antialiased; the long
               side truncated), CenterCrop(size) (offsets rounded), ToTensor, Normalize(ImageNet).
  timm         the same steps with timm's rules: Resize(floor(size / crop_pct)), bicubic by default.
  tfslim       TF-slim's preprocess_for_eval: tf.io.decode_jpeg (fast integer DCT), convert_image_dtype,
               tf.image.central_crop(0.875), tf.compat.v1.image.resize_bilinear (no half-pixel centres),
               (x - 0.5) * 2.
  keras        keras.utils.load_img(path, target_size) (PIL nearest, the whole picture) and
               keras.applications.mobilenet.preprocess_input (x / 127.5 - 1).
  tfjs         @tensorflow-models/mobilenet: the whole picture, x * 2/255 - 1, tf.image.resizeBilinear with
               alignCorners.
  coral        TFLite and Coral: the whole picture through tf.image.resize(method='bilinear',
               antialias=False), cast to uint8 (truncating); raw pixels for integer inputs, x / 127.5 - 1
               (or the quantized twin's real values) for float inputs.
  paddle       PaddleClas: DecodeImage (cv2.imdecode, to RGB), ResizeImage(resize_short=256) (OpenCV
               INTER_LINEAR; both sides rounded from one scale), CropImage(224) (offsets floor-halved),
               NormalizeImage (x * 1/255 - mean) / std, ToCHWImage.
  custom       any of the knobs below, starting from a preset.

Alpha is dropped, as every reference loader drops it; ``alpha="white"`` composites over white instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from . import resizing
from .decoding import decode, read_image, read_pixels
from .errors import MbxError
from .presets_info import INTERPOLATIONS, PRESETS, REFERENCES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INTERP_TEXT = {"pil": "PIL bilinear", "pil_bicubic": "PIL bicubic", "pil_nearest": "PIL nearest",
                "tf": "TF bilinear, half-pixel", "tf_legacy": "TF v1 bilinear", "tf_align_corners":
                "TF bilinear, align corners", "tfjs": "TF.js bilinear, align corners", "cv2": "OpenCV INTER_LINEAR"}
_TF = {"tf": (True, False), "tf_legacy": (False, False), "tf_align_corners": (False, True)}  # half_pixel, align


@dataclass(frozen=True)
class Preprocess:
    name: str
    height: int
    width: int
    decoder: str = "pil"  # "pil", "tf" (TensorFlow's JPEG decode), "cv2" (see decoding.py)
    resize: str = "shorter"  # "shorter": shorter side then centre crop; "whole"; "central_fraction"
    crop_ratio: float = 224 / 256  # "shorter": crop / resized shorter side; "central_fraction": kept fraction
    sizing: str = "torchvision"  # "shorter" rounding: "torchvision", "timm" or "paddle" (see _shorter_size)
    interpolation: str = "pil"  # one of INTERPOLATIONS
    truncate_uint8: bool = False  # cast the resized picture to uint8 (TF's cast truncates) before the values
    scale: float = 1 / 255
    mean: tuple[float, float, float] = IMAGENET_MEAN  # subtracted after scaling
    std: tuple[float, float, float] = IMAGENET_STD
    layout: str = "NCHW"
    dtype: str = "float32"  # "uint8"/"int8": raw pixels go in (int8: shifted by -128)
    channel_order: str = "RGB"
    alpha: str = "drop"  # "drop" (every reference loader) or "white" (composite over white)

    @property
    def reference(self) -> str:
        return REFERENCES.get(self.name, REFERENCES["custom"])

    def describe(self) -> str:
        if self.resize == "shorter":
            geo = f"shorter side to {self.resize_size()}, centre crop {self.height}x{self.width}"
        elif self.resize == "central_fraction":
            geo = f"central crop {self.crop_ratio:.1%}, resize to {self.height}x{self.width}"
        else:
            geo = f"whole image to {self.height}x{self.width}"
        interp = _INTERP_TEXT.get(self.interpolation, self.interpolation)
        if self.interpolation.startswith("tf") and self.resize != "whole":
            interp += ", no antialias"
        elif self.interpolation.startswith("tf"):
            interp += " (no antialias)"
        if self.dtype in ("uint8", "int8"):
            values = "raw uint8 pixels" + (" - 128" if self.dtype == "int8" else "")
        elif self.mean == (0.0, 0.0, 0.0) and self.std == (1.0, 1.0, 1.0):
            values = f"x * {self.scale:g}"
        elif self.scale == 1 / 127.5 and self.mean == (1.0, 1.0, 1.0):
            values = "x / 127.5 - 1"
        elif self.std == (1.0, 1.0, 1.0) and len(set(self.mean)) == 1 and \
                abs(self.mean[0] / self.scale - round(self.mean[0] / self.scale)) < 1e-3:
            values = f"(x - {round(self.mean[0] / self.scale)}) * {self.scale:.6g}"  # a quantized input's real value
        else:
            values = f"x * {self.scale:.5g}, mean {tuple(round(m, 3) for m in self.mean)}, " \
                     f"std {tuple(round(s, 3) for s in self.std)}"
        alpha = ", alpha over white" if self.alpha == "white" else ""
        return f"{self.name}: {geo} ({interp}), {values}, {self.channel_order} {self.layout} {self.dtype}{alpha}"

    def to_dict(self) -> dict:
        return asdict(self)

    # ---------------------------------------------------------------------------------------------
    def load(self, path: str | Path) -> np.ndarray:
        """The picture's pixels as this preset's pipeline decodes them (HxWx3 uint8 RGB)."""
        return read_pixels(path, self.decoder, self.alpha)

    def picture(self, path: str | Path) -> np.ndarray | Image.Image:
        """``load``, for making tensors: the PIL decoder's picture stays a PIL image, which PIL resizing takes
        without a copy (a numpy round trip of a 1080p photo costs more than the resize)."""
        return read_image(path, self.decoder, self.alpha)

    def tensor(self, path: str | Path) -> np.ndarray:
        """A file's exact input tensor (batch of one)."""
        return self(self.picture(path))

    def __call__(self, image: np.ndarray | Image.Image, full_size: tuple[int, int] | None = None) -> np.ndarray:
        """Pixels (HxWx3 uint8 RGB, or an RGB PIL image) to a batch-of-one input tensor.

        ``full_size``: the picture's full-resolution (w, h) when ``image`` is a reduced-scale JPEG decode of it
        (the fast approximate path, see ``decoding.decode``): the crop is then placed in full-resolution
        coordinates and only its box is resized. Exact pipelines never take it."""
        if full_size is not None and tuple(full_size) != image_size(image):
            return self._values(self._approximate(image, full_size))
        return self._values(self.geometry(image))

    # geometry ------------------------------------------------------------------------------------
    def resize_size(self) -> int:
        """The shorter side a "shorter" preset resizes to before its centre crop."""
        side = min(self.height, self.width)
        if self.sizing == "timm":
            return math.floor(side / self.crop_ratio)
        return round(side / self.crop_ratio)

    def _shorter_size(self, w: int, h: int) -> tuple[int, int]:
        """(w, h) after resizing the shorter side to ``resize_size()``, by the sizing rule."""
        s = self.resize_size()
        if self.sizing == "paddle":  # ResizeImage: one scale, both sides rounded
            percent = float(s) / min(w, h)
            return int(round(w * percent)), int(round(h * percent))
        if self.sizing == "timm" and self.height != self.width:
            # timm's eval transform calls ResizeKeepRatio for a non-square target (transforms_factory.py):
            # target sides floor(side / crop_pct), the smaller ratio for both sides, each rounded
            ratio = min(h / math.floor(self.height / self.crop_ratio), w / math.floor(self.width / self.crop_ratio))
            return round(w / ratio), round(h / ratio)
        # torchvision's Resize(S) (timm calls it for a square target): the long side truncated
        return (s, int(s * h / w)) if w <= h else (int(s * w / h), s)

    def _crop_offsets(self, nw: int, nh: int) -> tuple[int, int]:
        """(left, top) of the centre crop in a picture resized to nw x nh."""
        if self.sizing == "paddle":  # CropImage: (img_w - w) // 2
            return (nw - self.width) // 2, (nh - self.height) // 2
        return _center_crop_start(nw, self.width), _center_crop_start(nh, self.height)

    def _central_box(self, w: int, h: int) -> tuple[int, int, int, int]:
        """tf.image.central_crop's box: start = int((n - n * fraction) / 2), size = n - 2 * start."""
        top = int((float(h) - float(h) * self.crop_ratio) / 2)
        left = int((float(w) - float(w) * self.crop_ratio) / 2)
        return left, top, w - left, h - top

    def geometry(self, pixels: np.ndarray | Image.Image) -> np.ndarray:
        """Resize and crop exactly as the reference does: uint8 HxWx3 for PIL and OpenCV resizing, float32
        for TensorFlow's (whose results are floats until a cast). ``pixels``: HxWx3 uint8, or a PIL image
        (PIL resizing takes it without a copy)."""
        if isinstance(pixels, Image.Image) and self.interpolation not in resizing.PIL_FILTERS:
            pixels = np.asarray(pixels)
        w, h = image_size(pixels)
        if self.resize == "central_fraction":
            x0, y0, x1, y1 = self._central_box(w, h)
            if isinstance(pixels, Image.Image):
                return self._resize(pixels.crop((x0, y0, x1, y1)), self.height, self.width)
            return self._resize(pixels[y0:y1, x0:x1], self.height, self.width)
        if self.resize == "whole":
            return self._resize(pixels, self.height, self.width)
        nw, nh = self._shorter_size(w, h)
        left, top = self._crop_offsets(nw, nh)
        if left < 0 or top < 0 or left + self.width > nw or top + self.height > nh:
            return _pad_crop(self._resize(pixels, nh, nw), left, top, self.height, self.width)
        if self.interpolation in _TF:  # compute only the crop's window of the resized picture
            half, align = _TF[self.interpolation]
            return resizing.tf_bilinear(pixels, nh, nw, half_pixel=half, align_corners=align,
                                        rows=(top, top + self.height), cols=(left, left + self.width))
        return self._resize(pixels, nh, nw)[top:top + self.height, left:left + self.width]

    def _resize(self, pixels: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
        if self.interpolation in _TF:
            half, align = _TF[self.interpolation]
            return resizing.tf_bilinear(pixels, out_h, out_w, half_pixel=half, align_corners=align)
        if self.interpolation == "tfjs":  # TF.js's kernel computes in doubles, not TensorFlow's float32
            return resizing.tfjs_bilinear(pixels, out_h, out_w, align_corners=True)
        if self.interpolation == "cv2":
            return resizing.cv2_linear(pixels, out_h, out_w)
        if self.interpolation in resizing.PIL_FILTERS:
            return resizing.pil(pixels, out_h, out_w, self.interpolation)
        raise MbxError(f"unknown interpolation '{self.interpolation}'; choose one of {', '.join(INTERPOLATIONS)}.")

    def _approximate(self, image: Image.Image, full_size: tuple[int, int]) -> np.ndarray:
        """A reduced-scale decode: resize only the crop's box, placed in full-resolution coordinates."""
        if not isinstance(image, Image.Image):
            image = Image.fromarray(np.asarray(image))
        w, h = full_size
        fx, fy = image.width / w, image.height / h
        if self.resize == "central_fraction":
            x0, y0, x1, y1 = self._central_box(w, h)
        elif self.resize == "whole":
            x0, y0, x1, y1 = 0, 0, w, h
        else:
            nw, nh = self._shorter_size(w, h)
            left, top = self._crop_offsets(nw, nh)
            sx, sy = w / nw, h / nh
            x0, y0, x1, y1 = left * sx, top * sy, (left + self.width) * sx, (top + self.height) * sy
        box = (max(0.0, x0 * fx), max(0.0, y0 * fy), min(image.width, x1 * fx), min(image.height, y1 * fy))
        method = resizing.PIL_FILTERS.get(self.interpolation, Image.BILINEAR)
        return np.asarray(image.resize((self.width, self.height), method, box=box))

    # values --------------------------------------------------------------------------------------
    def _values(self, arr: np.ndarray) -> np.ndarray:
        """Resized pixels to the input tensor in the model's layout and dtype."""
        if arr.dtype != np.uint8:  # TensorFlow's float resize
            if self.truncate_uint8 or self.dtype in ("uint8", "int8"):
                # tf.cast(float -> uint8) truncates; an integer input takes the cast pixels
                arr = np.clip(arr, 0, 255).astype(np.uint8)
            else:
                return self._float_values(arr)
        if self.channel_order == "BGR":
            arr = arr[..., ::-1]
        if self.dtype == "uint8":
            out = arr
        elif self.dtype == "int8":
            out = (arr.astype(np.int16) - 128).astype(np.int8)
        else:
            return self._table_values(arr)
        if self.layout == "NCHW":
            out = out.transpose(2, 0, 1)
        return np.ascontiguousarray(out[None])

    def coefficients(self) -> tuple[np.float32, np.ndarray, np.ndarray]:
        """(scale, mean, std) in float32, as the values step computes (x * scale - mean) / std."""
        return (np.float32(self.scale), np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32))

    def _float_values(self, arr: np.ndarray) -> np.ndarray:
        if self.channel_order == "BGR":
            arr = arr[..., ::-1]
        scale, mean, std = self.coefficients()
        out = (arr * scale - mean) / std
        if self.layout == "NCHW":
            out = out.transpose(2, 0, 1)
        return np.ascontiguousarray(out[None], dtype=np.float32)

    def _table_values(self, pixels: np.ndarray) -> np.ndarray:
        """8-bit pixels through a 256-entry table per channel holding (x * scale - mean) / std in float32:
        one gather per channel, written straight into the layout."""
        scale, mean, std = self.coefficients()
        table = (np.arange(256, dtype=np.float32)[None, :] * scale - mean[:, None]) / std[:, None]  # 3 x 256
        if self.layout == "NCHW":
            out = np.empty((1, 3) + pixels.shape[:2], np.float32)
            for c in range(3):
                np.take(table[c], pixels[..., c], out=out[0, c])
            return out
        out = np.empty(pixels.shape, np.float32)
        for c in range(3):
            np.take(table[c], pixels[..., c], out=out[..., c])
        return out[None]


def image_size(image) -> tuple[int, int]:
    """(width, height) of a PIL image or an HxWxC array."""
    return image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])


def _center_crop_start(n: int, crop: int) -> int:
    """torchvision's CenterCrop start along one side of n: round((n - crop) / 2), but a crop larger than the
    side first pads (crop - n) // 2 zeros before it (F.center_crop), so the picture starts that far in."""
    return -((crop - n) // 2) if crop > n else int(round((n - crop) / 2.0))


def _pad_crop(resized: np.ndarray, left: int, top: int, height: int, width: int) -> np.ndarray:
    """A centre crop larger than the resized picture: zeros where there is no picture (CenterCrop pads)."""
    out = np.zeros((height, width, resized.shape[2]), resized.dtype)
    ys, xs = max(0, -top), max(0, -left)
    part = resized[max(0, top):top + height, max(0, left):left + width]
    out[ys:ys + part.shape[0], xs:xs + part.shape[1]] = part
    return out


# --------------------------------------------------------------------------------------------------
# presets

_PRESET_FIELDS = {
    "torchvision": {},
    "timm": dict(sizing="timm", interpolation="pil_bicubic"),
    "tfslim": dict(decoder="tf", resize="central_fraction", crop_ratio=0.875, interpolation="tf_legacy",
                   scale=2 / 255, mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0)),
    "keras": dict(resize="whole", crop_ratio=1.0, interpolation="pil_nearest", scale=1 / 127.5,
                  mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0)),
    "tfjs": dict(resize="whole", crop_ratio=1.0, interpolation="tfjs", scale=2 / 255,
                 mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0)),
    "coral": dict(resize="whole", crop_ratio=1.0, interpolation="tf", truncate_uint8=True, scale=1 / 127.5,
                  mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0)),
    "paddle": dict(decoder="cv2", sizing="paddle", interpolation="cv2"),
    "custom": {},
}


def preset(name: str, height: int = 224, width: int | None = None, layout: str = "NCHW",
           dtype: str = "float32", **custom) -> Preprocess:
    if name not in _PRESET_FIELDS:
        raise MbxError(f"unknown preprocessing preset '{name}'; choose one of {', '.join(PRESETS)}.")
    width = width or height
    dtype = dtype if dtype in ("uint8", "int8") else "float32"
    p = Preprocess(name, height, width, layout=layout, dtype=dtype, **_PRESET_FIELDS[name])
    return customise(p, **custom)


PRESET_KEY = "mbexplorer.preprocessing"  # ONNX metadata naming the preset a model takes (set by quantize)


def source_preset(model) -> str:
    """The preset a model's source implies: the one its ONNX metadata names (a model quantized here keeps its
    float model's), else TFLite coral, Keras keras, TF.js tfjs, a PyTorch state dict torchvision or timm by its
    naming, an ONNX file exported by PaddlePaddle paddle, anything else torchvision."""
    proto = getattr(model, "model", None)
    named = next((p.value for p in getattr(proto, "metadata_props", ()) if p.key == PRESET_KEY), None)
    if named in PRESETS and named != "custom":
        return named
    fmt = model.source_format
    if fmt == "tflite":
        return "coral"
    if fmt in ("keras", "tfjs", "timm", "paddle"):
        return fmt
    if "paddle" in (model.producer or "").lower():
        return "paddle"
    return "torchvision"


def for_model(model, name: str | None = None, **custom) -> Preprocess:
    """The preset for a loaded model: ``name`` if given, else the one its source implies; ``custom`` options
    (any ``Preprocess`` field) change it into a custom one."""
    spec = model.inputs[0]
    shape = spec.shape
    layout = spec.layout or "NCHW"
    if layout == "NHWC":
        h, w = shape[1], shape[2]
    else:
        h, w = shape[-2], shape[-1]
    h = h if isinstance(h, int) and h > 0 else 224
    w = w if isinstance(w, int) and w > 0 else h
    chosen = name or source_preset(model)
    p = preset(chosen, h, w, layout=layout, dtype=spec.dtype)
    info = model.preprocessing or {}
    if chosen == "coral" and p.dtype == "float32" and "input_scale" in info:
        # the float twin of a quantized model: the real values its quantized twin sees from raw pixels
        s, zp = float(info["input_scale"]), float(info["input_zero_point"])
        p = replace(p, scale=s, mean=(zp * s,) * 3, std=(1.0, 1.0, 1.0))
    return customise(p, **custom)


def customise(p: Preprocess, **options) -> Preprocess:
    """``p`` with some of its fields changed: a custom preset (no options: ``p`` itself)."""
    if not options:
        return p
    unknown = set(options) - (set(Preprocess.__dataclass_fields__) - {"name"})
    if unknown:
        raise MbxError(f"unknown preprocessing option(s): {', '.join(sorted(unknown))}.")
    _check_values(options)
    return replace(p, name="custom", **options)


def _check_values(options: dict) -> None:
    """The numbers a custom preset is given, checked once here for the command line and the window alike: a
    NaN, an infinity or a zero std would turn every tensor value (and so every score) into NaN or infinity."""
    if "scale" in options and not (_finite(options["scale"]) and options["scale"] > 0):
        raise MbxError(f"the scale must be a finite number above 0, not {options['scale']}.")
    for key, positive in (("mean", False), ("std", True)):
        if key not in options:
            continue
        values = tuple(options[key])
        if len(values) != 3 or not all(_finite(v) and (v > 0 or not positive) for v in values):
            need = "three finite numbers above 0" if positive else "three finite numbers"
            raise MbxError(f"the {key} must be {need} (one per channel), not {', '.join(map(str, values))}.")
    if "crop_ratio" in options and not (_finite(options["crop_ratio"]) and 0 < options["crop_ratio"] <= 1):
        raise MbxError(f"the crop must be a fraction above 0 and at most 1 (0.875 keeps 87.5%), "
                       f"not {options['crop_ratio']}.")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_OPTION_NAMES = {"scale": "scale", "mean": "mean", "std": "std", "crop_ratio": "crop"}


def option_warnings(p: Preprocess, options: dict) -> list[str]:
    """Options that were given but change nothing in ``p``, the preprocessing they went into: each a sentence
    for the user (the command line prints them as warnings). Quiet options would look applied when they are not."""
    out = []
    values = [_OPTION_NAMES[k] for k in ("scale", "mean", "std") if k in options]
    if values and p.dtype in ("uint8", "int8"):
        out.append(f"{_and(values)} {'is' if len(values) == 1 else 'are'} not used: the input takes raw {p.dtype} "
                   "pixels, with no scaling or normalisation.")
    if "crop_ratio" in options and p.resize == "whole":
        out.append("crop is not used: the whole picture is resized, with no crop (the shorter-side and central "
                   "resizes crop).")
    return out


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def draft_size(pre: Preprocess) -> tuple[int, int] | None:
    """The smallest decode size the preset's geometry needs (before its own resize), for the fast approximate
    JPEG decode; None when the preset must see the whole picture (TensorFlow and OpenCV resizing sample single
    pixels of it, and decoders other than PIL's have no reduced decode)."""
    if pre.decoder != "pil" or pre.interpolation not in resizing.PIL_FILTERS:
        return None
    if pre.resize == "shorter":
        s = pre.resize_size()
        return s, s
    if pre.resize == "central_fraction":
        return math.ceil(pre.width / pre.crop_ratio), math.ceil(pre.height / pre.crop_ratio)
    return pre.width, pre.height


def load_approximate(path: str | Path, pre: Preprocess) -> tuple[np.ndarray | Image.Image, tuple[int, int] | None]:
    """The fast approximate decode: a JPEG at a reduced DCT scale for presets that allow it (``draft_size``),
    with its full size; other presets get their exact decode (and None)."""
    draft = draft_size(pre)
    if draft is None:
        return pre.picture(path), None
    return decode(path, draft, upright=False, alpha=pre.alpha)
