"""Classification with the real models in ../shared: the Coral team's assertions with the coral preset, and
the fast JPEG path against the exact one."""

import pytest
from PIL import Image

from mbexplorer.core.inference import Classifier
from mbexplorer.core.loading import load
from mbexplorer.core.preprocess import for_model

# libcoral's classification tests on cat.bmp: expected index in the top 3 with at least this score
CORAL = [
    ("mobilenet_v1_0.25_128_quant.tflite", 283, 0.25),
    ("mobilenet_v1_0.5_160_quant.tflite", 286, 0.51),
    ("mobilenet_v2_1.0_224_quant.tflite", 286, 0.7),
    ("tf2_mobilenet_v2_1.0_224_ptq.tflite", 286, 0.6),
]


@pytest.mark.parametrize("name,index,threshold", CORAL)
def test_coral_assertions_hold_with_the_coral_preset(shared_dir, name, index, threshold):
    model = load(shared_dir / "models" / name)
    clf = Classifier(model)
    assert clf.preprocess.name == "coral"  # chosen from the source format
    pred = clf.classify(shared_dir / "images" / "cat.bmp", k=3)
    hits = [t for t in pred.topk if t.index == index]
    assert hits and hits[0].score >= threshold, pred.topk
    assert clf.labels[index] in ("tiger cat", "Egyptian cat")


@pytest.fixture(scope="module")
def photos(shared_dir, tmp_path_factory):
    """The shared images as 1080p JPEGs, the size a phone photo is dropped at."""
    d = tmp_path_factory.mktemp("photos")
    out = []
    for p in sorted((shared_dir / "images").iterdir()):
        if p.suffix in (".bmp", ".jpg"):
            q = d / (p.stem + ".jpg")
            Image.open(p).convert("RGB").resize((1920, 1080), Image.BICUBIC).save(q, quality=92)
            out.append(q)
    return out


@pytest.mark.parametrize("name,preset,bound", [
    ("mobilenet_v1_0.25_224_1_default_1.tflite", "torchvision", 0.02),
    ("mobilenet_v1_0.25_224_1_default_1.tflite", "timm", 0.04),
    ("mobilenet_v2_1.0_224_quant.tflite", "torchvision", 0.08),
])
def test_fast_jpeg_decode_changes_no_top1(shared_dir, photos, name, preset, bound):
    """The fast path (JPEG draft decoding at >= 2x the preset's size, crop placed in full-resolution
    coordinates) on 1080p photos. Measured: the float model's scores move by at most 0.0123 (torchvision) and
    0.0297 (timm's bicubic); the uint8 V2's by up to 0.0625, 16 output steps, which is also what +-1 level of noise
    on a tenth of its input pixels does to it. Top-1 never changes."""
    model = load(shared_dir / "models" / name)
    clf = Classifier(model, for_model(model, preset))
    worst = 0.0
    for photo in photos:
        exact = clf.classify(photo, k=5, fast=False)
        fast = clf.classify(photo, k=5, fast=True)
        assert fast.topk[0].index == exact.topk[0].index, photo.name
        worst = max(worst, float(abs(fast.scores - exact.scores).max()))
    assert worst < bound


def test_fast_decode_leaves_the_shared_images_exact(shared_dir):
    """The shared images are at most 929 px: none is twice the 256 px the presets resize from, so the fast
    path decodes them whole and every score is the exact path's."""
    model = load(shared_dir / "models" / "mobilenet_v1_0.25_224_1_default_1.tflite")
    for preset in ("torchvision", "timm", "keras"):
        clf = Classifier(model, for_model(model, preset))
        for image in sorted((shared_dir / "images").glob("*.*")):
            if image.suffix in (".bmp", ".jpg"):
                fast, exact = clf.classify(image, fast=True), clf.classify(image)
                assert (fast.scores == exact.scores).all(), image.name
