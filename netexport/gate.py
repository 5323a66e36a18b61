"""`netexport verify`: run every (model, precision, backend) cell of the matrix and gate on the result.

A cell is pass, fail, xfail (a documented recipe limitation that failed as expected), skip (a
recipe limitation that says not to run it), built (a compile-only backend built the engine but
cannot run it here) or error (the pipeline crashed). Limitations that turn out to pass are
reported as pass with their note, so stale xfails show up in every report.

Cells run in this process (`jobs=1`) or in worker processes; each cell is self-contained (seeded
model, seeded data, its own temp dir), so the results do not depend on how many workers ran them.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .cache import ResultCache, cell_key
from .errors import NetexportError, first_line
from .matrix import Cell
from .memory import PeakRss
from .sources import UserOptions, resolve

LATENCY_RUNS = 5  # ONNX Runtime latency per cell: median of this many runs after one warm-up


@dataclass(frozen=True)
class RunSettings:
    """Run options that shape results (part of the cache key)."""

    reduced_size: bool = False
    weights: Path | None = None
    user: UserOptions | None = None

    def key_fields(self) -> dict:
        return {"reduced_size": self.reduced_size}


@dataclass
class MatrixRun:
    cells: list[dict] = field(default_factory=list)
    cache_hits: int = 0


# ---- one cell -----------------------------------------------------------------------------------


def _source(model: str, settings: RunSettings, sources: dict | None):
    """The model's ModelSource, resolved once per run (a user model's resolution runs it once);
    a failure is not kept, so every cell of that model reports it."""
    if sources is None:
        return resolve(model, settings.user)
    if model not in sources:
        sources[model] = resolve(model, settings.user)
    return sources[model]


def run_cell(cell: Cell, settings: RunSettings, sources: dict | None = None) -> dict:
    """Run one cell to a result dict, with the peak resident memory of its process while it ran;
    never raises for a model's failure."""
    with PeakRss() as memory:
        result = _run_cell(cell, settings, sources)
    if memory.peak is not None:
        result["peak_rss_mb"] = round(memory.peak / 2**20)
    return result


def _run_cell(cell: Cell, settings: RunSettings, sources: dict | None) -> dict:
    start = time.perf_counter()
    result = {"model": cell.model, "precision": cell.precision, "backend": cell.backend}
    if cell.form != "raw":
        result["form"] = cell.form
    try:
        source = _source(cell.model, settings, sources)
        recipe = source.recipe
        result["task"] = recipe.task
        size = "test" if settings.reduced_size else "canonical"
        limitation = recipe.limitation(cell.precision, cell.backend, form=cell.form, size=size)
        unbuildable = recipe.limitation(cell.precision, cell.backend, "build", cell.form, size)
        if limitation is not None and limitation.status == "skip":
            result.update(status="skip", reason=limitation.reason)
        else:
            with tempfile.TemporaryDirectory(prefix="netexport-cell-") as tmp:
                run = _run_onnxruntime if cell.backend == "onnxruntime" else _run_engine
                try:
                    result.update(run(cell, source, settings, Path(tmp)))
                except NetexportError as exc:
                    if unbuildable is None:
                        raise
                    result.update(status="xfail", failures=[exc.message], reason=unbuildable.reason)
            if limitation is not None and result["status"] in ("pass", "fail"):  # parity was checked
                result["reason"] = limitation.reason
                if result["status"] == "fail":
                    result["status"] = "xfail"
            if unbuildable is not None and result["status"] in ("pass", "built"):
                result["reason"] = unbuildable.reason  # a stale limitation shows in every report
    except NetexportError as exc:
        result.update(status="error", failures=[exc.message])
    except Exception as exc:  # a crash in one model must not hide the rest of the matrix
        result.update(status="error", failures=[f"{type(exc).__name__}: {first_line(exc)}"])
    result.setdefault("task", "unknown")
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def _run_onnxruntime(cell: Cell, source, settings: RunSettings, workdir: Path) -> dict:
    from .pipeline.to_onnx import OnnxRequest, run_onnx

    artifact = workdir / f"{source.slug}.{cell.precision}.onnx"
    request = OnnxRequest(cell.model, output=artifact, reduced_size=settings.reduced_size,
                          precision=cell.precision, weights=settings.weights, user=settings.user,
                          end2end=cell.form == "end2end")
    result = run_onnx(request, source=source)
    out = result.to_dict()
    out.pop("artifact", None)
    out["status"] = "pass" if result.passed else "fail"
    out["failures"] = result.failures()
    if result.artifact is not None:
        start = time.perf_counter()
        out["latency_ms"] = _onnxruntime_latency_ms(result.artifact, source.recipe, result.export_shapes)
        out["timings"]["latency"] = round(time.perf_counter() - start, 4)
    return out


