"""Model references: a zoo name, or a user's `package.module:callable` that returns an `nn.Module`.

Both resolve to a ModelSource: the recipe the pipeline follows, a way to build the module, and the
source files that define it (part of the verification cache key). A user model's recipe is built
like a zoo recipe — defaults ← task ← the user's recipe file ← `--input-shape` — so the same
policy, tolerances and checks apply.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import InputError, RecipeError, first_line
from .recipes import Recipe, TASKS

_USER_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
DEFAULT_USER_TASK = "classification"


@dataclass(frozen=True)
class UserOptions:
    """What a `package.module:callable` model needs besides the reference (CLI options)."""

    input_shape: tuple[int, ...] | None = None
    task: str | None = None
    recipe_file: Path | None = None

    def given(self) -> list[str]:
        flags = {"--input-shape": self.input_shape, "--task": self.task, "--recipe": self.recipe_file}
        return [flag for flag, value in flags.items() if value is not None]


@dataclass(frozen=True)
class ModelSource:
    ref: str
    recipe: Recipe
    builder: Callable = field(repr=False)  # (weights, input_shapes) -> nn.Module in eval mode
    files: tuple[Path, ...] = ()

    def create(self, weights=None, input_shapes: dict | None = None):
        return self.builder(weights, input_shapes)

    @property
    def slug(self) -> str:
        """The reference as a file-name stem (`pkg.mod:fn` → `pkg.mod-fn`)."""
        return self.ref.replace(":", "-").replace("/", "-")


def is_user_ref(ref: str) -> bool:
    return ":" in ref and not ref.endswith(".onnx")


def parse_input_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in text.replace("x", ",").split(","))
    except ValueError:
        raise InputError(f"bad input shape {text!r}: expected N,C,H,W such as 1,3,224,224") from None
    if len(shape) < 2 or any(d <= 0 for d in shape):
        raise InputError(f"bad input shape {text!r}: expected positive sizes such as 1,3,224,224")
    return shape


def resolve(ref: str, user: UserOptions | None = None) -> ModelSource:
    user = user or UserOptions()
    if is_user_ref(ref):
        return _user_source(ref, user)
    if user.given():
        raise InputError(f"{', '.join(user.given())}: only for package.module:callable models, not for zoo model {ref!r}")
    return zoo_source(ref)


def zoo_source(name: str) -> ModelSource:
    from .recipes import get_recipe
    from .zoo import create_model
    from .zoo.registry import get_entry

    recipe = get_recipe(name)

    def build(weights, input_shapes):
        return create_model(name, weights=weights, input_shapes=input_shapes)

    return ModelSource(name, recipe, build, _zoo_files(get_entry(name).builder))


def _zoo_files(builder) -> tuple[Path, ...]:
    """The family file first, then every zoo file: families import each other's blocks (FPN heads
    on ResNet bodies, box coding shared by detectors), so any zoo change may change any model."""
    zoo = Path(__file__).resolve().parent / "zoo"
    family = Path(inspect.getsourcefile(builder)).resolve()
    return (family, *(p for p in sorted(zoo.rglob("*.py")) if p != family))


# ---- users' own models --------------------------------------------------------------------------


def load_callable(ref: str) -> Callable:
    if not _USER_REF.match(ref):
        raise InputError(f"bad model reference {ref!r}: expected package.module:callable")
    module_name, attr_path = ref.split(":", 1)
    if os.getcwd() not in sys.path:  # as `python -m` would: modules beside the user are importable
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise InputError(f"cannot import {module_name!r} for {ref}: {type(exc).__name__}: {first_line(exc)}") from None
    obj = module
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise InputError(f"{module_name} has no attribute {attr_path!r} (from {ref})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(f"{ref} is not callable")
    return obj


def _instantiate(ref: str, factory: Callable):
    import torch

    torch.manual_seed(0)  # a factory's random init is the same in every stage and process
    try:
        model = factory()
    except Exception as exc:
        raise InputError(f"{ref}() raised {type(exc).__name__}: {first_line(exc)}") from None
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"{ref}() returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _user_source(ref: str, user: UserOptions) -> ModelSource:
    factory = load_callable(ref)
    raw, own_outputs = _user_raw_recipe(ref, user)
    model = _instantiate(ref, factory)  # fails fast on a factory that returns no module
    raw = _complete_from_model(raw, model, own_outputs)
    from .recipes import build_recipe

    try:
        recipe = build_recipe(raw)
    except (TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"malformed recipe for {ref} ({raw['source']}): {type(exc).__name__}: {first_line(exc)}") from None

    def build(weights, input_shapes):
        built = _instantiate(ref, factory)
        if weights is not None:
            from .weights import load_weights

            load_weights(built, weights)
        return built.eval()

    module_file = inspect.getsourcefile(inspect.getmodule(factory) or factory)
    files = (Path(module_file).resolve(),) if module_file else ()
    if user.recipe_file:
        files += (Path(user.recipe_file).resolve(),)
    return ModelSource(ref, recipe, build, files)


def _user_raw_recipe(ref: str, user: UserOptions) -> tuple[dict, bool]:
    """The merged recipe dict, and whether the user's file named the outputs."""
    from .recipes import _merge, _read_yaml, recipes_dir

    own: dict = {}
    if user.recipe_file is not None:
        path = Path(user.recipe_file)
        if not path.is_file():
            raise InputError(f"recipe file not found: {path}")
        try:
            own = _read_yaml(path)
        except RecipeError as exc:
            raise InputError(exc.message) from None
        if isinstance(own.get("models"), dict):  # a family-style file holding this one model
            models = own["models"]
            if len(models) != 1:
                raise InputError(f"{path}: a user recipe describes one model; found {len(models)}")
            own = next(iter(models.values())) or {}
    task = user.task or own.get("task") or DEFAULT_USER_TASK
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}: choose from {', '.join(TASKS)}")
    if user.input_shape is not None:
        own = {**own, "inputs": [{"name": _input_name(own), "shape": list(user.input_shape)}]}
    if not own.get("inputs"):
        raise InputError(f"{ref}: give --input-shape N,C,H,W or a --recipe file with `inputs`")
    if not isinstance(own["inputs"], list) or not all(isinstance(i, dict) for i in own["inputs"]):
        raise InputError(f"{user.recipe_file}: `inputs` must be a list of {{name, shape}} mappings")
    from .recipes import _input_spec

    for spec in own["inputs"]:
        _input_spec(ref, spec)  # RecipeError (exit 2) on a malformed entry
    base = _read_yaml(recipes_dir() / "defaults.yaml")
    raw = _merge(_merge(base.get("defaults", {}), base.get("tasks", {}).get(task, {})), own)
    from .pipeline.verify import TASK_CHECKS

    if raw.get("task_check") not in TASK_CHECKS:
        raise InputError(f"unknown task_check {raw.get('task_check')!r}: choose from {', '.join(sorted(TASK_CHECKS))}")
    raw.update(name=ref, task=task, family="user", source=str(user.recipe_file) if user.recipe_file else "<command line>")
    return raw, "outputs" in own


