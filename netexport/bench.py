"""Latency benchmark: PyTorch eager (the baseline) against the exported graphs, side by side.

Each requested (backend, precision) is timed in one process on the same seeded input: warm-up
runs, then timed runs with `time.perf_counter` until both the requested count and a minimum time
are reached (capped). ONNX graphs come from the ONNX pipeline, built once per precision, without
the parity check (that is `netexport verify`'s job). TensorRT backends run only where a CUDA GPU
exists; elsewhere their rows say why not.
"""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import BackendUnavailable, InputError
from .numerics import torch_threads
from .sources import ModelSource, UserOptions

BACKENDS = ("torch", "onnxruntime", "tensorrt-rtx", "tensorrt")
TRT_BACKENDS = ("tensorrt-rtx", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
CALIB_SAMPLES = 8  # synthetic INT8 calibration: enough for a timing graph, quick to build
MIN_SECONDS = 2.0
MAX_ITERATIONS = 200
BUSY_WARNING_PERCENT = 10.0  # other processes' share of the cores above which the numbers are flagged
TORCH_ONLY_FP32 = "torch eager runs fp32 only here (it is the baseline)"

Event = Callable[[str], None]


@dataclass(frozen=True)
class BenchRequest:
    model: str
    precisions: tuple[str, ...] = PRECISIONS
    backends: tuple[str, ...] | None = None  # None: all; named ones must be importable
    batch: int = 1
    threads: int | None = None  # None: every core this process may use
    warmup: int = 5
    iterations: int = 30
    input_size: tuple[int, int] | None = None
    user: UserOptions | None = None
    min_seconds: float = MIN_SECONDS


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p90_ms: float
    iterations: int


@dataclass
class Row:
    backend: str
    precision: str
    status: str  # ok | n/a | not run
    reason: str | None = None
    timing: Timing | None = None
    speedup: float | None = None

    def label(self) -> str:
        return self.status if self.reason is None else f"{self.status}: {self.reason}"

    def to_dict(self, batch: int) -> dict:
        t = self.timing
        return {
            "backend": self.backend,
            "precision": self.precision,
            "status": self.status,
            "reason": self.reason,
            "median_ms": t.median_ms if t else None,
            "p90_ms": t.p90_ms if t else None,
            "throughput": round(batch * 1000 / t.median_ms, 2) if t else None,
            "speedup": self.speedup,
            "iterations": t.iterations if t else None,
        }


@dataclass
class BenchResult:
    model: str
    batch: int
    input_shapes: dict[str, list]
    baseline: Timing
    rows: list[Row]
    machine: dict
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "batch": self.batch,
            "input_shapes": self.input_shapes,
            "baseline": {"backend": "torch", "precision": "fp32", "median_ms": self.baseline.median_ms},
            "rows": [row.to_dict(self.batch) for row in self.rows],
            "machine": self.machine,
            "notes": self.notes,
        }


# ---- request checks -----------------------------------------------------------------------------


def parse_names(text: str, choices: tuple[str, ...], what: str) -> tuple[str, ...]:
    """'fp32, int8' → ('fp32', 'int8'), keeping order, dropping repeats; unknown names are input errors."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in choices]
    if unknown or not names:
        raise InputError(f"unknown {what} {','.join(unknown) or repr(text)}: choose from {', '.join(choices)}")
    return names


def check_request(request: BenchRequest) -> None:
    parse_names(",".join(request.precisions), PRECISIONS, "precision")
    parse_names(",".join(request.backends or BACKENDS), BACKENDS, "backend")
    for flag, value, low in (("--batch", request.batch, 1), ("--iterations", request.iterations, 1),
                             ("--warmup", request.warmup, 0), ("--threads", request.threads, 1)):
        if value is not None and value < low:
            raise InputError(f"{flag} must be >= {low}, not {value}")


# ---- machine ------------------------------------------------------------------------------------


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:
        return None


def machine_facts(threads: int) -> dict:
    from .backends.tensorrt import gpu_runtime_reason

    gpu = gpu_runtime_reason(None)
    return {
        "cpu": cpu_model(),
        "cores": available_cores(),
        "threads": threads,
        "gpu": "CUDA GPU visible" if gpu is None else f"none ({gpu})",
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        # other processes competing for the cores skew latencies: record how busy the machine was
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def busy_seconds() -> float | None:
    """CPU seconds every process on the machine has used (plus time stolen by the hypervisor)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def contention(facts: dict):
    """Record in `facts` how much of the cores other processes used while the block ran: other work on a
    2-core machine (a test suite, a build) makes latencies meaningless, and this says so."""
    busy, own, wall = busy_seconds(), sum(os.times()[:2]), time.perf_counter()
    try:
        yield
    finally:
        after = busy_seconds()
        if busy is not None and after is not None:
            others = (after - busy) - (sum(os.times()[:2]) - own)
            share = others / max(time.perf_counter() - wall, 1e-9) / facts["cores"]
            facts["other_processes_cpu_percent"] = round(max(share, 0.0) * 100, 1)


