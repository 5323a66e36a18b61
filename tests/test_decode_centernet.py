"""CenterNet (Objects as Points) decode on a hand-made map: one peak, known size and offset → known box."""

import math

import pytest
import torch

from netexport.zoo.detection.centernet import CenterNet


def test_centernet_peak_gives_center_plus_minus_half_size_times_stride():
    model = CenterNet(num_classes=2, num_stacks=1, dims=(8, 8), modules=(1, 1), cnv_dim=8).eval()
    heat = torch.full((1, 2, 4, 4), -10.0)
    heat[0, 1, 2, 1] = 1.0   # the peak: class 1, cell (y=2, x=1)
    heat[0, 1, 2, 2] = 0.5   # a lower neighbour: suppressed by the 3x3 max-pool
    wh, offset = torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    wh[0, :, 2, 1] = torch.tensor([6.0, 4.0])
    offset[0, :, 2, 1] = torch.tensor([0.5, 0.25])
    out = model.decode((heat, wh, offset), (16, 16))
    assert out["boxes"].shape == (1, 16, 4) and out["scores"].shape == (1, 16, 2)
    candidate = 2 * 4 + 1
    # center (1 + 0.5, 2 + 0.25) cells, size (6, 4) cells, stride 16 / 4 = 4
    expected = torch.tensor([(1.5 - 3.0) * 4, (2.25 - 2.0) * 4, (1.5 + 3.0) * 4, (2.25 + 2.0) * 4])
    torch.testing.assert_close(out["boxes"][0, candidate], expected)
    assert out["scores"][0, candidate, 1].item() == pytest.approx(1.0 / (1.0 + math.exp(-1.0)), abs=1e-6)
    assert out["scores"][0, 2 * 4 + 2, 1].item() == 0.0
    assert out["scores"][0, candidate, 0].item() == pytest.approx(1.0 / (1.0 + math.exp(10.0)), rel=1e-4)
