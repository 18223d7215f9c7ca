"""Published speed figures for MobileNetV1, to overlay on measured runs: what model-zoo pages say, not measured.

The figures live in ``resources/references_mobilenet_v1.json``, transcribed digit for digit from the pages (the
test compares them with the page text). A page that gives a latency but not a throughput stays latency-only:
``batch x 1000 / latency`` is only a throughput when the latency is the mean of back-to-back calls, which none of
these pages says, and a derived figure must not pass for a published one. ``meaning`` is what the page says or
implies the time covers (``device_compute``, ``host_end_to_end``) or ``unknown``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import NamedTuple

from ..core.errors import MbxError
from .api import DEVICE_COMPUTE, END_TO_END

UNKNOWN = "unknown"
MEANINGS = (END_TO_END, DEVICE_COMPUTE, UNKNOWN)
DATA_FILE = "references_mobilenet_v1.json"


class Point(NamedTuple):
    batch_size: int
    throughput: float | None  # images per second, as published; None where the page gives none
    latency_ms: float | None  # per batch, as published; None where the page gives none


@dataclass(frozen=True)
class Series:
    label: str  # short, for a legend: "Ascend 310P"
    device: str
    tool: str  # what measured it, or "not stated"
    precision: str  # fp32 / fp16 / int8 / unknown
    meaning: str  # one of MEANINGS
    source: str  # the page: publisher, title, the seed file, the URL it names
    model: str
    points: tuple[Point, ...]
    note: str  # what a person should know: what the figure covers, why there is no throughput, ...
    url: str = ""
    seed: str = ""  # the seed file it was transcribed from
    table: str = ""  # where on the page

    @property
    def has_throughput(self) -> bool:
        return any(p.throughput is not None for p in self.points)

    @property
    def has_latency(self) -> bool:
        return any(p.latency_ms is not None for p in self.points)


def _number(v, where: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise MbxError(f"{where}: {v!r} is not a positive number")
    return float(v)


def parse(data: dict, name: str = DATA_FILE) -> list[Series]:
    """The series of a references file (its JSON, decoded). Raises MbxError naming what is wrong."""
    try:
        sources = data["sources"]
        model = data.get("model", "MobileNetV1 1.0/224")
        out = []
        for i, s in enumerate(data["series"]):
            where = f"{name}: series {i + 1} ({s.get('label', '?')})"
            src = sources[s["source"]]
            if s["meaning"] not in MEANINGS:
                raise MbxError(f"{where}: meaning {s['meaning']!r} is not one of {', '.join(MEANINGS)}")
            points = tuple(Point(int(b), _number(t, where), _number(lat, where)) for b, t, lat in s["points"])
            if not points or any(p.throughput is None and p.latency_ms is None for p in points):
                raise MbxError(f"{where}: every point needs a throughput or a latency")
            source = f"{src['publisher']}: “{src['title']}” (seeds/{src['seed']}); {src['url']}"
            out.append(Series(s["label"], s["device"], s["tool"], s["precision"], s["meaning"], source, model, points,
                              s["note"], src["url"], src["seed"], s.get("table", "")))
        return out
    except (KeyError, TypeError, ValueError) as exc:
        raise MbxError(f"{name} is not a valid references file: {type(exc).__name__}: {exc}") from exc


@lru_cache(maxsize=1)
def _published() -> tuple[Series, ...]:
    text = files("mbexplorer.resources").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return tuple(parse(json.loads(text)))


def published() -> list[Series]:
    """Every published series the app ships (read once)."""
    return list(_published())


__all__ = ["MEANINGS", "UNKNOWN", "Point", "Series", "parse", "published"]
