"""What ``mbexplorer predict`` prints: ties marked, a quantized model's zero scores not listed as a ranking (JSON
keeps every entry, marking ties), and a warning for a model with random weights."""

import json

from PIL import Image


def test_quantized_scores_ties_and_zeros(shared_dir, mbx):
    model = shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    cat = shared_dir / "images" / "cat.bmp"
    r = mbx("predict", model, cat, "--top-k", "8")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "warning" not in r.stdout  # trained weights
    top = [ln.split() for ln in lines[2:-2]]
    # three ranked classes, then three tied at 0.004 sharing rank 4 (listed by output index), then the zeros
    assert [t[0] for t in top] == ["1.", "2.", "3.", "4=", "4=", "4="]
    assert [t[2] for t in top[3:]] == ["729", "754", "812"]
    assert lines[-2].strip() == "995 more classes at 0.000"
    assert lines[-1].startswith("=: tied")
    assert " 0.000 " not in r.stdout  # no class is listed at zero

    r = mbx("predict", model, cat, "--top-k", "8", "--json")
    d = json.loads(r.stdout)
    assert "warning" not in d
    topk = d["results"][0]["topk"]
    assert len(topk) == 8  # complete, zeros included
    assert [t.get("tied", False) for t in topk] == [False, False, False, True, True, True, True, True]
    assert [t["score"] for t in topk[6:]] == [0.0, 0.0]


def test_parrot_stops_at_its_only_non_zero_score(shared_dir, mbx):
    model = shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    r = mbx("predict", model, shared_dir / "images" / "parrot.jpg", "--top-k", "3")
    assert r.returncode == 0, r.stderr
    body = [ln.strip() for ln in r.stdout.splitlines()[2:]]
    assert body[0].split()[:3] == ["1.", "0.996", "89"] and body[1] == "1000 more classes at 0.000"
    assert len(body) == 2  # no tie among what is listed: no legend


def test_random_weights_warn_in_text_and_json(tmp_path, mbx):
    model = tmp_path / "v1.onnx"
    assert mbx("build", "mobilenet_v1", "--width", "0.25", "--resolution", "96", "-o", model).returncode == 0
    img = tmp_path / "a.png"
    Image.new("RGB", (120, 100), (10, 200, 30)).save(img)
    r = mbx("predict", model, img, "--top-k", "3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1] == "warning: random weights: predictions are meaningless"
    assert [ln.split()[0] for ln in r.stdout.splitlines()[3:]] == ["1.", "2.", "3."]  # float scores: no ties
    r = mbx("predict", model, img, "--top-k", "3", "--json")
    d = json.loads(r.stdout)
    assert d["warning"] == "random weights: predictions are meaningless"
    assert all(set(t) == {"index", "label", "score"} for t in d["results"][0]["topk"])
