"""The model zoo: `create_model(name)` builds any registered model, eval-ready."""

from __future__ import annotations

from pathlib import Path

from .registry import get_entry, register_model, registered_names

__all__ = ["create_model", "list_models", "register_model", "count_params"]


def list_models(task: str | None = None) -> list[str]:
    from ..recipes import recipe_names

    names = registered_names()
    if task is None:
        return names
    in_task = set(recipe_names(task))
    return [n for n in names if n in in_task]


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def create_model(name: str, weights: str | Path | None = None, seed: int = 0, **kwargs):
    """Build a zoo model in eval mode.

    Without weights the model gets its paper's random initialisation (seeded) and then a short
    batch-norm warm-up on synthetic images, so activations keep a realistic scale through deep
    stacks and outputs are not degenerate (DESIGN.md §4). With weights, those are loaded as given.
    """
    import torch

    from ..recipes import get_recipe

    entry = get_entry(name)
    recipe = get_recipe(name)
    torch.manual_seed(seed)
    model = entry.builder(**{**recipe.model_kwargs, **kwargs})
    if weights is not None:
        from ..weights import load_weights

        load_weights(model, weights)
    else:
        warm_up_batch_norm(model, recipe, seed)
    return model.eval()


def warm_up_batch_norm(model, recipe, seed: int = 0, batches: int = 2) -> None:
    """Replace BN running statistics by their average over a few synthetic batches."""
    import torch

    from ..data import synthetic_inputs

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the warm-up batches
    shapes = {spec.name: (4, *spec.test_shape[1:]) for spec in recipe.inputs}
    model.train()
    with torch.no_grad():
        for i in range(batches):
            sample = synthetic_inputs(shapes, recipe.normalization, seed=10_000 + seed + i)
            model(*[torch.from_numpy(sample[spec.name]) for spec in recipe.inputs])
    for bn in norms:
        bn.momentum = 0.1
    model.eval()
