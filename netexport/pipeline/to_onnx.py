"""The ONNX pipeline: model → export → check → simplify → precision → provenance → verify → write.

Stages run in that order and hand their artifact forward; this module only sequences them, times
them and reports progress through a callback, so the CLI and the Python API share one path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import onnx

from .. import atomic
from ..errors import InputError, StageFailed
from ..recipes import Recipe
from ..sources import ModelSource, UserOptions, resolve
from . import end2end, keypoints, provenance, reuse
from .export import ExportSettings, dynamic_axis_names, export_model, resolve_settings
from .precision import (
    CALIBRATION_METHODS,
    Calibration,
    PrecisionInfo,
    collect_ranges,
    footprint,
    read_calibration_cache,
    to_fp16,
    to_int8,
)
from .simplify import DEFAULT_SIMPLIFIER, simplify
from .verify import Verification, compare

Progress = Callable[[str, float, str], None]  # (stage, seconds, detail)

VERIFY_SECOND_BATCH = 4  # a dynamic-batch model is also verified at this batch size


@dataclass
class OnnxRequest:
    model: str
    output: Path | None = None
    opset: int | None = None
    weights: Path | None = None
    batch: int | None = None
    dynamic_batch: bool = False
    dynamic_shape: bool = False  # dynamic height/width in the recipe's min_shape..max_shape range
    input_size: tuple[int, int] | None = None
    simplify: bool = True
    simplifier: str = DEFAULT_SIMPLIFIER
    verify: bool = True
    exporter: str | None = None
    reduced_size: bool = False  # export at the recipe's test_shape (test suite, quick checks)
    precision: str = "fp32"  # fp32 | fp16 | int8
    fp16_io: bool = False  # keep FP16 at the graph boundary (default: FP32 inputs and outputs)
    calib_data: Path | None = None  # image folder or .npz; None = seeded synthetic images
    calib_samples: int | None = None  # default: the recipe's
    calib_method: str | None = None  # minmax | entropy | percentile; default: the recipe's
    calib_cache: Path | None = None
    user: UserOptions | None = None  # --input-shape/--task/--recipe for a package.module:callable model
    end2end: bool = False  # detectors: decode + NMS in the graph, fixed-size detections out
    max_detections: int | None = None  # end2end overrides of the recipe's settings
    score_threshold: float | None = None
    iou_threshold: float | None = None
    nms: str = "onnx"  # end2end suppression: onnx (NonMaxSuppression) | loop (for TensorRT-RTX)


@dataclass
class OnnxResult:
    model: str
    artifact: Path | None
    opset: int
    exporter: str
    precision: str
    input_shapes: dict[str, list]
    nodes: dict[str, int]
    verifications: list[Verification] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    precision_info: PrecisionInfo | None = None
    warnings: list[str] = field(default_factory=list)
    end2end: dict | None = None  # the NMS settings the graph was built with
    export_shapes: dict[str, tuple] = field(default_factory=dict)  # the sizes it was exported (and first verified) at
    footprint: dict | None = None  # the FP32 graph's weights and activations at the export shapes (MB)

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verifications)

    @property
    def verified(self) -> bool:
        return bool(self.verifications)

    def failures(self) -> list[str]:
        return [line for v in self.verifications for line in v.failures()]

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "artifact": str(self.artifact) if self.artifact else None,
            "opset": self.opset,
            "exporter": self.exporter,
            "precision": self.precision,
            "input_shapes": self.input_shapes,
            "nodes": self.nodes,
            **self._precision_fields(),
            "verified": self.verified,
            "passed": self.passed if self.verified else None,
            "verification": [v.to_dict() for v in self.verifications],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "metadata": self.metadata,
            "warnings": self.warnings,
            **({"end2end": self.end2end} if self.end2end else {}),
            **({"footprint": self.footprint} if self.footprint else {}),
        }

    def _precision_fields(self) -> dict:
        info = self.precision_info
        if info is None:
            return {}
        if info.precision == "fp16":
            return {"fp16_nodes": info.fp16_nodes, "fp32_kept_nodes": info.fp32_kept}
        return {"qdq_nodes": info.qdq_nodes, "quantized_ops": info.quantized_ops, "calibration": info.calibration}


def default_output(source: ModelSource, precision: str = "fp32", end2end: bool = False) -> Path:
    suffix = ("" if precision == "fp32" else f".{precision}") + (".end2end" if end2end else "")
    return Path(f"{source.slug}{suffix}.onnx")


class _Clock:
    def __init__(self, progress: Progress | None):
        self.timings: dict[str, float] = {}
        self._progress = progress

    def stage(self, name: str, record: bool = True):
        """Time a stage; `record=False` for one whose parts record their own timings."""
        clock = self

        class _Stage:
            detail = ""

            def __enter__(self):
                self.start = time.perf_counter()
                return self

            def __exit__(self, exc_type, *_):
                seconds = time.perf_counter() - self.start
                if record:
                    clock.add(name, seconds)
                if exc_type is None and clock._progress:
                    clock._progress(name, seconds, self.detail)

        return _Stage()

    def add(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds


def check_graph(proto, what: str) -> None:
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]
        raise StageFailed(f"the {what} graph fails onnx.checker: {first}") from None


def verification_shapes(recipe: Recipe, settings: ExportSettings) -> list[dict[str, tuple[int, ...]]]:
    """The input shapes parity is checked at: the export shape, plus a second batch when the batch is
    dynamic and a second size when height and width are."""
    shapes = [dict(settings.input_shapes)]
    if settings.dynamic_shape:
        shapes.append({spec.name: second_size(spec, settings.input_shapes[spec.name]) for spec in recipe.inputs})
    if settings.dynamic_batch:
        axis = recipe.dynamic_axes["batch"]
        first = next(iter(settings.input_shapes.values()))[0]
        second = min(VERIFY_SECOND_BATCH, axis.max)
        if second == first:
            second = axis.min if axis.min != first else min(first + 1, axis.max)
        if second != first:
            shapes.append({k: (second, *v[1:]) for k, v in settings.input_shapes.items()})
    return shapes


def second_size(spec, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Another size in the input's dynamic range, with another aspect ratio: one step (the divisor, at
    least 8 pixels) smaller in height where the range allows it, larger otherwise, and one step larger
    in width where it allows it, smaller otherwise."""
    step = max(spec.divisor, 8) // spec.divisor * spec.divisor
    (min_h, min_w), _, (max_h, max_w) = spec.size_range()
    height, width = shape[2], shape[3]
    height = height - step if height - step >= min_h else min(height + step, max_h)
    width = width + step if width + step <= max_w else max(width - step, min_w)
    return (*shape[:2], height, width, *shape[4:])


