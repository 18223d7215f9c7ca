"""Reading image files: the decoders the reference pipelines use, and the upright picture the window shows.

A model's pipeline decodes its own way, and a preset must too (``read_pixels``):

* ``pil``: ``Image.open(path).convert('RGB')`` (torchvision, timm, Keras's ``load_img``, Coral's examples).
  No EXIF rotation (none of them applies it); alpha dropped, as ``convert('RGB')`` drops it.
* ``tf``: ``tf.io.decode_image(..., channels=3)``: JPEGs through libjpeg-turbo with TensorFlow's defaults
  (the fast integer DCT and fancy upsampling), which simplejpeg reproduces with ``fastdct=True,
  fastupsample=False``, and CMYK converted with TensorFlow's own integer formula; PNG, BMP and GIF are
  lossless, so PIL gives TensorFlow's pixels, except 16-bit grey PNGs, where TensorFlow keeps the high byte.
* ``cv2``: ``cv2.imdecode(data, cv2.IMREAD_COLOR)`` (PaddleClas's ``DecodeImage``), converted to RGB as it
  does (``img[:, :, ::-1]``). OpenCV turns the picture by its EXIF orientation, so this one does too.

``alpha="white"`` composites transparent pictures over white instead of dropping alpha: an explicit choice,
never a reference pipeline's. ``decode`` opens a picture for showing: upright by EXIF, transparency over
white, optionally at a reduced JPEG scale (``draft``); it is what thumbnails and the fast approximate
decode use.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import MbxError
from .formats import IMAGE_SUFFIXES
from .presets_info import DECODERS


class ImageError(MbxError):
    """A file that is not an image the app can read."""


def read_pixels(path: str | Path, decoder: str = "pil", alpha: str = "drop") -> np.ndarray:
    """The picture as the named decoder gives it: HxWx3 uint8 RGB (see the module docstring)."""
    image = read_image(path, decoder, alpha)
    return np.asarray(image) if isinstance(image, Image.Image) else image


def read_image(path: str | Path, decoder: str = "pil", alpha: str = "drop") -> np.ndarray | Image.Image:
    """``read_pixels``, but the ``pil`` decoder's picture stays a PIL image: PIL resizing takes it as it is,
    where a numpy copy of a 1080p photo and back would cost more than the whole resize."""
    path = Path(path)
    if decoder not in DECODERS:
        raise MbxError(f"unknown decoder '{decoder}'; choose one of {', '.join(DECODERS)}.")
    try:
        if decoder == "cv2":
            return _cv2(path, alpha)
        if decoder == "tf" and alpha == "drop":
            return _tf(path)
        data = path.read_bytes()  # whole, as Keras and PaddleClas read: faster than PIL's buffered reads
        img = Image.open(io.BytesIO(data))
        plain = img.mode == "RGB" and not (alpha == "white" and "transparency" in img.info)
        rgb = img if plain else _pil_rgb(img, alpha)  # convert('RGB') of an RGB picture is a plain copy
        rgb.load()
        return rgb if decoder == "pil" else np.asarray(rgb)
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _image_error(path, exc) from exc


def _pil_rgb(img: Image.Image, alpha: str) -> Image.Image:
    if alpha == "white" and (img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info):
        return over_white(img)
    return img.convert("RGB")


def _tf(path: Path) -> np.ndarray:
    """``tf.io.decode_image(data, channels=3)``'s pixels."""
    data = path.read_bytes()
    if data[:3] == b"\xff\xd8\xff":
        return _tf_jpeg(data)
    with Image.open(io.BytesIO(data)) as img:  # the bytes already read, not the file again
        if img.format == "PNG" and img.mode.startswith("I"):
            # a 16-bit grey PNG: TF's 8-bit decode keeps the high byte (libpng's strip_16), where PIL's
            # convert('RGB') would clip the 16-bit values at 255
            grey = (np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)
            return np.repeat(grey[..., None], 3, axis=2)
        return np.asarray(img.convert("RGB"))