def _onnxruntime_latency_ms(path: Path, recipe, input_shapes: dict) -> float:
    """Median single-batch latency of the verified graph (a rough figure; `netexport bench` measures)."""
    from .backends.onnxruntime import OnnxRuntimeRunner
    from .data import synthetic_inputs

    feed = synthetic_inputs(input_shapes, recipe.normalization, seed=2)
    with OnnxRuntimeRunner(str(path)) as runner:
        runner.infer(feed)
        runs = []
        for _ in range(LATENCY_RUNS):
            start = time.perf_counter()
            runner.infer(feed)
            runs.append(time.perf_counter() - start)
    return round(statistics.median(runs) * 1000, 3)


def _run_engine(cell: Cell, source, settings: RunSettings, workdir: Path) -> dict:
    """Build (and where a GPU runtime exists, run and verify) the engine. ONNX parity is the
    onnxruntime cell's job, so the ONNX stage here skips it."""
    from .pipeline.end2end import nms_for_backend
    from .pipeline.to_trt import TrtRequest, run_trt

    onnx = {"reduced_size": settings.reduced_size, "verify": False}
    if cell.form == "end2end":
        # A detector's Loop NMS graph (TensorRT-RTX's) is checked by no onnxruntime cell; any other
        # end-to-end graph is the onnxruntime cell's own, so checking it again would count one result twice.
        loop_nms = nms_for_backend(source.recipe, cell.backend) == "loop"
        onnx.update(end2end=True, verify=loop_nms)
    if settings.weights:
        onnx["weights"] = settings.weights
    if settings.user:
        onnx["user"] = settings.user
    request = TrtRequest(cell.model, output=workdir / f"{source.slug}.{cell.precision}.engine",
                         backend=cell.backend, precision=cell.precision, onnx=onnx, batch=1)
    result = run_trt(request)
    sidecar = result.sidecar
    out = {
        "engine": {"bytes": sidecar["engine_bytes"], "build_seconds": sidecar["build_seconds"],
                   "backend_version": sidecar["backend_version"], "layer_precisions": sidecar["layer_precisions"],
                   "executed": result.executed, "reason": result.reason},
        "timings": result.timings,
        **({"footprint": result.onnx["footprint"]} if result.onnx and result.onnx.get("footprint") else {}),
        "verification": [v.to_dict() for v in result.verifications],
        "failures": [line for v in result.verifications for line in v.failures()],
    }
    if not result.executed:
        out.update(status="built", reason=f"built, not executed: {result.reason}")
    else:
        out["status"] = "pass" if result.passed else "fail"
    return out


# ---- the matrix ---------------------------------------------------------------------------------


_events = None  # in a worker process: the queue its cells report start and finish on


def _worker_init(events) -> None:
    global _events
    _events = events


def _run_model_cells(cells: list[Cell], settings: RunSettings, threads: int,
                     estimate_mb: int | None = None) -> list[dict]:
    """A worker's job: one model's cells, back to back, so the model and its FP32 graph are built
    once (pipeline.reuse) instead of once per cell. Each result carries the memory estimate the job
    was admitted with (-j auto). Afterwards the worker gives its memory back, so the next job starts
    from a worker's base size, as the scheduler assumes."""
    import torch

    from .pipeline import reuse

    torch.set_num_threads(threads)
    results, sources = [], {}
    try:
        for cell in cells:
            _events.put(("start", cell, None))
            result = run_cell(cell, settings, sources)
            if estimate_mb is not None:
                result["memory_estimate_mb"] = estimate_mb
            _events.put(("done", cell, result))
            results.append(result)
    finally:
        reuse.clear()
        _release_memory()
    return results


def _release_memory() -> None:
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed pages otherwise
    except (OSError, AttributeError):
        pass