def check_request(request: OnnxRequest) -> None:
    """Option combinations that make no sense are usage errors, before any work starts."""
    if request.precision not in ("fp32", "fp16", "int8"):
        raise InputError(f"unknown precision {request.precision!r}: choose fp32, fp16 or int8")
    if request.fp16_io and request.precision != "fp16":
        raise InputError("--fp16-io applies to --fp16 only")
    calib = {"--calib-data": request.calib_data, "--calib-samples": request.calib_samples,
             "--calib-method": request.calib_method, "--calib-cache": request.calib_cache}
    given = [flag for flag, value in calib.items() if value is not None]
    if given and request.precision != "int8":
        raise InputError(f"{', '.join(given)} applies to --int8 only")
    given = _detection_options(request)
    if given and not request.end2end:
        raise InputError(f"{', '.join(given)} applies to --end2end only")
    if request.dynamic_shape and request.end2end:
        raise InputError("--dynamic-shape applies to the raw outputs; --end2end graphs are built at a fixed size")
    if request.nms not in end2end.NMS_OPS:
        raise InputError(f"unknown --nms {request.nms!r}: choose {', '.join(end2end.NMS_OPS)}")
    if request.calib_method is not None and request.calib_method not in CALIBRATION_METHODS:
        raise InputError(f"unknown calibration method {request.calib_method!r}: choose {', '.join(CALIBRATION_METHODS)}")


def _detection_options(request: OnnxRequest) -> list[str]:
    """The --end2end options that only detectors' decode + NMS take, as given."""
    options = {"--max-detections": request.max_detections, "--score-threshold": request.score_threshold,
               "--iou-threshold": request.iou_threshold}
    given = [flag for flag, value in options.items() if value is not None]
    return given + (["--nms"] if request.nms != "onnx" else [])


