"""The engine pipeline: (ONNX stages or a given .onnx) → TensorRT / TensorRT-RTX build → plan + sidecar.

The plan file is the builder's bytes untouched, so trtexec and Triton load it as it is; everything
netexport knows about it goes into `<engine>.json` beside it. Where a GPU and a runtime exist the
engine is run on the ONNX check's seeded inputs and verified against PyTorch; elsewhere the result
says plainly that it was built and not executed, and why.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__, atomic
from ..backends.tensorrt import (
    BuildOptions,
    Profile,
    build_engine,
    compute_capability_names,
    gpu_runtime_reason,
    load_backend,
)
from ..errors import BackendUnavailable, InputError, VerificationFailed
from ..recipes import Recipe, recipe_names
from ..sources import ModelSource, resolve, zoo_source
from . import provenance
from .end2end import nms_for_backend
from .export import resolve_settings
from .to_onnx import OnnxRequest, Progress, _Clock, run_onnx


DEFAULT_MAX_BATCH = 16  # profile maximum for a dynamic-batch graph whose recipe gives none


@dataclass
class TrtRequest:
    model: str  # a zoo name, a package.module:callable or an .onnx file
    output: Path | None = None
    backend: str = "auto"
    precision: str = "fp32"
    onnx: dict = field(default_factory=dict)  # further OnnxRequest fields (opset, weights, calib_*, ...)
    batch: int | None = None
    min_batch: int | None = None
    opt_batch: int | None = None
    max_batch: int | None = None
    shapes: dict[str, tuple] | None = None  # input name -> (min, opt, max) shapes
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    compute_capabilities: tuple[str, ...] = ()
    tf32: bool = False
    require_run: bool = False
    inspect: bool = False


@dataclass
class TrtResult:
    engine: Path
    sidecar: dict
    executed: bool
    reason: str | None
    layers: list[dict]
    onnx: dict | None  # the ONNX stage's result when this run produced the graph
    timings: dict[str, float]
    verifications: list = field(default_factory=list)
    engine_layers: list = field(default_factory=list)  # TensorRT's engine inspector (needs a GPU)

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verifications)

    def to_dict(self) -> dict:
        data = {"engine": str(self.engine), "sidecar": str(self.engine) + ".json", **self.sidecar,
                "executed": self.executed, "reason": self.reason, "timings": self.timings,
                "verification": [v.to_dict() for v in self.verifications],
                "passed": self.passed if self.verifications else None}
        if self.layers:
            data["layers"] = self.layers
        if self.engine_layers:
            data["engine_layers"] = self.engine_layers
        if self.onnx is not None:
            data["onnx"] = self.onnx
        return data


def parse_shapes(text: str) -> dict[str, tuple]:
    """'input:1x3x224x224:8x3x224x224:16x3x224x224[,other:...]' → {name: (min, opt, max)}."""
    shapes = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        pieces = part.split(":")
        if len(pieces) != 4:
            raise InputError(f"malformed --shapes entry {part!r}: expected name:MIN:OPT:MAX with shapes like 1x3x224x224")
        name, *dims = pieces
        try:
            triple = tuple(tuple(int(d) for d in s.lower().split("x")) for s in dims)
        except ValueError:
            raise InputError(f"malformed shape in --shapes entry {part!r}") from None
        shapes[name] = triple
    return shapes


def _check_profile(shapes: dict[str, tuple], export_shapes: dict[str, tuple], dynamic_axes: dict[str, set]) -> Profile:
    """`dynamic_axes`: per input, the axes the graph leaves dynamic; the others must keep the export's size."""
    for name, (low, opt, high) in shapes.items():
        if name not in export_shapes:
            raise InputError(f"--shapes names input {name!r}; the model's inputs are {sorted(export_shapes)}")
        base, dynamic = export_shapes[name], dynamic_axes.get(name, set())
        for label, shape in (("min", low), ("opt", opt), ("max", high)):
            if len(shape) != len(base) or min(shape) < 1:
                raise InputError(f"{name} {label} shape {list(shape)} does not fit the input's rank {len(base)}")
            fixed = [axis for axis in range(len(base)) if axis not in dynamic and shape[axis] != base[axis]]
            if fixed:
                raise InputError(f"{name}: axis {fixed[0]} is static in this export ({base[fixed[0]]}), "
                                 f"so {label} shape {list(shape)} cannot change it")
        for axis in sorted(dynamic):
            if not low[axis] <= opt[axis] <= high[axis]:
                raise InputError(f"{name}: impossible profile, axis {axis}: min {low[axis]} <= opt {opt[axis]} "
                                 f"<= max {high[axis]} does not hold")
    return Profile(shapes)


