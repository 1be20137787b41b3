"""Benchmark reports: report.json, report.md and one self-contained report.html with inline SVG plots.

The writers are generic over one result structure, so every benchmark (`rag.qa_eval`, `rag.xquad`) can call
`write_reports(result, out_dir)`:

    result = {
        "title": "Newsletter QA — mmsp-dev",              # optional: heading of report.md / report.html
        "meta": {"commit": "…", "dataset": {…}, …},       # optional, free-form JSON; scalars are listed
        "systems": {                                       # required; the first system is the baseline
            "default": {                                   # system (configuration) name
                "all": {                                   # slice: "all", a language, a direction …
                    "R@1": 0.81,                           # a metric is a bare number, or a cell:
                    "abstention_f1": {"value": 0.91,       #   the figure (None when not measured)
                                      "ci": [0.85, 0.96],  #   optional 95% confidence interval
                                      "n": 169,            #   optional sample size
                                      "delta": [0.02, -0.01, 0.05]},  # optional: vs the first system, CI
                },
            },
        },
        "metrics": ["R@1", …],          # optional: the metrics the tables show, in order (default: all seen)
        "groups": {"Evidence": […], …}, # optional: one table per group of metrics (default: one table)
        "slices": ["all", "en", …],     # optional: slice order (default: as first seen)
        "bar_metrics": ["R@1"],         # optional: drawn as per-slice bars (default: the first metric)
        "distributions": {"latency (ms)": {"default": [12.1, …]}},  # optional: one histogram each
        "tables": [{"title": …, "columns": […], "rows": [[…], …]}],  # optional extra tables
        "rows": […],                    # optional per-item records: report.json only
    }

Every metric family `<stem>@<k>` with at least three k in the "all" slice (else the first slice) is drawn as a
curve over k, one line per system. All text from the result is escaped; the page loads nothing from outside.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#7F7F7F", "#000000")
_FAMILY = re.compile(r"^(.*)@(\d+)$")
_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK SC",sans-serif;
margin:2rem auto;max-width:1180px;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-variant-numeric:tabular-nums}
td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:right;vertical-align:top}
th{background:#f5f5f5}td.t,th.t{text-align:left}.wrap{overflow-x:auto}
.ci{color:#777;font-size:.85em}.sig{font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}
dt{font-weight:600}dd{margin:0;word-break:break-all}figure{margin:1rem 0}svg{max-width:100%;height:auto}
"""


# --- writing ------------------------------------------------------------------------------------------------


def write_reports(result: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write report.json, report.md, report.html and one `plot-<name>.svg` per plot; returns the paths."""
    if not result.get("systems"):
        raise ValueError("result has no systems to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
    paths["json"].write_text(
        json.dumps(jsonable(result), ensure_ascii=False, indent=1, allow_nan=False) + "\n", "utf-8"
    )
    paths["md"].write_text(render_markdown(result), "utf-8")
    figures = plots(result)
    paths["html"].write_text(render_html(result, figures), "utf-8")
    for name, (_title, svg) in figures.items():
        paths[f"plot-{name}"] = out_dir / f"plot-{name}.svg"
        paths[f"plot-{name}"].write_text(svg, "utf-8")
    return paths


def jsonable(obj: Any) -> Any:
    """A copy that `json.dumps(allow_nan=False)` accepts: NaN/inf → None, paths → str, tuples/sets → lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(jsonable(v) for v in obj)
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if hasattr(obj, "item"):  # numpy scalar
        return jsonable(obj.item())
    return str(obj)


# --- reading the structure ----------------------------------------------------------------------------------


def value_of(cell: Any) -> float | None:
    """The figure of a metric cell (bare number or {"value": …}); None when absent or not finite."""
    v = cell.get("value") if isinstance(cell, Mapping) else cell
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, int):
        return v  # counts stay integers in the tables
    return float(v) if math.isfinite(v) else None


