"""Every registered model: construction, parameter count against its reference, output contract."""

import copy

import numpy as np
import pytest
import torch

import netexport
from netexport.data import synthetic_inputs
from netexport.pipeline.reference import torch_outputs
from netexport.recipes import get_recipe
from netexport.zoo import count_params, create_model
from zoo_params import per_model

NAMES = netexport.list_models()


def _test_sample(recipe, batch=None):
    shapes = {s.name: ((batch or s.test_shape[0]), *s.test_shape[1:]) for s in recipe.inputs}
    return synthetic_inputs(shapes, recipe.normalization, seed=3)


@pytest.mark.parametrize("name", per_model())
def test_parameter_count_matches_reference(name):
    recipe = get_recipe(name)
    model = create_model(name)
    ours, ref = count_params(model), recipe.reference.params
    assert abs(ours - ref) <= recipe.reference.params_rtol * ref, f"{ours} vs {ref} ({recipe.reference.implementation})"


@pytest.mark.parametrize("name", per_model())
def test_eval_outputs_match_the_recipe_and_are_not_degenerate(name):
    recipe = get_recipe(name)
    model = create_model(name)
    outputs = torch_outputs(model, recipe, _test_sample(recipe, batch=2))
    assert list(outputs) == list(recipe.outputs)
    for out_name, value in outputs.items():
        assert np.all(np.isfinite(value)), out_name
        # distinct inputs give distinct outputs, and an output is not a constant
        assert value.std() > 1e-3, out_name
        assert not np.allclose(value[0], value[1], atol=1e-4), out_name


@pytest.mark.parametrize("name", per_model())
def test_train_mode_aux_outputs_only_in_train_mode(name):
    recipe = get_recipe(name)
    model = create_model(name)
    args = [torch.from_numpy(v) for v in _test_sample(recipe, batch=2).values()]
    with torch.no_grad():
        eval_out = model(*args)
        model.train()
        train_out = model(*args)
    n_eval = len(eval_out) if isinstance(eval_out, (tuple, list)) else 1
    n_train = len(train_out) if isinstance(train_out, (tuple, list)) else 1
    assert n_eval == len(recipe.outputs)
    assert n_train == len(recipe.outputs) + recipe.train_aux_outputs


@pytest.mark.parametrize("name", [n for n in NAMES if get_recipe(n).reference.deploy_params])
def test_reparameterised_model_equals_the_trained_form(name):
    recipe = get_recipe(name)
    model = create_model(name)
    fused = copy.deepcopy(model)
    fused.reparameterize()
    fused.reparameterize()  # idempotent
    assert count_params(fused) == pytest.approx(recipe.reference.deploy_params, rel=recipe.reference.params_rtol)
    assert count_params(fused) < count_params(model)
    sample = _test_sample(recipe, batch=2)
    ref = torch_outputs(model, recipe, sample)
    got = torch_outputs(fused, recipe, sample)
    for key in ref:
        scale = max(1.0, float(np.abs(ref[key]).max()))
        assert np.abs(ref[key] - got[key]).max() <= 1e-5 * scale
