"""The generic report writers: report.json / report.md / report.html and their inline SVG plots."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rag import report

HOSTILE = '<script>alert(1)</script><img src="http://evil.example/x.png">'


def result() -> dict:
    """Two systems, cells with CIs and deltas, a NaN, a hostile string in every kind of text."""

    def cell(v: float, lo: float, hi: float, delta: list | None = None) -> dict:
        c = {"value": v, "ci": [lo, hi], "n": 10}
        if delta:
            c["delta"] = delta
        return c

    return {
        "title": f"Bench {HOSTILE}",
        "meta": {"commit": "abc123", "dataset": {"name": HOSTILE, "questions": 10}, "deep": {"x": {"y": 1}}},
        "systems": {
            "base": {
                "all": {f"R@{k}": cell(0.5 + k / 40, 0.4, 0.9) for k in (1, 3, 5, 10)} | {"MRR@10": 0.7, "n": 10},
                HOSTILE: {"R@1": cell(0.4, 0.2, 0.6), "MRR@10": math.nan, "n": 4},
            },
            "new": {
                "all": {f"R@{k}": cell(0.6 + k / 40, 0.5, 1.0, [0.1, 0.02, 0.2]) for k in (1, 3, 5, 10)}
                | {"MRR@10": {"value": 0.75, "delta": [0.05, -0.1, 0.2]}, "n": 10},
                HOSTILE: {"R@1": cell(0.5, 0.3, 0.7, [0.1, -0.05, 0.3]), "n": 4},
            },
        },
        "groups": {"Ranking": ["R@1", "R@3", "MRR@10"], "Counts": ["n"]},
        "bar_metrics": ["R@1"],
        "distributions": {"latency (ms)": {"base": [10.0, 12.0, 15.0, 40.0], "new": [8.0, 9.0, math.nan]}},
        "tables": [{"title": "Worst", "columns": ["id", "question"], "rows": [["q1", HOSTILE], ["q2", "a | b"]]}],
        "rows": [{"id": "q1", "question": HOSTILE, "score": math.inf}],
    }


def test_write_reports_files_and_json(tmp_path: Path) -> None:
    paths = report.write_reports(result(), tmp_path / "out")
    assert {"json", "md", "html", "plot-r", "plot-latency_ms", "plot-bars-r_1"} <= set(paths)
    assert all(p.exists() for p in paths.values())
    data = json.loads(paths["json"].read_text("utf-8"))  # strict JSON: NaN and inf became null
    assert data["systems"]["base"][HOSTILE]["MRR@10"] is None and data["rows"][0]["score"] is None
    assert data["meta"]["commit"] == "abc123" and data["systems"]["new"]["all"]["R@1"]["delta"] == [0.1, 0.02, 0.2]


def test_markdown_tables(tmp_path: Path) -> None:
    md = report.render_markdown(result())
    assert "## Ranking" in md and "### base" in md and "### new − base" in md
    assert "| all | 0.525 (0.400–0.900) | 0.575 (0.400–0.900) | 0.700 |" in md
    assert "**+0.100 (+0.020, +0.200)**" in md  # CI excludes 0: bold
    assert "| +0.050 (-0.100, +0.200) |" in md  # CI spans 0: plain
    assert "| – |" in md  # NaN shows as a dash
    assert "a \\| b" in md  # pipes in text don't break the table
    assert "<script" not in md and "<img" not in md and "&lt;script>alert(1)&lt;/script>" in md
    assert "- **commit**: abc123" in md and "- **dataset.questions**: 10" in md and "deep" not in md


def test_html_is_self_contained_and_escaped() -> None:
    page = report.render_html(result())
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"<[^>]*\s(src|href)\s*=", page, re.I)  # no attribute loads anything
    assert not re.search(r"url\(|@import|<link|<iframe|<object|<embed", page, re.I)
    assert "default-src 'none'" in page
    assert page.count("<svg") == 3 and page.count("<table") == 2 * 2 + 1 + 1 + 1  # 2 groups × 2 systems + Δ + extra


def test_plots_are_valid_svg() -> None:
    figures = report.plots(result())
    assert list(figures) == ["r", "latency_ms", "bars-r_1"]  # R@k has >= 3 k; MRR@10 alone is no curve
    for _title, svg in figures.values():
        root = ET.fromstring(svg)  # well-formed XML, escaped text
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert HOSTILE not in svg
    curve = figures["r"][1]
    assert curve.count("<polyline") == 2 and curve.count("<polygon") == 2  # a line and a CI band per system
    bars = figures["bars-r_1"][1]
    assert bars.count("<rect") >= 2 * 2 and "&lt;script&gt;" in bars  # the hostile slice name, escaped


def test_bare_numbers_like_xquad(tmp_path: Path) -> None:
    """The XQuAD benchmark's structure: bare floats, no CIs; deltas are simply absent."""
    xquad = {
        "systems": {
            "use": {"en->en": {"R@1": 0.8, "R@5": 0.9}, "zh->en": {"R@1": 0.6, "R@5": 0.8}},
            "hybrid": {"en->en": {"R@1": 0.85, "R@5": 0.95}, "zh->en": {"R@1": 0.7, "R@5": 0.85}},
        }
    }
    paths = report.write_reports(xquad, tmp_path)
    md = paths["md"].read_text("utf-8")
    assert "| en->en | 0.800 | 0.900 |" in md and "| zh->en | – | – |" in md  # no delta given
    assert "<svg" in paths["html"].read_text("utf-8")  # bars for the first metric


def test_helpers() -> None:
    assert report.value_of({"value": 0.5}) == 0.5 and report.value_of(3) == 3 and report.value_of(math.nan) is None
    assert report.value_of({"ci": [0, 1]}) is None and report.value_of(True) is None
    assert report.fmt(0.12345) == "0.123" and report.fmt(1.0) == "1.000" and report.fmt(169) == "169"
    assert report.fmt(805.4) == "805" and report.fmt(12.34) == "12.3" and report.fmt(None) == "–"
    assert report.fmt(0.05, signed=True) == "+0.050"
    assert report.jsonable({"a": (1, math.nan), "b": Path("/x"), "c": {2, 1}}) == {
        "a": [1, None],
        "b": "/x",
        "c": [1, 2],
    }
    with pytest.raises(ValueError, match="no systems"):
        report.write_reports({"systems": {}}, Path("/nonexistent"))
