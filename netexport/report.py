"""Reports of a verification run, and merging the reports of several shards into one.

A report directory holds report.json (every cell, its figures and timings), report.md (the
supported-models table: rows models, a column per precision × backend, worst error per cell, then
notes, failures and where the time went), junit.xml (one testcase per cell, for CI) and report.html
(the table, plots of parity error and latency, and the cost table; self-contained: no scripts,
styles or fonts from elsewhere). The cost table and the run's floor are netexport.costs'.
"""

from __future__ import annotations

import html
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from . import atomic
from .errors import InputError
from .matrix import PRECISION_ORDER

STATUSES = ("pass", "fail", "xfail", "error", "skip", "built")
OK_STATUSES = frozenset({"pass", "xfail", "skip", "built"})
REPORT_FILES = ("report.json", "report.md", "junit.xml", "report.html")
BUILT_PREFIX = "built, not executed"


# ---- cells: ordering, counts, the figures shown per cell -----------------------------------------


def precision_rank(precision: str) -> tuple[int, str]:
    """fp32, fp16, int8 first in that order; anything else after them, alphabetically."""
    if precision in PRECISION_ORDER:
        return PRECISION_ORDER.index(precision), ""
    return len(PRECISION_ORDER), precision


def row(cell: dict) -> str:
    """A report row: the model, or the model's end-to-end graph (decode + NMS) as its own row."""
    return cell["model"] + (" --end2end" if cell.get("form") == "end2end" else "")


def cell_key(cell: dict) -> tuple[str, str, str]:
    return row(cell), cell["precision"], cell["backend"]


def sort_cells(cells: list[dict]) -> list[dict]:
    return sorted(cells, key=lambda c: (row(c), precision_rank(c["precision"]), c["backend"]))


def columns(cells: list[dict]) -> list[tuple[str, str]]:
    """(precision, backend) pairs present, precision-major; backends in order of first appearance."""
    backends = list(dict.fromkeys(c["backend"] for c in cells))
    present = {(c["precision"], c["backend"]) for c in cells}
    precisions = sorted({p for p, _ in present}, key=precision_rank)
    return [(p, b) for p in precisions for b in backends if (p, b) in present]


def models(cells: list[dict]) -> list[str]:
    return sorted({row(c) for c in cells})


def status_counts(cells: list[dict]) -> dict[str, int]:
    return {s: n for s in STATUSES if (n := sum(c["status"] == s for c in cells))}


def counts_text(cells: list[dict]) -> str:
    return ", ".join(f"{n} {s}" for s, n in status_counts(cells).items())


def exit_code(cells: list[dict]) -> int:
    """0 when every cell passed or is an expected outcome (xfail, skip, built); 1 otherwise."""
    return 0 if all(c["status"] in OK_STATUSES for c in cells) else 1


def reason(cell: dict) -> str:
    """A limitation or skip reason, or why a built engine was not executed ("" when none)."""
    engine = cell.get("engine")
    engine_reason = engine.get("reason") if isinstance(engine, dict) else None
    return cell.get("reason") or engine_reason or ""


def note(cell: dict) -> str:
    """`status: reason`; a built cell's reason may already say "built, not executed" (verify writes it so)."""
    text = reason(cell)
    if cell["status"] == "built":
        return text if text.startswith(BUILT_PREFIX) else f"{BUILT_PREFIX}: {text}"
    return f"{cell['status']}: {text}"


def engine_bytes(cell: dict) -> int | None:
    engine = cell.get("engine")  # a dict in verify's cells; a path when a cell is a flattened TrtResult
    if isinstance(engine, dict) and engine.get("bytes") is not None:
        return engine["bytes"]
    return cell.get("engine_bytes")


def worst_output(cell: dict) -> dict | None:
    outputs = [o for v in cell.get("verification") or [] for o in v.get("outputs", [])]
    return max(outputs, key=lambda o: o["error_ratio"]) if outputs else None


def error_ratio(cell: dict) -> float | None:
    """The worst output's error as a fraction of its tolerance, if the cell has a finite one."""
    worst = worst_output(cell)
    if worst is None or worst.get("problem") or not math.isfinite(worst["error_ratio"]):
        return None
    return worst["error_ratio"]


