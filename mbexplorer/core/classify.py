"""Classifying a set of images with one or two models: the Classify tab's job, a generator job in the core's style.

The job gets the images still to do and one :class:`Slot` per model (the shown model, and the one it is
compared with). Per image it decodes once per way of decoding, makes the thumbnail, runs every slot's model
and yields an :class:`ImageDone` (streamed to the UI as it arrives) and a ``Progress``. Each slot's result
keeps a small picture of the input tensor its model was fed (:class:`TensorView`), for the details. Classifiers (one
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
from .decoding import decode
from .errors import MbxError
from .inference import Classifier, Prediction, TopK, top_k
from .jobs import Job, Progress, checkpoint
from .labels import labels_for
from .loading import load
from .model import LoadedModel
from .preprocess import Preprocess, draft_size, for_model, image_size, load_approximate

THUMB = 176  # the largest side of a thumbnail (the strip shows them smaller, the preview at this size)
TENSOR_VIEW = 128  # the largest side of a TensorView picture (the size the details show it at)


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
class TensorView:
    """What the model was fed, for showing: the input tensor back as 8-bit RGB pixels (the preset's scale, mean
    and std inverted; raw pixels as they are), at most ``TENSOR_VIEW`` px a side, with the tensor's own facts.
    Only this small picture is kept: a folder of thousands of float tensors would not fit in memory."""
    image: np.ndarray  # HxWx3 uint8 RGB
    shape: tuple[int, ...]
    dtype: str
    min: float
    max: float


@dataclass
class SlotResult:
    key: tuple
    model_name: str
    preprocess: str  # Preprocess.describe()
    embedded: list[str] | None = None  # the model's own labels, for re-labelling with a user's file
    prediction: Prediction | None = None  # scores kept for re-slicing at another k
    error: str | None = None
    top1: int | None = None  # the best output index (the strip's agreement marks compare it)
    reference: str = ""  # what the preset reproduces (Preprocess.reference)
    tensor: TensorView | None = None  # the input tensor the scores came from, as a small picture


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
    pixels: dict[tuple, tuple] = {}  # one decode per way of decoding, shared by the slots that use it
    try:
        if task.thumb:  # for showing: upright, transparency over white, at a small JPEG scale
            image, full = decode(task.path, (THUMB, THUMB))
            image.thumbnail((THUMB, THUMB), Image.BILINEAR)
            done.thumb, done.size = image, full
        for slot in slots:
            pre = ready[slot.name].preprocess
            key = (pre.decoder, pre.alpha, draft_size(pre) if fast else None)
            if key not in pixels:
                pixels[key] = load_approximate(task.path, pre) if fast else (pre.picture(task.path), None)
    except Exception as exc:  # ImageError, or a decoder's own complaint: an error entry, not a crash
        done.error = _message(exc)
        return done
    done.decode_ms = (time.perf_counter() - t0) * 1e3
    for image, full in pixels.values():
        size = full or image_size(image)
        done.size = done.size or size
        if full is not None and image_size(image) != full:
            done.decoded = image_size(image)
    for slot in slots:
        checkpoint()  # a model may take long on a large input: a cancel need not wait for the next image
        clf = ready[slot.name]
        pre = clf.preprocess
        image, full = pixels[(pre.decoder, pre.alpha, draft_size(pre) if fast else None)]
        result = SlotResult(slot.key, clf.model.name, pre.describe(), clf.model.labels, reference=pre.reference)
        try:
            result.prediction = clf.classify(image, k=1, full_size=full)
            result.top1 = int(np.argmax(result.prediction.scores))  # ties: the lowest index, as top_k orders
            result.tensor = tensor_view(result.prediction.tensor, pre)
            result.prediction.tensor = None  # only its small view is kept: thousands of images stay in memory
        except Exception as exc:
            result.error = _message(exc)
        done.results[slot.name] = result
    return done


def tensor_view(tensor: np.ndarray, pre: Preprocess, limit: int = TENSOR_VIEW) -> TensorView | None:
    """The tensor as the pixels it encodes: raw uint8 as is, int8 shifted back by 128, floats through the
    preset's values step inverted (x = (t * std + mean) / scale), BGR turned back to RGB; None for a tensor
    that is not one 3-channel image."""
    t = np.asarray(tensor)
    if t.ndim != 4:
        return None
    hwc = t[0] if pre.layout == "NHWC" else t[0].transpose(1, 2, 0)
    if hwc.shape[2] != 3 or hwc.size == 0:
        return None
    if t.dtype == np.uint8:
        pixels = hwc
    elif t.dtype == np.int8:
        pixels = (hwc.astype(np.int16) + 128).astype(np.uint8)
    else:
        # mean and std are per tensor channel (BGR ones included), so invert before turning the channels
        scale, mean, std = pre.coefficients()
        values = (hwc.astype(np.float32) * std + mean) / scale
        pixels = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    if pre.channel_order == "BGR":
        pixels = pixels[..., ::-1]
    image = Image.fromarray(np.ascontiguousarray(pixels))
    if max(image.size) > limit:
        image.thumbnail((limit, limit), Image.BOX)
    return TensorView(np.asarray(image), tuple(int(d) for d in t.shape), str(t.dtype),
                      float(t.min()), float(t.max()))


def preprocess_for(model: LoadedModel, choice: str | tuple | None):
    """The preprocessing a preset choice means for ``model``: a custom choice carries every option the user
    set, on top of the preset the model's source implies (its input size, layout and type stay)."""
    if isinstance(choice, tuple):
        return for_model(model, None, **dict(choice[1]))
    return for_model(model, choice)


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
