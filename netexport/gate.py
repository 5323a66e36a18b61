"""`netexport verify`: run every requested (model, precision, backend) cell and gate on the result.

A cell is pass, fail, xfail (a documented recipe limitation that failed as expected) or error
(the pipeline could not run: an exception other than a parity failure). Limitations that turn out
to pass are reported as pass with their note, so stale xfails show up in every report.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

from .errors import NetexportError
from .recipes import get_recipe

BACKEND = "onnxruntime"


def run_cell(name: str, precision: str, workdir: Path, reduced_size: bool) -> dict:
    from .pipeline.to_onnx import OnnxRequest, run_onnx

    recipe = get_recipe(name)
    cell = {"model": name, "task": recipe.task, "precision": precision, "backend": BACKEND}
    limitation = recipe.limitation(precision, BACKEND)
    start = time.perf_counter()
    try:
        request = OnnxRequest(name, output=workdir / f"{name}.{precision}.onnx", reduced_size=reduced_size,
                              precision=precision)
        result = run_onnx(request)
        cell.update(result.to_dict())
        passed = result.passed
        cell["failures"] = result.failures()
    except NetexportError as exc:
        passed = False
        cell["failures"] = [exc.message]
        cell["status"] = "error"
    except Exception as exc:  # a crash in one model must not hide the rest of the matrix
        passed = False
        cell["failures"] = [f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"]
        cell["status"] = "error"
    if "status" not in cell:
        cell["status"] = "pass" if passed else "fail"
    if limitation is not None:
        cell["reason"] = limitation.reason
        if not passed:
            cell["status"] = "xfail"
    cell["seconds"] = round(time.perf_counter() - start, 2)
    if cell.get("artifact"):
        Path(cell["artifact"]).unlink(missing_ok=True)
        cell["artifact"] = None
    return cell


def run_matrix(names: list[str], precisions: list[str], reduced_size: bool = False,
               on_cell: Callable[[dict, int, int], None] | None = None) -> list[dict]:
    cells = []
    matrix = [(name, precision) for name in names for precision in precisions]
    with tempfile.TemporaryDirectory(prefix="netexport-verify-") as tmp:
        for i, (name, precision) in enumerate(matrix):
            cell = run_cell(name, precision, Path(tmp), reduced_size)
            cells.append(cell)
            if on_cell:
                on_cell(cell, i + 1, len(matrix))
    return cells
