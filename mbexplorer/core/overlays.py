"""Per-node overlays: a named mapping ``node name -> value`` with a unit.

The graph view colours nodes and blocks by an overlay, the table shows overlays as columns, reports export
them. Costs give the first overlays (share of MACs, params, activation memory); quantization error and
measured latency arrive as overlays of the same shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .costs import CostReport


@dataclass
class Overlay:
    name: str
    unit: str
    values: dict[str, float]  # node name -> value
    block_values: dict[int, float] = field(default_factory=dict)  # block index -> value
    description: str = ""

    @property
    def max_value(self) -> float:
        vals = list(self.values.values()) + list(self.block_values.values())
        return max(vals) if vals else 0.0

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "unit": self.unit, "description": self.description,
                           "values": self.values}, indent=1)


def _share(report: CostReport, per_node: dict[str, float], name: str, description: str) -> Overlay:
    total = sum(per_node.values()) or 1.0
    values = {k: 100.0 * v / total for k, v in per_node.items() if v}
    blocks: dict[int, float] = {}
    for b in report.blocks.blocks:
        blocks[b.index] = sum(values.get(n, 0.0) for n in b.nodes)
    return Overlay(name, "%", values, blocks, description)


def mac_share(report: CostReport) -> Overlay:
    per = {n.name: float(n.macs or 0) for n in report.nodes}
    return _share(report, per, "MACs share", "share of the model's conv + FC multiply-accumulates")


def params_share(report: CostReport, convention: str = "paper") -> Overlay:
    per = {n.name: float(report.params(n, convention)) for n in report.nodes}
    return _share(report, per, "params share", f"share of the model's parameters ({convention} convention)")


def activation_share(report: CostReport) -> Overlay:
    per = {n.name: float(n.activation_bytes) for n in report.nodes}
    return _share(report, per, "activation memory share", "share of the bytes written by all ops")


OVERLAYS = {"MACs share": mac_share, "params share": params_share, "activation memory share": activation_share}
