"""Export stage: PyTorch module → ONNX ModelProto at exactly the requested opset.

The exporter is chosen per opset (DESIGN.md §1): TorchScript for opset ≤ 20, dynamo from 18 up
(auto prefers TorchScript where both work: it is faster and its output is what TensorRT has parsed
for years). The saved model's opset is always read back; a mismatch is an error, never a substitute.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import ExportError, InputError, first_line
from ..recipes import Recipe

MIN_OPSET = 13
DYNAMO_MIN_OPSET = 18
EXPORTERS = ("auto", "torchscript", "dynamo")


def torchscript_max_opset() -> int:
    from torch.onnx import _constants

    return _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET


def max_opset() -> int:
    from torch.onnx import _constants

    return _constants.ONNX_MAX_OPSET


@dataclass(frozen=True)
class ExportSettings:
    """Everything the export needs beyond the recipe, already validated."""

    opset: int
    exporter: str  # torchscript | dynamo
    input_shapes: Mapping[str, tuple[int, ...]]
    dynamic_batch: bool
    dynamic_shape: bool = False  # height and width of every image input are dynamic axes


def choose_exporter(opset: int, preference: str) -> str:
    ts_max = torchscript_max_opset()
    if preference == "auto":
        return "torchscript" if opset <= ts_max else "dynamo"
    if preference == "torchscript" and opset > ts_max:
        raise ExportError(f"the TorchScript exporter emits opset <= {ts_max}, not {opset}; use --exporter dynamo")
    if preference == "dynamo" and opset < DYNAMO_MIN_OPSET:
        raise ExportError(
            f"the dynamo exporter emits opset >= {DYNAMO_MIN_OPSET}, not {opset} "
            "(asked for less it silently saves 18); use --exporter torchscript"
        )
    return preference


def resolve_settings(
    recipe: Recipe,
    opset: int | None = None,
    batch: int | None = None,
    input_size: tuple[int, int] | None = None,
    dynamic_batch: bool = False,
    exporter: str | None = None,
    use_test_shape: bool = False,
    dynamic_shape: bool = False,
) -> ExportSettings:
    """Validate the request against the recipe before any heavy work starts."""
    opset = recipe.default_opset if opset is None else opset
    top = max_opset()
    if not MIN_OPSET <= opset <= top:
        raise InputError(f"opset {opset} is not supported: choose {MIN_OPSET}..{top}")
    if opset < recipe.opset_floor:
        raise InputError(f"{recipe.name} needs opset >= {recipe.opset_floor} (recipe {recipe.source})")
    preference = exporter or recipe.exporter
    if preference not in EXPORTERS:
        raise InputError(f"unknown exporter {preference!r}: choose {', '.join(EXPORTERS)}")
    if preference == "auto" and recipe.exporter == "dynamo":
        preference = "dynamo"
    chosen = choose_exporter(opset, preference)
    if batch is not None and batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    axis = recipe.dynamic_axes.get("batch")
    if dynamic_batch and axis is None:
        raise InputError(f"{recipe.name} has no dynamic batch axis in its recipe")
    if dynamic_batch and batch is not None and not axis.min <= batch <= axis.max:
        raise InputError(f"batch {batch} is outside the recipe's dynamic range {axis.min}..{axis.max}")
    if dynamic_shape:
        fixed = [spec.name for spec in recipe.inputs if not spec.dynamic_size]
        if fixed:
            raise InputError(f"{recipe.name} has no dynamic size range for input {fixed[0]!r} in its recipe "
                             "(a max_shape, on a model that accepts any size): export it at a fixed size")
    shapes = {}
    for spec in recipe.inputs:
        base = spec.test_shape if use_test_shape else spec.shape
        shape = list(base)
        if batch is not None:
            shape[0] = batch
        if input_size is not None:
            check_input_size(recipe, spec, input_size)
            shape[2:4] = input_size
        if dynamic_shape:
            (min_h, min_w), _, (max_h, max_w) = spec.size_range()
            if not (min_h <= shape[2] <= max_h and min_w <= shape[3] <= max_w):
                raise InputError(f"{recipe.name}: size {shape[2]}x{shape[3]} is outside the recipe's dynamic range "
                                 f"{min_h}x{min_w}..{max_h}x{max_w}")
        shapes[spec.name] = tuple(shape)
    return ExportSettings(opset=opset, exporter=chosen, input_shapes=shapes, dynamic_batch=dynamic_batch,
                          dynamic_shape=dynamic_shape)


def check_input_size(recipe: Recipe, spec, size: tuple[int, int]) -> None:
    height, width = size
    if len(spec.shape) != 4:
        raise InputError(f"{recipe.name} input {spec.name!r} is not an image; --input-size does not apply")
    if spec.fixed_size and (height, width) != tuple(spec.shape[2:4]):
        raise InputError(
            f"{recipe.name} takes a fixed {spec.shape[2]}x{spec.shape[3]} input, not {height}x{width}"
        )
    min_h, min_w = spec.min_shape[2:4]
    if height < min_h or width < min_w:
        raise InputError(f"{recipe.name} needs an input of at least {min_h}x{min_w}, not {height}x{width}")
    if height % spec.divisor or width % spec.divisor:
        raise InputError(f"{recipe.name} needs input sides that are multiples of {spec.divisor}, not {height}x{width}")


def parse_size(text: str) -> tuple[int, int]:
    """'224x224' or '224' → (224, 224); anything else is an input error."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(f"malformed size {text!r}: expected HxW, e.g. 224x224") from None
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) < 1:
        raise InputError(f"malformed size {text!r}: expected two positive integers HxW")
    return dims


