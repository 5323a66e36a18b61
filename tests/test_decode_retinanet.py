"""RetinaNet and FSAF decode against boxes and scores computed by hand for single anchors/locations."""

import math

import pytest
import torch

from netexport.zoo.detection.retinanet import FSAF, RetinaNet, fsaf, retinanet

SIZES = (8, 4, 2, 1, 1)  # P3..P7 of a 64x64 input
IMAGE = (64, 64)
K = 80


def zero_outputs(per_level):
    """Per level, zero tensors of the given channel counts, e.g. [(720, 36)] for RetinaNet."""
    return [torch.zeros(1, c, s, s) for s in SIZES for c in per_level]


@pytest.fixture(scope="module")
def model() -> RetinaNet:
    return retinanet().eval()


@pytest.fixture(scope="module")
def fsaf_model() -> FSAF:
    return fsaf().eval()


def test_known_deltas_on_a_p3_anchor(model):
    out = zero_outputs((9 * K, 9 * 4))
    row, col, anchor = 2, 3, 1  # centre (28, 20); anchor 1 = size 32 (first octave), ratio 1:1
    out[1][0, anchor * 4:anchor * 4 + 4, row, col] = torch.tensor([0.25, 0.5, math.log(2.0), 0.0])
    out[0][0, anchor * K + 7, row, col] = math.log(3.0)
    decoded = model.decode(out, IMAGE)
    n = 9 * sum(s * s for s in SIZES)
    assert decoded["boxes"].shape == (1, n, 4) and decoded["scores"].shape == (1, n, K)
    index = (row * 8 + col) * 9 + anchor
    # centre moves by (0.25 * 32, 0.5 * 32) to (36, 36); width 32 * 2 = 64, height 32: x2 = 68 clipped to 64
    torch.testing.assert_close(decoded["boxes"][0, index], torch.tensor([4.0, 20.0, 64.0, 52.0]))
    assert decoded["scores"][0, index, 7].item() == pytest.approx(0.75)
    assert decoded["scores"][0, index, 6].item() == pytest.approx(0.5)


def test_zero_deltas_give_the_paper_anchors(model):
    boxes = model.decode(zero_outputs((9 * K, 9 * 4)), IMAGE)["boxes"][0]
    # P3 (0, 0), anchor 0: size 32, ratio 1:2 (height / width 0.5): 32 * sqrt(2) wide, 32 / sqrt(2) high
    half_w, half_h = 16 * math.sqrt(2), 8 * math.sqrt(2)
    torch.testing.assert_close(boxes[0], torch.tensor([0.0, 0.0, 4 + half_w, 4 + half_h]))
    # P4 (1, 0), anchor 4: size 64 * 2^(1/3), ratio 1:1, centre (8, 24)
    half = 32 * 2 ** (1 / 3)
    torch.testing.assert_close(boxes[8 * 8 * 9 + 4 * 9 + 4], torch.tensor([0.0, 0.0, 8 + half, 64.0]))
    # P7's one location, anchor 8: size 512 * 2^(2/3), ratio 2:1 — covers the whole image
    torch.testing.assert_close(boxes[-1], torch.tensor([0.0, 0.0, 64.0, 64.0]))


def test_fsaf_anchor_free_candidates_follow_the_anchor_based_ones(fsaf_model):
    out = zero_outputs((9 * K, 9 * 4, K, 4))
    # P3 (1, 2): centre (20, 12); offsets in units of S * stride = 32 px, negatives cut by the ReLU
    out[3][0, :, 1, 2] = torch.tensor([0.5, 0.25, -1.0, 0.25])
    out[2][0, 3, 1, 2] = math.log(3.0)
    # P4 (2, 3): centre (56, 40); units of 64 px
    out[7][0, :, 2, 3] = torch.tensor([0.125, 0.25, 0.0, 0.0625])
    decoded = fsaf_model.decode(out, IMAGE)
    anchor_based = 9 * sum(s * s for s in SIZES)
    assert decoded["boxes"].shape == (1, anchor_based + sum(s * s for s in SIZES), 4)
    p3 = anchor_based + 1 * 8 + 2
    torch.testing.assert_close(decoded["boxes"][0, p3], torch.tensor([4.0, 4.0, 20.0, 20.0]))
    assert decoded["scores"][0, p3, 3].item() == pytest.approx(0.75)
    assert decoded["scores"][0, p3, 4].item() == pytest.approx(0.5)
    p4 = anchor_based + 64 + 2 * 4 + 3
    torch.testing.assert_close(decoded["boxes"][0, p4], torch.tensor([48.0, 24.0, 56.0, 44.0]))
    # the anchor-based part is RetinaNet's decode of the same outputs
    retina = RetinaNet.decode(fsaf_model, [t for i, t in enumerate(out) if i % 4 < 2], IMAGE)
    torch.testing.assert_close(decoded["boxes"][:, :anchor_based], retina["boxes"])