def figure(cell: dict) -> str:
    """Plain text: the worst error (max |Δ| or cosine), or a built engine's size."""
    worst = worst_output(cell)
    if worst is None:
        size = engine_bytes(cell)
        return f"{size / 1e6:.1f} MB" if cell["status"] == "built" and size is not None else ""
    if worst.get("problem"):
        return f"{worst['name']}: {worst['problem']}"
    tasks = [v["task"] for v in cell.get("verification") or [] if v.get("task")]
    if tasks and tasks[0]["name"] == "detections":  # end-to-end graphs compare detection sets
        return min(tasks, key=lambda t: t["value"])["detail"].split(" (")[0]
    if "atol" in worst["tolerance"]:
        return f"max |Δ| {worst['max_abs_err']:.2g}"
    return f"cos {worst['cosine']:.5f}"


def cell_text(cell: dict) -> str:
    detail = figure(cell)
    return f"{cell['status']} ({detail})" if detail else cell["status"]


def _md(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def cell_label(cell: dict) -> str:
    """cell_text for a markdown table (pipes escaped)."""
    return _md(cell_text(cell))


def _where(cell: dict) -> str:
    return f"{row(cell)} {cell['precision']}/{cell['backend']}"


# ---- report.md ------------------------------------------------------------------------------------


def _table_rows(cells: list[dict]) -> tuple[list[str], list[list[dict | None]]]:
    """Header labels and, per model, (model, task) plus the cell for each column (or None)."""
    cols = columns(cells)
    by_key = {cell_key(c): c for c in cells}
    header = [f"{p} · {b}" for p, b in cols]
    rows = [[by_key.get((m, p, b)) for p, b in cols] for m in models(cells)]
    return header, rows


def _task_of(model: str, cells: list[dict]) -> str:
    return next(c["task"] for c in cells if row(c) == model)


def _grouped_notes(cells: list[dict]) -> list[str]:
    """One line per distinct note; a note shared by many cells (no GPU here) lists them once."""
    by_note: dict[str, list[str]] = {}
    for cell in cells:
        by_note.setdefault(note(cell), []).append(_where(cell))
    lines = []
    for text, where in by_note.items():
        cells_text = where[0] if len(where) == 1 else f"{len(where)} cells ({', '.join(where[:3])}{', …' if len(where) > 3 else ''})"
        lines.append(f"- {_md(cells_text)}: {_md(text)}")
    return lines


# ---- the toolchain a run used ---------------------------------------------------------------------


def toolchain(meta: dict) -> dict[str, str]:
    """Package → version of the run; a merged report lists each version its shards used ("a / b")."""
    if isinstance(meta.get("toolchain"), dict):
        return dict(meta["toolchain"])
    versions: dict[str, list[str]] = {}
    for shard in meta.get("shards") or []:
        for package, version in toolchain(shard).items():
            seen = versions.setdefault(package, [])
            if version not in seen:
                seen.append(version)
    return {package: " / ".join(found) for package, found in versions.items()}


def toolchain_text(meta: dict) -> str:
    return ", ".join(f"{package} {version}" for package, version in toolchain(meta).items())


def markdown(cells: list[dict], meta: dict | None = None) -> str:
    header, rows = _table_rows(cells)
    lines = ["| model | task | " + " | ".join(header) + " |", "|" + "---|" * (len(header) + 2)]
    for model, row in zip(models(cells), rows):
        labels = [cell_label(c) if c else "" for c in row]
        lines.append("| " + " | ".join([_md(model), _md(_task_of(model, cells)), *labels]) + " |")
    notes = _grouped_notes([c for c in sort_cells(cells) if reason(c)])
    failures = [f"- {_where(c)}: {c['status']}: {'; '.join(c.get('failures') or ['no message'])}"
                for c in sort_cells(cells) if c["status"] in ("fail", "error")]
    out = [f"# netexport verification\n\n{len(cells)} cells: {counts_text(cells)}\n"]
    if meta and toolchain(meta):
        out.append(f"Toolchain: {_md(toolchain_text(meta))}\n")
    out += [*lines, ""]
    if notes:
        out += ["## notes", "", *notes, ""]
    if failures:
        out += ["## failures", "", *failures, ""]
    if meta is not None:
        from . import costs

        out.append(costs.markdown(costs.cost_table(cells, meta)))
    return "\n".join(out)


# ---- junit.xml ------------------------------------------------------------------------------------

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: str) -> str:
    """ElementTree escapes markup but not control characters, which XML 1.0 forbids (ANSI colours)."""
    return _XML_INVALID.sub("", str(text))


