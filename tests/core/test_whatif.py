"""whatif.py: every setting returns figures, and the best change is one of them."""

import math

import pytest

from mbexplorer.core.decoding import image_files
from mbexplorer.core.whatif import BASELINE, SETTINGS, augment, format_table, whatif


@pytest.fixture(scope="module")
def images(shared_dir):
    return image_files([shared_dir / "images"])


def test_every_setting_has_figures_and_the_best_is_one_of_them(built, images):
    result = whatif(built("mobilenet_v1", 0.25, 96), images[:2])
    rows = result["settings"]
    assert [r["label"] for r in rows] == [s.label for s in SETTINGS]
    for r in rows:
        assert not math.isnan(r["output_sqnr_db"]) and 0 <= r["top1"] <= 1 and 0 <= r["top5"] <= 1, r
        assert r["worst_node"] and r["worst_sqnr_db"] is not None, r
        assert r["comparison"]["tensors"] and r["comparison"]["output"]["sqnr_db"] is not None
        # CLE rows: measured against the model as given, with the equalized float model's own drift beside it;
        # the random BNs give nothing to absorb, so that drift is float rounding
        assert (r["float_drift_sqnr_db"] is not None) == r["cle"] and (not r["cle"] or r["float_drift_sqnr_db"] > 80)
    keep = next(r for r in rows if r["label"] == "worst layer float")
    assert keep["excluded"] == [rows[0]["worst_node"]]
    assert result["best"] in [r["label"] for r in rows[1:]]
    best = next(r for r in rows if r["label"] == result["best"])
    assert all(best["output_sqnr_db"] >= r["output_sqnr_db"] for r in rows[1:])
    assert result["best"] in format_table(result)


def test_augment_makes_the_files_asked(images, tmp_path):
    out = augment(images[:2], tmp_path, 8)
    assert len(out) == 8 and all(p.exists() for p in out) and len({p.name for p in out}) == 8


def test_excluded_nodes_stay_float_in_every_setting(built, images):
    m = built("mobilenet_v1", 0.25, 96)
    node = next(n.name for n in m.graph.node if n.op_type == "Conv")
    result = whatif(m, images[:1], [BASELINE, SETTINGS[-1]], exclude=[node])
    assert [r["excluded"] for r in result["settings"]] == [[node], [node]]
