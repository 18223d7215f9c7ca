"""`mbexplorer compare`: JSON keys, the text table, CSV output."""

import json

import pytest


def _refuse(name):
    pytest.fail(f"not strict JSON: {name}")


def test_compare_json_keys(mbx, shared_dir, tmp_path):
    model = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    imgs = [shared_dir / "images" / n for n in ("cat.bmp", "bird.bmp")]
    csv = tmp_path / "c.csv"
    r = mbx("compare", model, "--images", *imgs, "--json", "--csv", csv)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout, parse_constant=_refuse)  # strict JSON: no Infinity, -Infinity or NaN
    assert list(d) == ["tensors", "weights", "output", "unmatched", "fused"]
    keys = ["name", "quant_name", "node", "op_type", "block", "sqnr_db", "cosine", "mse", "max_abs", "rel_l2",
            "isolated_sqnr_db"]
    assert list(d["tensors"][1]) == keys
    # the input's Transpose is identical in both models; it has no isolated error (its input is the integer one)
    assert d["tensors"][0]["name"] == "input_nchw" and list(d["tensors"][0]) == keys + ["identical"]
    assert d["tensors"][0]["sqnr_db"] is None and d["tensors"][0]["isolated_sqnr_db"] is None
    assert all(isinstance(t["isolated_sqnr_db"], float) for t in d["tensors"][1:])
    # a float twin's weights are the dequantized ones: identical
    assert list(d["weights"][0]) == ["name", "node", "sqnr_db", "worst_channel", "worst_channel_sqnr_db", "identical"]
    assert all(w["identical"] and w["sqnr_db"] is None and w["worst_channel_sqnr_db"] is None for w in d["weights"])
    assert list(d["output"]) == ["top1_agreement", "top5_agreement", "sqnr_db"]
    assert len(csv.read_text().splitlines()) == len(d["tensors"]) + 1
    assert mbx("compare", model, "--images", *imgs, "--csv", csv).returncode == 1  # exists, no --force


def test_compare_two_files_text(mbx, shared_dir):
    m = shared_dir / "models"
    r = mbx("compare", m / "mobilenet_v1_0.25_224_1_default_1.tflite", m / "mobilenet_v1_0.25_224_quant.tflite",
            "--images", shared_dir / "images" / "cat.bmp")
    assert r.returncode == 0, r.stderr
    assert "< worst:" in r.stdout and "top-1 agreement" in r.stdout and "isolated" in r.stdout


def test_compare_float_alone_is_refused(mbx, shared_dir):
    r = mbx("compare", shared_dir / "models" / "mobilenet_v1_0.25_224_1_default_1.tflite",
            "--images", shared_dir / "images" / "cat.bmp")
    assert r.returncode == 1 and "float twin" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_compare_no_isolated(mbx, shared_dir):
    model = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    img = shared_dir / "images" / "cat.bmp"
    assert "--no-isolated" in mbx("compare", "--help").stdout
    full = json.loads(mbx("compare", model, "--images", img, "--json").stdout)
    r = mbx("compare", model, "--images", img, "--json", "--no-isolated")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout, parse_constant=_refuse)
    assert len(d["tensors"]) == 31 and len(d["fused"]) == 27
    assert all(t["isolated_sqnr_db"] is None for t in d["tensors"])
    assert not any("isolated_identical" in t for t in d["tensors"])
    # everything else is the same comparison
    drop = ("isolated_sqnr_db", "isolated_identical")
    assert [{k: v for k, v in t.items() if k not in drop} for t in d["tensors"]] == \
        [{k: v for k, v in t.items() if k not in drop} for t in full["tensors"]]
    assert d["output"] == full["output"] and d["weights"] == full["weights"]
    table = mbx("compare", model, "--images", img, "--no-isolated").stdout.splitlines()
    assert table[1].split()[:5] == ["tensor", "op", "SQNR", "dB", "isolated"]
    rows = table[2:2 + 31]  # after the title and the header: "< " marks the worst, then name, op, SQNR, isolated
    assert all(line[2:].split()[3] == "-" for line in rows) and table[2 + 31].startswith("< worst:")
