"""Recipes: everything netexport knows about one model, loaded from recipes/**/*.yaml.

A recipe is built by merging, later wins: defaults.yaml `defaults` ← defaults.yaml `tasks[task]`
← the family file's top-level keys ← the model's own entry ← overrides from the caller (the CLI).
Dicts merge key by key; lists and scalars replace, except `limitations`, which accumulate. The result is validated once and frozen.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import RecipeError, UnknownModelError
from .zoo.registry import unknown_name_message

PRECISIONS = ("fp32", "fp16", "int8")
TASKS = (
    "classification",
    "detection",
    "feature-pyramid",
    "semantic-segmentation",
    "instance-segmentation",
    "face-detection",
    "face-recognition",
    "pose",
    "portrait-segmentation",
)
_FAMILY_KEYS = {"family", "models"}


def recipes_dir() -> Path:
    """recipes/ ships inside the wheel as netexport/recipe_files; in a checkout it sits at the top."""
    packaged = resources.files("netexport") / "recipe_files"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "recipes"


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]  # canonical shape, batch first
    min_shape: tuple[int, ...]  # smallest shape the model accepts
    test_shape: tuple[int, ...]  # reduced shape the test suite uses
    divisor: int = 1  # spatial sizes must be multiples of this
    fixed_size: bool = False  # spatial size cannot change (e.g. flatten into a Linear)
    max_shape: tuple[int, ...] | None = None  # largest size of a dynamic-shape export (--dynamic-shape)

    @property
    def dynamic_size(self) -> bool:
        """Height and width may be dynamic axes of the export: any size in min_shape..max_shape runs."""
        return self.max_shape is not None and not self.fixed_size and len(self.shape) == 4

    def size_range(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(min, opt, max) (height, width) of a dynamic-shape export: the recipe's min_shape rounded up to
        the divisor, its canonical shape, its max_shape."""
        d = self.divisor
        low = tuple(-(-side // d) * d for side in self.min_shape[2:4])
        return low, tuple(self.shape[2:4]), tuple(self.max_shape[2:4])

    def with_batch_and_size(self, batch: int | None, size: tuple[int, int] | None) -> tuple[int, ...]:
        shape = list(self.shape)
        if batch is not None:
            shape[0] = batch
        if size is not None:
            shape[2:4] = size
        return tuple(shape)


@dataclass(frozen=True)
class AxisRange:
    min: int
    opt: int
    max: int


@dataclass(frozen=True)
class Tolerance:
    """fp32 uses atol (scaled by max(1, max|ref|)) and rtol; reduced precisions use cosine."""

    atol: float | None = None
    rtol: float | None = None
    cosine: float | None = None


LIMITATION_SIZES = ("any", "canonical", "test")  # where a limitation holds (the recipe's shape or test_shape)


@dataclass(frozen=True)
class Limitation:
    precision: str  # fp32 | fp16 | int8 | any
    backend: str  # onnxruntime | tensorrt-rtx | tensorrt | any
    status: str  # xfail | skip
    reason: str
    check: str = "parity"  # what is known not to hold: parity | engine-size | build
    form: str = "raw"  # raw | end2end | any (detectors' graph with decode + NMS)
    size: str = "any"  # any | canonical | test: the input size it holds at (verify --reduced-size: test)

    def applies(self, precision: str, backend: str, check: str = "parity", form: str = "raw",
                size: str = "canonical") -> bool:
        return (self.precision in ("any", precision) and self.backend in ("any", backend) and self.check == check
                and self.form in ("any", form) and self.size in ("any", size))


@dataclass(frozen=True)
class Reference:
    paper: str
    implementation: str
    params: int
    params_rtol: float
    deploy_params: int | None = None  # after reparameterisation (RepVGG-style models)


@dataclass(frozen=True)
class End2EndSpec:
    """A detector's in-graph post-processing defaults (`end2end:` in its recipe; options override)."""

    max_detections: int
    score_threshold: float
    iou_threshold: float
    extras: tuple[str, ...] = ()  # decode's extra per-candidate outputs, in output order
    pre_nms_top_k: int = 1000  # (box, class) pairs that enter NMS, best first


@dataclass(frozen=True)
class Recipe:
    name: str
    task: str
    family: str
    source: str  # the recipe file, relative to recipes/
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    dynamic_axes: Mapping[str, AxisRange]
    opset_floor: int
    default_opset: int
    exporter: str  # auto | torchscript | dynamo
    tolerances: Mapping[str, Tolerance]
    output_tolerances: Mapping[str, Mapping[str, Tolerance]]  # precision -> output -> override
    normalization: Mapping[str, tuple[float, ...]]
    reference: Reference
    task_check: str
    verify_samples: int
    task_min_agreement: Mapping[str, float] = field(default_factory=dict)  # precision -> rate (dense checks)
    train_aux_outputs: int = 0  # extra outputs in train mode only (auxiliary classifiers)
    bn_shift: float = 0.0  # random init only: BN shift set before the warm-up (stabilises deep stacks)
    fp16_keep_ops: tuple[str, ...] = ()
    fp16_keep_nodes: tuple[str, ...] = ()
    int8_exclude_nodes: tuple[str, ...] = ()
    calib_method: str = "minmax"
    calib_samples: int = 32
    rewrites: tuple[str, ...] = ()
    limitations: tuple[Limitation, ...] = ()
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    end2end: End2EndSpec | None = None  # detectors: decode + NMS can be built into the graph
    keypoint_cell: tuple[float, float] | None = None  # pose --end2end graphs: input pixels per heatmap cell (x, y)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def hash(self) -> str:
        """Stable content hash of the merged recipe (part of every artifact's provenance)."""
        blob = json.dumps(self.raw, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def tolerance(self, precision: str, output: str) -> Tolerance:
        return self.output_tolerances.get(precision, {}).get(output, self.tolerances[precision])

    def limitation(self, precision: str, backend: str, check: str = "parity", form: str = "raw",
                   size: str = "canonical") -> Limitation | None:
        return next((lim for lim in self.limitations if lim.applies(precision, backend, check, form, size)), None)

    @property
    def has_end2end(self) -> bool:
        """Detectors with decode settings (decode + NMS) and pose models (heatmap peak decoding)."""
        return self.end2end is not None or self.task == "pose"

    @property
    def primary_input(self) -> InputSpec:
        return self.inputs[0]


_ACCUMULATING = {"limitations"}  # a task's limitations hold for its models beside their own


def _merge(base: dict, override: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif key in _ACCUMULATING and isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = out[key] + copy.deepcopy(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise RecipeError(f"cannot read recipe file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipeError(f"recipe file {path} is not valid YAML: {getattr(exc, 'problem', None) or exc}{where}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"recipe file {path} must hold a mapping")
    return data


@lru_cache(maxsize=1)
def _raw_recipes() -> dict[str, dict]:
    """Merged (but not yet validated) recipe dicts for every model, keyed by name."""
    root = recipes_dir()
    base = _read_yaml(root / "defaults.yaml")
    defaults, task_defaults = base.get("defaults", {}), base.get("tasks", {})
    merged: dict[str, dict] = {}
    for path in sorted(root.rglob("*.yaml")):
        if path.name == "defaults.yaml":
            continue
        family_file = _read_yaml(path)
        models = family_file.get("models")
        if not isinstance(models, dict) or not models:
            raise RecipeError(f"{path}: needs a non-empty `models` mapping")
        family_level = {k: v for k, v in family_file.items() if k not in _FAMILY_KEYS}
        for name, entry in models.items():
            if name in merged:
                raise RecipeError(f"model {name!r} has recipes in {merged[name]['source']} and {path}")
            own = _merge(family_level, entry or {})
            task = own.get("task")
            if task not in task_defaults:
                raise RecipeError(f"{path}: model {name!r} has unknown task {task!r}")
            raw = _merge(_merge(defaults, task_defaults[task]), own)
            raw["name"] = name
            raw["family"] = family_file.get("family", path.stem)
            raw["source"] = str(path.relative_to(root))
            merged[name] = raw
    return merged


def recipe_names(task: str | None = None) -> list[str]:
    return sorted(n for n, r in _raw_recipes().items() if task is None or r["task"] == task)


def raw_recipe(name: str) -> dict:
    raws = _raw_recipes()
    if name not in raws:
        raise UnknownModelError(unknown_name_message(name, list(raws)))
    return copy.deepcopy(raws[name])


def get_recipe(name: str, overrides: Mapping | None = None) -> Recipe:
    raw = raw_recipe(name)
    if overrides:
        raw = _merge(raw, overrides)
    return build_recipe(raw)


def build_recipe(raw: dict) -> Recipe:
    """Validate a merged recipe dict into a frozen Recipe (also used for users' own recipe files)."""
    name = raw.get("name", "<unnamed>")

    def need(key: str):
        if key not in raw:
            raise RecipeError(f"recipe {name!r}: missing `{key}`")
        return raw[key]

    inputs = tuple(_input_spec(name, spec) for spec in need("inputs"))
    if not inputs:
        raise RecipeError(f"recipe {name!r}: needs at least one input")
    outputs = tuple(need("outputs"))
    tolerances, per_output = _tolerances(name, need("tolerances"), outputs)
    ref = need("reference")
    try:
        reference = Reference(
            paper=str(ref["paper"]),
            implementation=str(ref["implementation"]),
            params=int(ref["params"]),
            params_rtol=float(ref.get("params_rtol", 0.005)),
            deploy_params=int(ref["deploy_params"]) if "deploy_params" in ref else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RecipeError(f"recipe {name!r}: reference needs paper, implementation, params ({exc})") from None
    limitations = tuple(
        Limitation(
            precision=lim.get("precision", "any"),
            backend=lim.get("backend", "any"),
            status=lim.get("status", "xfail"),
            reason=lim.get("reason") or _fail(f"recipe {name!r}: a limitation needs a reason"),
            check=lim.get("check", "parity"),
            form=lim.get("form", "raw"),
            size=lim.get("size", "any"),
        )
        for lim in raw.get("limitations", [])
    )
    for lim in limitations:
        if lim.size not in LIMITATION_SIZES:
            raise RecipeError(f"recipe {name!r}: limitation size {lim.size!r} is not one of {', '.join(LIMITATION_SIZES)}")
    opset_floor = int(need("opset_floor"))
    fp16 = raw.get("precision", {}).get("fp16", {})
    int8 = raw.get("precision", {}).get("int8", {})
    exporter = raw.get("exporter", "auto")
    if exporter not in ("auto", "torchscript", "dynamo"):
        raise RecipeError(f"recipe {name!r}: exporter must be auto, torchscript or dynamo")
    return Recipe(
        name=name,
        task=need("task"),
        family=raw.get("family", name),
        source=raw.get("source", "<user recipe>"),
        inputs=inputs,
        outputs=outputs,
        dynamic_axes={k: AxisRange(**v) for k, v in raw.get("dynamic_axes", {}).items()},
        opset_floor=opset_floor,
        default_opset=max(int(raw.get("default_opset", opset_floor)), opset_floor),
        exporter=exporter,
        tolerances=tolerances,
        output_tolerances=per_output,
        normalization={k: tuple(v) for k, v in need("normalization").items()},
        reference=reference,
        task_check=need("task_check"),
        verify_samples=int(raw.get("verify_samples", 2)),
        task_min_agreement={str(k): float(v) for k, v in raw.get("task_min_agreement", {}).items()},
        train_aux_outputs=int(raw.get("train_aux_outputs", 0)),
        bn_shift=float(raw.get("random_init", {}).get("bn_shift", 0.0)),
        fp16_keep_ops=tuple(fp16.get("keep_fp32_ops", [])),
        fp16_keep_nodes=tuple(fp16.get("keep_fp32_nodes", [])),
        int8_exclude_nodes=tuple(int8.get("exclude_nodes", [])),
        calib_method=str(int8.get("calib_method", "minmax")),
        calib_samples=int(int8.get("calib_samples", 32)),
        rewrites=tuple(raw.get("rewrites", [])),
        limitations=limitations,
        model_kwargs=dict(raw.get("model_kwargs", {})),
        end2end=_end2end_spec(name, raw.get("end2end")),
        raw=raw,
    )


def _end2end_spec(name: str, spec: Mapping | None) -> End2EndSpec | None:
    if spec is None:
        return None
    try:
        result = End2EndSpec(
            max_detections=int(spec["max_detections"]),
            score_threshold=float(spec["score_threshold"]),
            iou_threshold=float(spec["iou_threshold"]),
            extras=tuple(str(e) for e in spec.get("extras", [])),
            pre_nms_top_k=int(spec.get("pre_nms_top_k", 1000)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RecipeError(f"recipe {name!r}: end2end needs max_detections, score_threshold, iou_threshold ({exc})") from None
    if result.max_detections < 1 or result.pre_nms_top_k < result.max_detections or not 0 <= result.score_threshold < 1 or not 0 < result.iou_threshold <= 1:
        raise RecipeError(f"recipe {name!r}: end2end needs max_detections >= 1, pre_nms_top_k >= max_detections, "
                          "0 <= score_threshold < 1, 0 < iou_threshold <= 1")
    return result


def _fail(message: str):
    raise RecipeError(message)


def _input_spec(name: str, spec: Mapping) -> InputSpec:
    try:
        shape = tuple(int(d) for d in spec["shape"])
        fixed = bool(spec.get("fixed_size", False))
        min_shape = tuple(int(d) for d in spec.get("min_shape", shape if fixed else ()))
        test_shape = tuple(int(d) for d in spec.get("test_shape", shape))
        max_shape = tuple(int(d) for d in spec["max_shape"]) if "max_shape" in spec else None
        result = InputSpec(
            name=str(spec["name"]),
            shape=shape,
            min_shape=min_shape or shape,
            test_shape=test_shape,
            divisor=int(spec.get("divisor", 1)),
            fixed_size=fixed,
            max_shape=max_shape,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RecipeError(f"recipe {name!r}: bad input spec {dict(spec)!r} ({exc})") from None
    if max_shape is not None:
        low, opt, high = result.size_range()
        if len(max_shape) != len(shape) or fixed or not (low[0] <= opt[0] <= high[0] and low[1] <= opt[1] <= high[1]):
            raise RecipeError(f"recipe {name!r}: input {result.name!r} needs min_shape <= shape <= max_shape "
                              f"with a size that may change (got min {list(low)}, shape {list(opt)}, max {list(high)})")
    return result


def _tolerances(name: str, spec: Mapping, outputs: tuple[str, ...]):
    """Per-precision tolerances plus per-output overrides; loosening the policy needs a reason."""
    policy = _raw_recipes_policy()
    tolerances, per_output = {}, {}
    for precision in PRECISIONS:
        entry = dict(spec.get(precision, {}))
        overrides = entry.pop("outputs", {}) or {}
        reason = entry.pop("reason", None)
        tol = Tolerance(**entry)
        _check_not_looser(name, precision, tol, policy[precision], reason)
        tolerances[precision] = tol
        per_output[precision] = {}
        for out_name, out_entry in overrides.items():
            if out_name not in outputs:
                raise RecipeError(f"recipe {name!r}: tolerance for unknown output {out_name!r}")
            out_entry = dict(out_entry)
            out_reason = out_entry.pop("reason", reason)
            out_tol = Tolerance(**{**entry, **out_entry})
            _check_not_looser(name, precision, out_tol, policy[precision], out_reason)
            per_output[precision][out_name] = out_tol
    return tolerances, per_output


def _check_not_looser(name: str, precision: str, tol: Tolerance, policy: Tolerance, reason) -> None:
    looser = (
        # dropping an elementwise bound (e.g. fp32 checked by cosine alone) loosens the policy too
        (policy.atol is not None and (tol.atol is None or tol.atol > policy.atol))
        or (policy.rtol is not None and tol.rtol is None)
        or (tol.rtol is not None and policy.rtol is not None and tol.rtol > policy.rtol)
        or (tol.cosine is not None and policy.cosine is not None and tol.cosine < policy.cosine)
    )
    if looser and not reason:
        raise RecipeError(f"recipe {name!r}: {precision} tolerance is looser than the policy and gives no reason")


@lru_cache(maxsize=1)
def _raw_recipes_policy() -> dict[str, Tolerance]:
    """The verification policy of DESIGN.md §4: defaults.yaml's tolerances."""
    base = _read_yaml(recipes_dir() / "defaults.yaml")["defaults"]["tolerances"]
    return {p: Tolerance(**{k: v for k, v in base[p].items() if k != "reason"}) for p in PRECISIONS}
