"""How many synthetic calibration samples the INT8 ranges need: ranges at N against 2N samples.

For every model, the simplified FP32 graph is calibrated with its recipe's method on the first N
of the gate's seeded synthetic samples, for N in --counts; each tensor's symmetric range
max(|min|, |max|) (what its INT8 scale is made of) at N is compared with the one at 2N:

    python scripts/calibration_samples.py --counts 8,16,32,64 --json calib.json   # every model
    python scripts/calibration_samples.py resnet18 enet --canonical

The summary gives, per pair (N, 2N), how many models have every range within 1%, the worst
model, and the median over models of their worst tensor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

AGREEMENT = 0.01


def symmetric_ranges(tensors) -> dict[str, float]:
    out = {}
    for name, value in tensors.data.items():
        low, high = value.range_value
        out[name] = float(max(abs(np.asarray(low).max()), abs(np.asarray(high).max())))
    return out


def measure(model: str, counts: list[int], canonical: bool) -> dict:
    import onnx

    from netexport.data import calibration_samples
    from netexport.pipeline import reuse
    from netexport.pipeline.precision import Calibration, collect_ranges
    from netexport.pipeline.to_onnx import OnnxRequest, run_onnx
    from netexport.sources import resolve

    source = resolve(model, None)
    recipe = source.recipe
    with tempfile.TemporaryDirectory(prefix="calib-samples-") as tmp:
        result = run_onnx(OnnxRequest(model, output=Path(tmp) / "fp32.onnx", reduced_size=not canonical,
                                      precision="fp32", verify=False), source=source)
        proto = onnx.load(str(result.artifact))
    samples, _ = calibration_samples(None, result.export_shapes, recipe.normalization, 2 * max(counts))
    ranges, seconds = {}, {}
    for n in sorted({*counts, *(2 * c for c in counts)}):
        start = time.perf_counter()
        got = collect_ranges(proto, Calibration(samples[:n], "synthetic", recipe.calib_method))
        seconds[n] = round(time.perf_counter() - start, 2)
        ranges[n] = symmetric_ranges(got.tensors)
    reuse.clear()
    pairs = {}
    for n in counts:
        small, large = ranges[n], ranges[2 * n]
        rel = [abs(small[t] - large[t]) / large[t] for t in large if t in small and large[t] > 0]
        worst_tensor = max((t for t in large if t in small and large[t] > 0),
                           key=lambda t: abs(small[t] - large[t]) / large[t], default=None)
        pairs[n] = {"tensors": len(rel), "worst": max(rel, default=0.0),
                    "within": sum(r <= AGREEMENT for r in rel) / max(len(rel), 1),
                    "mean": float(np.mean(rel)) if rel else 0.0,
                    "p99": float(np.percentile(rel, 99)) if rel else 0.0, "worst_tensor": worst_tensor}
    return {"model": model, "method": recipe.calib_method, "shapes": {k: list(v) for k, v in result.export_shapes.items()},
            "seconds": seconds, "pairs": pairs}


def summarize(rows: list[dict], counts: list[int]) -> str:
    ok = [r for r in rows if "pairs" in r]
    lines = [f"{len(ok)} models measured, {len(rows) - len(ok)} failed"]
    for n in counts:
        worst = [(r["pairs"][n]["worst"], r["model"]) for r in ok]
        agree = sum(w <= AGREEMENT for w, _ in worst)
        shares = [r["pairs"][n]["within"] for r in ok]
        means = [r["pairs"][n]["mean"] for r in ok]
        seconds = sum(r["seconds"][n] for r in ok)
        top = sorted(worst, reverse=True)[:3]
        lines.append(
            f"N={n:>3} vs {2 * n:>3}: {agree}/{len(ok)} models with every range within 1%; "
            f"median worst tensor {100 * statistics.median(w for w, _ in worst):.2f}%; "
            f"tensors within 1%: {100 * statistics.mean(shares):.2f}% (mean over models); "
            f"{sum(m <= AGREEMENT for m in means)}/{len(ok)} models whose mean range moves at most 1% "
            f"(median {100 * statistics.median(means):.2f}%); "
            f"worst {', '.join(f'{m} {100 * w:.2f}%' for w, m in top)}; calibration at N: {seconds:.0f} s")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="zoo names (default: every model)")
    parser.add_argument("--counts", default="8,16,32", help="values of N (each compared with 2N)")
    parser.add_argument("--canonical", action="store_true", help="canonical input sizes (default: reduced)")
    parser.add_argument("--json", type=Path, help="write every model's figures here")
    args = parser.parse_args(argv)
    from netexport.zoo import registry

    counts = [int(c) for c in args.counts.split(",")]
    models = args.models or registry.registered_names()
    rows = []
    for model in models:
        start = time.perf_counter()
        try:
            row = measure(model, counts, args.canonical)
        except Exception as exc:  # one model's failure is a row, not the end of the measurement
            row = {"model": model, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        row["wall"] = round(time.perf_counter() - start, 1)
        rows.append(row)
        shown = " ".join(f"{n}:{100 * row['pairs'][n]['worst']:.2f}%" for n in counts) if "pairs" in row else row["error"]
        print(f"{model:28s} {row['wall']:7.1f}s  {shown}", flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    print(summarize(rows, counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
