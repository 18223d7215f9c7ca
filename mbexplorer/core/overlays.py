"""Overlays: a named value per node or per tensor, with a unit, a rule for a block's value, and a source.

The graph view colours blocks by an overlay, the layer table shows overlays as columns, reports export them.
Costs give the first overlays (share of MACs, params, activation memory, keyed by node and summed per
block). Quantization error is keyed by *tensor* and a block takes its worst (lowest) SQNR; device plugins
add measured latency. A tensor's value belongs to the node that produces it.

Producers put overlays in a :class:`OverlayRegistry`: a *factory* computes one for any open model (the cost
overlays, a profiler plugin), or an overlay computed once for one model is *added* (a comparison run).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .costs import CostReport

KEYS = ("node", "tensor")
AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "sum": sum, "min": min, "max": max, "mean": lambda vs: sum(vs) / len(vs),
}
DEFAULT_OVERLAY = "MACs share"


@dataclass
class Overlay:
    name: str
    unit: str
    values: dict[str, float]  # node or tensor name (see ``key``) -> value
    key: str = "node"
    aggregate: str = "sum"  # how a block (or a set of table rows) combines its nodes' values
    source: str = "costs"  # who made it: "costs", "compare", "profile:<plugin>", ...
    description: str = ""
    higher_is_better: bool = False  # SQNR: the lowest block is the one to look at, so it is drawn darkest
    # the block total this overlay is a share of ("macs", "params", "activation_bytes"): a block card shows that
    # figure, so the number on the box is the one its colour stands for
    stat: str | None = None
    # filled by bind(): the value of each node (a tensor's goes to its producer) and of each block
    node_values: dict[str, float] = field(default_factory=dict)
    block_values: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.key not in KEYS:
            raise ValueError(f"overlay key must be one of {KEYS}, not {self.key!r}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"overlay aggregate must be one of {tuple(AGGREGATES)}, not {self.aggregate!r}")

    def combine(self, values: Iterable[float]) -> float | None:
        """The rule over some values; None for none (a sum of nothing is 0: the nodes just cost nothing)."""
        vs = list(values)
        if not vs:
            return 0.0 if self.aggregate == "sum" else None
        return float(AGGREGATES[self.aggregate](vs))

    def bind(self, blocks, index=None) -> Overlay:
        """Compute per-node and per-block values for one model (``blocks``: its BlockGraph; ``index``: its
        GraphIndex, needed for tensor-keyed overlays). Returns self."""
        if self.key == "node":
            self.node_values = dict(self.values)
        else:
            if index is None:
                raise ValueError(f"overlay '{self.name}' is keyed by tensor: binding it needs the GraphIndex")
            per_node: dict[str, list[float]] = {}
            for tensor, v in self.values.items():
                i = index.producer.get(tensor)
                if i is not None:  # graph inputs and weights have no producer: no node to show them on
                    per_node.setdefault(index.names[i], []).append(v)
            self.node_values = {n: self.combine(vs) for n, vs in per_node.items()}
        self.block_values = {}
        for b in blocks.blocks:
            v = self.combine(self.node_values[n] for n in b.nodes if n in self.node_values)
            if v is not None:
                self.block_values[b.index] = v
        return self

    @property
    def max_value(self) -> float:
        vals = list(self.values.values()) + list(self.block_values.values())
        return max(vals) if vals else 0.0

    def ramp_range(self) -> tuple[float, float]:
        """The block values a colour ramp spans: sums (shares, bytes, time) from 0, others min to max (an
        SQNR of 20 to 40 dB would be one colour on a ramp from 0)."""
        vals = list(self.block_values.values())
        if not vals:
            return 0.0, 0.0
        lo, hi = min(vals), max(vals)
        return (min(0.0, lo), hi) if self.aggregate == "sum" else (lo, hi)

    def ramp_position(self, value: float | None, span: tuple[float, float] | None = None) -> float:
        """0 (light) .. 1 (dark): dark is the most, or the worst where higher is better. ``span``: ramp_range(),
        when the caller places many values (it walks every block)."""
        lo, hi = span or self.ramp_range()
        if value is None or hi <= lo:  # nothing to tell apart
            return 0.0
        t = (value - lo) / (hi - lo)
        return 1.0 - t if self.higher_is_better else t

    def format(self, value: float | None) -> str:
        return format_value(value, self.unit)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "unit": self.unit, "key": self.key, "aggregate": self.aggregate,
                           "source": self.source, "description": self.description,
                           "higher_is_better": self.higher_is_better, "values": self.values,
                           "block_values": {str(k): v for k, v in self.block_values.items()}}, indent=1)


def format_value(value: float | None, unit: str) -> str:
    """12.34, "%" -> '12.3 %'; 0.0021, "ms" -> '0.0021 ms'; None -> ''."""
    if value is None:
        return ""
    if unit == "%":
        return "<0.1 %" if value and abs(value) < 0.1 else f"{value:.1f} %"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}" if unit else text


# the cost overlays -------------------------------------------------------------------------------------
def _share(report: CostReport, per_node: dict[str, float], name: str, description: str, stat: str) -> Overlay:
    total = sum(per_node.values()) or 1.0
    values = {k: 100.0 * v / total for k, v in per_node.items() if v}
    return Overlay(name, "%", values, description=description, stat=stat).bind(report.blocks)


def mac_share(report: CostReport) -> Overlay:
    per = {n.name: float(n.macs or 0) for n in report.nodes}
    return _share(report, per, "MACs share", "share of the model's conv + FC multiply-accumulates", "macs")


def params_share(report: CostReport, convention: str = "paper") -> Overlay:
    per = {n.name: float(report.params(n, convention)) for n in report.nodes}
    return _share(report, per, "params share", f"share of the model's parameters ({convention} convention)",
                  "params")


def activation_share(report: CostReport) -> Overlay:
    per = {n.name: float(n.activation_bytes) for n in report.nodes}
    return _share(report, per, "activation memory share", "share of the bytes written by all ops",
                  "activation_bytes")


# the registry ------------------------------------------------------------------------------------------
Factory = Callable[[Any, str], "Overlay | None"]  # (analysis, convention) -> overlay, None: not for this model


@dataclass(frozen=True)
class OverlaySpec:
    name: str
    factory: Factory
    uses_convention: bool = False  # recomputed when the counting convention changes
    available: Callable[[Any], bool] | None = None  # None: every model
    description: str = ""


class OverlayRegistry:
    """Producers of overlays. A registry with a ``parent`` lists the parent's producers too: a window's
    registry holds the overlays computed for its models, over the app-wide one that plugins register in."""

    def __init__(self, parent: OverlayRegistry | None = None):
        self.parent = parent
        self._specs: dict[str, OverlaySpec] = {}
        self._added: dict[str, tuple[weakref.ref, Overlay]] = {}  # name -> (the analysis it is for, overlay)

    def register(self, name: str, factory: Factory, *, uses_convention: bool = False,
                 available: Callable[[Any], bool] | None = None, description: str = "") -> OverlaySpec:
        """A producer for any model. Registering a name again replaces its producer (a reloaded plugin)."""
        spec = OverlaySpec(name, factory, uses_convention, available, description)
        self._specs[name] = spec
        return spec

    def unregister(self, name: str) -> None:
        self._specs.pop(name, None)
        self._added.pop(name, None)

    def add(self, overlay: Overlay, analysis) -> Overlay:
        """An overlay computed for one model (a comparison run's); listed only while that model is open.
        It is held by a weak reference to the analysis, so a closed model's overlays go with it."""
        if not overlay.block_values:
            overlay.bind(analysis.blocks, analysis.index)
        self._added[overlay.name] = (weakref.ref(analysis), overlay)
        return overlay

    def spec(self, name: str) -> OverlaySpec | None:
        if name in self._specs:
            return self._specs[name]
        return self.parent.spec(name) if self.parent is not None else None

    def uses_convention(self, name: str) -> bool:
        spec = self.spec(name)
        return spec is not None and spec.uses_convention

    def names(self, analysis=None) -> list[str]:
        """What can be shown for this model (``None``: every producer, for menus before a model is open)."""
        out = self.parent.names(analysis) if self.parent is not None else []
        for name, spec in self._specs.items():
            if name not in out and (analysis is None or spec.available is None or spec.available(analysis)):
                out.append(name)
        for name, (ref, _) in self._added.items():
            if name not in out and analysis is not None and ref() is analysis:
                out.append(name)
        return out

    def compute(self, name: str, analysis, convention: str) -> Overlay | None:
        """The overlay for this model and convention, bound to its blocks; None when it has none."""
        added = self._added_for(name, analysis)
        if added is not None:
            return added
        if name in self._specs:
            spec = self._specs[name]
            if spec.available is not None and not spec.available(analysis):
                return None
            ov = spec.factory(analysis, convention)
            if ov is not None and not ov.block_values:
                ov.bind(analysis.blocks, analysis.index)
            return ov
        return self.parent.compute(name, analysis, convention) if self.parent is not None else None

    def _added_for(self, name: str, analysis) -> Overlay | None:
        if name not in self._added:
            return None
        ref, ov = self._added[name]
        return ov if analysis is None or ref() is analysis else None


REGISTRY = OverlayRegistry()
"""The app-wide registry: the cost overlays, and whatever plugins register at import."""
REGISTRY.register("MACs share", lambda a, _c: mac_share(a.costs),
                  description="share of the model's conv + FC multiply-accumulates")
REGISTRY.register("params share", lambda a, c: params_share(a.costs, c), uses_convention=True,
                  description="share of the model's parameters under the counting convention")
REGISTRY.register("activation memory share", lambda a, _c: activation_share(a.costs),
                  description="share of the bytes written by all ops")
