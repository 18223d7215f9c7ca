"""Overlays: per-block values by the overlay's rule, node- and tensor-keyed, JSON, and the registry."""

import json

import pytest

from mbexplorer.core.analysis import analyse_job
from mbexplorer.core.jobs import run
from mbexplorer.core.overlays import (
    REGISTRY,
    Overlay,
    OverlayRegistry,
    activation_share,
    format_value,
    mac_share,
    params_share,
)


@pytest.fixture(scope="module")
def v2(built):
    return run(analyse_job(built("mobilenet_v2")))


def test_share_overlays_sum_per_block_to_the_block_totals(v2):
    costs = v2.costs
    for conv in ("paper", "torchvision"):
        blocks, total = costs.block_totals(conv), costs.totals(conv)
        for ov, key in ((mac_share(costs), "macs"), (params_share(costs, conv), "params"),
                        (activation_share(costs), "activation_bytes")):
            assert ov.key == "node" and ov.aggregate == "sum" and ov.unit == "%" and ov.source == "costs"
            assert set(ov.block_values) == {b["index"] for b in blocks}  # every block, empty ones at 0
            for b in blocks:
                assert ov.block_values[b["index"]] == pytest.approx(100.0 * b[key] / total[key])
            assert sum(ov.block_values.values()) == pytest.approx(100.0)
    assert params_share(costs, "paper").block_values != params_share(costs, "torchvision").block_values


def test_tensor_overlay_with_min_takes_the_worst_output_tensor_of_each_block(v2):
    gi = v2.index
    # a made-up SQNR per activation tensor, plus a graph input and a weight (no producer: not on any node)
    values = {t: float((i * 7919) % 61) for i, node in enumerate(gi.nodes) for t in node.output if t}
    values[gi.graph_inputs[0]] = -100.0
    values[next(iter(gi.initializers))] = -100.0
    ov = Overlay("SQNR", "dB", values, key="tensor", aggregate="min", source="compare", higher_is_better=True)
    ov.bind(v2.blocks, gi)
    for b in v2.blocks.blocks:
        outs = [values[t] for n in b.nodes for t in gi.nodes[gi.index[n]].output if t in values]
        assert ov.block_values[b.index] == min(outs)
    first = gi.names[0]
    assert ov.node_values[first] == min(values[t] for t in gi.nodes[0].output if t)
    assert -100.0 not in ov.node_values.values()
    with pytest.raises(ValueError):
        Overlay("SQNR", "dB", values, key="tensor").bind(v2.blocks)  # tensors need the graph index


def test_rules_and_ramp():
    ov = Overlay("x", "ms", {}, aggregate="mean")
    assert ov.combine([1.0, 2.0, 6.0]) == 3.0 and ov.combine([]) is None
    assert Overlay("x", "ms", {}).combine([]) == 0.0  # a sum over nothing is nothing
    with pytest.raises(ValueError):
        Overlay("x", "ms", {}, aggregate="median")
    with pytest.raises(ValueError):
        Overlay("x", "ms", {}, key="edge")
    db = Overlay("SQNR", "dB", {}, aggregate="min", higher_is_better=True, block_values={0: 20.0, 1: 40.0})
    assert db.ramp_range() == (20.0, 40.0)  # not from 0: 20..40 dB would all be one colour
    assert db.ramp_position(20.0) == 1.0 and db.ramp_position(40.0) == 0.0  # worst SQNR darkest
    share = Overlay("s", "%", {}, block_values={0: 5.0, 1: 10.0})
    assert share.ramp_range() == (0.0, 10.0) and share.ramp_position(5.0) == 0.5
    assert format_value(12.345, "%") == "12.3 %" and format_value(0.01, "%") == "<0.1 %"
    assert format_value(31.25, "dB") == "31.2 dB" and format_value(1234.5, "µs") == "1,234 µs"
    assert format_value(None, "dB") == ""


def test_json_says_key_unit_rule_and_source(v2):
    ov = mac_share(v2.costs)
    d = json.loads(ov.to_json())
    assert d["name"] == "MACs share" and d["unit"] == "%" and d["key"] == "node"
    assert d["aggregate"] == "sum" and d["source"] == "costs"
    assert d["values"] == ov.values and d["block_values"]["0"] == ov.block_values[0]
    assert ov.max_value == max(ov.block_values.values())  # a block sums its nodes: the largest value


def test_registry_lists_and_computes(v2):
    assert REGISTRY.names(v2)[:3] == ["MACs share", "params share", "activation memory share"]
    assert REGISTRY.uses_convention("params share") and not REGISTRY.uses_convention("MACs share")
    p = REGISTRY.compute("params share", v2, "torchvision")
    assert p.block_values == params_share(v2.costs, "torchvision").block_values
    assert REGISTRY.compute("no such overlay", v2, "paper") is None

    reg = OverlayRegistry(parent=REGISTRY)  # a window's registry over the app-wide one
    calls = []

    def latency(analysis, convention):
        calls.append(convention)
        return Overlay("latency", "ms", {n.name: 1.0 for n in analysis.costs.nodes}, aggregate="sum",
                       source="profile:fake")

    reg.register("latency", latency, available=lambda a: a is v2)
    assert "latency" in reg.names(v2) and "latency" not in REGISTRY.names(v2)
    assert "latency" not in reg.names(object())  # the plugin has no figures for another model
    lat = reg.compute("latency", v2, "paper")
    assert lat.source == "profile:fake" and lat.block_values[0] == len(v2.blocks.blocks[0].nodes)  # bound

    # a comparison run adds an overlay computed for this model only
    err = Overlay("SQNR vs fp32", "dB", {t: 30.0 for n in v2.index.nodes for t in n.output if t}, key="tensor",
                  aggregate="min", source="compare")
    reg.add(err, v2)
    assert reg.names(v2)[-1] == "SQNR vs fp32" and reg.compute("SQNR vs fp32", v2, "paper") is err
    assert err.block_values[0] == 30.0
    assert "SQNR vs fp32" not in reg.names(object()) and "SQNR vs fp32" not in reg.names(None)
    reg.unregister("SQNR vs fp32")
    assert "SQNR vs fp32" not in reg.names(v2)
