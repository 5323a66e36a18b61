"""The init cache (netexport.zoo.init_cache): a zoo model loaded from it is the model a fresh
random init builds, to the bit, for every model in the zoo; and the cache's edge cases."""

import numpy as np
import pytest
import torch

from netexport.data import synthetic_inputs
from netexport.pipeline.reference import torch_outputs
from netexport.recipes import get_recipe
from netexport.zoo import create_model, init_cache
from zoo_params import per_model


def _fresh(name, monkeypatch, **kwargs):
    monkeypatch.setenv(init_cache.ENV, "off")
    model = create_model(name, **kwargs)
    return model, torch.get_rng_state()


def _entries(root):
    return sorted(root.rglob("*.pt"))


@pytest.mark.parametrize("name", per_model())
def test_a_model_from_the_init_cache_equals_a_fresh_init(name, tmp_path, monkeypatch):
    fresh, fresh_rng = _fresh(name, monkeypatch)
    monkeypatch.setenv(init_cache.ENV, str(tmp_path))
    create_model(name)  # initialises and stores
    assert len(_entries(tmp_path)) == 1
    cached = create_model(name)  # loads
    assert torch.equal(torch.get_rng_state(), fresh_rng), "the RNG is left where a fresh init leaves it"
    state, kept = fresh.state_dict(), cached.state_dict()
    assert list(state) == list(kept)
    for key in state:
        assert torch.equal(state[key], kept[key]), key
    recipe = get_recipe(name)
    sample = synthetic_inputs({s.name: s.test_shape for s in recipe.inputs}, recipe.normalization, seed=3)
    for out, ref in zip(torch_outputs(cached, recipe, sample).values(), torch_outputs(fresh, recipe, sample).values()):
        np.testing.assert_array_equal(out, ref)


def test_each_size_and_seed_has_its_own_entry_and_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(init_cache.ENV, str(tmp_path))
    create_model("resnet18")
    create_model("resnet18", seed=1)
    name = get_recipe("resnet18").inputs[0].name
    create_model("resnet18", input_shapes={name: (1, 3, 48, 48)})
    assert len(_entries(tmp_path)) == 3
    off = tmp_path / "off"
    monkeypatch.setenv(init_cache.ENV, "off")
    create_model("lenet5")
    assert not off.exists() and len(_entries(tmp_path)) == 3


def test_a_damaged_entry_is_initialised_again_and_rewritten(tmp_path, monkeypatch):
    fresh, _ = _fresh("resnet18", monkeypatch)
    monkeypatch.setenv(init_cache.ENV, str(tmp_path))
    create_model("resnet18")
    [entry] = _entries(tmp_path)
    entry.write_bytes(b"not a state dict")
    again = create_model("resnet18")
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), again.state_dict().values()))
    assert torch.load(entry, weights_only=True)["state_dict"].keys() == fresh.state_dict().keys()


def test_an_unwritable_cache_only_costs_the_init(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv(init_cache.ENV, str(blocked))
    assert create_model("lenet5") is not None
