"""Where a verification run's time went, and the least time it could have taken.

The cost table sums each pipeline stage over the cells computed in the run (cached cells cost
nothing) and lists the most expensive cells. The floor is the arithmetic the run could not avoid,
the forward passes its checks need, each counted once however many cells share it:

- the PyTorch reference on the verification inputs, once per model graph (raw or end-to-end) and
  input set: every precision and backend compares with the same reference;
- ONNX Runtime on those inputs, per onnxruntime cell, plus its latency runs;
- the FP16 overflow probe (the fp32 graph on the verification inputs), once per model;
- calibration (the fp32 graph on the calibration samples), once per model: one INT8 graph serves
  every backend.

Each pass costs the model's GFLOPs at its size (counted by PyTorch's FlopCounterMode during the
reference), and the floor in seconds is their sum over the machine's measured fp32 matmul rate.
Model construction, random init, export, simplification and engine builds are not arithmetic a
check needs, so they are all above the floor.
"""

from __future__ import annotations

import time

from .report import _where, row

# Timing keys of a cell (an engine cell's ONNX stages carry an "onnx." prefix) → cost-table stage.
STAGES = {
    "load": "load/init",
    "end2end": "end-to-end wrap",
    "reference": "PyTorch reference",
    "export": "export",
    "check": "export",
    "simplify": "simplify",
    "fp16": "fp16",
    "calibrate": "calibration",
    "quantize": "quantize",
    "onnxruntime": "ORT run",
    "latency": "ORT latency",
    "build": "engine build",
    "task": "task check",
    "write": "write",
}
STAGE_ORDER = tuple(dict.fromkeys(STAGES.values())) + ("other",)
TOP_CELLS = 10
LATENCY_PASSES = 6  # gate.LATENCY_RUNS timed runs after one warm-up


def stage_seconds(cell: dict) -> dict[str, float]:
    """The cell's seconds per cost-table stage; "other" is what no stage timed (model resolution,
    temporary files, an INT8 cell's end-to-end threshold search...)."""
    seconds: dict[str, float] = {}
    for key, value in (cell.get("timings") or {}).items():
        stage = STAGES.get(key.removeprefix("onnx."), "other")
        seconds[stage] = seconds.get(stage, 0.0) + value
    other = (cell.get("seconds") or 0.0) - sum(seconds.values())
    if other > 0:
        seconds["other"] = seconds.get("other", 0.0) + other
    return seconds


def _passes(cell: dict) -> list[tuple[int, float]]:
    """(samples, GFLOPs per sample) of each verification input set the cell compared on."""
    return [(v.get("samples") or 0, v["reference_gflops"]) for v in cell.get("verification") or []
            if v.get("reference_gflops") is not None]


def floor_gflops(cells: list[dict]) -> float:
    """The forward-pass GFLOPs the computed cells' checks need, shared work counted once."""
    total, references, per_model = 0.0, set(), set()
    for cell in cells:
        if cell.get("cached"):
            continue
        passes = _passes(cell)
        if not passes:
            continue
        checked = sum(n * g for n, g in passes)
        first = passes[0][1]
        reference = (row(cell), tuple(passes))
        if reference not in references:
            references.add(reference)
            total += checked
        if cell["backend"] == "onnxruntime":
            total += checked + (LATENCY_PASSES * first if cell.get("latency_ms") is not None else 0.0)
        if cell["precision"] == "fp16" and (row(cell), "fp16") not in per_model:
            per_model.add((row(cell), "fp16"))
            total += passes[0][0] * first
        calibration = cell.get("calibration") or {}
        if cell["precision"] == "int8" and (row(cell), "int8") not in per_model:
            per_model.add((row(cell), "int8"))
            total += (calibration.get("samples") or 0) * first
    return total


