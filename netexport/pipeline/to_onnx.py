"""The ONNX pipeline: model → export → check → simplify → provenance → verify → atomic write.

Stages run in that order and hand their artifact forward; this module only sequences them, times
them and reports progress through a callback, so the CLI and the Python API share one path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import atomic
from ..errors import StageFailed
from ..recipes import Recipe, get_recipe
from . import provenance
from .export import ExportSettings, export_model, resolve_settings
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
    input_size: tuple[int, int] | None = None
    simplify: bool = True
    simplifier: str = DEFAULT_SIMPLIFIER
    verify: bool = True
    exporter: str | None = None
    reduced_size: bool = False  # export at the recipe's test_shape (test suite, quick checks)


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
            "verified": self.verified,
            "passed": self.passed if self.verified else None,
            "verification": [v.to_dict() for v in self.verifications],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "metadata": self.metadata,
        }


def default_output(recipe: Recipe, precision: str = "fp32") -> Path:
    suffix = "" if precision == "fp32" else f".{precision}"
    return Path(f"{recipe.name}{suffix}.onnx")


class _Clock:
    def __init__(self, progress: Progress | None):
        self.timings: dict[str, float] = {}
        self._progress = progress

    def stage(self, name: str):
        clock = self

        class _Stage:
            detail = ""

            def __enter__(self):
                self.start = time.perf_counter()
                return self

            def __exit__(self, exc_type, *_):
                seconds = time.perf_counter() - self.start
                clock.timings[name] = clock.timings.get(name, 0.0) + seconds
                if exc_type is None and clock._progress:
                    clock._progress(name, seconds, self.detail)

        return _Stage()


def check_graph(proto, what: str) -> None:
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0][:300]
        raise StageFailed(f"the {what} graph fails onnx.checker: {first}") from None


def verification_shapes(recipe: Recipe, settings: ExportSettings) -> list[dict[str, tuple[int, ...]]]:
    """The input shapes parity is checked at: the export shape, plus a second batch when dynamic."""
    shapes = [dict(settings.input_shapes)]
    if settings.dynamic_batch:
        axis = recipe.dynamic_axes["batch"]
        first = next(iter(settings.input_shapes.values()))[0]
        second = min(VERIFY_SECOND_BATCH, axis.max)
        if second == first:
            second = axis.min if axis.min != first else min(first + 1, axis.max)
        if second != first:
            shapes.append({k: (second, *v[1:]) for k, v in settings.input_shapes.items()})
    return shapes


def verify_onnx(model, recipe: Recipe, data: bytes, shapes_list, precision: str = "fp32") -> list[Verification]:
    from ..backends.onnxruntime import OnnxRuntimeRunner
    from ..data import synthetic_samples
    from .reference import torch_outputs

    results = []
    with OnnxRuntimeRunner(data) as runner:
        for shapes in shapes_list:
            samples = list(synthetic_samples(shapes, recipe.normalization, recipe.verify_samples, seed=1))
            refs = [torch_outputs(model, recipe, s) for s in samples]
            gots = [runner.infer(s) for s in samples]
            results.append(compare(recipe, precision, runner.name, refs, gots))
    return results


def run_onnx(request: OnnxRequest, progress: Progress | None = None, recipe: Recipe | None = None) -> OnnxResult:
    from ..zoo import create_model

    recipe = recipe or get_recipe(request.model)
    settings = resolve_settings(
        recipe,
        opset=request.opset,
        batch=request.batch,
        input_size=request.input_size,
        dynamic_batch=request.dynamic_batch,
        exporter=request.exporter,
        use_test_shape=request.reduced_size,
    )
    output = Path(request.output) if request.output else default_output(recipe)
    atomic.ensure_writable(output)
    clock = _Clock(progress)

    with clock.stage("load") as st:
        model = create_model(recipe.name, weights=request.weights, input_shapes=settings.input_shapes)
        if hasattr(model, "reparameterize"):
            model.reparameterize()
        st.detail = "weights " + (str(request.weights) if request.weights else "random init (seeded)")
    with clock.stage("export") as st:
        proto = export_model(model, recipe, settings)
        exported_nodes = len(proto.graph.node)
        st.detail = f"{settings.exporter}, opset {settings.opset}, {exported_nodes} nodes"
    with clock.stage("check"):
        check_graph(proto, "exported")
    simplified_nodes = exported_nodes
    if request.simplify:
        with clock.stage("simplify") as st:
            proto = simplify(proto, request.simplifier)
            check_graph(proto, "simplified")
            simplified_nodes = len(proto.graph.node)
            st.detail = f"{request.simplifier}: {exported_nodes} → {simplified_nodes} nodes"
    props = provenance.provenance(
        recipe, "fp32", settings.opset, settings.exporter,
        request.simplifier if request.simplify else None, request.weights,
    )
    provenance.attach(proto, props)
    data = proto.SerializeToString()

    result = OnnxResult(
        model=recipe.name,
        artifact=None,
        opset=settings.opset,
        exporter=settings.exporter,
        precision="fp32",
        input_shapes={
            k: (["batch", *v[1:]] if settings.dynamic_batch else list(v)) for k, v in settings.input_shapes.items()
        },
        nodes={"exported": exported_nodes, "simplified": simplified_nodes},
        metadata=props,
    )
    if request.verify:
        with clock.stage("verify") as st:
            result.verifications = verify_onnx(model, recipe, data, verification_shapes(recipe, settings))
            st.detail = "pass" if result.passed else "FAIL"
    if not result.verified or result.passed:
        with clock.stage("write") as st:
            atomic.write_bytes(output, data)
            result.artifact = output
            st.detail = f"{output} ({len(data) / 1e6:.1f} MB)"
    result.timings = clock.timings
    return result
