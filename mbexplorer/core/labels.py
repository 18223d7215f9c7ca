"""Class names for a model's outputs: a user's label file, labels embedded in the model, or the ImageNet
classes the app ships (1000 classes, or 1001 with "background" at index 0 as TF-slim / Coral models have)."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import MbxError

_INDEXED = re.compile(r"^\s*(\d+)[\s:,]+(.*\S)\s*$")  # "0 background", "283: tiger cat", "5, label"


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    text = resources.files("mbexplorer.resources").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    assert len(names) == 1000, "resources/imagenet_classes.txt must list the 1000 ImageNet classes"
    return names


def read_label_file(path: str | Path) -> list[str]:
    """One label per line; lines may carry their index ("283 tiger cat", "283: tiger cat")."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise MbxError(f"cannot read label file {path.name}: {exc}") from exc
    lines = [ln for ln in lines if ln.strip()]
    matches = [_INDEXED.match(ln) for ln in lines]
    if lines and all(matches):
        indexed = {int(m.group(1)): m.group(2) for m in matches}
        if sorted(indexed) == list(range(len(indexed))) or sorted(indexed) == list(range(1, len(indexed) + 1)):
            top = max(indexed)
            return [indexed.get(i, f"class {i}") for i in range(top + 1)]
    return [ln.strip() for ln in lines]


def fits(num_classes: int, labels: list[str] | None) -> bool:
    """Whether ``labels_for`` uses a label list for a model with ``num_classes`` outputs."""
    return bool(labels) and len(labels) in (num_classes - 1, num_classes, num_classes + 1)


def labels_for(num_classes: int, embedded: list[str] | None = None, user: list[str] | None = None) -> list[str]:
    """Labels for ``num_classes`` outputs, in order of preference: the user's, the model's own, ImageNet."""
    return [label_at(i, num_classes, embedded, user) for i in range(num_classes)]


def label_at(index: int, num_classes: int, embedded: list[str] | None = None, user: list[str] | None = None) -> str:
    """The label of one output (``labels_for(...)[index]`` without building the list)."""
    for source in (user, embedded):
        if fits(num_classes, source):
            offset = len(source) - num_classes
            # a 1000-line list for a 1001-output model gets "background" in front; a 1001-line list (background
            # first) for a 1000-output model, or a file indexed from 1, loses its first line
            return "background" if index + offset < 0 else source[index + offset]
    classes = imagenet_classes()
    if num_classes == 1000:
        return classes[index]
    if num_classes == 1001:
        return classes[index - 1] if index else "background"
    return f"class {index}"