def _input_name(own: dict) -> str:
    inputs = own.get("inputs") or [{}]
    return str(inputs[0].get("name", "input"))


def _complete_from_model(raw: dict, model, own_outputs: bool) -> dict:
    """Fill what a user recipe may leave out from the module itself: output names (one dry run)
    and the reference (the module's own parameter count)."""
    import torch

    from .data import synthetic_inputs

    shapes = {spec["name"]: tuple(spec["shape"]) for spec in raw["inputs"]}
    try:
        sample = synthetic_inputs(shapes, raw["normalization"], seed=0)
        with torch.no_grad():
            out = model.eval()(*[torch.from_numpy(sample[name]) for name in shapes])
    except Exception as exc:
        raise InputError(f"{raw['name']} fails on input {_shape_text(shapes)}: {type(exc).__name__}: {first_line(exc)}") from None
    if isinstance(out, dict):
        raise InputError(f"{raw['name']} returns a dict; wrap it to return a tensor or a tuple of tensors")
    count = len(out) if isinstance(out, (tuple, list)) else 1
    declared = list(raw.get("outputs", []))
    if count != len(declared):
        if own_outputs:
            raise InputError(f"{raw['name']} returns {count} outputs; its recipe names {len(declared)}")
        raw["outputs"] = ["output"] if count == 1 else [f"output{i}" for i in range(count)]
    raw.setdefault("reference", {
        "paper": "user model", "implementation": raw["name"],
        "params": sum(p.numel() for p in model.parameters()),
    })
    return raw


def _shape_text(shapes: dict) -> str:
    return ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in shapes.items())
