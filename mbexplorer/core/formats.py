"""File formats: the one place that knows what a file is, from its bytes first and its name second.

Loading (``loading.load``), the importers, drag-and-drop (``dropping.py``) and the open dialogs all ask
here. A format is told by its magic bytes (Netron sniffs the same way), never by its extension alone; a
suffix only helps where bytes say nothing (a pickle-less ``.pth``) and decides what a drop or a dialog lists.
"""

from __future__ import annotations

import string
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelLoadError, NotAModelError, UnsupportedFormatError


@dataclass(frozen=True)
class ModelFormat:
    key: str  # what ``model_kind`` returns and ``loading.load`` dispatches on
    title: str
    suffixes: tuple[str, ...]  # with the dot; the dialogs' filter and drop routing use them
    patterns: tuple[str, ...] = ()  # extra dialog patterns (a TF.js model is opened by its model.json)


MODEL_FORMATS = (
    ModelFormat("onnx", "ONNX", (".onnx",)),
    ModelFormat("tflite", "TFLite", (".tflite",)),
    ModelFormat("keras", "Keras / TF.js", (".h5", ".keras"), ("model.json",)),
    ModelFormat("torch", "PyTorch state dict", (".safetensors", ".pth", ".pt")),
)
MODEL_SUFFIXES = frozenset(s for f in MODEL_FORMATS for s in f.suffixes)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})

# The open dialogs' filters (Qt's "Title (*.a *.b);;..." syntax, but plain strings: the core owns them).
MODEL_FILTER = (
    "Models (" + " ".join(f"*{s}" for f in MODEL_FORMATS for s in f.suffixes)
    + " " + " ".join(p for f in MODEL_FORMATS for p in f.patterns) + ");;"
    + ";;".join(f"{f.title} (" + " ".join([f"*{s}" for s in f.suffixes] + list(f.patterns)) + ")"
                for f in MODEL_FORMATS)
    + ";;All files (*)"
)
IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)) + ");;All files (*)"

# What opens, for messages that tell the user what to choose instead.
OPENS = ("Open a model: ONNX (.onnx), TFLite (.tflite), Keras (.h5, .keras), a TF.js folder (model.json) "
         "or a PyTorch state dict (.safetensors, .pth)")

_IMAGE_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"BM": "a BMP image",
    b"GIF8": "a GIF image",
    b"RIFF": "a RIFF file (WebP image or audio)",
}

# Sniffed kinds the loader can say something specific about (a TF.js model.json, a zip that is not .keras).
LOADER_KINDS = frozenset({"onnx", "tflite", "safetensors", "hdf5", "pickle", "zip", "json"})


def sniff(head: bytes) -> str:
    """Name the format of a file from its first bytes (64 are plenty): 'onnx', 'tflite', 'hdf5', 'zip',
    'pickle', 'safetensors', 'json', 'image:<what>', 'text', 'empty' or 'unknown'."""
    if not head:
        return "empty"
    if head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:  # a pickle: legacy torch.save files
        return "pickle"
    for magic, what in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return "image:" + what
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 0 < n < 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"["):
        return "json"
    # ONNX is a protobuf ModelProto whose first field is ir_version (field 1, varint: tag 0x08),
    # as every exporter writes it; Netron sniffs the same way.
    if head[0] == 0x08 and len(head) > 1 and head[1] < 0x80:
        return "onnx"
    if _looks_like_text(head):
        return "text"
    return "unknown"


def sniff_file(path: Path) -> str | None:
    """``sniff`` of a file's first bytes; None when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(64))
    except OSError:
        return None


def zip_kind(path: Path) -> str:
    """'torch' for torch.save archives (``<name>/data.pkl``), 'keras' for .keras files, else 'zip'."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return "zip"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "torch"
    if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
        return "keras"
    return "zip"


def is_tfjs_folder(path: Path) -> bool:
    """A TF.js layers model: a folder holding model.json (and its weight shards). The folder is the model."""
    return path.is_dir() and (path / "model.json").is_file()


def model_kind(path: Path, head: bytes) -> str:
    """Which importer opens a file: a ``MODEL_FORMATS`` key ('onnx', 'tflite', 'keras', 'torch'), or the
    sniffed kind of a file that is no model (for :func:`refusal`)."""
    kind = sniff(head)
    if kind == "tflite" or kind == "onnx":
        return kind
    zkind = zip_kind(path) if kind == "zip" else None
    if kind in ("safetensors", "pickle") or zkind == "torch":
        return "torch"
    if kind in ("hdf5", "json") or zkind == "keras":
        return "keras"
    return kind


def state_dict_kind(path: Path, head: bytes) -> str:
    """'safetensors', 'torch' (a torch.save zip archive or legacy pickle) or 'unknown'. Bytes first; a name
    decides only what the bytes leave open (a checkpoint whose first bytes are neither)."""
    kind = sniff(head)
    if kind in ("zip", "pickle"):
        return "torch"
    if kind == "safetensors":
        return kind
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return "safetensors"
    if suffix in (".pth", ".pt", ".bin", ".ckpt", ".tar"):
        return "torch"
    return "unknown"


def refusal(path: Path, kind: str) -> ModelLoadError:
    """The error for a file that is no model, saying what it is and what opens instead."""
    if kind == "empty":
        return NotAModelError(f"{path.name} is empty (0 bytes): it is not a model. Export or download it again.")
    if kind.startswith("image:"):
        return NotAModelError(f"{path.name} is {kind[6:]}, not a model. {OPENS}; images are for classifying.")
    if kind == "text":
        return NotAModelError(f"{path.name} is a text file, not a model. {OPENS}.")
    if kind == "zip":
        return UnsupportedFormatError(
            f"{path.name} is a zip archive but neither a Keras .keras file (config.json + model.weights.h5) nor a "
            "PyTorch checkpoint (data.pkl). Open the model inside it, or export it to ONNX."
        )
    return NotAModelError(f"{path.name} is not a model this app knows. {OPENS}.")


def looks_like_onnx(path: Path) -> bool:
    """ONNX by suffix, or by the first bytes for files named otherwise (``model.bin`` exported as ONNX)."""
    if not path.is_file():
        return False
    return path.suffix.lower() == ".onnx" or sniff_file(path) == "onnx"


def looks_like_other_model(path: Path) -> bool:
    """Another model format (TFLite, safetensors, PyTorch, Keras, a TF.js folder): second choice after ONNX."""
    if is_tfjs_folder(path):
        return True
    if not path.is_file():
        return False
    return path.suffix.lower() in MODEL_SUFFIXES or sniff_file(path) in ("tflite", "safetensors", "hdf5")


def looks_like_image(path: Path) -> bool:
    """An image by suffix; a file named otherwise (and not as a model) by its first bytes."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    if path.suffix.lower() in MODEL_SUFFIXES or not path.is_file():
        return False
    return (sniff_file(path) or "").startswith("image:")


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(ch in string.printable or ord(ch) > 127 for ch in text)
    return printable / max(1, len(text)) > 0.95