def ci_of(cell: Any) -> tuple[float, float] | None:
    ci = cell.get("ci") if isinstance(cell, Mapping) else None
    if not ci or ci[0] is None or ci[1] is None or not all(math.isfinite(x) for x in ci):
        return None
    return float(ci[0]), float(ci[1])


def delta_of(cell: Any) -> tuple[float, float | None, float | None] | None:
    d = cell.get("delta") if isinstance(cell, Mapping) else None
    if not d or d[0] is None or not math.isfinite(d[0]):
        return None
    lo, hi = (d[1], d[2]) if len(d) == 3 else (None, None)
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return float(d[0]), None, None
    return float(d[0]), float(lo), float(hi)


def slices_of(result: Mapping[str, Any]) -> list[str]:
    order = list(result.get("slices") or [])
    for table in result["systems"].values():
        order += [s for s in table if s not in order]
    return order


def metrics_of(result: Mapping[str, Any]) -> list[str]:
    if result.get("metrics"):
        return list(result["metrics"])
    seen: list[str] = []
    for table in result["systems"].values():
        for row in table.values():
            seen += [m for m in row if m not in seen]
    return seen


def groups_of(result: Mapping[str, Any]) -> dict[str, list[str]]:
    return {str(k): list(v) for k, v in (result.get("groups") or {"Metrics": metrics_of(result)}).items()}


def fmt(v: float | None, signed: bool = False) -> str:
    """Integers as they are; scores (up to 1) with three decimals, larger figures (milliseconds) with fewer."""
    if v is None:
        return "–"
    if isinstance(v, int) and not signed:
        return str(v)
    digits = 3 if abs(v) <= 1 else 1 if abs(v) < 100 else 0
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _cell_parts(cell: Any) -> tuple[str, str]:
    """(figure, "(lo–hi)") of a cell; the second part is empty without a CI."""
    ci = ci_of(cell)
    return fmt(value_of(cell)), (f"({fmt(ci[0])}–{fmt(ci[1])})" if ci else "")


def _delta_parts(cell: Any) -> tuple[str, str, bool]:
    """(delta, "(lo, hi)", significant) of a cell's delta vs the baseline."""
    d = delta_of(cell)
    if d is None:
        return "–", "", False
    delta, lo, hi = d
    if lo is None or hi is None:
        return fmt(delta, signed=True), "", False
    return fmt(delta, signed=True), f"({fmt(lo, signed=True)}, {fmt(hi, signed=True)})", lo > 0 or hi < 0


# --- markdown -----------------------------------------------------------------------------------------------


class _Raw(str):
    """Markdown that is already escaped (bold markers around escaped text)."""


def _md(text: Any) -> str:
    """Table-safe markdown text on one line: no raw HTML (viewers render it: `<` and `&` escaped), pipes escaped."""
    text = " ".join(str(text).split()).replace("&", "&amp;").replace("<", "&lt;")
    return text.replace("|", "\\|")


def render_markdown(result: Mapping[str, Any]) -> str:
    """The tables: per system and metric group (figure and 95% CI), then deltas vs the first system."""
    systems = list(result["systems"])
    slices = slices_of(result)
    lines = [f"# {_md(result.get('title') or 'Benchmark report')}", ""]
    for key, value in _meta_items(result.get("meta") or {}):
        lines.append(f"- **{_md(key)}**: {_md(value)}")
    lines += [
        "",
        "Figures are means with 95% bootstrap confidence intervals in parentheses, where measured.",
        "",
    ]
    for group, metrics in groups_of(result).items():
        lines += [f"## {_md(group)}", ""]
        for name in systems:
            table = result["systems"][name]
            lines += [
                f"### {_md(name)}",
                "",
                _md_table(
                    ["slice", *metrics],
                    [
                        [s, *(" ".join(p for p in _cell_parts(table[s].get(m)) if p) for m in metrics)]
                        for s in _shown(slices, table, metrics)
                    ],
                ),
                "",
            ]
        for name in systems[1:]:
            table = result["systems"][name]
            rows = []
            for s in _shown(slices, table, metrics):
                cells = []
                for m in metrics:
                    d, ci, sig = _delta_parts(table[s].get(m))
                    text = f"{d} {ci}".strip()
                    cells.append(_Raw(f"**{_md(text)}**") if sig else text)
                rows.append([s, *cells])
            lines += [
                f"### {_md(name)} − {_md(systems[0])} (bold: the 95% CI excludes 0)",
                "",
                _md_table(["slice", *metrics], rows),
                "",
            ]
    for extra in result.get("tables") or []:
        lines += [f"## {_md(extra['title'])}", "", _md_table(extra["columns"], extra["rows"], numeric=False), ""]
    return "\n".join(lines).rstrip() + "\n"


