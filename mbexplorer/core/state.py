"""What the window shows, in one place: the open analysis, the counting convention, the overlay, the model
compared against. Panels set it and observe it; none of them derives totals for another.

Qt-free: a tiny observer (``state.on("convention", callback)`` or ``state.events.convention.connect``).
Callbacks run synchronously, after the state and everything derived from it are current, with the new value.
Derived values (totals and block totals under the convention, the overlay shown) are computed on first use
after a change and cached until the next one, so five panels reading them cost one computation.

Events: ``analysis`` (a model was opened: everything changed), ``convention``, ``overlay`` (another overlay is
shown, or the shown one was recomputed), ``overlays`` (the list of available overlays changed) and
``comparison``, ``show_qdq`` (Quantize/Dequantize ops shown in the table and the graph, or folded away).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conventions import CONVENTIONS, DEFAULT_CONVENTION
from .overlays import DEFAULT_OVERLAY, REGISTRY, Overlay, OverlayRegistry

EVENTS = ("analysis", "convention", "overlay", "overlays", "comparison", "show_qdq")


class Event:
    def __init__(self, name: str):
        self.name = name
        self._callbacks: list[Callable] = []

    def connect(self, callback: Callable) -> Callable:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args) -> None:
        for cb in list(self._callbacks):  # a callback may disconnect itself
            cb(*args)


class Events:
    def __init__(self, names: tuple[str, ...]):
        for n in names:
            setattr(self, n, Event(n))


class State:
    def __init__(self, registry: OverlayRegistry | None = None):
        self.events = Events(EVENTS)
        # this window's overlays (a comparison's) over the app-wide producers
        self.overlays = OverlayRegistry(parent=registry if registry is not None else REGISTRY)
        self._analysis = None
        self._convention = DEFAULT_CONVENTION
        self._overlay_name = DEFAULT_OVERLAY
        self._comparison = None
        self._show_qdq = False  # display only: totals count Q/DQ ops either way
        self._derived: dict[str, Any] = {}
        self._overlay_cache: dict[str, Overlay | None] = {}

    def on(self, event: str, callback: Callable) -> Callable:
        return getattr(self.events, event).connect(callback)

    # inputs ----------------------------------------------------------------------------------------
    @property
    def analysis(self):
        return self._analysis

    @analysis.setter
    def analysis(self, analysis) -> None:
        self.set_analysis(analysis)

    def set_analysis(self, analysis) -> None:
        """Show another model (the same one again counts: a reopened file is a new analysis)."""
        self._analysis = analysis
        self._derived.clear()
        self._overlay_cache.clear()
        if self._overlay_name not in self.available_overlays():
            self._overlay_name = DEFAULT_OVERLAY  # e.g. the last model's comparison overlay
        self.events.analysis.emit(analysis)

    @property
    def convention(self) -> str:
        return self._convention

    @convention.setter
    def convention(self, name: str) -> None:
        if name not in CONVENTIONS:
            raise KeyError(f"unknown convention {name!r}")
        if name == self._convention:
            return
        self._convention = name
        self._derived.clear()
        for n in [n for n in self._overlay_cache if self.overlays.uses_convention(n)]:
            del self._overlay_cache[n]
        self.events.convention.emit(name)
        if self.overlays.uses_convention(self._overlay_name):
            self.events.overlay.emit(self.overlay)

    @property
    def overlay_name(self) -> str:
        return self._overlay_name

    @overlay_name.setter
    def overlay_name(self, name: str) -> None:
        if name not in self.available_overlays():
            raise KeyError(f"no overlay {name!r} for this model")
        if name == self._overlay_name:
            return
        self._overlay_name = name
        self.events.overlay.emit(self.overlay)

    @property
    def comparison(self):
        """The model (a LoadedModel) compared against, set by the Classify tab's compare once it is loaded;
        None when there is none."""
        return self._comparison

    @comparison.setter
    def comparison(self, model) -> None:
        if model is self._comparison:
            return
        self._comparison = model
        self.events.comparison.emit(model)

    @property
    def show_qdq(self) -> bool:
        """Whether Quantize/Dequantize ops get rows in the table and boxes in expanded blocks."""
        return self._show_qdq

    @show_qdq.setter
    def show_qdq(self, on: bool) -> None:
        if bool(on) == self._show_qdq:
            return
        self._show_qdq = bool(on)
        self.events.show_qdq.emit(self._show_qdq)

    # overlays --------------------------------------------------------------------------------------
    def available_overlays(self) -> list[str]:
        return self.overlays.names(self._analysis)

    def add_overlay(self, overlay: Overlay, show: bool = False) -> Overlay:
        """An overlay computed for the open model (a comparison's error per tensor)."""
        if self._analysis is None:
            raise ValueError("no model is open to add an overlay to")
        new = overlay.name not in self.available_overlays()
        self.overlays.add(overlay, self._analysis)
        self._overlay_cache.pop(overlay.name, None)
        if new:  # a streaming comparison re-adds its overlay: the list of names changes only the first time
            self.events.overlays.emit(self.available_overlays())
        if show or overlay.name == self._overlay_name:
            self._overlay_name = overlay.name
            self.events.overlay.emit(self.overlay)
        return overlay

    def overlay_for(self, name: str) -> Overlay | None:
        """Any available overlay of the open model under the current convention (cached)."""
        if self._analysis is None:
            return None
        if name not in self._overlay_cache:
            self._overlay_cache[name] = self.overlays.compute(name, self._analysis, self._convention)
        return self._overlay_cache[name]

    # derived ---------------------------------------------------------------------------------------
    @property
    def overlay(self) -> Overlay | None:
        """The overlay shown (graph colours, legend)."""
        return self.overlay_for(self._overlay_name)

    @property
    def totals(self) -> dict | None:
        """``CostReport.totals`` under the current convention."""
        return self._cached("totals", lambda costs: costs.totals(self._convention))

    @property
    def block_totals(self) -> list[dict]:
        """``CostReport.block_totals`` under the current convention."""
        return self._cached("block_totals", lambda costs: costs.block_totals(self._convention)) or []

    def _cached(self, key: str, compute: Callable):
        if self._analysis is None:
            return None
        if key not in self._derived:
            self._derived[key] = compute(self._analysis.costs)
        return self._derived[key]
