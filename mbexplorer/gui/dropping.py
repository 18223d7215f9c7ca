"""What to open when files are dropped on the window. Qt-free: paths in, a decision out.

A drop may carry a model (opened), images (classified in the Classify tab), or both. Images are told by
their suffix, or by their first bytes when the name says nothing (``photo`` with no suffix).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mbexplorer.core.model import sniff
from mbexplorer.core.preprocess import IMAGE_SUFFIXES, image_files

MODEL_SUFFIXES = {".onnx"}
# Formats the loader recognises by their bytes; it opens them or says exactly why it cannot.
OTHER_MODEL_SUFFIXES = {".tflite", ".safetensors", ".pth", ".pt", ".h5", ".keras"}
OTHER_MODEL_KINDS = {"tflite", "safetensors", "hdf5"}
# The open dialogs' filter: every format the loader imports (a TF.js model is opened by its model.json).
MODEL_FILTER = ("Models (*.onnx *.tflite *.h5 *.keras model.json *.safetensors *.pth *.pt);;ONNX (*.onnx);;"
                "All files (*)")
# Kinds the loader can say something specific about (a TF.js model.json, a zip that is not a .keras file).
LOADER_KINDS = {"onnx", "tflite", "safetensors", "hdf5", "pickle", "zip", "json"}


def _kind(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            return sniff(path, fh.read(64))
    except OSError:
        return None


def looks_like_model(path: Path) -> bool:
    """ONNX by extension, or by the first bytes for files named otherwise (``model.bin`` exported as ONNX)."""
    if not path.is_file():
        return False
    return path.suffix.lower() in MODEL_SUFFIXES or _kind(path) == "onnx"


def is_tfjs_folder(path: Path) -> bool:
    """A TF.js layers model: a folder holding model.json (and its weight shards). The folder is the model."""
    return path.is_dir() and (path / "model.json").is_file()


def looks_like_other_model(path: Path) -> bool:
    """Another model format (TFLite, safetensors, PyTorch, Keras, a TF.js folder): second choice after ONNX."""
    if is_tfjs_folder(path):
        return True
    if not path.is_file():
        return False
    return path.suffix.lower() in OTHER_MODEL_SUFFIXES or _kind(path) in OTHER_MODEL_KINDS


def pick_model_file(paths: list[Path]) -> tuple[Path | None, str | None]:
    """(file to open, None) or (None, message for the user).

    One plain file is opened whatever it is, so the loader can say precisely what is wrong with it. A folder
    or several files: the first ONNX file (by name, folders searched one level), else the first file of
    another model format, else a message.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        return None, "Nothing to open: drop a model file (.onnx)."
    if len(paths) == 1 and (paths[0].is_file() or is_tfjs_folder(paths[0])):
        return paths[0], None
    model = _first_model(_candidates(paths))
    if model is not None:
        return model, None
    what = "folder" if len(paths) == 1 and paths[0].is_dir() else "dropped files"
    names = ", ".join(p.name for p in paths[:3]) + (" …" if len(paths) > 3 else "")
    return None, f"No model file (.onnx) found in the {what} ({names}). Drop an .onnx file."


def _candidates(paths: list[Path]) -> list[Path]:
    """The files given, and the files directly inside the folders given (sorted by name); a TF.js folder is
    itself a candidate, and so is one directly inside a folder given."""
    out: list[Path] = []
    for p in paths:
        if is_tfjs_folder(p):
            out.append(p)
        elif p.is_dir():
            try:
                out.extend(sorted(q for q in p.iterdir() if q.is_file() or is_tfjs_folder(q)))
            except OSError:
                continue
        else:
            out.append(p)
    return out


def _first_model(candidates: list[Path]) -> Path | None:
    for test in (looks_like_model, looks_like_other_model):
        for c in candidates:
            if test(c):
                return c
    return None


def looks_like_image(path: Path) -> bool:
    """An image by suffix; a file named otherwise (and not as a model) by its first bytes."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    if path.suffix.lower() in MODEL_SUFFIXES | OTHER_MODEL_SUFFIXES or not path.is_file():
        return False
    return (_kind(path) or "").startswith("image:")


@dataclass
class DropPlan:
    model: Path | None = None  # open this model
    images: list[Path] = field(default_factory=list)  # classify these
    skipped: list[Path] = field(default_factory=list)  # dropped files that are neither (mentioned, not fatal)
    message: str | None = None  # nothing usable was dropped: tell the user why


def route_drop(paths: list[Path]) -> DropPlan:
    """Split a drop into a model to open and images to classify.

    Images come from image files and, recursively, from folders. The model follows ``pick_model_file``'s
    rules: one plain file that is not an image is opened so the loader can say what is wrong with it, unless
    its bytes show it is plain text or unknown with no model suffix: then the user hears at once that it is
    neither an image nor a model. Among several files, and in folders (one level), ONNX comes first.
    """
    paths = [Path(p) for p in paths]
    plan = DropPlan()
    others: list[Path] = []
    for p in paths:
        if is_tfjs_folder(p):
            others.append(p)  # a model, not a folder of images
        elif p.is_dir():
            plan.images.extend(image_files([p]))
        elif looks_like_image(p):
            plan.images.append(p)
        elif p.exists():
            others.append(p)
    folders = [p for p in paths if p.is_dir() and not is_tfjs_folder(p)]
    if len(paths) == 1 and others:
        p = others[0]
        named = p.suffix.lower() in MODEL_SUFFIXES | OTHER_MODEL_SUFFIXES
        if named or is_tfjs_folder(p) or _kind(p) in LOADER_KINDS:
            plan.model = p
        else:
            plan.message = (f"{p.name} is neither an image nor a model. Drop images (.jpg, .png, .bmp, …) or a "
                            "folder of them to classify, or an ONNX model (.onnx) to open.")
        return plan
    plan.model = _first_model(others + _candidates(folders))
    plan.skipped = [p for p in others if p != plan.model]
    if plan.model is None and not plan.images:
        what = "folder" if len(paths) == 1 and folders else "dropped files"
        names = ", ".join(p.name for p in paths[:3]) + (" …" if len(paths) > 3 else "")
        plan.message = (f"No model file (.onnx) or image found in the {what} ({names}). Drop an .onnx model, "
                        "or images to classify.")
    return plan