def run_matrix(cells: list[Cell], settings: RunSettings, jobs: int | str = 1, cache: ResultCache | None = None,
               on_start: Callable[[Cell], None] | None = None,
               on_done: Callable[[dict], None] | None = None) -> MatrixRun:
    """Run `cells` (cached results first), calling back as cells start and finish; results come
    back in matrix order whatever order they finished in. `jobs` is a worker count or "auto"
    (as many workers as cores, started while their memory estimates fit: netexport.schedule)."""
    run = MatrixRun()
    results: dict[Cell, dict] = {}
    keys: dict[Cell, str] = {}
    sources: dict = {}  # model -> ModelSource, shared by the cache keys and in-process cells
    pending = []
    for cell in cells:
        if cache is not None:
            keys[cell] = _key(cell, settings, sources)
            hit = cache.get(keys[cell]) if keys[cell] else None
            if hit is not None:
                hit["cached"] = True
                results[cell] = hit
                run.cache_hits += 1
                if on_done:
                    on_done(hit)
                continue
        pending.append(cell)

    def finish(cell: Cell, result: dict) -> None:
        if cell in results:
            return
        result["cached"] = False
        results[cell] = result
        if cache is not None and keys.get(cell):
            cache.put(keys[cell], result)
        if on_done:
            on_done(result)

    if jobs == 1 or (jobs == "auto" and len({c.model for c in pending}) <= 1):
        for cell in pending:
            if on_start:
                on_start(cell)
            finish(cell, run_cell(cell, settings, sources))
    elif pending:
        _run_parallel(pending, settings, jobs, on_start, finish, sources)
    run.cells = [results[cell] for cell in cells]
    return run


def _estimates(models: list[str], settings: RunSettings, sources: dict) -> dict[str, "schedule.Estimate"]:
    """Each zoo model's memory estimate at the run's input size (user models: unknown, run alone)."""
    from . import schedule
    from .pipeline.export import resolve_settings
    from .sources import is_user_ref

    out = {}
    for model in models:
        estimate = schedule.Estimate()
        if settings.user is None and not is_user_ref(model) and not model.endswith(".onnx"):
            try:
                recipe = _source(model, settings, sources).recipe
                shapes = resolve_settings(recipe, use_test_shape=settings.reduced_size).input_shapes
                estimate = schedule.estimate_zoo_model(model, shapes)
            except NetexportError:
                pass  # the job reports the model's error
        out[model] = estimate
    return out


def _run_parallel(pending: list[Cell], settings: RunSettings, jobs: int | str, on_start, finish,
                  sources: dict) -> None:
    """One job per model in worker processes, started as the scheduler admits them; cells report
    through a queue as they go."""
    import multiprocessing
    import queue

    from . import schedule

    by_model: dict[str, list[Cell]] = {}
    for cell in pending:
        by_model.setdefault(cell.model, []).append(cell)
    cores = os.cpu_count() or 1
    if jobs == "auto":
        estimates = _estimates(list(by_model), settings, sources)
        admission = schedule.Admission(slots=min(cores, len(by_model)), budget=schedule.memory_budget(), cores=cores)
    else:
        estimates = {model: schedule.Estimate() for model in by_model}
        admission = schedule.Admission(slots=int(jobs), budget=None, cores=cores)
    waiting = schedule.order([schedule.Job(model, estimates[model].peak_bytes) for model in by_model], admission)
    context = multiprocessing.get_context("spawn")  # torch is not fork-safe once its pools exist
    events = context.Manager().Queue()

    def drain(timeout: float) -> None:
        try:
            while True:
                kind, cell, result = events.get(timeout=timeout)
                timeout = 0
                if kind == "start" and on_start:
                    on_start(cell)
                elif kind == "done":
                    finish(cell, result)
        except queue.Empty:
            pass

    with ProcessPoolExecutor(max_workers=admission.slots, mp_context=context, initializer=_worker_init,
                             initargs=(events,)) as pool:
        futures = {}

        def submit() -> None:
            for job in schedule.next_jobs(waiting, admission):
                estimate_mb = round(job.peak_bytes / 2**20) if job.peak_bytes is not None else None
                future = pool.submit(_run_model_cells, by_model[job.key], settings, admission.threads(job), estimate_mb)
                futures[future] = job.key

        submit()
        while futures:
            drain(timeout=0.2)
            for future in [f for f in futures if f.done()]:
                model = futures.pop(future)
                drain(timeout=0)
                try:
                    returned = future.result()
                except Exception as exc:  # the worker died (out of memory, a native crash)
                    returned = [_crashed(cell, exc) for cell in by_model[model]]
                for cell, result in zip(by_model[model], returned):
                    finish(cell, result)  # no-op for cells already reported through the queue
                admission.finish(model)
            submit()
        drain(timeout=0)


def _crashed(cell: Cell, exc: Exception) -> dict:
    return {"model": cell.model, "precision": cell.precision, "backend": cell.backend, "task": "unknown",
            **({"form": cell.form} if cell.form != "raw" else {}),
            "status": "error", "seconds": 0.0,
            "failures": [f"worker process failed: {type(exc).__name__}: {first_line(exc)}"]}


def _key(cell: Cell, settings: RunSettings, sources: dict) -> str | None:
    """The cell's cache key, or None when it cannot be computed (the cell then runs and reports why)."""
    try:
        source = _source(cell.model, settings, sources)
    except NetexportError:
        return None
    return cell_key(source, cell, settings.key_fields(), settings.weights)
