"""Image loading and preprocessing presets for the sources MobileNets come from.

Presets (all produce the model's own input size, layout and dtype):
  torchvision  shorter side to 256/224 of the input size (PIL bilinear, antialiased), centre crop, [0, 1],
               ImageNet mean/std. Also timm and the seeds' model zoos.
  inception    central crop 87.5 %, resize to the input size, x / 127.5 - 1 (TF-slim, Keras, TF.js).
  coral        the whole image resized with TF's bilinear (half-pixel centres, no antialiasing), truncated to
               uint8; integer inputs get the raw pixels (their quantization parameters carry the
               normalisation), float inputs x / 127.5 - 1. Coral's and TFLite's own tests do this.
  paddle       PaddleClas: shorter side to 256 (OpenCV-style bilinear, no antialiasing), centre crop,
               1/255, ImageNet mean/std.
  custom       any of the above knobs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import MbxError
from .formats import IMAGE_SUFFIXES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRESETS = ("torchvision", "inception", "coral", "paddle", "custom")


class ImageError(MbxError):
    """A file that is not an image the app can read."""


@dataclass(frozen=True)
class Preprocess:
    name: str
    height: int
    width: int
    resize: str = "shorter"  # "shorter": shorter side then centre crop; "whole"; "central_fraction"
    crop_ratio: float = 224 / 256  # "shorter": crop / resized shorter side; "central_fraction": kept fraction
    interpolation: str = "pil"  # "pil": PIL bilinear (antialiased); "tf": half-pixel bilinear, no antialias
    truncate_uint8: bool = False  # round the resized image down to uint8 (TF's cast) before scaling
    scale: float = 1 / 255
    mean: tuple[float, float, float] = IMAGENET_MEAN  # subtracted after scaling
    std: tuple[float, float, float] = IMAGENET_STD
    layout: str = "NCHW"
    dtype: str = "float32"  # "uint8"/"int8": raw pixels go in (int8: shifted by -128)
    channel_order: str = "RGB"

    def describe(self) -> str:
        if self.resize == "shorter":
            geo = f"shorter side to {round(self.height / self.crop_ratio)}, centre crop {self.height}x{self.width}"
        elif self.resize == "central_fraction":
            geo = f"central crop {self.crop_ratio:.1%}, resize to {self.height}x{self.width}"
        else:
            geo = f"whole image to {self.height}x{self.width}"
        interp = "PIL bilinear" if self.interpolation == "pil" else "TF bilinear (no antialias)"
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
        return f"{self.name}: {geo} ({interp}), {values}, {self.channel_order} {self.layout} {self.dtype}"

    def to_dict(self) -> dict:
        return asdict(self)

    # ---------------------------------------------------------------------------------------------
    def geometry(self, image: Image.Image, full_size: tuple[int, int] | None = None) -> Image.Image | np.ndarray:
        """Resize and crop: a PIL image (PIL interpolation) or a float HxWx3 array (TF interpolation).

        ``full_size``: the picture's full-resolution size when ``image`` is a reduced-scale decode of it (see
        ``decode``). The crop is placed in full-resolution coordinates either way, so a reduced decode samples
        the same part of the picture as the full one."""
        if self.interpolation == "tf":
            if full_size is not None and tuple(full_size) != image.size:
                raise ValueError("TF-style bilinear needs the full-resolution image (no reduced decode)")
            return self._tf_geometry(np.asarray(image))
        w, h = full_size or image.size
        fx, fy = image.width / w, image.height / h
        x0, y0, x1, y1 = self._pil_box(w, h)
        box = (x0 * fx, y0 * fy, x1 * fx, y1 * fy)
        if box[0] < 0 or box[1] < 0 or box[2] > image.width + 1e-6 or box[3] > image.height + 1e-6:
            # (shorter side only) the crop is larger than the resized picture: resize it whole, let crop() pad
            # with black, as torchvision's CenterCrop pads with zeros
            nw, nh = self._shorter_size(image.width, image.height)
            left, top = self._crop_offsets(nw, nh)
            return image.resize((nw, nh), Image.BILINEAR).crop((left, top, left + self.width, top + self.height))
        box = (box[0], box[1], min(box[2], image.width), min(box[3], image.height))
        if self.resize == "central_fraction":
            # TF-slim crops first, then resizes: the filter sees nothing outside the crop
            x0, y0 = math.floor(box[0] + 1e-6), math.floor(box[1] + 1e-6)
            x1, y1 = math.ceil(box[2] - 1e-6), math.ceil(box[3] - 1e-6)
            image = image.crop((x0, y0, x1, y1))
            box = (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)
        # Resizing only the crop's box gives the pixels of resizing the whole picture and cropping (PIL
        # places samples and sizes its filter from the box; floating-point rounding of the sample positions
        # moves < 0.1 % of pixels by one level), for a fraction of the work.
        return image.resize((self.width, self.height), Image.BILINEAR, box=box)

    def _shorter_size(self, w: int, h: int) -> tuple[int, int]:
        """torchvision's Resize(S) with S = crop / ratio: the shorter side to S, the other truncated."""
        short = round(min(self.height, self.width) / self.crop_ratio)
        return (short, int(short * h / w)) if w <= h else (int(short * w / h), short)

    def _crop_offsets(self, nw: int, nh: int) -> tuple[int, int]:
        """torchvision's CenterCrop offsets (left, top) in a picture resized to nw x nh."""
        return int(round((nw - self.width) / 2.0)), int(round((nh - self.height) / 2.0))

    def _central_box(self, w: int, h: int) -> tuple[int, int, int, int]:
        cw, ch = max(1, round(w * self.crop_ratio)), max(1, round(h * self.crop_ratio))
        left, top = (w - cw) // 2, (h - ch) // 2
        return left, top, left + cw, top + ch

    def _pil_box(self, w: int, h: int) -> tuple[float, float, float, float]:
        """The part of a w x h picture that becomes the input."""
        if self.resize == "central_fraction":
            return self._central_box(w, h)
        if self.resize == "whole":
            return 0, 0, w, h
        nw, nh = self._shorter_size(w, h)
        left, top = self._crop_offsets(nw, nh)
        sx, sy = w / nw, h / nh
        return left * sx, top * sy, (left + self.width) * sx, (top + self.height) * sy

    def _tf_geometry(self, arr: np.ndarray) -> np.ndarray:
        h, w = arr.shape[:2]
        if self.resize == "central_fraction":
            x0, y0, x1, y1 = self._central_box(w, h)
            return tf_bilinear(arr[y0:y1, x0:x1], self.height, self.width)
        if self.resize == "whole":
            return tf_bilinear(arr, self.height, self.width)
        nw, nh = self._shorter_size(w, h)
        left, top = self._crop_offsets(nw, nh)
        if left < 0 or top < 0 or left + self.width > nw or top + self.height > nh:
            full = tf_bilinear(arr, nh, nw)  # crop larger than the picture: pad with black
            out = np.zeros((self.height, self.width, arr.shape[2]), np.float32)
            ys, xs = max(0, -top), max(0, -left)
            part = full[max(0, top):top + self.height, max(0, left):left + self.width]
            out[ys:ys + part.shape[0], xs:xs + part.shape[1]] = part
            return out
        return tf_bilinear(arr, nh, nw, rows=(top, top + self.height), cols=(left, left + self.width))

    def __call__(self, image: Image.Image, full_size: tuple[int, int] | None = None) -> np.ndarray:
        """One image (RGB PIL) to a batch-of-one input tensor (``full_size``: see ``geometry``)."""
        geo = self.geometry(image, full_size)
        if isinstance(geo, Image.Image):
            return self._values_u8(np.asarray(geo))
        arr = geo
        if self.truncate_uint8:
            arr = np.floor(np.clip(arr, 0, 255))
        if self.channel_order == "BGR":
            arr = arr[..., ::-1]
        if self.dtype == "uint8":
            out = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        elif self.dtype == "int8":
            out = (np.clip(np.round(arr), 0, 255) - 128).astype(np.int8)
        else:
            k, b = self._affine()
            out = arr * k - b
        if self.layout == "NCHW":
            out = out.transpose(2, 0, 1)
        return np.ascontiguousarray(out[None])

    def _affine(self) -> tuple[np.ndarray, np.ndarray]:
        # (x * scale - mean) / std as one multiply and one subtract
        std = np.asarray(self.std, np.float32)
        return np.float32(self.scale) / std, np.asarray(self.mean, np.float32) / std

    def _values_u8(self, pixels: np.ndarray) -> np.ndarray:
        """8-bit HxWx3 pixels to the input tensor: a 256-entry table per channel holds each value's float,
        so the tensor is one gather per channel, written straight into its layout."""
        if self.channel_order == "BGR":
            pixels = pixels[..., ::-1]
        if self.dtype == "uint8":
            out = pixels
        elif self.dtype == "int8":
            out = (pixels.astype(np.int16) - 128).astype(np.int8)
        else:
            k, b = self._affine()
            table = np.arange(256, dtype=np.float32)[None, :] * k[:, None] - b[:, None]  # 3 x 256
            if self.layout == "NCHW":
                out = np.empty((1, 3) + pixels.shape[:2], np.float32)
                for c in range(3):
                    np.take(table[c], pixels[..., c], out=out[0, c])
                return out
            out = np.empty(pixels.shape, np.float32)
            for c in range(3):
                np.take(table[c], pixels[..., c], out=out[..., c])
            return out[None]
        if self.layout == "NCHW":
            out = out.transpose(2, 0, 1)
        return np.ascontiguousarray(out[None])