def _shown(slices: Sequence[str], table: Mapping[str, Any], metrics: Sequence[str]) -> list[str]:
    """The slices of a system with a figure for at least one of `metrics` (no rows of dashes)."""
    return [s for s in slices if s in table and any(value_of(table[s].get(m)) is not None for m in metrics)]


def _md_table(columns: Sequence[Any], rows: Sequence[Sequence[Any]], numeric: bool = True) -> str:
    """A markdown table; with `numeric` every column but the first is right-aligned."""
    head = "| " + " | ".join(_md(c) for c in columns) + " |"
    rule = "|" + "|".join(":--" if i == 0 or not numeric else "--:" for i in range(len(columns))) + "|"
    body = ["| " + " | ".join(c if isinstance(c, _Raw) else _md(c) for c in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def _meta_items(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Scalars of `meta` and of its nested mappings, as (dotted key, text); the rest is in JSON only."""
    out: list[tuple[str, str]] = []
    for key, value in meta.items():
        if isinstance(value, Mapping):
            out += [(f"{key}.{k}", _scalar(v)) for k, v in value.items() if _is_scalar(v)]
        elif _is_scalar(value):
            out.append((str(key), _scalar(value)))
    return out


def _is_scalar(v: Any) -> bool:
    return (
        v is None
        or isinstance(v, (str, int, float, bool, Path))
        or (isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, float)) for x in v))
    )


def _scalar(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return "–" if v is None else str(v)


# --- html ---------------------------------------------------------------------------------------------------


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def render_html(result: Mapping[str, Any], figures: Mapping[str, tuple[str, str]] | None = None) -> str:
    """One page, no scripts, no external resources (a CSP forbids them): meta, plots, tables."""
    figures = plots(result) if figures is None else figures
    systems = list(result["systems"])
    slices = slices_of(result)
    title = str(result.get("title") or "Benchmark report")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        "<dl>"
        + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in _meta_items(result.get("meta") or {}))
        + "</dl>",
        "<p>Figures are means with 95% bootstrap confidence intervals (grey), where measured; "
        "full per-item rows are in report.json.</p>",
    ]
    if figures:
        out.append("<h2>Plots</h2>")
        out += [f'<figure id="plot-{_e(name)}">{svg}</figure>' for name, (_t, svg) in figures.items()]
    for group, metrics in groups_of(result).items():
        out.append(f"<h2>{_e(group)}</h2>")
        for name in systems:
            table = result["systems"][name]
            rows = []
            for s in _shown(slices, table, metrics):
                cells = "".join(
                    f"<td>{_e(v)} <span class=ci>{_e(ci)}</span></td>"
                    for v, ci in (_cell_parts(table[s].get(m)) for m in metrics)
                )
                rows.append(f'<tr><th class="t">{_e(s)}</th>{cells}</tr>')
            out.append(_html_table(f"{name}", metrics, rows))
        for name in systems[1:]:
            table = result["systems"][name]
            rows = []
            for s in _shown(slices, table, metrics):
                cells = ""
                for m in metrics:
                    d, ci, sig = _delta_parts(table[s].get(m))
                    cells += f"<td{' class=sig' if sig else ''}>{_e(d)} <span class=ci>{_e(ci)}</span></td>"
                rows.append(f'<tr><th class="t">{_e(s)}</th>{cells}</tr>')
            out.append(_html_table(f"{name} − {systems[0]} (bold: the 95% CI excludes 0)", metrics, rows))
    for extra in result.get("tables") or []:
        rows = ["<tr>" + "".join(f'<td class="t">{_e(c)}</td>' for c in row) + "</tr>" for row in extra["rows"]]
        out.append(f"<h2>{_e(extra['title'])}</h2>")
        out.append(_html_table("", extra["columns"], rows, first_blank=False))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _html_table(caption: str, columns: Sequence[Any], rows: Sequence[str], first_blank: bool = True) -> str:
    head = ('<th class="t">slice</th>' if first_blank else "") + "".join(
        f"<th{' class=t' if not first_blank else ''}>{_e(c)}</th>" for c in columns
    )
    cap = f"<h3>{_e(caption)}</h3>" if caption else ""
    return f'{cap}<div class="wrap"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


# --- plots --------------------------------------------------------------------------------------------------


def plots(result: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """{name: (title, svg)}: metric@k curves, histograms of the distributions, per-slice bars."""
    systems = result["systems"]
    slices = slices_of(result)
    main = "all" if any("all" in t for t in systems.values()) else slices[0]
    out: dict[str, tuple[str, str]] = {}
    for stem, ks in _families(result, main).items():
        series: list[tuple[str, list[tuple[float, float, tuple[float, float] | None]]]] = []
        for name, table in systems.items():
            row = table.get(main, {})
            points = [(k, value_of(row.get(f"{stem}@{k}")), ci_of(row.get(f"{stem}@{k}"))) for k in ks]
            series.append((name, [(k, v, ci) for k, v, ci in points if v is not None]))
        title = f"{stem}@k, slice {main!r}"
        out[_slug(stem)] = (title, line_chart(title, "k", stem, series))
    for name, per_system in (result.get("distributions") or {}).items():
        title = f"{name}: distribution"
        out[_slug(name)] = (title, histogram(title, name, {s: list(v) for s, v in per_system.items()}))
    bar_metrics = result.get("bar_metrics") or metrics_of(result)[:1]
    for metric in bar_metrics:
        cats = [s for s in slices if any(value_of(t.get(s, {}).get(metric)) is not None for t in systems.values())]
        if not cats:
            continue
        bars = [
            (name, [(value_of(t.get(s, {}).get(metric)), ci_of(t.get(s, {}).get(metric))) for s in cats])
            for name, t in systems.items()
        ]
        title = f"{metric} by slice"
        out[f"bars-{_slug(metric)}"] = (title, bar_chart(title, metric, cats, bars))
    return out


def _families(result: Mapping[str, Any], main: str) -> dict[str, list[int]]:
    ks: dict[str, set[int]] = {}
    for table in result["systems"].values():
        for metric, cell in table.get(main, {}).items():
            m = _FAMILY.match(metric)
            if m and value_of(cell) is not None:
                ks.setdefault(m.group(1), set()).add(int(m.group(2)))
    return {stem: sorted(k) for stem, k in ks.items() if len(k) >= 3}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "plot"


def _svg_open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="system-ui,sans-serif" font-size="12">',
        f"<title>{_e(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="{width / 2:.0f}" y="20" text-anchor="middle" font-size="14" font-weight="600">{_e(title)}</text>',
    ]


def _nice_ticks(top: float, count: int = 5) -> list[float]:
    """0 and round steps up to at least `top`."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def _y_axis(lines: list[str], ticks: Sequence[float], x0: float, x1: float, y: Any, label: str) -> None:
    for t in ticks:
        yy = y(t)
        lines.append(f'<line x1="{x0}" x2="{x1}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e5e5e5"/>')
        lines.append(f'<text x="{x0 - 6}" y="{yy + 4:.1f}" text-anchor="end">{_e(f"{round(t, 6):g}")}</text>')
    mid = (y(ticks[0]) + y(ticks[-1])) / 2
    lines.append(f'<text transform="translate(14 {mid:.1f}) rotate(-90)" text-anchor="middle">{_e(label)}</text>')


def _legend(lines: list[str], names: Sequence[str], x: float, y: float) -> None:
    for i, name in enumerate(names):
        yy = y + 18 * i
        lines.append(f'<rect x="{x}" y="{yy - 9}" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>')
        lines.append(f'<text x="{x + 18}" y="{yy + 1}">{_e(name)}</text>')


def line_chart(
    title: str,
    x_label: str,
    y_label: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float, tuple[float, float] | None]]]],
) -> str:
    """One line per series over numeric x, with a shaded CI band where given.

    Scores (all in [0, 1]) that stay high get a zoomed y axis starting at a round value below the lowest one,
    so close configurations stay apart; the axis labels say where it starts.
    """
    width, height, left, right, top, bottom = 680, 380, 60, 170, 40, 50
    xs = sorted({p[0] for _n, pts in series for p in pts}) or [0.0, 1.0]
    ys = [v for _n, pts in series for _x, v, ci in pts for v in (v, *(ci or ()))]
    scores = bool(ys) and min(ys) >= 0 and max(ys) <= 1.0
    y_lo = max(0.0, math.floor(min(ys) * 10 - 0.5) / 10) if scores and min(ys) >= 0.3 else 0.0
    ticks = [y_lo + t for t in _nice_ticks((1.0 if scores else max(ys or [1.0])) - y_lo)]
    y_top = ticks[-1]
    x_lo, x_hi = xs[0], xs[-1] if xs[-1] > xs[0] else xs[0] + 1

    def x(v: float) -> float:
        return left + (v - x_lo) / (x_hi - x_lo) * (width - left - right)

    def y(v: float) -> float:
        return height - bottom - (v - y_lo) / (y_top - y_lo) * (height - top - bottom)

    lines = _svg_open(width, height, title)
    _y_axis(lines, ticks, left, width - right, y, y_label)
    for v in xs:
        lines.append(f'<text x="{x(v):.1f}" y="{height - bottom + 16}" text-anchor="middle">{_e(fmt(v))}</text>')
    lines.append(
        f'<text x="{(left + width - right) / 2:.0f}" y="{height - 10}" text-anchor="middle">{_e(x_label)}</text>'
    )
    for i, (_name, pts) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        band = [(px, ci) for px, _v, ci in pts if ci]
        if len(band) >= 2:
            upper = " ".join(f"{x(px):.1f},{y(ci[1]):.1f}" for px, ci in band)
            lower = " ".join(f"{x(px):.1f},{y(ci[0]):.1f}" for px, ci in reversed(band))
            lines.append(f'<polygon points="{upper} {lower}" fill="{color}" fill-opacity="0.12" stroke="none"/>')
        if pts:
            path = " ".join(f"{x(px):.1f},{y(v):.1f}" for px, v, _ci in pts)
            lines.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
            lines += [
                f'<circle cx="{x(px):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"><title>{_e(_name)} '
                f"{_e(fmt(px))}: {_e(fmt(v))}</title></circle>"
                for px, v, _ci in pts
            ]
    _legend(lines, [n for n, _p in series], width - right + 16, top + 10)
    lines.append("</svg>")
    return "\n".join(lines)


