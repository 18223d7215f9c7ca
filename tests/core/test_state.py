"""The window's state, alone (no Qt): inputs, events, and derived values computed once per change."""

import pytest

from mbexplorer.core.analysis import analyse_job
from mbexplorer.core.jobs import run
from mbexplorer.core.overlays import REGISTRY, Overlay, OverlayRegistry
from mbexplorer.core.state import State


@pytest.fixture(scope="module")
def v2(built):
    return run(analyse_job(built("mobilenet_v2")))


@pytest.fixture(scope="module")
def v1(built):
    return run(analyse_job(built("mobilenet_v1", 0.25, 128)))


def record(state):
    seen = []
    for name in ("analysis", "convention", "overlay", "overlays", "comparison"):
        state.on(name, lambda value, name=name: seen.append((name, value)))
    return seen


def test_empty_state():
    s = State()
    assert s.analysis is None and s.convention == "paper" and s.overlay_name == "MACs share"
    assert s.overlay is None and s.totals is None and s.block_totals == []
    assert s.available_overlays() == REGISTRY.names(None)
    s.convention = "thop"  # a convention may be chosen before a model is open
    assert s.convention == "thop"
    with pytest.raises(KeyError):
        s.convention = "no such counter"


def test_analysis_and_convention_events_with_derived_values(v2):
    s = State()
    seen = record(s)
    during = []
    s.on("convention", lambda c: during.append((c, s.totals["params"], s.block_totals[-1]["params"])))
    s.set_analysis(v2)
    assert seen == [("analysis", v2)]
    assert s.totals == v2.costs.totals("paper") and s.block_totals == v2.costs.block_totals("paper")
    s.convention = "torchvision"
    # observers run after the derived values follow the new convention
    assert during == [("torchvision", 3_504_872, v2.costs.block_totals("torchvision")[-1]["params"])]
    assert seen[1:] == [("convention", "torchvision")]  # MACs share does not depend on the convention
    s.convention = "torchvision"
    assert len(seen) == 2  # no change, no event


def test_derived_values_are_computed_once_per_change(v2, monkeypatch):
    s = State()
    s.set_analysis(v2)
    calls = []
    real = type(v2.costs).block_totals
    monkeypatch.setattr(type(v2.costs), "block_totals",
                        lambda self, conv="paper": calls.append(conv) or real(self, conv))
    for _ in range(3):
        assert s.block_totals[0]["name"] == v2.blocks.blocks[0].name
    assert calls == ["paper"]
    s.convention = "fvcore"
    assert s.block_totals is s.block_totals
    assert calls == ["paper", "fvcore"]
    assert s.overlay is s.overlay  # one object until something changes


def test_overlay_choice_and_convention_dependent_overlay(v2):
    s = State()
    s.set_analysis(v2)
    seen = record(s)
    macs = s.overlay
    assert macs.name == "MACs share"
    s.overlay_name = "params share"
    assert seen == [("overlay", s.overlay)] and s.overlay.name == "params share"
    paper = s.overlay
    s.convention = "torchvision"  # params share is recomputed under the new convention: the overlay changes
    assert [e for e, _ in seen[1:]] == ["convention", "overlay"]
    assert s.overlay is not paper and s.overlay.block_values != paper.block_values
    assert s.overlay_for("MACs share") is macs  # cached, convention-free
    with pytest.raises(KeyError):
        s.overlay_name = "no such overlay"


def test_added_overlay_belongs_to_its_model(v2, v1):
    s = State(OverlayRegistry(parent=REGISTRY))
    s.set_analysis(v2)
    seen = record(s)
    err = Overlay("SQNR vs fp32", "dB", {t: 25.0 for n in v2.index.nodes for t in n.output if t}, key="tensor",
                  aggregate="min", source="compare", higher_is_better=True)
    s.add_overlay(err, show=True)
    assert seen[0] == ("overlays", s.available_overlays()) and "SQNR vs fp32" in seen[0][1]
    assert seen[1] == ("overlay", err) and s.overlay is err and err.block_values[3] == 25.0
    assert "SQNR vs fp32" not in State().available_overlays()  # other windows do not see it
    s.set_analysis(v1)  # another model: its overlays are not this one's, the default comes back
    assert s.overlay_name == "MACs share" and "SQNR vs fp32" not in s.available_overlays()
    assert s.overlay.block_values == pytest.approx({b["index"]: 100.0 * b["macs"] / v1.costs.totals()["macs"]
                                                    for b in v1.costs.block_totals()})


def test_comparison_field_and_event(v2, v1):
    s = State()
    seen = record(s)
    s.comparison = v1
    s.comparison = v1
    assert s.comparison is v1 and seen == [("comparison", v1)]
    s.comparison = None
    assert seen[-1] == ("comparison", None)


def test_events_connect_and_disconnect():
    s = State()
    got = []
    cb = s.events.convention.connect(got.append)
    s.convention = "thop"
    s.events.convention.disconnect(cb)
    s.convention = "paddle"
    assert got == ["thop"]