def tf_bilinear(arr: np.ndarray, out_h: int, out_w: int, rows: tuple[int, int] | None = None,
                cols: tuple[int, int] | None = None) -> np.ndarray:
    """TensorFlow's bilinear resize with half-pixel centres and no antialiasing (tf.image.resize default,
    also OpenCV's INTER_LINEAR), on an HxWxC array (any dtype; float32 out).

    ``rows``/``cols``: compute only that window [start, stop) of the out_h x out_w result (a centre crop).
    Only the source rows and columns the samples touch are gathered before the float conversion, so an
    8-bit photo is never converted whole."""
    in_h, in_w = arr.shape[:2]

    def axis(out_n, in_n, window):
        lo_o, hi_o = window or (0, out_n)
        x = (np.arange(lo_o, hi_o, dtype=np.float64) + 0.5) * (in_n / out_n) - 0.5
        lo = np.floor(x)
        frac = (x - lo).astype(np.float32)
        lo_i = np.clip(lo, 0, in_n - 1).astype(np.intp)
        hi_i = np.clip(lo + 1, 0, in_n - 1).astype(np.intp)
        return lo_i, hi_i, frac

    y0, y1, fy = axis(out_h, in_h, rows)
    x0, x1, fx = axis(out_w, in_w, cols)
    r0, r1 = arr[y0], arr[y1]
    f = np.float32
    top = r0[:, x0].astype(f) * (1 - fx)[None, :, None] + r0[:, x1].astype(f) * fx[None, :, None]
    bot = r1[:, x0].astype(f) * (1 - fx)[None, :, None] + r1[:, x1].astype(f) * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bot * fy[:, None, None]