def load_calibration(request: OnnxRequest, recipe: Recipe, settings: ExportSettings) -> Calibration:
    from ..data import calibration_samples

    count = request.calib_samples if request.calib_samples is not None else recipe.calib_samples
    cache = Path(request.calib_cache) if request.calib_cache else None
    method = request.calib_method or recipe.calib_method
    if cache is not None and cache.exists():  # ranges come from the cache: no samples needed
        read_calibration_cache(cache, method)  # fail early on a broken or mismatched file
        return Calibration([], "cache", method, cache)
    if cache is not None:
        atomic.ensure_writable(cache)
    samples, source = calibration_samples(request.calib_data, settings.input_shapes, recipe.normalization, count)
    return Calibration(samples, source, method, cache)


def verify_onnx(model, recipe: Recipe, data: bytes, shapes_list, precision: str = "fp32",
                timings: dict[str, float] | None = None, reference_key=None, model_key=None) -> list[Verification]:
    """Compare the graph with PyTorch on seeded inputs at each of `shapes_list`; the seconds spent in
    the reference, in ONNX Runtime (session creation included) and in the comparison and task check
    are added to `timings`. A `reference_key` (what identifies `model`) lets the next verification
    of the same model reuse the reference outputs."""
    from ..backends.onnxruntime import OnnxRuntimeRunner
    from ..data import synthetic_samples
    from .reference import reference_outputs

    timings = {} if timings is None else timings

    def timed(stage: str, work):
        start = time.perf_counter()
        value = work()
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
        return value

    inputs = [list(synthetic_samples(shapes, recipe.normalization, recipe.verify_samples, seed=1))
              for shapes in shapes_list]
    key = None if reference_key is None else (reference_key, repr(shapes_list), recipe.verify_samples)
    references, _ = timed("reference", lambda: reuse.REFERENCES.get(
        key, lambda: [reference_outputs(model, recipe, samples) for samples in inputs], model=model_key))
    results = []
    with contextlib.ExitStack() as stack:
        runner = timed("onnxruntime", lambda: stack.enter_context(OnnxRuntimeRunner(data)))
        for samples, (refs, gflops) in zip(inputs, references):
            gots = timed("onnxruntime", lambda: [runner.infer(s) for s in samples])
            verification = timed("task", lambda: compare(recipe, precision, runner.name, refs, gots))
            verification.reference_gflops = gflops
            results.append(verification)
    return results


def _shown_shape(name: str, shape: tuple[int, ...], settings: ExportSettings) -> list:
    """The input's shape in the exported graph: dynamic axes by name."""
    shown: list = list(shape)
    for axis, label in dynamic_axis_names(name, settings):
        shown[axis] = label
    return shown


def _load_model(source: ModelSource, weights, settings: ExportSettings):
    model = source.create(weights=weights, input_shapes=settings.input_shapes)
    if hasattr(model, "reparameterize"):
        model.reparameterize()
    return model


def _export_graph(model, recipe: Recipe, settings: ExportSettings, request: OnnxRequest, clock: "_Clock"):
    """Export, check and simplify: (serialized graph, exported node count, simplified node count, the
    graph's memory footprint at the export shapes)."""
    with clock.stage("export") as st:
        proto = export_model(model, recipe, settings)
        exported = len(proto.graph.node)
        st.detail = f"{settings.exporter}, opset {settings.opset}, {exported} nodes"
    with clock.stage("check"):
        check_graph(proto, "exported")
    if request.simplify:
        with clock.stage("simplify") as st:
            proto = simplify(proto, request.simplifier)
            check_graph(proto, "simplified")
            st.detail = f"{request.simplifier}: {exported} → {len(proto.graph.node)} nodes"
    return proto.SerializeToString(), exported, len(proto.graph.node), footprint(proto, settings.input_shapes)