def wants_dynamic_batch(request: TrtRequest, recipe: Recipe | None) -> bool:
    """Profiles come from the recipe's dynamic batch axis unless --batch asks for a static engine."""
    batch_opts = (request.min_batch, request.opt_batch, request.max_batch)
    if request.batch is not None and (request.shapes or any(b is not None for b in batch_opts)):
        raise InputError("--batch builds a static engine; drop it to use --shapes or --min/--opt/--max-batch")
    if request.shapes and any(b is not None for b in batch_opts):
        raise InputError("give --shapes or --min/--opt/--max-batch, not both")
    return request.batch is None and recipe is not None and "batch" in recipe.dynamic_axes


def resolve_profile(request: TrtRequest, recipe: Recipe | None, export_shapes: dict[str, tuple],
                    dynamic_axes: dict[str, set]) -> Profile | None:
    """The optimisation profile for the graph's dynamic axes; None means a static graph. A dynamic batch
    spans the request's or recipe's batch range; a dynamic height/width the recipe's min_shape, canonical
    shape and max_shape (InputSpec.size_range)."""
    if not any(dynamic_axes.values()):
        return None
    if request.shapes:
        return _check_profile(request.shapes, export_shapes, dynamic_axes)
    axis = recipe.dynamic_axes.get("batch") if recipe else None
    low = request.min_batch if request.min_batch is not None else (axis.min if axis else 1)
    high = request.max_batch if request.max_batch is not None else (axis.max if axis else max(low, DEFAULT_MAX_BATCH))
    opt = request.opt_batch if request.opt_batch is not None else min(max(axis.opt if axis else low, low), high)
    specs = {spec.name: spec for spec in recipe.inputs} if recipe else {}
    shapes = {}
    for name, base in export_shapes.items():
        triple = [list(base), list(base), list(base)]
        if 0 in dynamic_axes.get(name, ()):
            for shape, batch in zip(triple, (low, opt, high)):
                shape[0] = batch
        if {2, 3} & dynamic_axes.get(name, set()):
            if name not in specs or not specs[name].dynamic_size:
                raise InputError(f"{name}: the graph's height/width are dynamic and no recipe gives their range; "
                                 "give --shapes name:MIN:OPT:MAX")
            for shape, size in zip(triple, specs[name].size_range()):
                shape[2:4] = size
        shapes[name] = tuple(tuple(s) for s in triple)
    return _check_profile(shapes, export_shapes, dynamic_axes)


def _graph_dynamic_axes(proto) -> dict[str, set]:
    """Per graph input, the axes with a symbolic size."""
    return {value.name: {i for i, d in enumerate(value.type.tensor_type.shape.dim) if d.dim_param or not d.dim_value}
            for value in proto.graph.input}


def _default_engine_path(name: str, precision: str) -> Path:
    return Path(f"{name}.{precision}.engine")


def _onnx_inputs(proto) -> dict[str, tuple]:
    shapes = {}
    for value in proto.graph.input:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = tuple(d.dim_value if d.dim_value else 1 for d in dims)
    return shapes


