"""Classifying a set of images with one or two models: the Classify tab's job, a generator job in the core's style.

The job gets the images still to do and one :class:`Slot` per model (the shown model, and the one it is
compared with). Per image it decodes once, makes the thumbnail from that decode, runs every slot's model
and yields an :class:`ImageDone` (streamed to the UI as it arrives) and a ``Progress``. Classifiers (one
onnxruntime session each) are built once per model: the panel keeps them across runs, keyed by slot key, and
another preset or decoding of the same model reuses its session. The job only reads the ``cache`` it is
given (a snapshot: the panel's own dict belongs to the UI thread) and yields a :class:`ClassifierReady` for
each classifier it builds, which the panel stores.

Results carry the ``key`` (slot, model serial, preset, fast decode) they were computed for. The panel keeps a
result only while its key is current, so events from a run that was cancelled for a newer request are still
good if they match, and harmless if they do not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from . import builder
from .errors import MbxError
from .inference import Classifier, Prediction, TopK, top_k
from .jobs import Job, Progress, checkpoint
from .labels import labels_for
from .loading import load
from .model import LoadedModel
from .preprocess import decode, draft_size, for_model

THUMB = 176  # the largest side of a thumbnail (the strip shows them smaller, the preview at this size)


@dataclass(frozen=True)
class Slot:
    name: str  # "A": the model on screen; "B": the one it is compared with
    key: tuple  # (slot, model serial, preset, fast decode): what a result of this slot is valid for
    preset: str | tuple | None  # None: the model's own; a name; ("custom", ((field, value), ...))
    model: LoadedModel | None = None
    load: Callable[[], LoadedModel] | None = None  # when the model is not loaded yet (a compare model)
    title: str = ""


@dataclass(frozen=True)
class Task:
    path: Path
    thumb: bool  # the image has no thumbnail yet
    slots: tuple[str, ...]  # the slots whose result is missing or stale


@dataclass
class SlotResult:
    key: tuple
    model_name: str
    preprocess: str  # Preprocess.describe()
    embedded: list[str] | None = None  # the model's own labels, for re-labelling with a user's file
    prediction: Prediction | None = None  # scores kept for re-slicing at another k
    error: str | None = None
    top1: int | None = None  # the best output index (the strip's agreement marks compare it)


@dataclass
class ImageDone:
    """Event: one image decoded (and classified by the slots asked)."""
    path: Path
    thumb: Image.Image | None = None
    size: tuple[int, int] | None = None  # the image's full size
    decoded: tuple[int, int] | None = None  # the size it was decoded at, when a JPEG decoded at a reduced scale
    decode_ms: float | None = None
    error: str | None = None  # the image could not be read
    results: dict[str, SlotResult] = field(default_factory=dict)


@dataclass
class ModelReady:
    """Event: a slot's model was loaded (or built) by the job."""
    slot: str
    key: tuple
    model: LoadedModel


@dataclass
class ClassifierReady:
    """Event: the job built a classifier for ``key``; the panel keeps it for later runs (the job never writes
    into the cache it was given)."""
    key: tuple
    classifier: Classifier


@dataclass
class SlotFailed:
    """Event: a slot's model could not be loaded or made into a classifier; its images are skipped."""
    slot: str
    key: tuple
    message: str


def _message(exc: Exception) -> str:
    return str(exc) if isinstance(exc, MbxError) else f"{type(exc).__name__}: {exc}"


