"""Per-model test parameters, grouped so one xdist worker runs all of a model's tests back to back
(`make test` uses --dist loadgroup): the pipeline then builds each model and its FP32 graph once
per worker (netexport.pipeline.reuse) instead of once per test."""

import pytest

import netexport
from netexport.recipes import get_recipe

LARGE_PARAMS = 50_000_000  # VGG, AlexNet, ResNet-152: two of their engine builds at once exceed 24 GB


def group(name: str) -> str:
    return "large" if get_recipe(name).reference.params > LARGE_PARAMS else f"model-{name}"


def per_model(names=None):
    return [pytest.param(n, marks=pytest.mark.xdist_group(group(n))) for n in (netexport.list_models() if names is None else names)]
