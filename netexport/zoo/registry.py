"""Model registry: `@register_model` on a builder function makes it a zoo model.

The builder's name, with underscores turned into hyphens, is the model name unless one is given
(`@register_model("shufflenet-v2-x0.5")`). Registering a name twice is an error. Family modules are
imported lazily, on the first lookup, so the CLI starts without importing torch.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UnknownModelError

# Task folders under zoo/ hold one module per model family; every module in them is a family.
_NOT_FAMILIES = {"layers"}


def family_modules() -> list[str]:
    """Every family module (zoo/<task>/<family>.py), found on disk so adding a family is adding a file."""
    root = Path(__file__).resolve().parent
    return sorted(
        f"{__package__}.{folder.name}.{path.stem}"
        for folder in root.iterdir()
        if folder.is_dir() and folder.name not in _NOT_FAMILIES and (folder / "__init__.py").exists()
        for path in folder.glob("*.py")
        if path.stem != "__init__"
    )


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable
    module: str


_REGISTRY: dict[str, ModelEntry] = {}
_loaded = False


def register_model(name_or_fn=None):
    """Decorator registering a builder; usable bare or with an explicit name."""

    def decorate(fn: Callable, name: str | None = None) -> Callable:
        model_name = name or fn.__name__.replace("_", "-")
        if model_name in _REGISTRY:
            raise ValueError(
                f"model {model_name!r} registered twice "
                f"({_REGISTRY[model_name].module} and {fn.__module__})"
            )
        _REGISTRY[model_name] = ModelEntry(model_name, fn, fn.__module__)
        return fn

    if callable(name_or_fn):
        return decorate(name_or_fn)
    return lambda fn: decorate(fn, name_or_fn)


def _load_families() -> None:
    global _loaded
    if not _loaded:
        for module in family_modules():
            importlib.import_module(module)
        _loaded = True


def registered_names() -> list[str]:
    _load_families()
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(unknown_name_message(name, list(_REGISTRY))) from None


def unknown_name_message(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `netexport list`"
    return f"unknown model {name!r}{hint}"
