"""The Classify tab's job without Qt: it never writes into the classifier cache it is given (the panel's dict
belongs to the UI thread; the job sends each classifier it builds as an event), and a cancel stops it between
two models' runs on one image."""

from types import MappingProxyType

import numpy as np
import pytest
from PIL import Image

from mbexplorer.core.classify import ClassifierReady, ImageDone, Slot, Task, classify_job
from mbexplorer.core.errors import Cancelled
from mbexplorer.core.jobs import run

SMALL = ("mobilenet_v1", 0.25, 96)


@pytest.fixture
def images(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"img_{i}.png"
        Image.fromarray(np.full((120, 160, 3), 60 * i, np.uint8)).save(p)
        paths.append(p)
    return paths


def events_of(job):
    seen = []
    result = run(job, seen.append)
    return result, [e for e in seen if not hasattr(e, "fraction")]


def test_the_job_only_reads_its_cache_and_sends_what_it_builds(built, images):
    model = built(*SMALL)
    key = ("A", 1, None, True)
    tasks = [Task(p, True, ("A",)) for p in images]
    given = {}
    n, events = events_of(classify_job(tasks, [Slot("A", key, None, model)], given, fast=True))
    assert n == 3 and given == {}  # never written: the old job wrote here while the panel pruned it
    ready = [e for e in events if isinstance(e, ClassifierReady)]
    assert [e.key for e in ready] == [key]  # built once, for every image
    assert sum(isinstance(e, ImageDone) and "A" in e.results for e in events) == 3
    # the panel's cache, as a read-only snapshot: the next run reuses the classifier, another preset its session
    cache = MappingProxyType({key: ready[0].classifier})
    _, events = events_of(classify_job(tasks, [Slot("A", key, None, model)], cache, fast=True))
    assert not any(isinstance(e, ClassifierReady) for e in events)
    other_preset = ("A", 1, "tfslim", True)
    _, events = events_of(classify_job(tasks, [Slot("A", other_preset, "tfslim", model)], cache, fast=True))
    (other,) = [e for e in events if isinstance(e, ClassifierReady)]
    assert other.key == other_preset and other.classifier.session is ready[0].classifier.session
    assert dict(cache) == {key: ready[0].classifier}


def test_cancel_stops_between_two_models_on_one_image(built, images):
    """A checkpoint before each model's run: a cancel while model A works on an image skips model B there."""
    model = built(*SMALL)
    keys = {"A": ("A", 1, None, True), "B": ("B", 1, None, True)}
    _, events = events_of(classify_job([Task(images[0], False, ("A", "B"))],
                                       [Slot(s, k, None, model) for s, k in keys.items()], {}, fast=True))
    clfs = {e.key: e.classifier for e in events if isinstance(e, ClassifierReady)}
    flag, calls = {"cancel": False}, []

    class Spy:
        def __init__(self, name, clf):
            self.name, self.clf = name, clf
            self.model, self.preprocess = clf.model, clf.preprocess

        def classify(self, *args, **kwargs):
            calls.append(self.name)
            flag["cancel"] = True  # the user cancels while this model runs
            return self.clf.classify(*args, **kwargs)

    cache = {k: Spy(s, clfs[k]) for s, k in keys.items()}
    job = classify_job([Task(p, False, ("A", "B")) for p in images], [Slot(s, k, None, model) for s, k in keys.items()],
                       cache, fast=True)
    with pytest.raises(Cancelled):
        run(job, None, lambda: flag["cancel"])
    assert calls == ["A"]
