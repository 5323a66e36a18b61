import importlib

import pytest

from netexport.errors import RecipeError
from netexport.pipeline.verify import TASK_CHECKS
from netexport.recipes import PRECISIONS, build_recipe, get_recipe, raw_recipe, recipe_names

NAMES = recipe_names()


@pytest.mark.parametrize("name", NAMES)
def test_recipe_is_complete(name):
    recipe = get_recipe(name)
    assert recipe.inputs and recipe.outputs
    assert recipe.reference.paper and recipe.reference.implementation and recipe.reference.params > 0
    assert set(recipe.tolerances) == set(PRECISIONS)
    assert recipe.task_check in TASK_CHECKS
    assert "batch" in recipe.dynamic_axes
    axis = recipe.dynamic_axes["batch"]
    assert 1 <= axis.min <= axis.opt <= axis.max
    for spec in recipe.inputs:
        assert len(spec.shape) == len(spec.min_shape) == len(spec.test_shape)
        assert all(m <= t for m, t in zip(spec.min_shape[2:], spec.test_shape[2:]))
        assert all(t <= s for t, s in zip(spec.test_shape[2:], spec.shape[2:]))
        assert all(d % spec.divisor == 0 for d in spec.test_shape[2:] + spec.shape[2:])
    for limitation in recipe.limitations:
        assert limitation.reason.strip()


@pytest.mark.parametrize(
    "name", [n for n in NAMES if get_recipe(n).reference.implementation.startswith("torchvision.models.")]
)
def test_recorded_reference_count_matches_the_named_torchvision_model(name):
    """The count in the recipe is the real count of the implementation it names, not a copied number."""
    reference = get_recipe(name).reference
    module_name, fn_name = reference.implementation.rsplit(".", 1)
    builder = getattr(importlib.import_module(module_name), fn_name)
    model = builder(weights=None)
    assert sum(p.numel() for p in model.parameters()) == reference.params


def test_loosening_a_tolerance_needs_a_reason():
    raw = raw_recipe("resnet18")
    raw["tolerances"]["fp32"]["atol"] = 1e-2
    with pytest.raises(RecipeError, match="looser than the policy"):
        build_recipe(raw)
    raw["tolerances"]["fp32"]["reason"] = "measured: fused kernels reorder a 4096-term sum"
    assert build_recipe(raw).tolerances["fp32"].atol == 1e-2


def test_replacing_the_fp32_bounds_by_a_cosine_is_loosening_too():
    raw = raw_recipe("resnet18")
    raw["tolerances"]["fp32"] = {"atol": None, "rtol": None, "cosine": 0.99999}
    with pytest.raises(RecipeError, match="looser than the policy"):
        build_recipe(raw)
    raw["tolerances"]["fp32"]["reason"] = "measured: argmax-indexed network"
    assert build_recipe(raw).tolerances["fp32"].cosine == 0.99999


def test_tightening_needs_no_reason_and_per_output_overrides_apply():
    raw = raw_recipe("resnet18")
    raw["tolerances"]["fp16"] = {"cosine": 0.9999, "outputs": {"logits": {"cosine": 0.99999}}}
    recipe = build_recipe(raw)
    assert recipe.tolerance("fp16", "logits").cosine == 0.99999


def test_limitation_without_reason_is_rejected():
    raw = raw_recipe("resnet18")
    raw["limitations"] = [{"precision": "int8", "status": "xfail"}]
    with pytest.raises(RecipeError, match="reason"):
        build_recipe(raw)


def test_a_limitation_holds_at_its_size_and_an_unknown_size_is_rejected():
    raw = raw_recipe("resnet18")
    raw["limitations"] = [{"precision": "int8", "size": "canonical", "reason": "measured at 224x224"}]
    recipe = build_recipe(raw)
    assert recipe.limitation("int8", "onnxruntime").reason == "measured at 224x224"
    assert recipe.limitation("int8", "onnxruntime", size="test") is None
    raw["limitations"][0]["size"] = "608x608"
    with pytest.raises(RecipeError, match="size"):
        build_recipe(raw)


def test_overrides_merge_last_and_change_the_hash():
    base = get_recipe("resnet18")
    changed = get_recipe("resnet18", overrides={"default_opset": 18})
    assert changed.default_opset == 18 and base.default_opset == 17
    assert changed.hash != base.hash