def classify_job(tasks: list[Task], slots: list[Slot], cache: Mapping, fast: bool = False) -> Job:
    """Decode, thumbnail and classify ``tasks``; returns how many images were done. ``cache``: classifiers by
    slot key, read only. ``fast``: JPEGs decode at the reduced scale the slots' presets allow
    (``preprocess.decode``)."""
    n = len(tasks)
    by_name = {s.name: s for s in slots}
    ready: dict[str, Classifier] = {}
    failed: set[str] = set()
    yield Progress(0.0, f"classifying {n} image{'s' * (n != 1)}")
    for slot in slots:
        if slot.model is None:  # load it first, so its errors show even before there are images
            yield Progress(0.0, f"loading {slot.title or 'model'}")
            try:
                by_name[slot.name] = replace(slot, model=slot.load(), load=None)
            except Exception as exc:
                failed.add(slot.name)
                yield SlotFailed(slot.name, slot.key, _message(exc))
                continue
            yield ModelReady(slot.name, slot.key, by_name[slot.name].model)
    for i, task in enumerate(tasks):
        wanted = [by_name[s] for s in task.slots if s in by_name and s not in failed]
        for slot in wanted:
            if slot.name in ready:
                continue
            clf = cache.get(slot.key)
            if clf is None:
                yield Progress(i / n, f"preparing {slot.title or 'model'}")
                try:
                    check_image_input(slot.model)
                    pre = preprocess_for(slot.model, slot.preset)
                    # the same model under another preset or decoding shares its onnxruntime session
                    same = next((c for k, c in cache.items() if k[:2] == slot.key[:2]), None)
                    clf = same.with_preprocess(pre) if same else Classifier(slot.model, pre)
                except Exception as exc:  # a model that cannot run here: say so, go on with the other slot
                    failed.add(slot.name)
                    yield SlotFailed(slot.name, slot.key, _message(exc))
                    continue
                yield ClassifierReady(slot.key, clf)
            ready[slot.name] = clf
        wanted = [s for s in wanted if s.name in ready]
        yield _one(task, wanted, ready, fast)
        yield Progress((i + 1) / n, f"classified {task.path.name} ({i + 1}/{n})")
    return n


def check_image_input(model: LoadedModel) -> None:
    # The Classifier takes any model; one whose input is not an image batch would fail on every image
    # with onnxruntime's rank message. Say it once, in words.
    spec = model.inputs[0]
    if len(spec.shape) != 4:
        dims = "×".join(str(d) for d in spec.shape)
        raise MbxError(f"{model.name} cannot classify images: its input '{spec.name}' is {dims}, not an image "
                       "batch (N×C×H×W or N×H×W×C).")


def _one(task: Task, slots: list[Slot], ready: dict[str, Classifier], fast: bool = False) -> ImageDone:
    done = ImageDone(task.path)
    t0 = time.perf_counter()
    try:
        image, full = decode(task.path, draft_for=_draft_for([ready[s.name].preprocess for s in slots], fast))
    except Exception as exc:  # ImageError, or a decoder's own complaint: an error entry, not a crash
        done.error = _message(exc)
        return done
    done.decode_ms = (time.perf_counter() - t0) * 1e3
    if slots:
        done.size = full
        done.decoded = image.size if image.size != full else None
    if task.thumb:
        thumb = image.copy()
        thumb.thumbnail((THUMB, THUMB), Image.BILINEAR)
        done.thumb = thumb
    for slot in slots:
        checkpoint()  # a model may take long on a large input: a cancel need not wait for the next image
        clf = ready[slot.name]
        result = SlotResult(slot.key, clf.model.name, clf.preprocess.describe(), clf.model.labels)
        try:
            result.prediction = clf.classify(image, k=1, full_size=full)
            result.top1 = int(np.argmax(result.prediction.scores))  # ties: the lowest index, as top_k orders
        except Exception as exc:
            result.error = _message(exc)
        done.results[slot.name] = result
    return done


def preprocess_for(model: LoadedModel, choice: str | tuple | None):
    """The preprocessing a preset choice means for ``model``: a custom choice carries every option the user
    set, on top of the preset the model's source implies (its input size, layout and type stay)."""
    if isinstance(choice, tuple):
        return for_model(model, None, **dict(choice[1]))
    return for_model(model, choice)


def _draft_for(presets: list, fast: bool) -> tuple[int, int] | None:
    """The size one decode must serve: thumbnails alone need little; every model's preset must allow a reduced
    decode (antialiased presets, ``fast`` on), and the largest of their sizes wins."""
    if not presets:
        return THUMB, THUMB
    if not fast or any(p.interpolation != "pil" for p in presets):
        return None
    sizes = [draft_size(p) for p in presets]
    return max(w for w, _ in sizes), max(h for _, h in sizes)


def result_topk(result: SlotResult, k: int, user: list[str] | None) -> list[TopK]:
    scores = result.prediction.scores
    return top_k(scores, k, labels_for(scores.size, result.embedded, user))


def load_model(path: Path) -> Callable[[], LoadedModel]:
    return lambda: load(path)


def build_model(values: dict) -> Callable[[], LoadedModel]:
    """A builder dialog's values (``analysis.build_job``'s keywords) as a loader."""
    v = dict(values)
    args = (v.pop("family"), v.pop("width", 1.0), v.pop("resolution", 224), v.pop("num_classes", 1000))
    return lambda: builder.build(*args, **v)
