"""The computations whose numbers reach a result run on a fixed thread count, whatever the caller set."""

import dataclasses

import numpy as np
import torch

from netexport import numerics, zoo
from netexport.pipeline.reference import torch_outputs
from netexport.recipes import get_recipe


class _Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(torch.get_num_threads())
        return x * 2


def test_the_reference_runs_on_the_fixed_thread_count_and_restores_the_callers():
    recipe = get_recipe("lenet5")
    model, before = _Recorder(), torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = torch_outputs(model, dataclasses.replace(recipe, outputs=("y",)),
                            {recipe.inputs[0].name: np.ones((1, 1, 4, 4), np.float32)})
        assert model.seen == [numerics.TORCH_THREADS] and torch.get_num_threads() == 2
        assert out["y"].tolist() == np.full((1, 1, 4, 4), 2.0).tolist()
    finally:
        torch.set_num_threads(before)


def test_random_init_warms_up_on_the_fixed_thread_count(monkeypatch):
    seen = []
    monkeypatch.setattr(zoo, "warm_up_batch_norm", lambda *a, **k: seen.append(torch.get_num_threads()))
    monkeypatch.setenv("NETEXPORT_INIT_CACHE_DIR", "off")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        zoo.create_model("resnet18")
        assert seen == [numerics.TORCH_THREADS] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
