"""`netexport info`: what a model is, measured on the real module at its canonical input size."""

from __future__ import annotations

from .recipes import get_recipe


def _shape_of(value):
    if hasattr(value, "shape"):
        return list(value.shape)
    if isinstance(value, (tuple, list)):
        return [_shape_of(v) for v in value]
    return None


def model_info(name: str) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .data import synthetic_inputs
    from .zoo import count_params, create_model

    recipe = get_recipe(name)
    shapes = {spec.name: spec.shape for spec in recipe.inputs}
    model = create_model(name, input_shapes=shapes)
    if hasattr(model, "reparameterize"):
        deploy_model = create_model(name, input_shapes=shapes)
        deploy_model.reparameterize()
        deploy_params = count_params(deploy_model)
    else:
        deploy_params = None
    sample = synthetic_inputs(shapes, recipe.normalization)
    args = [torch.from_numpy(sample[spec.name]) for spec in recipe.inputs]

    layers, hooks = [], []
    for child_name, child in model.named_children():
        entry = {"name": child_name, "type": type(child).__name__, "params": count_params(child), "output_shape": None}
        layers.append(entry)
        hooks.append(child.register_forward_hook(lambda _m, _i, out, e=entry: e.update(output_shape=_shape_of(out))))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        outputs = model(*args)
    for hook in hooks:
        hook.remove()
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    flops = counter.get_total_flops()
    ref = recipe.reference
    return {
        "name": name,
        "task": recipe.task,
        "recipe": recipe.source,
        "recipe_hash": recipe.hash,
        "reference": {
            "paper": ref.paper,
            "implementation": ref.implementation,
            "params": ref.params,
            "deploy_params": ref.deploy_params,
        },
        "params": count_params(model),
        "deploy_params": deploy_params,
        "flops_input": {k: list(v) for k, v in shapes.items()},
        "gflops": flops / 1e9,
        "gmacs": flops / 2e9,  # FlopCounterMode counts a multiply-add as two FLOPs
        "inputs": [
            {"name": s.name, "shape": list(s.shape), "min_shape": list(s.min_shape), "fixed_size": s.fixed_size}
            for s in recipe.inputs
        ],
        "outputs": [{"name": n, "shape": list(o.shape)} for n, o in zip(recipe.outputs, outputs)],
        "opset_floor": recipe.opset_floor,
        "dynamic_axes": {k: vars(v) for k, v in recipe.dynamic_axes.items()},
        "tolerances": {p: {k: v for k, v in vars(t).items() if v is not None} for p, t in recipe.tolerances.items()},
        "limitations": [vars(lim) for lim in recipe.limitations],
        "layers": layers,
    }
