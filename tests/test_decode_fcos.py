"""FCOS decode against boxes and scores computed by hand for single locations."""

import math

import pytest
import torch

from netexport.zoo.detection.fcos import fcos

SIZES = (8, 4, 2, 1, 1)  # P3..P7 of a 64x64 input
IMAGE = (64, 64)
K = 80


@pytest.fixture(scope="module")
def model():
    return fcos().eval()


def zero_outputs():
    return [torch.zeros(1, c, s, s) for s in SIZES for c in (K, 4, 1)]


def test_known_distances_and_centerness(model):
    out = zero_outputs()
    # P3 (2, 1): centre (12, 20); log distances left 10, top 4, right 5, bottom 8
    out[1][0, :, 2, 1] = torch.tensor([math.log(10.0), math.log(4.0), math.log(5.0), math.log(8.0)])
    out[0][0, 11, 2, 1] = math.log(3.0)  # class 11: 0.75
    out[2][0, 0, 2, 1] = math.log(4.0)  # center-ness 0.8
    # P5 (1, 1): centre (48, 48), 8 px each way; P6 (its one location, centre (32, 32)), 40 px each way
    out[7][0, :, 1, 1] = math.log(8.0)
    out[10][0, :, 0, 0] = math.log(40.0)
    decoded = model.decode(out, IMAGE)
    assert decoded["boxes"].shape == (1, sum(s * s for s in SIZES), 4)
    index = 2 * 8 + 1
    torch.testing.assert_close(decoded["boxes"][0, index], torch.tensor([2.0, 16.0, 17.0, 28.0]))
    # score = sigmoid(class) * sigmoid(center-ness)
    assert decoded["scores"][0, index, 11].item() == pytest.approx(0.75 * 0.8)
    assert decoded["scores"][0, index, 10].item() == pytest.approx(0.5 * 0.8)
    assert decoded["scores"][0, 0, 0].item() == pytest.approx(0.25)
    torch.testing.assert_close(decoded["boxes"][0, 64 + 16 + 3], torch.tensor([40.0, 40.0, 56.0, 56.0]))
    torch.testing.assert_close(decoded["boxes"][0, 64 + 16 + 4], torch.tensor([0.0, 0.0, 64.0, 64.0]))


def test_head_applies_the_per_level_scale_before_decode(model):
    head = model.head
    x = torch.randn(1, 256, 4, 4)
    with torch.no_grad():
        head.scales[2].scale.fill_(0.5)
        try:
            _, box, _, _, box_feat = head.forward_single(x, 2)
            torch.testing.assert_close(box, 0.5 * head.bbox_pred(box_feat))
        finally:
            head.scales[2].scale.fill_(1.0)
