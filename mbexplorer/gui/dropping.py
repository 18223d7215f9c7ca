"""What to open when files are dropped on the window. Qt-free: paths in, a decision out."""

from __future__ import annotations

from pathlib import Path

from mbexplorer.core.model import sniff

MODEL_SUFFIXES = {".onnx"}


def looks_like_model(path: Path) -> bool:
    """By extension, or by the first bytes for files named otherwise (``model.bin`` exported as ONNX)."""
    if not path.is_file():
        return False
    if path.suffix.lower() in MODEL_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return False
    return sniff(path, head) == "onnx"


def pick_model_file(paths: list[Path]) -> tuple[Path | None, str | None]:
    """(file to open, None) or (None, message for the user).

    One plain file is opened whatever it is, so the loader can say precisely what is wrong with it. A folder
    or several files: the first model-like file (by name, folders searched one level), else a message.
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
    for c in candidates:
        if looks_like_model(c):
            return c, None
    what = "folder" if len(paths) == 1 and paths[0].is_dir() else "dropped files"
    names = ", ".join(p.name for p in paths[:3]) + (" …" if len(paths) > 3 else "")
    return None, f"No model file (.onnx) found in the {what} ({names}). Drop an .onnx file."