# ---- timing -------------------------------------------------------------------------------------


def measure(run: Callable[[], object], warmup: int, iterations: int, min_seconds: float) -> Timing:
    """Warm up, then time single runs until `iterations` and `min_seconds` are both reached
    (at most max(iterations, MAX_ITERATIONS) runs)."""
    import numpy as np

    for _ in range(warmup):
        run()
    cap = max(iterations, MAX_ITERATIONS)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < iterations or (time.perf_counter() - start < min_seconds and len(times) < cap):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1000
    return Timing(round(float(np.percentile(ms, 50)), 4), round(float(np.percentile(ms, 90)), 4), len(times))


def time_torch(source: ModelSource, shapes: dict, sample: dict, request: BenchRequest) -> Timing:
    import torch

    model = source.create(weights=None, input_shapes=shapes)
    if hasattr(model, "reparameterize"):  # the exported graphs are built from the deploy form too
        model.reparameterize()
    args = [torch.from_numpy(sample[spec.name]) for spec in source.recipe.inputs]

    def run():
        with torch.inference_mode():
            model(*args)

    return measure(run, request.warmup, request.iterations, request.min_seconds)


def time_onnxruntime(graph: bytes, sample: dict, request: BenchRequest, threads: int) -> Timing:
    from .backends.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(graph, threads=threads) as runner:
        return measure(lambda: runner.infer(sample), request.warmup, request.iterations, request.min_seconds)


def time_tensorrt(spec, trt, graph: bytes, sample: dict, request: BenchRequest) -> Timing:
    """Engine latency end to end: host-to-device copies, execution and the copy back (needs a GPU)."""
    from .backends.tensorrt import BuildOptions, EngineRunner, build_engine

    build = build_engine(spec, trt, graph, BuildOptions())
    with EngineRunner(spec, trt, build.plan) as runner:
        return measure(lambda: runner.infer(sample), request.warmup, request.iterations, request.min_seconds)


# ---- the run ------------------------------------------------------------------------------------


def input_shapes(source: ModelSource, request: BenchRequest) -> dict[str, tuple[int, ...]]:
    from .pipeline.export import check_input_size

    recipe = source.recipe
    if request.input_size is not None:
        for spec in recipe.inputs:
            check_input_size(recipe, spec, request.input_size)
    return {spec.name: spec.with_batch_and_size(request.batch, request.input_size) for spec in recipe.inputs}


def tensorrt_backends(request: BenchRequest) -> tuple[dict, dict]:
    """({backend: (spec, module)} that can run here, {backend: why not}). A backend the user named
    whose module does not import is an error (exit 3); an implied one is just not run."""
    from .backends.tensorrt import gpu_runtime_reason, load_backend

    runnable, skipped = {}, {}
    for name in [b for b in request.backends or BACKENDS if b in TRT_BACKENDS]:
        try:
            spec, trt = load_backend(name)
        except BackendUnavailable as exc:
            if request.backends is not None:
                raise
            skipped[name] = exc.message
            continue
        reason = gpu_runtime_reason(trt)
        if reason is None:
            runnable[name] = (spec, trt)
        else:
            skipped[name] = reason
    return runnable, skipped


def build_graph(source: ModelSource, request: BenchRequest, precision: str, folder: Path) -> bytes:
    from .pipeline.to_onnx import OnnxRequest, run_onnx

    onnx_request = OnnxRequest(
        model=request.model, output=folder / f"{source.slug}.{precision}.onnx", precision=precision,
        batch=request.batch, input_size=request.input_size, verify=False, user=request.user,
        calib_samples=CALIB_SAMPLES if precision == "int8" else None,
    )
    result = run_onnx(onnx_request, source=source)
    return result.artifact.read_bytes()


def time_graphs(source, request, sample, threads, onnx_backends, trt_runnable, on_event) -> dict:
    """{(backend, precision): Timing} for every backend that runs an ONNX graph; each precision's
    graph is built once, used by every backend, then dropped (large models hold GBs)."""
    timings = {}
    with tempfile.TemporaryDirectory(prefix="netexport-bench-") as tmp:
        for precision in request.precisions:
            start = time.perf_counter()
            graph = build_graph(source, request, precision, Path(tmp))
            on_event(f"{precision} graph built in {time.perf_counter() - start:.1f}s")
            for backend in onnx_backends:
                if backend == "onnxruntime":
                    timings[backend, precision] = time_onnxruntime(graph, sample, request, threads)
                else:
                    spec, trt = trt_runnable[backend]
                    timings[backend, precision] = time_tensorrt(spec, trt, graph, sample, request)
                on_event(f"timed {backend} {precision}: median {timings[backend, precision].median_ms:.3f} ms")
    return timings


