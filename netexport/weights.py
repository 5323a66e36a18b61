"""Loading trained weights: a state dict, or a checkpoint that contains one."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError, WeightsError

# Keys under which common training loops store the state dict inside a checkpoint.
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "ema", "module")
_MAX_LISTED = 3


def read_state_dict(path: str | Path) -> dict:
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise WeightsError(f"cannot read weights {path}: {str(exc).splitlines()[0]}") from None
    if isinstance(obj, dict):
        for key in _CHECKPOINT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise WeightsError(f"{path} holds neither a state dict nor a checkpoint containing one")
    prefix = "module."  # saved from DataParallel / DistributedDataParallel
    if obj and all(k.startswith(prefix) for k in obj):
        obj = {k[len(prefix):]: v for k, v in obj.items()}
    return obj


def load_weights(model, path: str | Path) -> None:
    """Load strictly; any missing, unexpected or mis-shaped tensor is an error naming them.

    Goes through `load_state_dict`, so a model's own key mapping (e.g. ResNet accepting torchvision's
    stem names) applies before keys are compared.
    """
    state = read_state_dict(path)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches are raised even when strict=False
        mis_shaped = [
            line.strip().removeprefix("size mismatch for ").split(": copying")[0]
            for line in str(exc).splitlines()
            if "size mismatch for" in line
        ]
        if not mis_shaped:
            raise WeightsError(f"weights {Path(path).name} do not fit the model: {str(exc).splitlines()[0]}") from None
        raise WeightsError(f"weights {Path(path).name} do not fit the model: {_listing('wrong shape', mis_shaped)}") from None
    problems = [
        _listing(label, items)
        for label, items in (("missing", result.missing_keys), ("unexpected", result.unexpected_keys))
        if items
    ]
    if problems:
        raise WeightsError(f"weights {Path(path).name} do not fit the model: " + "; ".join(problems))


def _listing(label: str, items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return f"{len(items)} {label}: {shown}{more}"
