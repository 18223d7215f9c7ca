"""Labels, top-k and the reused onnxruntime session."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper
from PIL import Image

from mbexplorer.core.inference import Classifier, ends_in_softmax, softmax
from mbexplorer.core.labels import fits, imagenet_classes, label_at, labels_for, read_label_file
from mbexplorer.core.model import from_proto


def test_imagenet_labels_1000_and_1001():
    c = imagenet_classes()
    assert len(c) == 1000 and c[0] == "tench, Tinca tinca" and c[285] == "Egyptian cat"
    assert labels_for(1001)[0] == "background" and labels_for(1001)[286] == "Egyptian cat"
    assert labels_for(1000)[285] == "Egyptian cat"
    assert labels_for(3) == ["class 0", "class 1", "class 2"]
    assert labels_for(3, user=["a", "b", "c"]) == ["a", "b", "c"]
    assert labels_for(4, embedded=["a", "b", "c"]) == ["background", "a", "b", "c"]
    # a 1001-line file (background first) for a 1000-output model, as DATA.md's labels for the TF.js model
    assert labels_for(3, user=["background", "a", "b", "c"]) == ["a", "b", "c"]
    assert not fits(3, ["a"]) and labels_for(3, user=["a"]) == labels_for(3)  # does not fit: not used
    for n, user in ((1001, None), (1000, None), (4, ["a", "b", "c"]), (3, ["x", "a", "b", "c"]), (5, None)):
        assert [label_at(i, n, user=user) for i in range(n)] == labels_for(n, user=user)


def test_label_file_formats(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("cat\ndog\n\nbird\n")
    assert read_label_file(p) == ["cat", "dog", "bird"]
    p.write_text("0  background\n1  cat\n2: dog\n")
    assert read_label_file(p) == ["background", "cat", "dog"]
    p.write_text("1 cat\n2 dog\n3 bird\n")  # indexed from 1: fits a 3-output model without a shift
    assert labels_for(3, user=read_label_file(p)) == ["cat", "dog", "bird"]
    p.write_text("3 little pigs\nbig bad wolf\n")  # not every line indexed: taken literally
    assert read_label_file(p) == ["3 little pigs", "big bad wolf"]


def with_softmax(model):
    m = onnx.ModelProto()
    m.CopyFrom(model.model)
    out = m.graph.output[0].name
    m.graph.node[-1].output[0] = out + "_logits"
    m.graph.node.append(helper.make_node("Softmax", [out + "_logits"], [out], axis=1, name="softmax"))
    return from_proto(m, name="sm", source_format="onnx")


def test_softmax_only_for_logits(built):
    logits = built("mobilenet_v1", 0.25, 128)
    probs = with_softmax(logits)
    assert not ends_in_softmax(logits, "logits") and ends_in_softmax(probs, "logits")
    img = Image.fromarray((np.random.default_rng(0).random((200, 300, 3)) * 255).astype(np.uint8))
    a = Classifier(logits).classify(img, k=5)
    b = Classifier(probs).classify(img, k=5)
    assert [t.index for t in a.topk] == [t.index for t in b.topk]
    np.testing.assert_allclose([t.score for t in a.topk], [t.score for t in b.topk], rtol=1e-5)
    assert abs(a.scores.sum() - 1) < 1e-5


def test_topk_matches_onnxruntime_by_hand(built):
    m = built("mobilenet_v2", 0.5, 160)
    clf = Classifier(m)
    img = Image.fromarray((np.random.default_rng(1).random((240, 320, 3)) * 255).astype(np.uint8))
    pred = clf.classify(img, k=3)
    x = clf.preprocess(img)
    ref = softmax(ort.InferenceSession(m.model.SerializeToString()).run(None, {"input": x})[0][0])
    order = np.argsort(-ref)[:3]
    assert [t.index for t in pred.topk] == list(order)
    assert [t.label for t in pred.topk] == [imagenet_classes()[i] for i in order]
    np.testing.assert_allclose([t.score for t in pred.topk], ref[order], rtol=1e-5)
    assert pred.latency_ms > 0 and set(pred.timings_ms) == {"decode", "preprocess", "infer", "topk"}


@pytest.mark.parametrize("k", [1, 5, 1000])
def test_k_is_clamped(built, k):
    clf = Classifier(built("mobilenet_v1", 0.25, 128))
    pred = clf.classify(Image.new("RGB", (64, 64), (120, 30, 200)), k=k)
    assert len(pred.topk) == min(k, 1000)
    scores = [t.score for t in pred.topk]
    assert scores == sorted(scores, reverse=True)


def test_classifier_runs_through_the_session_layer(built):
    from mbexplorer.core.runtime import Session

    clf = Classifier(built("mobilenet_v1", 0.25, 128), threads=1)
    assert isinstance(clf.runtime, Session) and clf.session is clf.runtime.session
    assert clf.runtime.providers == ["CPUExecutionProvider"]
    assert clf.session.get_session_options().intra_op_num_threads == 1
    assert clf.session.get_session_options().log_severity_level == 3  # quiet, as before
    assert clf.with_preprocess(clf.preprocess).runtime is clf.runtime  # a preset change builds no session
