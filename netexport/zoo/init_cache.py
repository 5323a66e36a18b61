"""Random initialisation, kept on disk: a zoo model's seeded init plus its warm-up (batch-norm
statistics, unit-variance scaling, random head placement) is a pure function of the zoo code, the
recipe, the seed, the warm-up size and the torch/numpy versions, and at canonical sizes it costs
tens of seconds (forward passes in train mode at full resolution). The resulting state dict is
stored under a SHA-256 of all of those, so the next process that needs the same model loads it.

Directory: $NETEXPORT_INIT_CACHE_DIR, default ~/.cache/netexport/init; `off` disables it. An
unreadable entry is ignored and rewritten. The torch RNG state after the warm-up is stored too, so
a cached build leaves the process exactly as a fresh one would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

ENV = "NETEXPORT_INIT_CACHE_DIR"
_CODE = ("zoo", "data.py", "numerics.py")  # what builds and warms up a zoo model (recipes enter by their content)


def directory() -> Path | None:
    from ..cache import cache_home

    value = os.environ.get(ENV)
    if value == "off":
        return None
    return Path(value) if value else cache_home() / "init"


def entry_path(name: str, recipe, seed: int, input_shapes: dict | None, kwargs: dict) -> Path | None:
    """Where this model's initialised state lives, or None when the cache is off."""
    import numpy
    import torch

    from ..cache import code_digest

    root = directory()
    if root is None:
        return None
    payload = {
        "model": name, "recipe": recipe.raw, "seed": seed, "kwargs": kwargs,
        "input_shapes": sorted((k, list(v)) for k, v in input_shapes.items()) if input_shapes else None,
        "code": code_digest(_CODE), "torch": torch.__version__, "numpy": numpy.__version__,
    }
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return root / key[:2] / f"{key}.pt"


def load(path: Path, model) -> bool:
    """Load the kept state into a freshly built `model`; False when there is none or it is unusable."""
    import torch

    try:
        kept = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(kept["state_dict"], strict=True)
        torch.set_rng_state(kept["rng_state"])
    except Exception:  # absent, damaged or foreign: initialise again (and rewrite it)
        return False
    return True


def store(path: Path, model) -> None:
    import torch

    from .. import atomic

    buffer = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), "rng_state": torch.get_rng_state()}, buffer)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(path, buffer.getvalue())
    except OSError:  # a read-only or full cache only costs the next process the init
        pass
