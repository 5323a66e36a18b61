"""Model registry: `@register_model` on a builder function makes it a zoo model.

The builder's name, with underscores turned into hyphens, is the model name unless one is given
(`@register_model("shufflenet-v2-x0.5")`). Registering a name twice is an error. Family modules are
imported lazily, on the first lookup, so the CLI starts without importing torch.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Callable

from ..errors import UnknownModelError

# One module per model family; listed here so lookups can import them on demand.
FAMILY_MODULES = (
    "netexport.zoo.classification.lenet",
    "netexport.zoo.classification.alexnet",
    "netexport.zoo.classification.vgg",
    "netexport.zoo.classification.googlenet",
    "netexport.zoo.classification.inception",
    "netexport.zoo.classification.resnet",
    "netexport.zoo.classification.densenet",
    "netexport.zoo.classification.efficientnet",
    "netexport.zoo.classification.repvgg",
    "netexport.zoo.detection.fpn",
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
        for module in FAMILY_MODULES:
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