def _testcase(cell: dict) -> ET.Element:
    case = ET.Element("testcase", classname=_xml(f"netexport.{cell['task']}.{row(cell)}"),
                      name=_xml(f"{cell['precision']}-{cell['backend']}"), time=f"{cell.get('seconds') or 0:.3f}")
    status, failures = cell["status"], cell.get("failures") or []
    if status in ("fail", "error"):
        lines = failures or [f"{status} without a message"]
        tag = "failure" if status == "fail" else "error"
        ET.SubElement(case, tag, message=_xml(lines[0])).text = _xml("\n".join(lines))
    elif status in ("xfail", "skip"):
        skipped = ET.SubElement(case, "skipped", message=_xml(note(cell)))
        if failures:
            skipped.text = _xml("\n".join(failures))
    elif status == "built":
        ET.SubElement(case, "system-out").text = _xml(note(cell))
    else:
        detail = "; ".join(filter(None, [figure(cell) and f"worst error {figure(cell)}", reason(cell)]))
        if detail:
            ET.SubElement(case, "system-out").text = _xml(detail)
    return case


def junit(cells: list[dict], meta: dict) -> bytes:
    counts = status_counts(cells)
    seconds = meta.get("seconds")
    if seconds is None:
        seconds = sum(c.get("seconds") or 0 for c in cells)
    totals = {"tests": str(len(cells)), "failures": str(counts.get("fail", 0)),
              "errors": str(counts.get("error", 0)),
              "skipped": str(counts.get("xfail", 0) + counts.get("skip", 0)), "time": f"{seconds:.3f}"}
    root = ET.Element("testsuites", totals)
    suite = ET.SubElement(root, "testsuite", {"name": "netexport verify", **totals})
    if versions := toolchain(meta):
        properties = ET.SubElement(suite, "properties")
        for package, version in versions.items():
            ET.SubElement(properties, "property", name=_xml(f"toolchain.{package}"), value=_xml(version))
    suite.extend(_testcase(c) for c in sort_cells(cells))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


# ---- report.html: page, table, plots --------------------------------------------------------------