def make_rows(request: BenchRequest, baseline: Timing, timings: dict, skipped: dict) -> list[Row]:
    rows = []
    for backend in request.backends or BACKENDS:
        for precision in request.precisions:
            if backend == "torch":
                row = Row(backend, precision, "ok", timing=baseline) if precision == "fp32" else \
                    Row(backend, precision, "n/a", TORCH_ONLY_FP32)
            elif backend in skipped:
                row = Row(backend, precision, "not run", skipped[backend])
            else:
                row = Row(backend, precision, "ok", timing=timings[backend, precision])
            if row.timing is not None:
                row.speedup = round(baseline.median_ms / row.timing.median_ms, 3)
            rows.append(row)
    return rows


def notes(request: BenchRequest, timed_graphs: bool) -> list[str]:
    lines = ["speed-up: median latency of PyTorch eager fp32 (CPU) divided by the row's median"]
    if timed_graphs:
        lines.append("graphs are not parity-checked here: `netexport verify` does that")
        if "int8" in request.precisions:
            lines.append(f"INT8 calibrated on {CALIB_SAMPLES} synthetic samples (timing only, not accuracy)")
    return lines


def run_bench(request: BenchRequest, on_event: Event | None = None) -> BenchResult:
    from .data import synthetic_inputs
    from .sources import resolve

    on_event = on_event or (lambda message: None)
    check_request(request)
    trt_runnable, skipped = tensorrt_backends(request)  # a missing named backend fails before any work
    source = resolve(request.model, request.user)
    shapes = input_shapes(source, request)
    sample = synthetic_inputs(shapes, source.recipe.normalization, seed=0)
    threads = request.threads or available_cores()
    onnx_backends = [b for b in request.backends or BACKENDS if b == "onnxruntime" or b in trt_runnable]
    machine = machine_facts(threads)  # before timing: the load average is the one the run started in
    with torch_threads(threads), contention(machine):
        baseline = time_torch(source, shapes, sample, request)
        on_event(f"timed torch fp32: median {baseline.median_ms:.3f} ms")
        timings = time_graphs(source, request, sample, threads, onnx_backends, trt_runnable, on_event) \
            if onnx_backends else {}
    return BenchResult(
        model=source.recipe.name,
        batch=request.batch,
        input_shapes={name: list(shape) for name, shape in shapes.items()},
        baseline=baseline,
        rows=make_rows(request, baseline, timings, skipped),
        machine=machine,
        notes=notes(request, bool(onnx_backends)),
    )


# ---- display ------------------------------------------------------------------------------------


def skipped_lines(result: BenchResult) -> list[str]:
    """One line per backend and reason for the rows that were not timed ("torch fp16, int8: n/a: ...")."""
    groups: dict[tuple[str, str], list[str]] = {}
    for row in result.rows:
        if row.timing is None:
            groups.setdefault((row.backend, row.label()), []).append(row.precision)
    return [f"{backend} {', '.join(precisions)}: {label}" for (backend, label), precisions in groups.items()]


def rich_table(result: BenchResult):
    from rich.table import Table

    m = result.machine
    shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in result.input_shapes.items())
    table = Table(title=f"{result.model} ({shapes}) on {m['cpu']}, {m['threads']} threads", box=None)
    for column in ("backend", "precision", "median ms", "p90 ms", "images/s", "speed-up", "runs"):
        table.add_column(column, justify="left" if column in ("backend", "precision") else "right", no_wrap=True)
    for row in result.rows:
        d = row.to_dict(result.batch)
        if row.timing is None:
            table.add_row(row.backend, row.precision, row.status, "", "", "", "")
            continue
        table.add_row(row.backend, row.precision, f"{d['median_ms']:.3f}", f"{d['p90_ms']:.3f}",
                      f"{d['throughput']:.1f}", f"{d['speedup']:.2f}×", str(d["iterations"]))
    return table


def render(result: BenchResult, console) -> None:
    console.print(rich_table(result))
    for line in skipped_lines(result) + [f"note: {note}" for note in result.notes]:
        console.print(line, markup=False)
    busy = result.machine.get("other_processes_cpu_percent")
    if busy is not None and busy >= BUSY_WARNING_PERCENT:
        console.print(f"warning: other processes used {busy}% of the cores during the run; latencies are skewed",
                      markup=False)
