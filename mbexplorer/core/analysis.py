"""Opening a model end to end: load (or build), index, group into blocks, measure costs.

One :class:`Analysis` is what the GUI shows and the CLI summarises. ``open_job`` is a generator job
(see ``jobs.py``) so the GUI can run it off the UI thread with progress and cancel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import builder
from .blocks import BlockGraph, group_blocks
from .costs import CostReport, analyse
from .graph import GraphIndex
from .jobs import Job, Progress, run
from .loading import load
from .model import LoadedModel


@dataclass
class Analysis:
    model: LoadedModel
    index: GraphIndex
    blocks: BlockGraph
    costs: CostReport


def analyse_job(loaded: LoadedModel) -> Job:
    yield Progress(0.6, "indexing graph")
    gi = GraphIndex(loaded)
    yield Progress(0.75, "grouping blocks")
    blocks = group_blocks(gi)
    yield Progress(0.9, "measuring costs")
    costs = analyse(loaded, gi, blocks)
    yield Progress(1.0, "done")
    return Analysis(loaded, gi, blocks, costs)


def open_job(path: str | Path, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Job:
    yield Progress(0.0, f"reading {Path(path).name}")
    loaded = load(path, input_shapes)
    return (yield from analyse_job(loaded))


def build_job(family: str, width: float = 1.0, resolution: int = 224, num_classes: int = 1000,
              fold_bn: bool = False, rounding: str = "torchvision", seed: int = 0) -> Job:
    yield Progress(0.0, f"building {family} x{width:g} {resolution}px")
    loaded = builder.build(family, width, resolution, num_classes, fold_bn=fold_bn, rounding=rounding, seed=seed)
    return (yield from analyse_job(loaded))


def open_model(path: str | Path, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Analysis:
    """Synchronous convenience for scripts, the CLI and tests."""
    return run(open_job(path, input_shapes))