PRECISION_COLOURS = {"fp32": "#1f77b4", "fp16": "#ff7f0e", "int8": "#2ca02c"}
OTHER_COLOUR = "#7f7f7f"
MARKER_SHAPES = ("circle", "square", "triangle", "diamond")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; white-space: nowrap; }
td.s-pass { background: #d8f0d8; } td.s-fail { background: #f6c6c6; } td.s-error { background: #e8a0a0; }
td.s-xfail { background: #f8ecc0; } td.s-skip { background: #e6e6e6; } td.s-built { background: #d6e4f5; }
svg { font-size: 11px; } svg text { fill: #333; }
li { font-size: 13px; }
"""


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _colour(precision: str) -> str:
    return PRECISION_COLOURS.get(precision, OTHER_COLOUR)


def _shape(shape: str, x: float, y: float, r: float = 4.0) -> tuple[str, str]:
    """The SVG tag and geometry attributes of a marker centred on (x, y)."""
    if shape == "circle":
        return "circle", f'cx="{x:.1f}" cy="{y:.1f}" r="{r}"'
    if shape == "square":
        return "rect", f'x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}"'
    if shape == "triangle":
        corners = [(x, y - r), (x - r, y + r), (x + r, y + r)]
    else:
        corners = [(x, y - r), (x + r, y), (x, y + r), (x - r, y)]
    return "polygon", 'points="' + " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in corners) + '"'


def _marker(shape: str, x: float, y: float, colour: str, css_class: str, tooltip: str = "") -> str:
    tag, geometry = _shape(shape, x, y)
    title = f"<title>{_esc(tooltip)}</title>" if tooltip else ""
    return f'<{tag} class="{css_class}" {geometry} fill="{colour}" fill-opacity="0.85">{title}</{tag}>'


def _log_range(values: list[float], include: float | None) -> tuple[int, int]:
    """Whole decades covering the positive values (and `include`), at most 12 decades wide."""
    positive = [v for v in values if v > 0] + ([include] if include else [])
    if not positive:
        return -1, 1
    hi = math.ceil(math.log10(max(positive)))
    lo = max(math.floor(math.log10(min(positive))), hi - 12)
    if include:  # leave a decade either side of the reference line
        lo, hi = min(lo, math.floor(math.log10(include)) - 1), max(hi, math.ceil(math.log10(include)) + 1)
    return lo, (hi if hi > lo else lo + 1)


def _tick_label(exponent: int) -> str:
    return f"{10.0 ** exponent:g}"


ROW_HEIGHT, PLOT_WIDTH, PLOT_TOP = 16, 540, 58


def _row_parts(rows: list[str], left: float) -> list[str]:
    """Model labels, with every other row shaded so a marker can be traced to its label."""
    parts = []
    for i, model in enumerate(rows):
        y = PLOT_TOP + ROW_HEIGHT * i
        if i % 2:
            parts.append(f'<rect x="{left:.0f}" y="{y}" width="{PLOT_WIDTH}" height="{ROW_HEIGHT}" fill="#f4f4f4"/>')
        parts.append(f'<text x="{left - 6:.0f}" y="{y + 12}" text-anchor="end">{_esc(model)}</text>')
    return parts


def _axis_parts(lo: int, hi: int, x_of, bottom: float, label: str) -> list[str]:
    parts = []
    for exponent in range(lo, hi + 1):
        x = x_of(10.0 ** exponent)
        parts.append(f'<line x1="{x:.1f}" y1="{PLOT_TOP}" x2="{x:.1f}" y2="{bottom}" stroke="#ccc"/>')
        for y in (PLOT_TOP - 4, bottom + 14):  # labelled above and below: a 90-model plot is taller than a screen
            parts.append(f'<text x="{x:.1f}" y="{y}" text-anchor="middle">{_tick_label(exponent)}</text>')
    middle = x_of(10.0 ** ((lo + hi) / 2))
    parts.append(f'<text x="{middle:.0f}" y="{bottom + 30}" text-anchor="middle">{_esc(label)}</text>')
    return parts


def dot_plot(title: str, axis_label: str, points: list[dict], reference: float | None = None) -> str:
    """Horizontal dot plot on a log axis: a row per model, a marker per point, colour = precision,
    shape = backend. Points: {"model", "precision", "backend", "value", "tooltip"}."""
    rows = sorted({p["model"] for p in points})
    row_of = {model: i for i, model in enumerate(rows)}
    backends = list(dict.fromkeys(p["backend"] for p in points))
    precisions = sorted({p["precision"] for p in points}, key=precision_rank)
    lo, hi = _log_range([p["value"] for p in points], reference)
    left = 12 + 6.5 * max(len(m) for m in rows)
    bottom = PLOT_TOP + ROW_HEIGHT * len(rows)

    def x_of(value: float) -> float:
        exponent = math.log10(value) if value > 0 else lo  # an exact match sits on the axis' left edge
        return left + PLOT_WIDTH * (min(max(exponent, lo), hi) - lo) / (hi - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + PLOT_WIDTH + 20:.0f}" height="{bottom + 34}" '
             f'role="img" aria-label="{_esc(title)}">',
             f'<text x="{left:.0f}" y="14" font-weight="bold">{_esc(title)}</text>',
             *_legend(precisions, backends, left, 30), *_row_parts(rows, left),
             *_axis_parts(lo, hi, x_of, bottom, axis_label)]
    if reference is not None:
        x = x_of(reference)
        parts.append(f'<line x1="{x:.1f}" y1="{PLOT_TOP}" x2="{x:.1f}" y2="{bottom}" stroke="#d62728" '
                     f'stroke-dasharray="4 3"/>')
    for p in points:
        y = PLOT_TOP + ROW_HEIGHT * (row_of[p["model"]] + 0.5)
        y += 3 * (precisions.index(p["precision"]) - (len(precisions) - 1) / 2)  # keep precisions apart
        shape = MARKER_SHAPES[backends.index(p["backend"]) % len(MARKER_SHAPES)]
        parts.append(_marker(shape, x_of(p["value"]), y, _colour(p["precision"]), "mark", p["tooltip"]))
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(precisions: list[str], backends: list[str], x: float, y: float) -> list[str]:
    items = [(p, "circle", _colour(p)) for p in precisions]
    if len(backends) > 1:
        items += [(b, MARKER_SHAPES[i % len(MARKER_SHAPES)], "#555") for i, b in enumerate(backends)]
    parts = []
    for label, shape, colour in items:
        parts.append(_marker(shape, x + 4, y - 4, colour, "legend"))
        parts.append(f'<text x="{x + 12:.0f}" y="{y}">{_esc(label)}</text>')
        x += 24 + 6.5 * len(label)
    return parts


def error_points(cells: list[dict]) -> list[dict]:
    points = []
    for c in cells:
        ratio = error_ratio(c)
        if ratio is not None:
            tooltip = f"{_where(c)}: {ratio:.3g}× tolerance ({figure(c)}, {c['status']})"
            points.append({**_point_key(c), "value": ratio, "tooltip": tooltip})
    return points


def latency_points(cells: list[dict]) -> list[dict]:
    points = []
    for c in cells:
        latency = c.get("latency_ms")
        if isinstance(latency, (int, float)) and math.isfinite(latency) and latency > 0:
            points.append({**_point_key(c), "value": latency, "tooltip": f"{_where(c)}: {latency:.3g} ms"})
    return points


def _point_key(cell: dict) -> dict:
    return {"model": row(cell), "precision": cell["precision"], "backend": cell["backend"]}


def _html_table(cells: list[dict]) -> str:
    header, rows = _table_rows(cells)
    out = ["<table>", "<tr><th>model</th><th>task</th>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>"]
    for model, row in zip(models(cells), rows):
        tds = [f"<td>{_esc(model)}</td><td>{_esc(_task_of(model, cells))}</td>"]
        for c in row:
            if c is None:
                tds.append("<td></td>")
                continue
            hover = "\n".join([*(c.get("failures") or []), reason(c)]).strip()
            title = f' title="{_esc(hover)}"' if hover else ""
            tds.append(f'<td class="s-{_esc(c["status"])}"{title}>{_esc(cell_text(c))}</td>')
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _html_list(title: str, items: list[str]) -> str:
    if not items:
        return ""
    return f"<h2>{_esc(title)}</h2>\n<ul>\n" + "\n".join(f"<li>{_esc(i)}</li>" for i in items) + "\n</ul>"


def _summary(cells: list[dict], meta: dict) -> str:
    parts = [f"{len(cells)} cells over {len(models(cells))} models: {counts_text(cells) or 'none'}"]
    if meta.get("seconds") is not None:
        parts.append(f"{meta['seconds']} s")
    if meta.get("shards"):
        parts.append(f"merged from {len(meta['shards'])} shards")
    parts.append("passed" if exit_code(cells) == 0 else "FAILED")
    return " · ".join(parts)


def html_report(cells: list[dict], meta: dict) -> str:
    cells = sort_cells(cells)
    notes = [f"{_where(c)}: {note(c)}" for c in cells if reason(c)]
    failures = [f"{_where(c)}: {c['status']}: {'; '.join(c.get('failures') or ['no message'])}"
                for c in cells if c["status"] in ("fail", "error")]
    plots = []
    if errors := error_points(cells):
        plots.append(dot_plot("worst parity error / tolerance (≤ 1 passes)", "error / tolerance (log)", errors, 1.0))
    if latencies := latency_points(cells):
        plots.append(dot_plot("latency", "milliseconds (log)", latencies))
    versions = f"<p>Toolchain: {_esc(toolchain_text(meta))}</p>" if toolchain(meta) else ""
    body = [f"<h1>netexport verification</h1>\n<p>{_esc(_summary(cells, meta))}</p>", versions, _html_table(cells),
            _html_list("notes", notes), _html_list("failures", failures), *plots, _html_costs(cells, meta)]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>netexport verification</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(b for b in body if b) + "\n</body>\n</html>\n")


def _html_costs(cells: list[dict], meta: dict) -> str:
    from . import costs

    table = costs.cost_table(cells, meta)
    if not table["computed_cells"]:
        return f"<h2>where the time went</h2>\n<p>Every cell came from the cache ({table['cached_cells']} cells).</p>"
    stages = "".join(f"<tr><td>{_esc(s['stage'])}</td><td>{s['seconds']:.1f}</td><td>{s['share']:.1%}</td></tr>"
                     for s in table["stages"])
    top = "".join(f"<tr><td>{_esc(t['cell'])}</td><td>{t['seconds']:.1f}</td><td>{costs.peak_text(t)}</td>"
                  f"<td>{_esc(costs.stages_text(t['stages']))}</td></tr>" for t in table["top_cells"])
    return (f"<h2>where the time went</h2>\n<p>{_esc(costs.floor_text(table))}</p>\n"
            f"<table><tr><th>stage</th><th>seconds</th><th>share</th></tr>{stages}</table>\n"
            f"<h3>most expensive cells</h3>\n"
            f"<table><tr><th>cell</th><th>seconds</th><th>peak MB</th><th>largest stages</th></tr>{top}</table>")


# ---- writing and merging --------------------------------------------------------------------------


def write_reports(directory: Path, cells: list[dict], meta: dict) -> list[Path]:
    """Write the four report files, each atomically; everything is rendered before anything is written."""
    directory.mkdir(parents=True, exist_ok=True)
    contents = {
        "report.json": json.dumps(document(cells, meta), indent=2, default=str).encode(),
        "report.md": markdown(cells, meta).encode(),
        "junit.xml": junit(cells, meta),
        "report.html": html_report(cells, meta).encode(),
    }
    written = []
    for name, data in contents.items():
        path = directory / name
        atomic.write_bytes(path, data)
        written.append(path)
    return written


def document(cells: list[dict], meta: dict) -> dict:
    """report.json's content (and `--json`'s): the run's facts, its cost table, every cell."""
    from . import costs

    return {"meta": meta, "costs": costs.cost_table(cells, meta), "cells": cells}


def _load_report(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no report at {path}: give directories written by `netexport verify --report`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    problem = _report_problem(data)
    if problem:
        raise InputError(f"{path} is not a netexport report: {problem}")
    return data


def _report_problem(data) -> str | None:
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list) or not isinstance(data.get("meta"), dict):
        return "expected an object with 'meta' and 'cells'"
    for i, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict):
            return f"cell {i} is not an object"
        missing = [k for k in ("model", "task", "precision", "backend", "status") if not isinstance(cell.get(k), str)]
        if missing:
            return f"cell {i} lacks {', '.join(missing)}"
        if cell["status"] not in STATUSES:
            return f"cell {i} has unknown status {cell['status']!r}"
    return None


def merge_meta(metas: list[dict], cells: list[dict]) -> dict:
    return {
        "shards": metas,
        "seconds": round(sum(m.get("seconds") or 0 for m in metas), 3),
        "models": models(cells),
        "precisions": sorted({c["precision"] for c in cells}, key=precision_rank),
        "backends": list(dict.fromkeys(c["backend"] for c in cells)),
        "cells": len(cells),
        "passed": exit_code(cells) == 0,
        **_slowest_machine(metas),
    }


def _slowest_machine(metas: list[dict]) -> dict:
    """Shards may run on different machines: the merged floor uses the slowest one's rate."""
    machines = [m["machine"] for m in metas if (m.get("machine") or {}).get("fp32_matmul_gflops")]
    return {"machine": min(machines, key=lambda m: m["fp32_matmul_gflops"])} if machines else {}


def merge(directories: list[Path]) -> tuple[dict, list[dict]]:
    """Combine the reports in `directories` (shards of one matrix). A cell in two shards is an error."""
    origin: dict[tuple, Path] = {}
    metas, cells = [], []
    for directory in directories:
        path = Path(directory) / "report.json"
        report = _load_report(path)
        for cell in report["cells"]:
            key = cell_key(cell)
            if key in origin:
                where = f"twice in {path}" if origin[key] == path else f"in both {origin[key]} and {path}"
                raise InputError(f"cell {_where(cell)} appears {where}: overlapping shards")
            origin[key] = path
            cells.append(cell)
        metas.append(report["meta"])
    cells = sort_cells(cells)
    return merge_meta(metas, cells), cells