def _end2end_model(model, recipe: Recipe, nms, nms_op: str, settings: ExportSettings, clock: "_Clock"):
    """Wrap the detector with decode + NMS; the threshold is made realistic for the verification inputs."""
    import torch

    from ..data import synthetic_samples

    with clock.stage("end2end") as st:
        if not hasattr(model, "decode"):
            raise InputError(f"{recipe.name} has no decode method, so it has no end-to-end form")
        samples = synthetic_samples(settings.input_shapes, recipe.normalization, recipe.verify_samples, seed=1)
        tensors = [torch.from_numpy(s[recipe.inputs[0].name]) for s in samples]
        threshold, note = end2end.realistic_threshold(model, tensors, nms)
        nms = dataclasses.replace(nms, score_threshold=threshold)
        wrapped = end2end.End2End(model, nms, nms.extras, nms_op)
        wrapped.eval()
        st.detail = (f"decode + {nms_op} NMS: K={nms.max_detections}, score > {nms.score_threshold:.4g}, "
                     f"IoU {nms.iou_threshold:g}, best {nms.pre_nms_top_k} pairs")
    return wrapped, end2end.end2end_recipe(recipe, nms), nms, note


def _keypoint_model(model, recipe: Recipe, settings: ExportSettings, clock: "_Clock"):
    """Wrap a pose model with its heatmap peak decoding (keypoints and scores out)."""
    import torch

    with clock.stage("end2end") as st:
        probe = torch.zeros(settings.input_shapes[recipe.inputs[0].name])
        cell = keypoints.heatmap_cell(model, probe)
        st.detail = f"heatmap peaks → keypoints in input pixels ({cell[0]:g}x{cell[1]:g} per heatmap cell)"
    return keypoints.HeatmapPeaks(model).eval(), keypoints.end2end_recipe(recipe, cell)


def calibration_identity(request: OnnxRequest, calibration: Calibration | None) -> tuple | None:
    """What decides an INT8 graph's ranges besides the FP32 graph: method, source, sample count."""
    if calibration is None:
        return None
    return (calibration.method, calibration.source, len(calibration.samples), reuse.path_identity(request.calib_data))


def _precision_graph(serialized: bytes, request: OnnxRequest, recipe: Recipe, settings: ExportSettings,
                     calibration: Calibration | None, clock: "_Clock") -> tuple[bytes, PrecisionInfo]:
    """The FP16 or INT8 graph converted from the serialized FP32 graph, serialized, and what was done."""
    proto = onnx.load_from_string(serialized)
    if request.precision == "fp16":
        with clock.stage("fp16") as st:
            from ..data import synthetic_samples

            probe = list(synthetic_samples(settings.input_shapes, recipe.normalization, recipe.verify_samples, seed=1))
            proto, info = to_fp16(proto, recipe, probe, fp16_io=request.fp16_io)
            check_graph(proto, "fp16")
            st.detail = f"{info.fp16_nodes} nodes in FP16, {len(info.fp32_kept)} kept in FP32"
    else:
        with clock.stage("calibrate") as st:
            ranges = collect_ranges(proto, calibration)
            source = ("cache " + str(calibration.cache) if ranges.cache_hit
                      else f"{len(calibration.samples)} {calibration.source} samples")
            st.detail = f"{calibration.method} ranges from {source}"
        with clock.stage("quantize") as st:
            proto, info = to_int8(proto, recipe, calibration, settings.opset, ranges)
            check_graph(proto, "int8")
            st.detail = f"{info.qdq_nodes} Q/DQ nodes"
    return proto.SerializeToString(), info


