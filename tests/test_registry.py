import pytest

import netexport
from netexport.errors import UnknownModelError
from netexport.recipes import get_recipe, recipe_names
from netexport.zoo import registry


def test_registering_a_name_twice_raises():
    @registry.register_model("netexport-test-dup")
    def first():
        return None

    try:
        with pytest.raises(ValueError, match="registered twice"):

            @registry.register_model("netexport-test-dup")
            def second():
                return None
    finally:
        registry._REGISTRY.pop("netexport-test-dup")


def test_function_name_becomes_hyphenated_model_name():
    @registry.register_model
    def netexport_test_name():
        return None

    try:
        assert "netexport-test-name" in registry._REGISTRY
    finally:
        registry._REGISTRY.pop("netexport-test-name")


def test_every_registered_model_has_one_recipe_and_every_recipe_a_model():
    assert set(netexport.list_models()) == set(recipe_names())


def test_list_models_filters_by_task():
    classifiers = netexport.list_models(task="classification")
    assert "resnet50" in classifiers
    assert all(get_recipe(n).task == "classification" for n in classifiers)
    assert "fpn-resnet50" not in classifiers


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match="resnet50"):
        registry.get_entry("resnet5O")
    with pytest.raises(UnknownModelError, match="resnet50"):
        get_recipe("resnet-50")
