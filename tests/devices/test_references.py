"""Published reference figures: every number is the page's own, read here from the seed pages' tables (not copied
from the data file), and nothing is derived from them."""

from __future__ import annotations

import json
import re

import pytest

from mbexplorer.core.errors import MbxError
from mbexplorer.devices.references import MEANINGS, Point, parse, published

SEEDS = {"ascend": "003_05a3976093e3d162.txt", "paddle": "001_1b0e878997a6da72.txt",
         "rdk": "002_4edf62ba2e78d925.txt"}


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in ``text``: rows of stripped cells, the ``|---|`` rule dropped."""
    out, rows = [], []
    for line in text.splitlines() + [""]:
        line = line.strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells if c):
                rows.append(cells)
        elif rows:
            out.append(rows)
            rows = []
    return out


def table_with(text: str, header_part: str) -> list[list[str]]:
    found = [t for t in tables(text) if any(header_part in c for c in t[0])]
    assert len(found) == 1, f"one table whose header has {header_part!r}"
    return found[0]


def row(table: list[list[str]], first: str) -> dict[str, str]:
    """The row whose first cell is ``first``, keyed by header."""
    rows = [r for r in table[1:] if r[0] == first]
    assert len(rows) == 1, first
    return dict(zip(table[0], rows[0]))


@pytest.fixture(scope="module")
def seeds(shared_dir):
    return {k: (shared_dir / "seeds" / name).read_text(encoding="utf-8") for k, name in SEEDS.items()}


@pytest.fixture(scope="module")
def expected(seeds) -> dict[str, list[Point]]:
    """What each series must hold, read from the pages."""
    want: dict[str, list[Point]] = {}
    # Ascend ModelZoo: throughput by batch on 310 / 310P / T4 (the "最优batch" row is not a batch size)
    t = table_with(seeds["ascend"], "Throughput")
    for column, label in (("310", "Ascend 310"), ("310P", "Ascend 310P"), ("T4", "NVIDIA T4")):
        want[label] = [Point(int(r[0][2:]), float(dict(zip(t[0], r))[column]), None)
                       for r in t[1:] if re.fullmatch(r"bs\d+", r[0])]
    # PaddleClas: V100 TensorRT FP32 ms per batch size; SD855 ms at batch 1 per thread count
    t = table_with(seeds["paddle"], "FP32<br/>Batch Size=1")
    want["V100 TensorRT FP32"] = [Point(int(re.search(r"Batch Size=(\d+)", h).group(1)), None, float(v))
                                  for h, v in row(t, "MobileNetV1").items() if "Batch Size=" in h]
    t = table_with(seeds["paddle"], "SD855 time(ms)")
    for h, v in row(t, "MobileNetV1").items():
        m = re.search(r"bs=(\d+), thread=(\d+)", h)
        if m:
            n = int(m.group(2))
            want[f"SD855, {n} thread{'s' * (n > 1)}"] = [Point(int(m.group(1)), None, float(v))]
    # RDK X5: single-thread latency; multi-thread latency with the frame rate
    r = row(table_with(seeds["rdk"], "帧率"), "MobileNetv1")
    want["RDK X5, 1 thread"] = [Point(1, None, float(r["延迟/吞吐量(单线程)"]))]
    want["RDK X5, multi-thread"] = [Point(1, float(r["帧率"]), float(r["延迟/吞吐量(多线程)"]))]
    return want


def test_every_number_is_the_pages_own(expected):
    series = {s.label: s for s in published()}
    assert set(series) == set(expected)
    for label, points in expected.items():
        assert list(series[label].points) == points, label
    # what the tables hold, spot-checked by hand too (a parser bug must not pass silently)
    assert series["Ascend 310P"].points[-1] == Point(64, 14515.69, None)
    assert series["SD855, 4 threads"].points == (Point(1, None, 10.30),)
    assert series["V100 TensorRT FP32"].points[1] == Point(4, None, 1.57)


def test_labelled_with_the_page_and_honest_about_meaning(seeds):
    by_seed = {name: seeds[k] for k, name in SEEDS.items()}
    for s in published():
        text = by_seed[s.seed]
        assert s.url in text, (s.label, "the URL is one the page names")
        title = next(line[2:].strip() for line in text.splitlines() if line.startswith("# "))
        assert title in s.source and s.seed in s.source and s.url in s.source
        assert s.model == "MobileNetV1 1.0/224"
        assert s.meaning in MEANINGS and s.note
    by_label = {s.label: s for s in published()}
    assert by_label["Ascend 310"].meaning == "device_compute"  # ais_infer: NPU compute time
    assert by_label["NVIDIA T4"].meaning == "unknown"  # the page does not say
    # latency-only pages stay latency-only, and say why
    for label in ("V100 TensorRT FP32", "SD855, 1 thread", "RDK X5, 1 thread"):
        s = by_label[label]
        assert not s.has_throughput and s.has_latency and "Latency only" in s.note


def test_a_bad_references_file_is_a_clear_error():
    good = json.loads(json.dumps({"sources": {"a": {"seed": "s", "title": "t", "publisher": "p", "url": "u"}},
                                  "series": [{"label": "x", "device": "d", "tool": "t", "precision": "fp32",
                                              "meaning": "unknown", "source": "a", "points": [[1, 10.0, None]],
                                              "note": "n"}]}))
    assert parse(good)[0].points == (Point(1, 10.0, None),)
    for breaks in ({"meaning": "fast"}, {"points": [[1, None, None]]}, {"points": [[1, -3, None]]},
                   {"source": "nowhere"}):
        bad = json.loads(json.dumps(good))
        bad["series"][0].update(breaks)
        with pytest.raises(MbxError):
            parse(bad)
