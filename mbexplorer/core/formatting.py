"""How numbers, shapes and sizes read in the window. Qt-free so every panel formats the same way."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

NOT_COUNTED = "not counted"


def si(n: float | None, digits: int = 2) -> str:
    """300774272 -> '300.77 M'; small numbers stay whole ('864'); None -> 'not counted'."""
    if n is None:
        return NOT_COUNTED
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.{digits}f} {unit}"
    return f"{n:,.0f}"


def thousands(n: float | None) -> str:
    """3470760 -> '3,470,760'."""
    if n is None:
        return NOT_COUNTED
    return f"{n:,.0f}"


def size_bytes(n: int | None) -> str:
    """Binary units, as file managers show memory: 14193242 -> '13.54 MiB'."""
    if n is None:
        return "?"
    for unit, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:,} B"


def shape(dims: Sequence | None) -> str:
    """(1, 32, 112, 112) -> '1×32×112×112'; symbolic dims keep their names; None -> '?'."""
    if dims is None:
        return "?"
    return _shape(tuple(dims))


@lru_cache(maxsize=4096)  # a graph repeats a few hundred distinct shapes thousands of times
def _shape(dims: tuple) -> str:
    if len(dims) == 0:
        return "scalar"
    return "×".join(str(d) for d in dims)


def shapes(list_of_dims: Iterable[Sequence | None]) -> str:
    return ", ".join(shape(d) for d in list_of_dims)


def percent(v: float | None) -> str:
    if v is None:
        return ""
    if v and abs(v) < 0.1:
        return "<0.1 %"
    return f"{v:.1f} %"


KIND_TITLES = {
    "stem": "stem",
    "depthwise_separable": "depthwise separable",
    "inverted_residual": "inverted residual",
    "mobilenetv3_block": "MobileNetV3 block",
    "head": "head",
    "ops": "ops",
}


def kind_title(kind: str) -> str:
    return KIND_TITLES.get(kind, kind.replace("_", " "))


def short_block_name(name: str) -> str:
    """'block 3: expand x6, dw 3x3 s1, residual' -> 'block 3' (tables show the full name as a tooltip)."""
    head, sep, _ = name.partition(":")
    return head if sep else name


def plural(n: int, word: str, many: str | None = None, spec: str = "") -> str:
    """A count and its noun, singular for one: plural(1, "layer") -> '1 layer', plural(3, "layer") -> '3 layers';
    ``many``: an irregular plural; ``spec``: the count's format (',' for 1,234)."""
    return f"{n:{spec}} {word if n == 1 else many or word + 's'}"