# --------------------------------------------------------------------------------------------------
# presets


def preset(name: str, height: int = 224, width: int | None = None, layout: str = "NCHW",
           dtype: str = "float32", **custom) -> Preprocess:
    width = width or height
    base = dict(height=height, width=width, layout=layout, dtype=dtype if dtype in ("uint8", "int8") else "float32")
    if name == "torchvision":
        p = Preprocess("torchvision", **base)
    elif name == "inception":
        p = Preprocess("inception", resize="central_fraction", crop_ratio=0.875, scale=1 / 127.5,
                       mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0), **base)
    elif name == "coral":
        p = Preprocess("coral", resize="whole", crop_ratio=1.0, interpolation="tf", truncate_uint8=True,
                       scale=1 / 127.5, mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0), **base)
    elif name == "paddle":
        p = Preprocess("paddle", interpolation="tf", **base)
    elif name == "custom":
        p = Preprocess("custom", **base)
    else:
        raise MbxError(f"unknown preprocessing preset '{name}'; choose one of {', '.join(PRESETS)}.")
    return customise(p, **custom)


_SOURCE_PRESET = {"tflite": "coral", "keras": "inception", "tfjs": "inception", "paddle": "paddle"}


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
    chosen = name or _SOURCE_PRESET.get(model.source_format, "torchvision")
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
    return replace(p, name="custom", **options)


# --------------------------------------------------------------------------------------------------
# images


def decode(path: str | Path, draft_for: Preprocess | tuple[int, int] | None = None
           ) -> tuple[Image.Image, tuple[int, int]]:
    """Open an image as upright 8-bit RGB; return it and its full-resolution (upright) size.

    ``draft_for``: a preset (or a (w, h) size) the image is decoded for. A JPEG then decodes at the smallest
    DCT scale (1/2, 1/4, 1/8) that still leaves twice the size the preset resizes from, which cuts decoding
    and resizing several-fold; give the returned full size to the preset so its crop stays where it is.
    Presets with TF-style bilinear (no antialiasing) sample single pixels of the full image and always get
    it whole. Other formats are always decoded whole."""
    path = Path(path)
    if isinstance(draft_for, Preprocess):
        draft_for = draft_size(draft_for) if draft_for.interpolation == "pil" else None
    try:
        img = Image.open(path)
        full = img.size
        if draft_for is not None and img.format == "JPEG":
            img.draft("RGB", (2 * draft_for[0], 2 * draft_for[1]))
        orientation = img.getexif().get(0x0112, 1)
        if orientation != 1:  # exif_transpose copies the image even when there is nothing to turn
            img = ImageOps.exif_transpose(img)
            if orientation in (5, 6, 7, 8):
                full = full[::-1]
        img = to_rgb(img)
        img.load()
        return img, full
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path.name} is too large to decode safely ({_reason(exc)}). Scale it down first.") \
            from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if path.is_dir():
            raise ImageError(f"{path.name} is a folder, not an image.") from exc
        raise ImageError(f"{path.name} is not an image this app can read ({_reason(exc)}).") from exc


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.replace(str(Path.cwd()), ".")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB the way a viewer shows it: transparency over white, 16-bit and float
    greys scaled to 8 bits (PIL's own convert clips them), CMYK and palettes through PIL."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        if mode == "F" and arr.max() <= 1.0:
            top = 1.0
        grey = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def image_files(paths) -> list[Path]:
    """Expand folders (recursively, sorted) into the image files they hold; keep files as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


def draft_size(pre: Preprocess) -> tuple[int, int]:
    """The smallest decode size the preset's geometry needs (before its own resize)."""
    if pre.resize == "shorter":
        s = round(min(pre.height, pre.width) / pre.crop_ratio)
        return s, s
    if pre.resize == "central_fraction":
        return math.ceil(pre.width / pre.crop_ratio), math.ceil(pre.height / pre.crop_ratio)
    return pre.width, pre.height
