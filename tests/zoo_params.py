"""Per-model test parameters, grouped so one xdist worker runs all of a model's tests back to back
(`make test` uses --dist loadgroup): the pipeline then builds each model and its FP32 graph once
per worker (netexport.pipeline.reuse) instead of once per test.

CI budget: every model gets construction, parameter count, output contract and FP32 export parity.
The reduced-precision, engine and end-to-end tests (`per_model(..., full_matrix_only=True)`) leave
out the models above FULL_MATRIX_MAX_PARAMS (the VGGs and the FCNs with their 4096-wide fc layers,
GAM-ResNet-50, YOLOv1's FC head, the Hourglass-104 keypoint detectors): on 2 cores each would add minutes to every CI run. `netexport verify` covers their
whole matrix (README, "Tests and CI", lists them)."""

import pytest

import netexport
from netexport.recipes import get_recipe

LARGE_PARAMS = 50_000_000  # VGG, AlexNet, ResNet-152: two of their engine builds at once exceed 24 GB
FULL_MATRIX_MAX_PARAMS = 130_000_000  # ASFF (79.4M) is the largest with the full matrix in CI


def group(name: str) -> str:
    return "large" if get_recipe(name).reference.params > LARGE_PARAMS else f"model-{name}"


def per_model(names=None, full_matrix_only: bool = False):
    names = netexport.list_models() if names is None else names
    if full_matrix_only:
        names = [n for n in names if get_recipe(n).reference.params <= FULL_MATRIX_MAX_PARAMS]
    return [pytest.param(n, marks=pytest.mark.xdist_group(group(n))) for n in names]


def reduced_matrix_models() -> list[str]:
    return [n for n in netexport.list_models() if get_recipe(n).reference.params > FULL_MATRIX_MAX_PARAMS]