def run_onnx(request: OnnxRequest, progress: Progress | None = None, source: ModelSource | None = None) -> OnnxResult:
    check_request(request)
    source = source or resolve(request.model, request.user)
    recipe = source.recipe
    settings = resolve_settings(
        recipe,
        opset=request.opset,
        batch=request.batch,
        input_size=request.input_size,
        dynamic_batch=request.dynamic_batch,
        exporter=request.exporter,
        use_test_shape=request.reduced_size,
        dynamic_shape=request.dynamic_shape,
    )
    nms = None
    pose_end2end = request.end2end and recipe.task in keypoints.TASKS
    if pose_end2end:
        keypoints.check_request(recipe, _detection_options(request))
    elif request.end2end:
        nms = end2end.settings_for(recipe, request.max_detections, request.score_threshold, request.iou_threshold)
    output = Path(request.output) if request.output else default_output(source, request.precision, request.end2end)
    atomic.ensure_writable(output)
    clock = _Clock(progress)
    warnings: list[str] = []
    calibration = None
    if request.precision == "int8":
        calibration = load_calibration(request, recipe, settings)
        if calibration.source == "synthetic":
            warnings.append("calibrating on synthetic images: INT8 accuracy on real data is not measured "
                            "(pass --calib-data with images or an .npz of real inputs)")

    shapes_key = tuple(sorted((k, tuple(v)) for k, v in settings.input_shapes.items()))
    model_key = (source.ref, recipe.hash, reuse.path_identity(request.weights), shapes_key)
    with clock.stage("load") as st:
        model, reused = reuse.MODELS.get(model_key, lambda: _load_model(source, request.weights, settings),
                                          model=model_key)
        st.detail = "weights " + (str(request.weights) if request.weights else "random init (seeded)")
        st.detail += " (reused)" if reused else ""
    end2end_info = None
    if nms is not None:
        wrapped, reused = reuse.END2END.get(
            (nms, request.nms), lambda: _end2end_model(model, recipe, nms, request.nms, settings, clock), model=model_key)
        model, recipe, nms, note = wrapped
        if reused:
            with clock.stage("end2end") as st:
                st.detail = "reused the decode + NMS wrapper and its score threshold"
        if note:
            warnings.append(note)
        end2end_info = {**dataclasses.asdict(nms), "nms": request.nms}
    elif pose_end2end:
        model, recipe = _keypoint_model(model, recipe, settings, clock)
        end2end_info = {"decode": "heatmap-peaks", "keypoint_cell": list(recipe.keypoint_cell)}
    graph_key = (model_key, settings.opset, settings.exporter, settings.dynamic_batch, settings.dynamic_shape,
                 request.simplifier if request.simplify else None, nms, request.nms if nms else None, pose_end2end)
    graph, reused = reuse.GRAPHS.get(graph_key, lambda: _export_graph(model, recipe, settings, request, clock),
                                     model=model_key)
    serialized, exported_nodes, simplified_nodes, graph_footprint = graph
    if reused:
        with clock.stage("export") as st:
            st.detail = f"reused the {exported_nodes}-node export and its simplified graph ({simplified_nodes} nodes)"
    precision_info = None
    if request.precision == "fp32":
        proto = onnx.load_from_string(serialized)
    else:
        # One FP16 and one INT8 graph per FP32 graph: a model's onnxruntime and engine cells share it.
        # A calibration cache file is the user's own reuse, so a run naming one always reads it.
        key = None if request.calib_cache else (graph_key, request.precision, request.fp16_io,
                                                calibration_identity(request, calibration))
        converted, reused = reuse.PRECISION_GRAPHS.get(
            key, lambda: _precision_graph(serialized, request, recipe, settings, calibration, clock), model=model_key)
        if reused:
            with clock.stage(request.precision) as st:
                st.detail = f"reused the {request.precision} graph converted from the same FP32 graph"
        serialized_precision, precision_info = converted
        proto = onnx.load_from_string(serialized_precision)
    props = provenance.provenance(
        recipe, request.precision, settings.opset, settings.exporter,
        request.simplifier if request.simplify else None, request.weights,
    )
    if precision_info is not None and precision_info.calibration:
        props["netexport.calibration"] = json.dumps(precision_info.calibration)
    if end2end_info is not None:
        props["netexport.end2end"] = json.dumps(end2end_info)
    provenance.attach(proto, props)
    data = proto.SerializeToString()

    result = OnnxResult(
        model=recipe.name,
        artifact=None,
        opset=settings.opset,
        exporter=settings.exporter,
        precision=request.precision,
        input_shapes={k: _shown_shape(k, v, settings) for k, v in settings.input_shapes.items()},
        export_shapes=dict(settings.input_shapes),
        nodes={"exported": exported_nodes, "simplified": simplified_nodes},
        metadata=props,
        precision_info=precision_info,
        warnings=warnings,
        end2end=end2end_info,
        footprint=graph_footprint.to_dict(),
    )
    if request.verify:
        with clock.stage("verify", record=False) as st:  # its reference, ONNX Runtime and task parts are
            result.verifications = verify_onnx(
                model, recipe, data, verification_shapes(recipe, settings), request.precision, clock.timings,
                reference_key=graph_key, model_key=model_key,
            )
            st.detail = "pass" if result.passed else "FAIL"
    if not result.verified or result.passed:
        with clock.stage("write") as st:
            atomic.write_bytes(output, data)
            result.artifact = output
            st.detail = f"{output} ({len(data) / 1e6:.1f} MB)"
    result.timings = clock.timings
    return result