def measure_matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's fp32 matrix-multiply rate with every thread torch uses (best of `repeats`)."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def cost_table(cells: list[dict], meta: dict) -> dict:
    """Stage totals, the most expensive cells and the floor of the cells computed in this run."""
    computed = [c for c in cells if not c.get("cached")]
    totals: dict[str, float] = {}
    for cell in computed:
        for stage, seconds in stage_seconds(cell).items():
            totals[stage] = totals.get(stage, 0.0) + seconds
    cell_seconds = sum(totals.values())
    stages = [{"stage": s, "seconds": round(totals[s], 2), "share": round(totals[s] / cell_seconds, 4)}
              for s in STAGE_ORDER if totals.get(s)]
    top = [{"cell": _where(c), "seconds": c.get("seconds") or 0.0, "peak_rss_mb": c.get("peak_rss_mb"),
            "memory_estimate_mb": c.get("memory_estimate_mb"),
            "stages": {s: round(v, 2) for s, v in sorted(stage_seconds(c).items(), key=lambda kv: -kv[1])[:3]}}
           for c in sorted(computed, key=lambda c: -(c.get("seconds") or 0.0))[:TOP_CELLS]]
    peaks = [c["peak_rss_mb"] for c in computed if c.get("peak_rss_mb") is not None]
    gflops = floor_gflops(cells)
    rate = (meta.get("machine") or {}).get("fp32_matmul_gflops")
    floor = gflops / rate if rate else None
    wall = meta.get("seconds")
    return {
        "computed_cells": len(computed),
        "cached_cells": len(cells) - len(computed),
        "cell_seconds": round(cell_seconds, 2),
        "stages": stages,
        "top_cells": top,
        "largest_cell_peak_rss_mb": max(peaks) if peaks else None,
        "memory_estimates": _estimate_check(computed),
        "floor": {"gflops": round(gflops, 3), "fp32_matmul_gflops": rate,
                  "seconds": round(floor, 3) if floor is not None else None,
                  "wall_seconds": wall,
                  "ratio": round(wall / floor, 1) if floor and wall else None},
    }


def _estimate_check(cells: list[dict]) -> dict | None:
    """How the scheduler's memory estimates (`-j auto`) compared with the measured peaks."""
    pairs = [(c["peak_rss_mb"] / c["memory_estimate_mb"], c) for c in cells
             if c.get("memory_estimate_mb") and c.get("peak_rss_mb") is not None]
    if not pairs:
        return None
    ratio, worst = max(pairs, key=lambda p: p[0])
    return {"cells": len(pairs), "largest_peak_to_estimate": round(ratio, 2), "cell": _where(worst),
            "peak_rss_mb": worst["peak_rss_mb"], "memory_estimate_mb": worst["memory_estimate_mb"]}


def markdown(costs: dict) -> str:
    """The cost table as a report.md section."""
    lines = ["## Where the time went", ""]
    if not costs["computed_cells"]:
        return "\n".join(lines + [f"Every cell came from the cache ({costs['cached_cells']} cells).", ""])
    lines += [floor_text(costs), "", "| stage | seconds | share |", "|---|---:|---:|"]
    lines += [f"| {s['stage']} | {s['seconds']:.1f} | {s['share']:.1%} |" for s in costs["stages"]]
    lines += ["", f"The {len(costs['top_cells'])} most expensive cells (peak: the resident memory of the "
              "cell's process while it ran):", "",
              "| cell | seconds | peak MB | largest stages |", "|---|---:|---:|---|"]
    lines += [f"| {t['cell']} | {t['seconds']:.1f} | {peak_text(t)} | {stages_text(t['stages'])} |"
              for t in costs["top_cells"]]
    return "\n".join(lines + [""])


def floor_text(costs: dict) -> str:
    floor = costs["floor"]
    cached = f", {costs['cached_cells']} from the cache" if costs["cached_cells"] else ""
    text = f"{costs['computed_cells']} cells computed{cached}: {costs['cell_seconds']:.1f} s in cells"
    if costs.get("largest_cell_peak_rss_mb") is not None:
        text += f", largest cell peak {costs['largest_cell_peak_rss_mb']} MB resident"
    check = costs.get("memory_estimates")
    if check:
        text += (f"; memory estimates: peak at most {check['largest_peak_to_estimate']:g}x the estimate "
                 f"({check['cell']}: {check['peak_rss_mb']} MB, estimated {check['memory_estimate_mb']} MB)")
    text += f". Floor: {floor['gflops']:.1f} GFLOPs of forward passes"
    if floor["seconds"] is not None:
        text += f" at {floor['fp32_matmul_gflops']:.1f} GFLOP/s (fp32 matmul, measured) = {floor['seconds']:.1f} s"
        if floor["ratio"] is not None:
            text += f"; the run took {floor['wall_seconds']} s, {floor['ratio']:g}x the floor"
    return text + "."


def peak_text(top_cell: dict) -> str:
    text = "" if top_cell.get("peak_rss_mb") is None else str(top_cell["peak_rss_mb"])
    if top_cell.get("memory_estimate_mb"):
        text += f" (est. {top_cell['memory_estimate_mb']})"
    return text


def stages_text(stages: dict[str, float]) -> str:
    return ", ".join(f"{s} {v:.1f} s" for s, v in stages.items())
