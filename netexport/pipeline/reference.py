"""The reference: the PyTorch model in eval mode, on CPU, in fp32 (DESIGN.md §4)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..recipes import Recipe


def torch_outputs(model, recipe: Recipe, sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    from ..numerics import fixed_threads

    args = [torch.from_numpy(np.ascontiguousarray(sample[spec.name])) for spec in recipe.inputs]
    with torch.no_grad(), fixed_threads():
        out = model(*args)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if len(outs) != len(recipe.outputs):
        raise ValueError(f"{recipe.name} returned {len(outs)} outputs, its recipe names {len(recipe.outputs)}")
    return {name: t.detach().float().numpy() for name, t in zip(recipe.outputs, outs)}


def reference_outputs(model, recipe: Recipe, samples: Sequence[Mapping[str, np.ndarray]]) -> tuple[list[dict], float]:
    """The reference on every sample, and the GFLOPs of one forward pass (counted on the first, whose
    outputs are kept: counting costs no extra pass)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        first = torch_outputs(model, recipe, samples[0])
    outputs = [first, *(torch_outputs(model, recipe, s) for s in samples[1:])]
    for arrays in outputs:  # reused by later verifications of the same model: nothing may edit them
        for array in arrays.values():
            array.flags.writeable = False
    return outputs, counter.get_total_flops() / 1e9