def histogram(title: str, x_label: str, series: Mapping[str, Sequence[float]], bins: int = 20) -> str:
    """Overlaid histograms of each series on shared bins."""
    width, height, left, right, top, bottom = 680, 340, 60, 170, 40, 50
    values = [v for vs in series.values() for v in vs if math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    step = (hi - lo) / bins
    counts = {
        name: [sum(1 for v in vs if math.isfinite(v) and min(int((v - lo) / step), bins - 1) == b) for b in range(bins)]
        for name, vs in series.items()
    }
    c_top = max((c for cs in counts.values() for c in cs), default=1) or 1
    ticks = _nice_ticks(c_top)

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    def y(v: float) -> float:
        return height - bottom - v / ticks[-1] * (height - top - bottom)

    lines = _svg_open(width, height, title)
    _y_axis(lines, ticks, left, width - right, y, "count")
    tick_step = _nice_ticks(hi - lo)[1]
    for i in range(math.ceil(lo / tick_step), math.floor(hi / tick_step) + 1):
        v = i * tick_step
        lines.append(f'<text x="{x(v):.1f}" y="{height - bottom + 16}" text-anchor="middle">{_e(fmt(v))}</text>')
    lines.append(
        f'<text x="{(left + width - right) / 2:.0f}" y="{height - 10}" text-anchor="middle">{_e(x_label)}</text>'
    )
    for i, (name, cs) in enumerate(counts.items()):
        color = PALETTE[i % len(PALETTE)]
        for b, c in enumerate(cs):
            if c:
                x0, x1 = x(lo + b * step), x(lo + (b + 1) * step)
                lines.append(
                    f'<rect x="{x0:.1f}" y="{y(c):.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
                    f'height="{y(0) - y(c):.1f}" fill="{color}" fill-opacity="0.45" stroke="{color}">'
                    f"<title>{_e(name)}: {c} in [{_e(fmt(lo + b * step))}, "
                    f"{_e(fmt(lo + (b + 1) * step))})</title></rect>"
                )
    _legend(lines, list(counts), width - right + 16, top + 10)
    lines.append("</svg>")
    return "\n".join(lines)


def bar_chart(
    title: str,
    y_label: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[tuple[float | None, tuple[float, float] | None]]]],
) -> str:
    """Grouped bars: one group per category, one bar per series, with CI whiskers where given."""
    n = max(len(series), 1)
    bar = 14
    group = n * bar + 18
    left, right, top, bottom = 60, 170, 40, 90
    width = max(680, left + right + group * len(categories))
    height = 380
    ys = [v for _n, pts in series for v, ci in pts for v in (v, *(ci or ())) if v is not None]
    y_top = 1.0 if ys and max(ys) <= 1.0 else max(ys or [1.0])
    ticks = _nice_ticks(y_top)

    def y(v: float) -> float:
        return height - bottom - v / ticks[-1] * (height - top - bottom)

    lines = _svg_open(width, height, title)
    _y_axis(lines, ticks, left, width - right, y, y_label)
    for c, cat in enumerate(categories):
        gx = left + 10 + c * group
        cx = gx + n * bar / 2
        lines.append(
            f'<text transform="translate({cx:.1f} {height - bottom + 12}) rotate(-35)" '
            f'text-anchor="end">{_e(cat)}</text>'
        )
        for i, (name, pts) in enumerate(series):
            v, ci = pts[c]
            if v is None:
                continue
            color = PALETTE[i % len(PALETTE)]
            bx = gx + i * bar
            lines.append(
                f'<rect x="{bx:.1f}" y="{y(v):.1f}" width="{bar - 2}" height="{y(0) - y(v):.1f}" '
                f'fill="{color}"><title>{_e(name)} · {_e(cat)}: {_e(fmt(v))}</title></rect>'
            )
            if ci:
                mx = bx + (bar - 2) / 2
                lines.append(
                    f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{y(ci[0]):.1f}" y2="{y(ci[1]):.1f}" stroke="#333"/>'
                )
    _legend(lines, [name for name, _p in series], width - right + 16, top + 10)
    lines.append("</svg>")
    return "\n".join(lines)
