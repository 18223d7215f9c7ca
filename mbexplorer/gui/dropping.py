"""What to open when files are dropped on the window. Qt-free: paths in, a decision out."""

from __future__ import annotations

from pathlib import Path

from mbexplorer.core.model import sniff

MODEL_SUFFIXES = {".onnx"}
# Formats the loader recognises by their bytes; it opens them or says exactly why it cannot.
OTHER_MODEL_SUFFIXES = {".tflite", ".safetensors", ".pth", ".pt", ".h5", ".keras"}
OTHER_MODEL_KINDS = {"tflite", "safetensors", "hdf5"}


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


def looks_like_other_model(path: Path) -> bool:
    """Another model format (TFLite, safetensors, PyTorch, Keras): second choice after ONNX."""
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
    if len(paths) == 1 and paths[0].is_file():
        return paths[0], None
    candidates: list[Path] = []
    for p in paths:
        if p.is_dir():
            try:
                candidates.extend(sorted(q for q in p.iterdir() if q.is_file()))
            except OSError:
                continue
        else:
            candidates.append(p)
    for test in (looks_like_model, looks_like_other_model):
        for c in candidates:
            if test(c):
                return c, None
    what = "folder" if len(paths) == 1 and paths[0].is_dir() else "dropped files"
    names = ", ".join(p.name for p in paths[:3]) + (" …" if len(paths) > 3 else "")
    return None, f"No model file (.onnx) found in the {what} ({names}). Drop an .onnx file."
