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

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRESETS = ("torchvision", "inception", "coral", "paddle", "custom")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


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
        else:
            values = f"x * {self.scale:.5g}, mean {tuple(round(m, 3) for m in self.mean)}, " \
                     f"std {tuple(round(s, 3) for s in self.std)}"
        return f"{self.name}: {geo} ({interp}), {values}, {self.channel_order} {self.layout} {self.dtype}"

    def to_dict(self) -> dict:
        return asdict(self)

    # ---------------------------------------------------------------------------------------------
    def geometry(self, image: Image.Image) -> Image.Image | np.ndarray:
        """Resize and crop: a PIL image (PIL interpolation) or a float HxWx3 array (TF interpolation)."""
        w, h = image.size
        if self.resize == "central_fraction":
            cw, ch = max(1, round(w * self.crop_ratio)), max(1, round(h * self.crop_ratio))
            left, top = (w - cw) // 2, (h - ch) // 2
            image = image.crop((left, top, left + cw, top + ch))
            return self._resize(image, self.width, self.height)
        if self.resize == "whole":
            return self._resize(image, self.width, self.height)
        # shorter side to S (S = crop / ratio), then centre crop: torchvision's Resize + CenterCrop
        short = round(min(self.height, self.width) / self.crop_ratio)
        if w <= h:
            nw, nh = short, int(short * h / w)
        else:
            nw, nh = int(short * w / h), short
        resized = self._resize(image, nw, nh)
        top = int(round((nh - self.height) / 2.0))
        left = int(round((nw - self.width) / 2.0))
        if isinstance(resized, np.ndarray):
            return resized[top:top + self.height, left:left + self.width]
        return resized.crop((left, top, left + self.width, top + self.height))

    def _resize(self, image: Image.Image, w: int, h: int):
        if self.interpolation == "tf":
            return tf_bilinear(np.asarray(image, dtype=np.float32), h, w)
        return image.resize((w, h), Image.BILINEAR)

    def __call__(self, image: Image.Image) -> np.ndarray:
        """One image (RGB PIL) to a batch-of-one input tensor."""
        arr = self.geometry(image)
        arr = np.asarray(arr, dtype=np.float32)
        if self.truncate_uint8:
            arr = np.floor(np.clip(arr, 0, 255))
        if self.channel_order == "BGR":
            arr = arr[..., ::-1]
        if self.dtype == "uint8":
            out = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        elif self.dtype == "int8":
            out = (np.clip(np.round(arr), 0, 255) - 128).astype(np.int8)
        else:
            std = np.asarray(self.std, np.float32)
            # (x * scale - mean) / std as one multiply and one subtract
            out = arr * (np.float32(self.scale) / std) - np.asarray(self.mean, np.float32) / std
        if self.layout == "NCHW":
            out = out.transpose(2, 0, 1)
        return np.ascontiguousarray(out[None])


def tf_bilinear(arr: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TensorFlow's bilinear resize with half-pixel centres and no antialiasing (tf.image.resize default,
    also OpenCV's INTER_LINEAR), on an HxWxC float array."""
    in_h, in_w = arr.shape[:2]

    def axis(out_n, in_n):
        x = (np.arange(out_n, dtype=np.float64) + 0.5) * (in_n / out_n) - 0.5
        lo = np.floor(x)
        frac = (x - lo).astype(np.float32)
        lo_i = np.clip(lo, 0, in_n - 1).astype(np.intp)
        hi_i = np.clip(lo + 1, 0, in_n - 1).astype(np.intp)
        return lo_i, hi_i, frac

    y0, y1, fy = axis(out_h, in_h)
    x0, x1, fx = axis(out_w, in_w)
    top = arr[y0][:, x0] * (1 - fx)[None, :, None] + arr[y0][:, x1] * fx[None, :, None]
    bot = arr[y1][:, x0] * (1 - fx)[None, :, None] + arr[y1][:, x1] * fx[None, :, None]
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
    if custom:
        unknown = set(custom) - set(Preprocess.__dataclass_fields__)
        if unknown:
            raise MbxError(f"unknown preprocessing option(s): {', '.join(sorted(unknown))}.")
        p = replace(p, name="custom" if name != "custom" else p.name, **custom)
    return p


_SOURCE_PRESET = {"tflite": "coral", "keras": "inception", "tfjs": "inception", "paddle": "paddle"}


def for_model(model, name: str | None = None) -> Preprocess:
    """The preset for a loaded model: ``name`` if given, else the one its source implies."""
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
    return preset(chosen, h, w, layout=layout, dtype=spec.dtype)


# --------------------------------------------------------------------------------------------------
# images


def load_image(path: str | Path, draft_for: tuple[int, int] | None = None) -> Image.Image:
    """Open any image as 8-bit RGB, upright per its EXIF orientation.

    ``draft_for=(w, h)``: let the JPEG decoder decode at a reduced scale (1/2, 1/4, 1/8) that still leaves
    at least twice that size; decode time drops several-fold. It is not exact: on 1080p photos of the
    ../shared images it moved scores of the real models by up to 0.035 (never the top-1), and at 1x the
    size by up to 0.12, so it is an opt-in fast path and the exact path is the default. Other formats
    ignore it.
    """
    path = Path(path)
    try:
        img = Image.open(path)
        if draft_for is not None and img.format == "JPEG":
            img.draft("RGB", (2 * draft_for[0], 2 * draft_for[1]))
        img = ImageOps.exif_transpose(img)
        return to_rgb(img)
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
