"""What to open when files are dropped on the window: paths in, a decision out (formats from ``formats``).

A drop may carry a model (opened), images (classified in the Classify tab), or both. Images are told by
their suffix, or by their first bytes when the name says nothing (``photo`` with no suffix).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .decoding import image_files
from .formats import (
    LOADER_KINDS,
    MODEL_SUFFIXES,
    is_tfjs_folder,
    looks_like_image,
    looks_like_onnx,
    looks_like_other_model,
    sniff_file,
)


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
    for test in (looks_like_onnx, looks_like_other_model):
        for c in candidates:
            if test(c):
                return c
    return None


@dataclass
class DropPlan:
    model: Path | None = None  # open this model
    images: list[Path] = field(default_factory=list)  # classify these
    skipped: list[Path] = field(default_factory=list)  # dropped files that are neither (mentioned, not fatal)
    message: str | None = None  # nothing usable was dropped: tell the user why


def route_drop(paths: list[Path]) -> DropPlan:
    """Split a drop into a model to open and images to classify.

    Images come from image files and, recursively, from folders. The model: one plain file that is not an
    image is opened so the loader can say what is wrong with it, unless its bytes show it is plain text or
    unknown with no model suffix: then the user hears at once that it is neither an image nor a model. Among
    several files, and in folders (one level), the first ONNX file (by bytes or name) comes first, then the
    first file of another model format.
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
        named = p.suffix.lower() in MODEL_SUFFIXES
        if named or is_tfjs_folder(p) or sniff_file(p) in LOADER_KINDS:
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