def run_trt(request: TrtRequest, progress: Progress | None = None) -> TrtResult:
    import onnx

    spec, trt = load_backend(request.backend)  # a missing backend fails before any work (exit 3)
    if request.compute_capabilities:
        compute_capability_names(spec, trt, request.compute_capabilities)  # a bad one fails before the export
    if request.timing_cache is not None:
        atomic.ensure_writable(Path(request.timing_cache))
    clock = _Clock(progress)
    is_file = request.model.endswith(".onnx")
    onnx_result = None
    if is_file:
        path = Path(request.model)
        if not path.is_file():
            raise InputError(f"ONNX file not found: {path}")
        if request.onnx:
            raise InputError(f"{', '.join(sorted(request.onnx))} apply when exporting a zoo model, not to an .onnx file")
        try:
            proto = onnx.load(str(path))
        except Exception as exc:
            raise InputError(f"cannot read ONNX file {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
        meta = provenance.read(proto)
        # A zoo model's graph can be verified against PyTorch; a user model's file names no factory.
        source = zoo_source(meta["netexport.model"]) if meta.get("netexport.model") in recipe_names() else None
        recipe = source.recipe if source else None
        dynamic_axes = _graph_dynamic_axes(proto)
        dynamic = any(0 in axes for axes in dynamic_axes.values())
        file_precision = meta.get("netexport.precision", "fp32")
        if request.precision != "fp32" and request.precision != file_precision:
            raise InputError(f"{path} is a {file_precision} graph; precision is fixed at export "
                             f"(netexport onnx NAME --{request.precision})")
        precision = file_precision
        name = meta.get("netexport.model") or path.stem
        stem = source.slug if source else path.stem
        export_shapes = _onnx_inputs(proto)
        if not dynamic and any(b is not None for b in (request.min_batch, request.opt_batch, request.max_batch)):
            raise InputError(f"{path} has a static batch; export it with a dynamic batch to build a profile")
        if request.shapes and not any(dynamic_axes.values()):
            raise InputError(f"{path} has static shapes; export it with --dynamic-batch or --dynamic-shape to build a profile")
        profile = resolve_profile(request, recipe, export_shapes, dynamic_axes)
        onnx_bytes = path.read_bytes()
        onnx_source = str(path)
    else:
        source = resolve(request.model, request.onnx.get("user"))
        recipe = source.recipe
        precision, name, stem = request.precision, recipe.name, source.slug
        if request.onnx.get("end2end"):
            stem += ".end2end"
        dynamic = wants_dynamic_batch(request, recipe)
        engine_path = Path(request.output) if request.output else _default_engine_path(stem, precision)
        atomic.ensure_writable(engine_path)
        onnx_path = engine_path.with_suffix(".onnx")
        onnx_options = dict(request.onnx)
        nms = nms_for_backend(recipe, spec.name)
        if onnx_options.get("end2end") and nms is not None and "nms" not in onnx_options:
            onnx_options["nms"] = nms
        onnx_request = OnnxRequest(model=request.model, output=onnx_path, precision=precision, batch=request.batch,
                                   dynamic_batch=dynamic, **onnx_options)
        # the profile is checked before the export, so a bad one leaves no .onnx behind
        settings = resolve_settings(recipe, opset=onnx_request.opset, batch=onnx_request.batch,
                                    input_size=onnx_request.input_size, dynamic_batch=dynamic,
                                    exporter=onnx_request.exporter, use_test_shape=onnx_request.reduced_size,
                                    dynamic_shape=onnx_request.dynamic_shape)
        export_shapes = {k: ((1, *v[1:]) if dynamic else tuple(v)) for k, v in settings.input_shapes.items()}
        dynamic_axes = {k: ({0} if dynamic else set()) | ({2, 3} if onnx_request.dynamic_shape else set())
                        for k in export_shapes}
        profile = resolve_profile(request, recipe, export_shapes, dynamic_axes)
        onnx_result = run_onnx(onnx_request, progress=progress, source=source)
        if onnx_result.artifact is None:
            raise VerificationFailed(f"ONNX parity failed for {name}, no engine built: {'; '.join(onnx_result.failures())}")
        onnx_bytes = onnx_path.read_bytes()
        onnx_source = str(onnx_path)
        clock.timings.update({f"onnx.{k}": v for k, v in onnx_result.timings.items()})

    engine_path = Path(request.output) if request.output else _default_engine_path(stem, precision)
    atomic.ensure_writable(engine_path)
    options = BuildOptions(profile=profile, workspace_mib=request.workspace_mib,
                           timing_cache=Path(request.timing_cache) if request.timing_cache else None,
                           compute_capabilities=request.compute_capabilities, tf32=request.tf32)
    with clock.stage("build") as st:
        build = build_engine(spec, trt, onnx_bytes, options)
        st.detail = (f"{spec.name} {build.version}, {len(build.plan) / 1e6:.1f} MB, "
                     + ", ".join(f"{n} {p}" for p, n in build.precision_summary().items()) + " layers")
    sidecar = {
        "model": name,
        "recipe_hash": recipe.hash if recipe else None,
        "onnx_file": onnx_source,
        "onnx_sha256": provenance.sha256_bytes(onnx_bytes),
        "precision": precision,
        "backend": spec.name,
        "backend_version": build.version,
        "compute_capabilities": build.compute_capabilities or ["builder default"],
        "tf32": options.tf32,
        "profiles": [profile.to_dict()] if profile else [],
        "inputs": build.inputs,
        "outputs": build.outputs,
        "layer_precisions": build.precision_summary(),
        "engine_bytes": len(build.plan),
        "build_seconds": round(build.seconds, 3),
        "timing_cache": {"path": str(options.timing_cache), "hit": build.timing_cache_hit} if options.timing_cache else None,
        "netexport_version": __version__,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with clock.stage("write") as st:
        atomic.write_bytes(engine_path, build.plan)
        atomic.write_bytes(Path(str(engine_path) + ".json"), json.dumps(sidecar, indent=2).encode())
        if options.timing_cache is not None and build.timing_cache is not None:
            atomic.write_bytes(options.timing_cache, build.timing_cache)
        st.detail = f"{engine_path} (+ .json sidecar)"
    reason = gpu_runtime_reason(trt)
    if reason is None and recipe is None:
        reason = "no PyTorch reference for an ONNX file without netexport provenance"
    if reason is not None and request.require_run:
        raise BackendUnavailable(f"built {engine_path}, not executed: {reason} (--require-run)")
    verifications, engine_layers = [], []
    if reason is None:
        with clock.stage("verify") as st:
            verifications = verify_engine(spec, trt, build.plan, source, precision, export_shapes, request.onnx,
                                          onnx_result.end2end if onnx_result else None)
            st.detail = "pass" if all(v.passed for v in verifications) else "FAIL"
        if request.inspect:
            from ..backends.tensorrt import EngineRunner

            with EngineRunner(spec, trt, build.plan) as runner:
                engine_layers = runner.engine_layers()
    layers = [vars(layer) for layer in build.layers] if request.inspect else []
    result = TrtResult(engine=engine_path, sidecar=sidecar, executed=reason is None, reason=reason, layers=layers,
                       onnx=onnx_result.to_dict() if onnx_result else None, timings=clock.timings)
    result.verifications = verifications
    result.engine_layers = engine_layers
    return result


def verify_engine(spec, trt, plan: bytes, source: ModelSource, precision: str, shapes: dict, onnx_options: dict,
                  end2end: dict | None = None):
    """Run the engine on the ONNX check's seeded inputs and compare with PyTorch (DESIGN.md §4);
    an end-to-end engine against PyTorch's decode + torchvision NMS with the graph's settings, or a
    pose engine against PyTorch's heatmap peak decoding."""
    from ..backends.tensorrt import EngineRunner
    from ..data import synthetic_samples
    from .reference import torch_outputs
    from .verify import compare

    recipe = source.recipe
    model = source.create(weights=onnx_options.get("weights"), input_shapes=shapes)
    if hasattr(model, "reparameterize"):
        model.reparameterize()
    if end2end is not None and "keypoint_cell" in end2end:
        from .keypoints import HeatmapPeaks, end2end_recipe

        model, recipe = HeatmapPeaks(model).eval(), end2end_recipe(recipe, tuple(end2end["keypoint_cell"]))
    elif end2end is not None:
        from .end2end import End2End, NmsSettings, end2end_recipe

        fields = {k: v for k, v in end2end.items() if k != "nms"}
        settings = NmsSettings(**{**fields, "extras": tuple(fields["extras"])})
        model, recipe = End2End(model, settings, settings.extras, end2end["nms"]).eval(), end2end_recipe(recipe, settings)
    samples = list(synthetic_samples(shapes, recipe.normalization, recipe.verify_samples, seed=1))
    with EngineRunner(spec, trt, plan) as runner:
        gots = [runner.infer(s) for s in samples]
    refs = [torch_outputs(model, recipe, s) for s in samples]
    return [compare(recipe, precision, spec.name, refs, gots)]
