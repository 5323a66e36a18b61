"""The model zoo: `create_model(name)` builds any registered model, eval-ready."""

from __future__ import annotations

from pathlib import Path

from .registry import get_entry, register_model, registered_names

__all__ = ["create_model", "list_models", "register_model", "count_params", "scale_layers_to_unit_variance",
           "centre_class_logits"]


def list_models(task: str | None = None) -> list[str]:
    from ..recipes import recipe_names

    names = registered_names()
    if task is None:
        return names
    in_task = set(recipe_names(task))
    return [n for n in names if n in in_task]


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def create_model(name: str, weights: str | Path | None = None, seed: int = 0,
                 input_shapes: dict | None = None, **kwargs):
    """Build a zoo model in eval mode.

    Without weights the model gets its paper's random initialisation (seeded), then its activations
    are brought to a realistic scale on synthetic images — batch-norm statistics estimated from a few
    batches, or, in networks without batch norm, each layer scaled to unit output variance — so
    outputs are not degenerate (DESIGN.md §4). A model whose raw outputs are read directly as
    probabilities and box sizes, or whose paper init leaves the head's outputs near-constant, defines
    `place_random_head(warm_up_inputs)`, called last, to give them the spread training does.
    `input_shapes` (name → NCHW) sets the size of that
    warm-up, normally the size the model will be exported at; the recipe's test size otherwise.
    With weights, those are loaded as given. The initialised state is kept on disk (init_cache), so
    the next build of the same model at the same size loads it instead of warming up again.
    """
    import torch

    from ..numerics import fixed_threads
    from ..recipes import get_recipe

    from . import init_cache

    entry = get_entry(name)
    recipe = get_recipe(name)
    torch.manual_seed(seed)
    model = entry.builder(**{**recipe.model_kwargs, **kwargs})
    if weights is not None:
        from ..weights import load_weights

        load_weights(model, weights)
        return model.eval()
    kept = init_cache.entry_path(name, recipe, seed, input_shapes, kwargs)
    if kept is not None and init_cache.load(kept, model):
        return model.eval()
    with fixed_threads():  # the initialised state must not depend on the caller's thread count
        if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            warm_up_batch_norm(model, recipe, seed, input_shapes)
        else:
            scale_to_unit_variance(model, recipe, seed, input_shapes)
        if hasattr(model, "place_random_head"):
            model.eval()
            with torch.no_grad():
                model.place_random_head(_warm_up_batch(recipe, seed, input_shapes))
    model.eval()
    if kept is not None:
        init_cache.store(kept, model)
    return model


WARM_UP_BATCH = 4


def _warm_up_batch(recipe, seed: int, input_shapes: dict | None):
    import torch

    from ..data import synthetic_inputs

    shapes = {
        spec.name: (WARM_UP_BATCH, *(input_shapes[spec.name] if input_shapes else spec.test_shape)[1:])
        for spec in recipe.inputs
    }
    sample = synthetic_inputs(shapes, recipe.normalization, seed=10_000 + seed)
    return [torch.from_numpy(sample[spec.name]) for spec in recipe.inputs]


def scale_to_unit_variance(model, recipe, seed: int = 0, input_shapes: dict | None = None) -> None:
    """Layer-sequential unit-variance scaling (Mishkin & Matas, "All you need is a good init", 2016)
    of every conv/linear layer, on a warm-up batch."""
    import torch

    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    scale_layers_to_unit_variance(model, _warm_up_batch(recipe, seed, input_shapes), layers)


def scale_layers_to_unit_variance(model, inputs, layers, keep_bias: bool = False) -> None:
    """One forward pass of `inputs`: each of `layers`, the first time it runs, divides its weights
    (and its bias, unless `keep_bias`: then a constant offset such as a prior stays) by the standard
    deviation of its output and passes the rescaled output on, so every later layer is measured on
    already-scaled inputs."""
    import torch

    done: set[int] = set()

    def rescale(module, _inputs, output):
        if id(module) in done or not isinstance(output, torch.Tensor):
            return None
        done.add(id(module))
        std = float(output.std())
        if not std > 1e-8:
            return None
        module.weight.mul_(1.0 / std)
        if module.bias is None or keep_bias:
            bias = 0.0 if module.bias is None else module.bias.reshape(-1, *(1,) * (output.dim() - 2))
            return (output - bias) / std + bias
        module.bias.mul_(1.0 / std)
        return output / std

    hooks = [m.register_forward_hook(rescale) for m in layers]
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for hook in hooks:
            hook.remove()


def warm_up_batch_norm(model, recipe, seed: int = 0, input_shapes: dict | None = None, batches: int = 2) -> None:
    """Replace BN running statistics by their average over a few synthetic batches, after setting
    the BN shifts to the recipe's `random_init.bn_shift` (0 unless a deep stack needs it)."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        if bn.affine and recipe.bn_shift:
            bn.bias.data.fill_(recipe.bn_shift)
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the warm-up batches
    model.train()
    with torch.no_grad():
        for i in range(batches):
            model(*_warm_up_batch(recipe, seed + i, input_shapes))
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum  # as built: a model loaded from the init cache has the same
    model.eval()


def centre_class_logits(model, classifier, inputs) -> None:
    """Random init only, for `place_random_head`: shift `classifier`'s bias so every class's mean
    logit over the warm-up batch is 0. Untrained features share a large common component that gives
    one class most pixels; without it the per-pixel argmax follows the features' spatial variation,
    as a trained model's does, so the pixel-argmax check has classes to tell apart."""
    logits = []
    hook = classifier.register_forward_hook(lambda _m, _i, out: logits.append(out))
    try:
        model(*inputs)
    finally:
        hook.remove()
    classifier.bias.sub_(logits[0].mean(dim=(0, 2, 3)))
