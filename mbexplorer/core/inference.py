"""Classifying images with onnxruntime: one session per model (built by ``runtime``), reused; top-k with labels;
timings.

Scores are probabilities: a model that ends in Softmax (possibly behind quantize/dequantize or a reshape)
is taken as it is; one that outputs logits gets a softmax here.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import MbxError
from .formatting import plural
from .labels import labels_for
from .model import LoadedModel
from .preprocess import Preprocess, for_model, load_approximate
from .runtime import Session

_PASS_THROUGH = {"Identity", "Reshape", "Squeeze", "Flatten", "DequantizeLinear", "QuantizeLinear", "Cast"}


@dataclass
class TopK:
    index: int  # the model's own output index
    label: str
    score: float


@dataclass
class Prediction:
    image: str
    topk: list[TopK]
    latency_ms: float  # the model's run alone
    timings_ms: dict[str, float] = field(default_factory=dict)  # decode, preprocess, infer, topk
    scores: np.ndarray | None = field(default=None, repr=False)
    tensor: np.ndarray | None = field(default=None, repr=False)  # the input it was fed (callers may drop it)


def ends_in_softmax(model: LoadedModel, output: str) -> bool:
    producer = {t: n for n in model.graph.node for t in n.output}
    t = output
    for _ in range(8):
        node = producer.get(t)
        if node is None:
            return False
        if node.op_type == "Softmax":
            return True
        if node.op_type not in _PASS_THROUGH:
            return False
        t = node.input[0]
    return False


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


class Classifier:
    """A model ready to classify: its onnxruntime session (built once), preprocessing and labels."""

    def __init__(self, model: LoadedModel, preprocess: Preprocess | None = None, labels: list[str] | None = None,
                 threads: int | None = None):
        self.model = model
        self.preprocess = preprocess or for_model(model)
        self.runtime = Session(model, threads=threads)
        self.session = self.runtime.session  # the onnxruntime session itself, for callers that time it bare
        self.input_name = self.runtime.input_names[0]
        outs = self.runtime.outputs
        self.output_name = next((o.name for o in outs if len(o.shape) == 2), outs[0].name)
        self.probabilities = ends_in_softmax(model, self.output_name)
        n = next((o.shape[-1] for o in outs if o.name == self.output_name), None)
        self.num_classes = n if isinstance(n, int) else None
        self.labels = labels_for(self.num_classes, model.labels, labels) if self.num_classes else None

    def with_preprocess(self, preprocess: Preprocess) -> Classifier:
        """The same model and session with other preprocessing: a change of preset builds no new session."""
        other = copy.copy(self)
        other.preprocess = preprocess
        return other

    def scores(self, tensor: np.ndarray) -> np.ndarray:
        out = self.runtime.run({self.input_name: tensor}, [self.output_name])[self.output_name]
        out = np.asarray(out, dtype=np.float32).reshape(out.shape[0], -1)[0]
        bad = int(np.count_nonzero(~np.isfinite(out)))
        if bad:  # a broken model (NaN weights, an overflow): no ranking of NaN is a result, and JSON has no NaN
            raise MbxError(f"{self.model.name} gave no usable scores: {bad} of its {plural(out.size, 'output')} "
                           f"{'is' if bad == 1 else 'are'} NaN or infinite (a broken model, or one this input "
                           "overflows).")
        if not self.probabilities:
            # some exports drop the Softmax node but still output probabilities
            if not (out.min() >= 0 and abs(float(out.sum()) - 1.0) < 1e-3):
                out = softmax(out)
        return out

    def classify(self, image: np.ndarray | Image.Image | str | Path, k: int = 5, fast: bool = False,
                 full_size: tuple[int, int] | None = None) -> Prediction:
        """Classify one image: a file (decoded as the preset's pipeline decodes it, or with ``fast`` at a
        reduced JPEG scale: see ``preprocess.load_approximate``), or pixels already decoded (with their
        ``full_size`` when they are a reduced-scale decode)."""
        t0 = time.perf_counter()
        name = "image"
        if isinstance(image, (str, Path)):
            name = str(image)
            if fast:
                image, full_size = load_approximate(image, self.preprocess)
            else:
                image = self.preprocess.picture(image)
        t1 = time.perf_counter()
        tensor = self.preprocess(image, full_size)
        t2 = time.perf_counter()
        scores = self.scores(tensor)
        t3 = time.perf_counter()
        top = self.topk(scores, k)
        t4 = time.perf_counter()
        timings = {"decode": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3, "infer": (t3 - t2) * 1e3,
                   "topk": (t4 - t3) * 1e3}
        return Prediction(name, top, timings["infer"], timings, scores, tensor)

    def topk(self, scores: np.ndarray, k: int) -> list[TopK]:
        return top_k(scores, k, self.labels)


def top_k(scores: np.ndarray, k: int, labels: list[str] | None) -> list[TopK]:
    """The k best scores with their labels, best first. Equal scores (common in a quantized model's uint8
    output) are ordered by index, so the top-1 is the same at every k, in ``predict`` and in the window."""
    k = max(1, min(k, scores.size))
    idx = np.argsort(-scores, kind="stable")[:k]
    labels = labels or []
    return [TopK(int(i), labels[i] if i < len(labels) else f"class {i}", float(scores[i])) for i in idx]
