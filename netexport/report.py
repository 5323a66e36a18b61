"""Reports of a verification run: report.json (every cell, its figures and timings) and report.md
(the supported-models table: rows models, a column per precision × backend, worst error per cell)."""

from __future__ import annotations

import json
from pathlib import Path

from . import atomic


def worst_error(cell: dict) -> str:
    outputs = [o for v in cell.get("verification", []) for o in v["outputs"]]
    if not outputs:
        return ""
    worst = max(outputs, key=lambda o: o["error_ratio"])
    if "atol" in worst["tolerance"]:
        return f"max \\|Δ\\| {worst['max_abs_err']:.2g}"
    return f"cos {worst['cosine']:.5f}"


def cell_label(cell: dict) -> str:
    status = cell["status"]
    detail = worst_error(cell)
    return f"{status} ({detail})" if detail else status


def markdown(cells: list[dict]) -> str:
    columns = sorted({(c["precision"], c["backend"]) for c in cells})
    models = sorted({c["model"] for c in cells})
    by_key = {(c["model"], c["precision"], c["backend"]): c for c in cells}
    head = "| model | task | " + " | ".join(f"{p} · {b}" for p, b in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 2)]
    for model in models:
        row = [model, next(c["task"] for c in cells if c["model"] == model)]
        for precision, backend in columns:
            cell = by_key.get((model, precision, backend))
            row.append(cell_label(cell) if cell else "")
        lines.append("| " + " | ".join(row) + " |")
    notes = [f"- {c['model']} {c['precision']}/{c['backend']}: {c['status']}: {c['reason']}"
             for c in cells if c.get("reason")]
    counts = {s: sum(c["status"] == s for c in cells) for s in ("pass", "fail", "xfail", "error")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return "\n".join([f"# netexport verification\n\n{len(cells)} cells: {summary}\n", *lines, "", *notes, ""])


def write_reports(directory: Path, cells: list[dict], meta: dict) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    payload = json.dumps({"meta": meta, "cells": cells}, indent=2, default=str).encode()
    for name, data in (("report.json", payload), ("report.md", markdown(cells).encode())):
        path = directory / name
        atomic.write_bytes(path, data)
        written.append(path)
    return written
