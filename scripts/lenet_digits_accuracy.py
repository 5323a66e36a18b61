"""Held-out accuracy of LeNet-5 trained on scikit-learn's digits: PyTorch FP32 vs ONNX FP32/FP16/INT8.

    .venv/bin/python scripts/lenet_digits_accuracy.py [--seeds 0 1 2] [--epochs N] [--threads N] [--json]

Trains the zoo's lenet5 on the training split (netexport.evaluation.digits), exports it through the
real pipeline at each precision (INT8 calibrated on the training split with every calibration method)
and prints a Markdown table of held-out accuracy with the gap to PyTorch FP32. With several seeds
(each a different split and initialisation) a second table shows every seed.

Training defaults to one thread: LeNet-5's layers are too small to gain from intra-op threads, and on
a shared 2-core machine two threads measured several times slower.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import netexport.evaluation.digits as digits
from netexport.pipeline.precision import CALIBRATION_METHODS


def run(seed: int, epochs: int, threads: int, calib_samples: int, workdir: Path) -> dict:
    import torch

    torch.set_num_threads(threads)
    start = time.perf_counter()
    data = digits.load_digits_32(seed=seed)
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model = digits.train_lenet5(data[0], data[1], epochs=epochs, seed=seed, threads=threads)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = digits.evaluate(model, workdir / f"seed{seed}", data, calib_samples=calib_samples, threads=threads)
    return {**result, "seed": seed, "epochs": epochs, "threads": threads, "load_seconds": load_seconds,
            "train_seconds": train_seconds, "evaluate_seconds": time.perf_counter() - start}


def rows(result: dict) -> list[tuple[str, float]]:
    out = [("PyTorch FP32", result["pytorch-fp32"]), ("ONNX FP32", result["onnx-fp32"]),
           ("ONNX FP16", result["onnx-fp16"])]
    for method, acc in result["int8_by_method"].items():
        default = " (default)" if method == result["calib_method"] else ""
        out.append((f"ONNX INT8, {method} calibration{default}", acc))
    return out


def table(result: dict) -> str:
    ref = result["pytorch-fp32"]
    agree = result["agreement_with_pytorch"]
    keys = ["pytorch", "onnx-fp32", "onnx-fp16", *(f"onnx-int8-{m}" for m in result["int8_by_method"])]
    lines = ["| | held-out accuracy | gap to FP32 (points) | top-1 agreement with PyTorch | max logit error |",
             "|---|---:|---:|---:|---:|"]
    for key, (label, acc) in zip(keys, rows(result)):
        same = "—" if key == "pytorch" else f"{agree[key] * 100:.1f}%"
        err = "—" if key == "pytorch" else f"{result['max_logit_error'][key]:.2g}"
        gap = "—" if key == "pytorch" else f"{(acc - ref) * 100:+.2f}"
        lines.append(f"| {label} | {acc * 100:.2f}% | {gap} | {same} | {err} |")
    return "\n".join(lines)


def seeds_table(results: list[dict]) -> str:
    methods = list(results[0]["int8_by_method"])
    head = ["seed", "PyTorch FP32", "ONNX FP32", "ONNX FP16", *(f"INT8 {m}" for m in methods), "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in results:
        cells = [r["pytorch-fp32"], r["onnx-fp32"], r["onnx-fp16"], *(r["int8_by_method"][m] for m in methods)]
        accs = " | ".join(f"{c * 100:.2f}%" for c in cells)
        lines.append(f"| {r['seed']} | {accs} | {r['train_seconds']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=digits.EPOCHS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calib-samples", type=int, default=digits.CALIB_SAMPLES)
    parser.add_argument("--workdir", type=Path, help="keep the weights and artifacts here (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON instead")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="netexport-digits-") as tmp:
        workdir = args.workdir or Path(tmp)
        results = []
        for seed in args.seeds:
            print(f"seed {seed}: training and exporting ...", file=sys.stderr, flush=True)
            results.append(run(seed, args.epochs, args.threads, args.calib_samples, workdir))
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return 0
    first = results[0]
    print(table(first))
    print()
    print(f"scikit-learn digits upsampled to 28x28 in a 32x32 field; stratified split (seed {first['seed']}): "
          f"{first['train_samples']} train / {first['test_samples']} held out. LeNet-5 trained "
          f"{first['epochs']} epochs in {first['train_seconds']:.1f} s ({first['threads']} thread"
          f"{'s' if first['threads'] > 1 else ''}); exports + accuracy runs {first['evaluate_seconds']:.1f} s. "
          f"INT8 calibrated on {first['calib_samples']} training samples "
          f"(methods: {', '.join(CALIBRATION_METHODS)}; default {first['calib_method']}).")
    if len(results) > 1:
        print()
        print(seeds_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
