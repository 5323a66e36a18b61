"""FoveaBox decode against boxes and scores computed by hand for single locations."""

import math

import pytest
import torch

from netexport.zoo.detection.foveabox import foveabox

SIZES = (8, 4, 2, 1, 1)  # P3..P7 of a 64x64 input
IMAGE = (64, 64)
K = 80


@pytest.fixture(scope="module")
def model():
    return foveabox().eval()


def test_log_space_distances_against_the_level_base_length(model):
    out = [torch.zeros(1, c, s, s) for s in SIZES for c in (K, 4)]
    # P3 (0, 3): centre (28, 4); base length 16; t = log(distance / 16)
    out[1][0, :, 0, 3] = torch.tensor([math.log(0.5), math.log(0.25), 0.0, math.log(2.0)])
    out[0][0, 42, 0, 3] = math.log(3.0)
    # P4 (1, 2): centre (40, 24); base length 32, t = 0; top and right clipped to the image
    decoded = model.decode(out, IMAGE)
    assert decoded["boxes"].shape == (1, sum(s * s for s in SIZES), 4)
    torch.testing.assert_close(decoded["boxes"][0, 3], torch.tensor([20.0, 0.0, 44.0, 36.0]))
    assert decoded["scores"][0, 3, 42].item() == pytest.approx(0.75)
    assert decoded["scores"][0, 3, 41].item() == pytest.approx(0.5)
    torch.testing.assert_close(decoded["boxes"][0, 64 + 1 * 4 + 2], torch.tensor([8.0, 0.0, 64.0, 56.0]))
    # P7 (base 256) from its one location at (64, 64)
    torch.testing.assert_close(decoded["boxes"][0, -1], torch.tensor([0.0, 0.0, 64.0, 64.0]))