def _tf_jpeg(data: bytes) -> np.ndarray:
    import simplejpeg

    try:
        if simplejpeg.decode_jpeg_header(data)[2] in ("CMYK", "YCCK"):
            cmyk = simplejpeg.decode_jpeg(data, colorspace="CMYK", fastdct=True, fastupsample=False)
            return _tf_cmyk_to_rgb(cmyk, _has_adobe_marker(data))
        return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=True, fastupsample=False)
    except ValueError as exc:  # simplejpeg's complaint about a damaged stream
        raise OSError(str(exc)) from exc


def _tf_cmyk_to_rgb(cmyk: np.ndarray, adobe: bool) -> np.ndarray:
    """TensorFlow's own CMYK conversion (core/lib/jpeg/jpeg_mem.cc): libjpeg decodes to CMYK, then
    r = k * c / 255 in integers (truncating) for Adobe's inverted CMYK, (255 - k) * (255 - c) / 255 otherwise."""
    v = cmyk.astype(np.int32)
    if not adobe:
        v = 255 - v
    return (v[..., :3] * v[..., 3:] // 255).astype(np.uint8)


def _has_adobe_marker(data: bytes) -> bool:
    """Whether the JPEG header holds an Adobe APP14 segment (libjpeg's ``saw_Adobe_marker``)."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # a fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: the header is over
            break
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xEE and length >= 14 and data[i + 4:i + 9] == b"Adobe":
            return True
        i += 2 + length
    return False


def _cv2(path: Path, alpha: str) -> np.ndarray:
    from .resizing import import_cv2

    cv2 = import_cv2()
    data = np.frombuffer(path.read_bytes(), np.uint8)
    if alpha == "white":
        bgra = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if bgra is not None and bgra.dtype == np.uint16:  # to 8 bits by the high byte, as IMREAD_COLOR does
            bgra = (bgra >> 8).astype(np.uint8)
        if bgra is not None and bgra.ndim == 3 and bgra.shape[2] == 4 and bgra.dtype == np.uint8:
            rgba = Image.fromarray(np.ascontiguousarray(bgra[..., [2, 1, 0, 3]]), "RGBA")
            return np.asarray(over_white(rgba))
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError("OpenCV cannot decode it")
    return np.ascontiguousarray(bgr[..., ::-1])


def over_white(img: Image.Image) -> Image.Image:
    """A transparent picture composited over white (what a viewer shows)."""
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def decode(path: str | Path, draft: tuple[int, int] | None = None, *, upright: bool = True,
           alpha: str = "white") -> tuple[Image.Image, tuple[int, int]]:
    """Open an image for showing, as 8-bit RGB: upright by its EXIF orientation and transparency over white
    unless told otherwise (``upright=False, alpha="drop"`` is the ``pil`` decoder's picture); return it and its
    full-resolution size (as shown).

    ``draft``: a (w, h) size the picture is wanted for. A JPEG then decodes at the smallest DCT scale (1/2,
    1/4, 1/8) that still leaves twice that size, which cuts decoding several-fold; other formats always
    decode whole."""
    path = Path(path)
    try:
        img = Image.open(path)
        full = img.size
        if draft is not None and img.format == "JPEG":
            img.draft("RGB", (2 * draft[0], 2 * draft[1]))
        orientation = img.getexif().get(0x0112, 1) if upright else 1
        if orientation != 1:  # exif_transpose copies the image even when there is nothing to turn
            img = ImageOps.exif_transpose(img)
            if orientation in (5, 6, 7, 8):
                full = full[::-1]
        img = to_rgb(img) if alpha == "white" else img.convert("RGB")
        img.load()
        return img, full
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _image_error(path, exc) from exc


def _image_error(path: Path, exc: Exception) -> ImageError:
    """What a decoder's failure means for the user, the same for every decoder."""
    if isinstance(exc, Image.DecompressionBombError):
        return ImageError(f"{path.name} is too large to decode safely ({_reason(exc)}). Scale it down first.")
    if not path.exists():
        return ImageError(f"{path} does not exist.")
    if path.is_dir():
        return ImageError(f"{path.name} is a folder, not an image.")
    return ImageError(f"{path.name} is not an image this app can read ({_reason(exc)}).")


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
        return over_white(img)
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
