"""The `netexport` command line. Errors become one line and the exit code of errors.py (DESIGN.md §3).

Every command takes --json: the machine-readable result goes to stdout, progress and logs to stderr.
Heavy imports (torch, onnx) happen inside the commands so `netexport --help` starts instantly.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from . import __version__
from .errors import EXIT_VERIFICATION_FAILED, InputError, NetexportError


class NetexportClickError(click.ClickException):
    """A NetexportError shown Click's way: `Error: <message>` on stderr, its own exit code."""

    def __init__(self, error: NetexportError):
        super().__init__(error.message)
        self.exit_code = error.exit_code


def handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NetexportError as exc:
            raise NetexportClickError(exc) from None

    return wrapper


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _parse_size(ctx, param, value):
    if value is None:
        return None
    from .pipeline.export import parse_size

    try:
        return parse_size(value)
    except InputError as exc:
        raise click.BadParameter(exc.message) from None


class OneLineErrorGroup(click.Group):
    """Click prints usage errors as usage + hint + error; netexport prints one line for every error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="netexport")
def main():
    """Export PyTorch CNNs to ONNX and TensorRT, verified against PyTorch."""


@main.command("list")
@click.option("--task", help="Only models of this task (e.g. classification).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
@handle_errors
def list_cmd(task, as_json):
    """List the zoo: name, task, parameters, canonical input shape."""
    from .recipes import TASKS, get_recipe, recipe_names

    if task is not None and task not in TASKS:
        raise InputError(f"unknown task {task!r}: choose from {', '.join(TASKS)}")
    rows = []
    for name in recipe_names(task):
        recipe = get_recipe(name)
        rows.append(
            {
                "name": name,
                "task": recipe.task,
                "params": recipe.reference.params,
                "input_shape": {s.name: list(s.shape) for s in recipe.inputs},
            }
        )
    if as_json:
        _emit_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    for column in ("model", "task", "params", "input"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for row in rows:
        shape = " ".join("x".join(map(str, s)) for s in row["input_shape"].values())
        table.add_row(row["name"], row["task"], f"{row['params'] / 1e6:.2f}M", shape)
    Console().print(table)


@main.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
@handle_errors
def info_cmd(name, as_json):
    """Reference, parameters, GFLOPs, inputs/outputs and a layer summary of one model."""
    from .info import model_info

    info = model_info(name)
    if as_json:
        _emit_json(info)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    ref = info["reference"]
    console.print(f"[bold]{info['name']}[/bold] ({info['task']}, recipe {info['recipe']})")
    console.print(f"paper:           {ref['paper']}")
    console.print(f"implementation:  {ref['implementation']}")
    console.print(f"parameters:      {info['params']:,} (reference {ref['params']:,})")
    console.print(f"GMACs / GFLOPs:  {info['gmacs']:.3f} / {info['gflops']:.3f} at {info['flops_input']}")
    for spec in info["inputs"]:
        console.print(f"input  {spec['name']}: {spec['shape']} (min {spec['min_shape']})")
    for out in info["outputs"]:
        console.print(f"output {out['name']}: {out['shape']}")
    table = Table(title="layers", box=None)
    for column in ("layer", "type", "params", "output"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for layer in info["layers"]:
        table.add_row(layer["name"], layer["type"], f"{layer['params']:,}", str(layer["output_shape"]))
    console.print(table)


def _calibration_options(fn):
    for option in reversed([
        click.option("--fp16", is_flag=True, help="FP16 graph (FP32 inputs/outputs unless --fp16-io)."),
        click.option("--fp16-io", is_flag=True, help="With --fp16: FP16 inputs and outputs too."),
        click.option("--int8", is_flag=True, help="INT8 with explicit symmetric Q/DQ (TensorRT style)."),
        click.option("--calib-data", type=click.Path(path_type=Path), help="INT8 calibration: image folder or .npz by input name."),
        click.option("--calib-samples", type=int, help="INT8 calibration batches (default: the recipe's)."),
        click.option("--calib-method", type=click.Choice(["minmax", "entropy", "percentile"]), help="INT8 range estimator."),
        click.option("--calib-cache", type=click.Path(path_type=Path), help="Read/write the INT8 ranges here."),
    ]):
        fn = option(fn)
    return fn


def _end2end_options(fn):
    for option in reversed([
        click.option("--end2end", is_flag=True,
                     help="Detectors: decode + NMS in the graph (outputs num_dets, boxes, scores, classes); "
                          "pose models: heatmap peaks decoded (outputs keypoints, scores)."),
        click.option("--max-detections", type=int, help="With --end2end: detections per image K (default: the recipe's)."),
        click.option("--score-threshold", type=float, help="With --end2end: minimum score (default: the recipe's)."),
        click.option("--iou-threshold", type=float, help="With --end2end: NMS IoU threshold (default: the recipe's)."),
        click.option("--nms", type=click.Choice(["onnx", "loop"]),
                     help="With --end2end: ONNX NonMaxSuppression, or an exact ONNX Loop (default: loop for "
                          "TensorRT-RTX, whose builder has no NMS layer; onnx otherwise)."),
    ]):
        fn = option(fn)
    return fn


def _user_model_options(fn):
    for option in reversed([
        click.option("--input-shape", help="For package.module:callable models: input shape N,C,H,W."),
        click.option("--task", help="For package.module:callable models: the task (default classification)."),
        click.option("--recipe", "recipe_file", type=click.Path(path_type=Path),
                     help="For package.module:callable models: a recipe YAML file."),
    ]):
        fn = option(fn)
    return fn


def _user_options(input_shape, task, recipe_file):
    from .sources import UserOptions, parse_input_shape

    user = UserOptions(parse_input_shape(input_shape) if input_shape else None, task, recipe_file)
    return user if user.given() else None


@main.command("onnx")
@click.argument("name")
@_user_model_options
@click.option("--opset", type=int, help="ONNX opset (13 to the newest the exporters support).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output file (default NAME.onnx).")
@click.option("--weights", type=click.Path(path_type=Path), help="State dict or checkpoint to load.")
@click.option("--batch", type=int, help="Batch size of the exported graph (default 1).")
@click.option("--dynamic-batch", is_flag=True, help="Export a dynamic batch axis (range from the recipe).")
@click.option("--dynamic-shape", is_flag=True,
              help="Export dynamic height and width (range from the recipe's min_shape..max_shape); "
                   "verified at a second size.")
@click.option("--input-size", callback=_parse_size, help="Spatial input size HxW (default: the recipe's).")
@click.option("--no-simplify", is_flag=True, help="Skip graph simplification.")
@click.option("--simplifier", type=click.Choice(["onnxslim", "onnxsim"]), default="onnxslim", show_default=True)
@click.option("--exporter", type=click.Choice(["auto", "torchscript", "dynamo"]), default=None,
              help="torch.onnx exporter (default: the recipe's, auto = by opset).")
@_calibration_options
@_end2end_options
@click.option("--no-verify", is_flag=True, help="Skip the parity check against PyTorch.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON to stdout.")
@handle_errors
def onnx_cmd(name, input_shape, task, recipe_file, opset, output, weights, batch, dynamic_batch, dynamic_shape, input_size,
             no_simplify, simplifier,
             exporter, fp16, fp16_io, int8, calib_data, calib_samples, calib_method, calib_cache, end2end,
             max_detections, score_threshold, iou_threshold, nms, no_verify, as_json):
    """Export NAME (a zoo model or package.module:callable) to ONNX, simplify it, optionally convert
    precision, and verify it against PyTorch with ONNX Runtime."""
    from .pipeline.to_onnx import OnnxRequest, run_onnx

    if fp16 and int8:
        raise InputError("--fp16 and --int8 exclude each other")
    console = _stderr_console()

    def progress(stage, seconds, detail):
        console.print(f"[green]✓[/green] {stage:<9} {seconds:6.2f}s  {detail}")

    request = OnnxRequest(
        model=name, output=output, opset=opset, weights=weights, batch=batch, dynamic_batch=dynamic_batch,
        dynamic_shape=dynamic_shape,
        input_size=input_size, simplify=not no_simplify, simplifier=simplifier, verify=not no_verify,
        exporter=exporter, precision="fp16" if fp16 else "int8" if int8 else "fp32", fp16_io=fp16_io,
        calib_data=calib_data, calib_samples=calib_samples, calib_method=calib_method, calib_cache=calib_cache,
        user=_user_options(input_shape, task, recipe_file), end2end=end2end, max_detections=max_detections,
        score_threshold=score_threshold, iou_threshold=iou_threshold, nms=nms or "onnx",
    )
    result = run_onnx(request, progress=progress)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if as_json:
        _emit_json(result.to_dict())
    _report_verification(console, result)
    if result.verified and not result.passed:
        sys.exit(EXIT_VERIFICATION_FAILED)


@main.command("trt")
@click.argument("name")
@_user_model_options
@_calibration_options
@_end2end_options
@click.option("--backend", type=click.Choice(["auto", "tensorrt", "tensorrt-rtx"]), default="auto", show_default=True,
              help="auto: tensorrt when importable, else tensorrt-rtx.")
@click.option("--opset", type=int, help="ONNX opset of the exported graph.")
@click.option("--weights", type=click.Path(path_type=Path), help="State dict or checkpoint to load.")
@click.option("--input-size", callback=_parse_size, help="Spatial input size HxW.")
@click.option("--dynamic-shape", is_flag=True,
              help="Dynamic height and width: the profile spans the recipe's min_shape, shape and max_shape.")
@click.option("--batch", type=int, help="Static batch size (default 1).")
@click.option("--min-batch", type=int, help="Dynamic batch profile: minimum.")
@click.option("--opt-batch", type=int, help="Dynamic batch profile: the size to optimise for.")
@click.option("--max-batch", type=int, help="Dynamic batch profile: maximum.")
@click.option("--shapes", help="Profile per input: name:MINxCxHxW:OPT...:MAX... (comma-separated inputs).")
@click.option("--workspace", type=int, help="Builder workspace limit in MiB.")
@click.option("--timing-cache", type=click.Path(path_type=Path), help="Read and update this timing cache.")
@click.option("--compute-capability", help="TensorRT-RTX targets, e.g. 8.6,8.9 or SM86,SM89.")
@click.option("--tf32", is_flag=True, help="Allow TF32 in FP32 engines (off by default, as verification assumes).")
@click.option("--require-run", is_flag=True, help="Exit 3 unless the engine could be executed and verified here.")
@click.option("--inspect", is_flag=True, help="Per-layer report and a count of layers per precision.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Engine file (default NAME.PRECISION.engine).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON to stdout.")
@handle_errors
def trt_cmd(name, input_shape, task, recipe_file, fp16, fp16_io, int8, calib_data, calib_samples, calib_method, calib_cache,
            end2end, max_detections, score_threshold, iou_threshold, nms, backend, opset, weights,
            input_size, dynamic_shape, batch, min_batch, opt_batch, max_batch, shapes, workspace, timing_cache,
            compute_capability, tf32, require_run, inspect, output, as_json):
    """Build a TensorRT / TensorRT-RTX engine for NAME (a zoo model, package.module:callable or an .onnx file)."""
    from .pipeline.to_trt import TrtRequest, parse_shapes, run_trt

    if fp16 and int8:
        raise InputError("--fp16 and --int8 exclude each other")
    if workspace is not None and workspace < 1:
        raise InputError(f"--workspace must be a positive number of MiB, not {workspace}")
    onnx_options = {key: value for key, value in {
        "opset": opset, "weights": weights, "input_size": input_size, "fp16_io": fp16_io or None,
        "calib_data": calib_data, "calib_samples": calib_samples, "calib_method": calib_method,
        "calib_cache": calib_cache, "user": _user_options(input_shape, task, recipe_file),
        "end2end": end2end or None, "max_detections": max_detections, "score_threshold": score_threshold,
        "iou_threshold": iou_threshold, "nms": nms, "dynamic_shape": dynamic_shape or None,
    }.items() if value is not None}
    console = _stderr_console()

    def progress(stage, seconds, detail):
        console.print(f"[green]✓[/green] {stage:<9} {seconds:6.2f}s  {detail}")

    request = TrtRequest(
        model=name, output=output, backend=backend, precision="fp16" if fp16 else "int8" if int8 else "fp32",
        onnx=onnx_options, batch=batch, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
        shapes=parse_shapes(shapes) if shapes else None, workspace_mib=workspace, timing_cache=timing_cache,
        compute_capabilities=tuple(c.strip() for c in compute_capability.split(",")) if compute_capability else (),
        tf32=tf32, require_run=require_run, inspect=inspect,
    )
    result = run_trt(request, progress=progress)
    if as_json:
        _emit_json(result.to_dict())
    if inspect and not as_json:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="network layers (precision from strong typing)", box=None)
        for column in ("layer", "type", "precision"):
            table.add_column(column)
        for layer in result.layers:
            table.add_row(layer["name"], layer["type"], layer["precision"])
        Console().print(table)
    summary = ", ".join(f"{n} {p}" for p, n in result.sidecar["layer_precisions"].items())
    console.print(f"layers per precision: {summary}")
    if result.executed:
        for v in result.verifications:
            for line in v.failures():
                console.print(f"[red]FAIL[/red] {line}")
        if not result.passed:
            sys.exit(EXIT_VERIFICATION_FAILED)
    else:
        console.print(f"built, not executed: {result.reason}")


@main.command("bench")
@click.argument("name")
@_user_model_options
@click.option("--precision", "precisions", default="fp32,fp16,int8", show_default=True,
              help="Comma-separated precisions to time.")
@click.option("--backend", "backends",
              help="Comma-separated: torch, onnxruntime, tensorrt-rtx, tensorrt (default: all; TensorRT needs a GPU).")
@click.option("--batch", type=int, default=1, show_default=True, help="Batch size.")
@click.option("--threads", type=int, help="Intra-op threads for torch and ONNX Runtime (default: every core).")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed runs first.")
@click.option("--iterations", type=int, default=30, show_default=True,
              help="Timed runs (more until 2 s have passed, at most 200).")
@click.option("--input-size", callback=_parse_size, help="Spatial input size HxW (default: the recipe's).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON to stdout.")
@handle_errors
def bench_cmd(name, input_shape, task, recipe_file, precisions, backends, batch, threads, warmup, iterations, input_size,
              as_json):
    """Time NAME on PyTorch eager (the baseline), ONNX Runtime and TensorRT in each precision: median and p90
    latency, throughput and speed-up over PyTorch. Graphs are built without the parity check (verify's job)."""
    from .bench import BACKENDS, PRECISIONS, BenchRequest, parse_names, render, run_bench

    request = BenchRequest(
        model=name, precisions=parse_names(precisions, PRECISIONS, "precision"),
        backends=parse_names(backends, BACKENDS, "backend") if backends is not None else None,
        batch=batch, threads=threads, warmup=warmup, iterations=iterations, input_size=input_size,
        user=_user_options(input_shape, task, recipe_file),
    )
    console = _stderr_console()
    result = run_bench(request, on_event=lambda message: console.print(f"[green]✓[/green] {message}"))
    if as_json:
        _emit_json(result.to_dict())
    from rich.console import Console

    render(result, console if as_json else Console(highlight=False))


@main.command("verify")
@click.argument("names", nargs=-1)
@click.option("--all", "all_models", is_flag=True, help="Every model in the zoo.")
@click.option("--task", "tasks", multiple=True,
              help="Every zoo model of this task (repeatable); with package.module:callable models, their task.")
@click.option("--precision", "precisions", default="fp32,fp16,int8", show_default=True,
              help="Comma-separated precisions to verify.")
@click.option("--backend", "backends", default="onnxruntime", show_default=True,
              help="Comma-separated: onnxruntime, tensorrt-rtx, tensorrt; `installed` = every importable one.")
@click.option("-j", "--jobs", default="1", show_default=True,
              help="Worker processes, or `auto`: one per core, started while their memory estimates fit "
                   "(at most 20 GB), a large model alone.")
@click.option("--shard", help="Run only shard I of N of the matrix (I/N); merge with `netexport report merge`.")
@click.option("--reduced-size", is_flag=True, help="Use the recipes' reduced test sizes (quick check).")
@click.option("--weights", type=click.Path(path_type=Path), help="State dict or checkpoint (one model only).")
@click.option("--input-shape", help="For package.module:callable models: input shape N,C,H,W.")
@click.option("--recipe", "recipe_file", type=click.Path(path_type=Path),
              help="For package.module:callable models: a recipe YAML file.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path),
              help="Write report.json, report.md, junit.xml and report.html here.")
@click.option("--no-cache", is_flag=True, help="Run every cell, ignoring cached results.")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Where cell results are cached (default $NETEXPORT_CACHE_DIR or ~/.cache/netexport/verify).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON to stdout.")
@handle_errors
def verify_cmd(names, all_models, tasks, precisions, backends, jobs, shard, reduced_size, weights, input_shape,
               recipe_file, report_dir, no_cache, cache_dir, as_json):
    """Run the verification matrix (models x precisions x backends) and gate on it: exit 0 when every
    cell passes, is a documented xfail/skip or was built by a compile-only backend; 1 otherwise.
    INT8 cells calibrate on synthetic images (the check is parity, not accuracy)."""
    import time

    from . import matrix
    from .cache import ResultCache, default_dir, toolchain_versions
    from .gate import RunSettings, run_matrix
    from .progress import MatrixProgress
    from .report import cell_text, counts_text, document, exit_code, write_reports

    models, user = _select_models(names, all_models, tasks, input_shape, recipe_file)
    if weights is not None and len(models) != 1:
        raise InputError("--weights applies to one model at a time")
    precision_list = _split_choices(precisions, matrix.PRECISION_ORDER, "precision")
    backend_list = _verify_backends(backends)
    jobs = _jobs(jobs)
    cells = matrix.build(models, precision_list, backend_list, _end2end_models(models, user))
    shard_spec = matrix.parse_shard(shard) if shard else None
    if shard_spec:
        cells = matrix.shard(cells, *shard_spec)
    if report_dir is not None:
        from . import atomic

        atomic.ensure_writable(report_dir / "report.json")
    cache = None if no_cache else ResultCache(cache_dir or default_dir())

    console = _stderr_console()
    start = time.perf_counter()
    settings = RunSettings(reduced_size=reduced_size, weights=weights, user=user)
    with MatrixProgress(console, len(cells), cell_text) as progress:
        run = run_matrix(cells, settings, jobs=jobs, cache=cache, on_start=progress.started, on_done=progress.finished)

    meta = {"models": sorted(dict.fromkeys(models)), "precisions": precision_list, "backends": backend_list, "cells": len(run.cells),
            "shard": shard, "jobs": jobs, "reduced_size": reduced_size, "cache_hits": run.cache_hits,
            "seconds": round(time.perf_counter() - start, 1), "passed": exit_code(run.cells) == 0,
            "toolchain": toolchain_versions()}
    if run.cache_hits < len(run.cells):  # the run's floor needs the machine's arithmetic rate
        import os

        from .costs import measure_matmul_gflops

        meta["machine"] = {"cores": os.cpu_count(), "fp32_matmul_gflops": round(measure_matmul_gflops(), 1)}
    if report_dir is not None:
        for path in write_reports(report_dir, run.cells, meta):
            console.print(f"wrote {path}")
    if as_json:
        _emit_json(document(run.cells, meta))
    cached = f", {run.cache_hits} from cache" if run.cache_hits else ""
    console.print(f"{len(run.cells)} cells: {counts_text(run.cells) or 'none'} in {meta['seconds']}s{cached}")
    if exit_code(run.cells):
        sys.exit(EXIT_VERIFICATION_FAILED)


def _jobs(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        jobs = int(text)
    except ValueError:
        raise InputError(f"-j/--jobs takes a number of workers or auto, not {text!r}") from None
    if jobs < 1:
        raise InputError(f"-j/--jobs must be at least 1, not {jobs}")
    return jobs


def _split_choices(text: str, choices, what: str) -> list[str]:
    items = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in items if p not in choices]
    if unknown or not items:
        raise InputError(f"unknown {what} {','.join(unknown) or text!r}: choose from {', '.join(choices)}")
    return list(dict.fromkeys(items))


def _verify_backends(text: str) -> list[str]:
    """Backend names, checked importable up front (exit 3 with the install command if not)."""
    from .backends.tensorrt import SPECS, load_backend
    from .matrix import BACKEND_ORDER

    if text.strip() == "installed":
        found = ["onnxruntime"]
        for name in SPECS:
            try:
                load_backend(name)
                found.append(name)
            except NetexportError:
                pass
        return found
    backends = _split_choices(text, BACKEND_ORDER, "backend")
    for name in backends:
        if name != "onnxruntime":
            load_backend(name)  # BackendUnavailable: exit 3
    return backends


def _select_models(names, all_models, tasks, input_shape, recipe_file):
    """(model references, UserOptions or None) from the verify arguments."""
    from .recipes import TASKS, recipe_names
    from .sources import is_user_ref

    user_refs = [n for n in names if is_user_ref(n)]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise InputError(f"unknown task {unknown[0]!r}: choose from {', '.join(TASKS)}")
    if user_refs and len(tasks) > 1:
        raise InputError("package.module:callable models take one --task")
    if all_models and names:
        raise InputError("give model names or --all, not both")
    if (input_shape or recipe_file) and not user_refs:
        raise InputError("--input-shape and --recipe apply to package.module:callable models")
    user = _user_options(input_shape, tasks[0] if tasks else None, recipe_file) if user_refs else None
    if user_refs:
        from .sources import resolve

        for ref in user_refs:
            resolve(ref, user)  # a bad reference or recipe is exit 2 before any cell runs
    known = recipe_names()
    of_tasks = [n for t in tasks for n in recipe_names(t)]
    if all_models:
        return of_tasks if tasks else recipe_names(), user
    if tasks and not names:
        return of_tasks, user
    from .zoo.registry import unknown_name_message

    for name in names:
        if name not in known and name not in user_refs:
            raise InputError(unknown_name_message(name, known))
    selected = [n for n in dict.fromkeys(names) if n in user_refs or not tasks or n in of_tasks]
    if not selected:
        raise InputError("no models selected: name some, or use --all / --task")
    return selected, user


def _end2end_models(models, user) -> frozenset[str]:
    """The selected models that have an end-to-end form (detectors' decode + NMS, pose peak decoding)."""
    from .recipes import get_recipe, recipe_names
    from .sources import resolve

    known = set(recipe_names())
    return frozenset(m for m in models
                     if (get_recipe(m) if m in known else resolve(m, user).recipe).has_end2end)


def _report_verification(console, result) -> None:
    for v in result.verifications:
        for o in v.outputs:
            status = "[green]pass[/green]" if o.passed else "[red]FAIL[/red]"
            limit = ", ".join(f"{k} {val:g}" for k, val in o.tolerance.items())
            console.print(
                f"  {status} {o.name} {list(o.shape)}: max |Δ| {o.max_abs_err:.3g}, cosine {o.cosine:.7f} ({limit})"
            )
        if v.task is not None:
            status = "[green]pass[/green]" if v.task.passed else "[red]FAIL[/red]"
            console.print(f"  {status} {v.task.name}: {v.task.detail}")
    if result.verified and not result.passed:
        console.print(f"[red]parity FAILED[/red] for {result.model}; {'; '.join(result.failures())}")
        console.print("nothing written (rerun with --no-verify to write the unverified artifact)")
    elif not result.verified:
        console.print("[yellow]not verified[/yellow] (--no-verify)")


@main.group("report")
def report_group():
    """Work with the report directories `netexport verify --report` writes."""


@report_group.command("merge")
@click.argument("directories", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Directory for the merged report.json, report.md, junit.xml and report.html.")
@click.option("--json", "as_json", is_flag=True, help="Print the merged report as JSON to stdout.")
@handle_errors
def report_merge_cmd(directories, output, as_json):
    """Merge the reports of several shards of one verify matrix (each DIR holds a report.json);
    exit 1 if any merged cell failed."""
    from . import atomic
    from .report import counts_text, document, exit_code, merge, write_reports

    atomic.ensure_writable(output / "report.json")
    meta, cells = merge(list(directories))
    write_reports(output, cells, meta)
    if as_json:
        _emit_json(document(cells, meta))
    click.echo(f"merged {len(directories)} reports, {len(cells)} cells: {counts_text(cells) or 'none'} -> {output}",
               err=True)
    code = exit_code(cells)
    if code:
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
