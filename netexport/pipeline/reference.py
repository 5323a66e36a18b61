"""The reference: the PyTorch model in eval mode, on CPU, in fp32 (DESIGN.md §4)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..recipes import Recipe


def torch_outputs(model, recipe: Recipe, sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    args = [torch.from_numpy(np.ascontiguousarray(sample[spec.name])) for spec in recipe.inputs]
    with torch.no_grad():
        out = model(*args)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if len(outs) != len(recipe.outputs):
        raise ValueError(f"{recipe.name} returned {len(outs)} outputs, its recipe names {len(recipe.outputs)}")
    return {name: t.detach().float().numpy() for name, t in zip(recipe.outputs, outs)}
