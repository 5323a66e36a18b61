"""Measure onnxsim against onnxslim on every zoo model: node counts, run time, parity.

    .venv/bin/python scripts/compare_simplifiers.py [NAME ...] > simplifiers.md

Each model is exported once (TorchScript, opset 17, reduced test size), then simplified by each tool;
both results are verified against PyTorch on ONNX Runtime.
"""

from __future__ import annotations

import sys
import time

import netexport
from netexport.pipeline.export import export_model, resolve_settings
from netexport.pipeline.simplify import SIMPLIFIERS, simplify
from netexport.pipeline.to_onnx import verify_onnx, verification_shapes
from netexport.recipes import get_recipe
from netexport.zoo import create_model


def main(names: list[str]) -> None:
    print("| model | exported nodes | " + " | ".join(f"{s} nodes | {s} s | {s} parity" for s in SIMPLIFIERS) + " |")
    print("|---|---:|" + "---:|---:|---|" * len(SIMPLIFIERS))
    totals = {s: [0, 0.0] for s in SIMPLIFIERS}
    for name in names or netexport.list_models():
        recipe = get_recipe(name)
        settings = resolve_settings(recipe, use_test_shape=True)
        model = create_model(name)
        if hasattr(model, "reparameterize"):
            model.reparameterize()
        proto = export_model(model, recipe, settings)
        row = [name, str(len(proto.graph.node))]
        for tool in SIMPLIFIERS:
            start = time.perf_counter()
            simplified = simplify(proto, tool)
            seconds = time.perf_counter() - start
            checks = verify_onnx(model, recipe, simplified.SerializeToString(), verification_shapes(recipe, settings))
            totals[tool][0] += len(simplified.graph.node)
            totals[tool][1] += seconds
            row += [str(len(simplified.graph.node)), f"{seconds:.2f}", "pass" if all(c.passed for c in checks) else "FAIL"]
        print("| " + " | ".join(row) + " |", flush=True)
    print("| **total** | | " + " | ".join(f"{n} | {t:.1f} | " for n, t in totals.values()) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