def dynamic_axis_names(name: str, settings: ExportSettings) -> list[tuple[int, str]]:
    """(axis, name) of an input's dynamic axes: the batch, and its height and width."""
    axes = [(0, "batch")] if settings.dynamic_batch else []
    if settings.dynamic_shape:
        axes += [(2, f"{name}_height"), (3, f"{name}_width")]
    return axes


def _dynamo_dims(spec, recipe: Recipe, settings: ExportSettings) -> dict:
    import torch

    dims = {}
    if settings.dynamic_batch:
        # dynamo refuses to specialise a dim of size 1 as dynamic; min 1 is still accepted by the graph
        dims[0] = torch.export.Dim("batch", min=1, max=max(recipe.dynamic_axes["batch"].max, 2))
    if settings.dynamic_shape:
        d = spec.divisor
        (min_h, min_w), _, (max_h, max_w) = spec.size_range()
        for axis, label, low, high in ((2, "height", min_h, max_h), (3, "width", min_w, max_w)):
            if d > 1:  # sizes in multiples of the divisor
                dims[axis] = torch.export.Dim(f"{spec.name}_{label}_blocks", min=low // d, max=high // d) * d
            else:
                dims[axis] = torch.export.Dim(f"{spec.name}_{label}", min=low, max=high)
    return dims


def export_model(model, recipe: Recipe, settings: ExportSettings):
    """Export `model` and return the loaded ONNX ModelProto (single file, weights inline)."""
    import onnx
    import torch

    from ..data import synthetic_inputs

    sample = synthetic_inputs(settings.input_shapes, recipe.normalization, seed=0)
    args = tuple(torch.from_numpy(sample[spec.name]) for spec in recipe.inputs)
    input_names = [spec.name for spec in recipe.inputs]
    output_names = list(recipe.outputs)
    kwargs: dict = {}
    if settings.exporter == "torchscript" and (settings.dynamic_batch or settings.dynamic_shape):
        # output sizes follow from the inputs': the exporter names their dynamic axes itself
        axes = {name: dict(dynamic_axis_names(name, settings)) for name in input_names}
        if settings.dynamic_batch:
            axes.update({name: {0: "batch"} for name in output_names})
        kwargs["dynamic_axes"] = axes
    if settings.exporter == "dynamo":
        kwargs["external_data"] = False
        if settings.dynamic_batch or settings.dynamic_shape:
            kwargs["dynamic_shapes"] = {spec.name: _dynamo_dims(spec, recipe, settings) for spec in recipe.inputs}
            if settings.dynamic_batch and args[0].shape[0] == 1:
                args = tuple(a.expand(2, *a.shape[1:]).contiguous() for a in args)
    with tempfile.TemporaryDirectory(prefix="netexport-") as tmp:
        path = Path(tmp) / "model.onnx"
        # Exporters print progress to stdout and warn loudly; keep stdout clean for --json.
        with contextlib.redirect_stdout(io.StringIO()) as captured, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    model,
                    args,
                    str(path),
                    opset_version=settings.opset,
                    input_names=input_names,
                    output_names=output_names,
                    dynamo=settings.exporter == "dynamo",
                    do_constant_folding=True,
                    **kwargs,
                )
            except Exception as exc:
                sys.stderr.write(captured.getvalue())
                raise ExportError(f"{settings.exporter} export of {recipe.name} failed: {_first_line(exc)}") from None
        proto = onnx.load(str(path), load_external_data=True)
    saved = saved_opset(proto)
    if saved != settings.opset:
        raise ExportError(f"asked for opset {settings.opset} but the {settings.exporter} exporter saved {saved}")
    got = [o.name for o in proto.graph.output]
    if got != output_names:
        raise ExportError(f"{recipe.name}: exported outputs {got} differ from the recipe's {output_names}")
    return proto


def saved_opset(proto) -> int | None:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return None


def _first_line(exc: Exception) -> str:
    return first_line(exc) or type(exc).__name__
