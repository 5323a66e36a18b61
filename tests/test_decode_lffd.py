"""LFFD decode against boxes and scores computed by hand (a 128x128 input: branch maps 31, 31, 15,
15, 7, 3, 3, 3; receptive-field centres at stride - 1 + stride * index; offsets normalised by half
the upper bound of each branch's face-scale range)."""

import math

import pytest
import torch

from netexport.zoo.face.lffd import LFFD

SIZES = (31, 31, 15, 15, 7, 3, 3, 3)
IMAGE = (128, 128)
N = sum(s * s for s in SIZES)


def zero_outputs():
    out = []
    for size in SIZES:
        out += [torch.zeros(1, 2, size, size), torch.zeros(1, 4, size, size)]
    return out


@pytest.fixture(scope="module")
def model():
    return LFFD().eval()


def test_known_offsets_and_logits_decode_to_the_known_box_and_score(model):
    out = zero_outputs()
    # branch 3 (conv13, stride 8, scale range 20-40: c = 20), row 2, col 5: RF centre (7 + 40, 7 + 16)
    out[5][0, :, 2, 5] = torch.tensor([0.5, 0.25, -1.0, -0.5])
    out[4][0, 0, 2, 5] = math.log(3.0)  # channel 0 is the face logit
    decoded = model.decode(out, IMAGE)
    assert decoded["boxes"].shape == (1, N, 4) and decoded["scores"].shape == (1, N, 1)
    index = 2 * 31 * 31 + 2 * 15 + 5
    torch.testing.assert_close(decoded["boxes"][0, index], torch.tensor([37.0, 18.0, 67.0, 33.0]))
    assert decoded["scores"][0, index, 0].item() == pytest.approx(0.75)
    # every other location: equal logits, face probability 1/2, and a zero-size box at its RF centre
    assert decoded["scores"][0, 0, 0].item() == pytest.approx(0.5)
    torch.testing.assert_close(decoded["boxes"][0, 31 * 31 + 31 + 2], torch.tensor([11.0, 7.0, 11.0, 7.0]))


def test_boxes_are_clipped_as_the_released_predictor_does(model):
    out = zero_outputs()
    # branch 1 (stride 4, c = 7.5) at (0, 0): centre (3, 3), a 15-px box reaching -4.5 → x1, y1 at 0
    out[1][0, :, 0, 0] = torch.tensor([1.0, 1.0, -1.0, -1.0])
    # branch 8 (stride 32, c = 280) at (2, 2): centre (95, 95), x2 = y2 = 375 → the image size
    out[15][0, :, 2, 2] = torch.tensor([0.0, 0.0, -1.0, -1.0])
    boxes = model.decode(out, IMAGE)["boxes"][0]
    torch.testing.assert_close(boxes[0], torch.tensor([0.0, 0.0, 10.5, 10.5]))
    torch.testing.assert_close(boxes[N - 1], torch.tensor([95.0, 95.0, 128.0, 128.0]))


def test_random_init_scores_most_locations_as_background_and_gives_proper_boxes():
    """create_model without weights: place_random_head gives each branch a 0.01 face prior (untrained,
    82% of the locations scored above the released 0.11 threshold) and boxes with x2 > x1, y2 > y1."""
    import netexport
    from netexport.data import synthetic_inputs
    from netexport.recipes import get_recipe

    model = netexport.create_model("lffd")
    x = synthetic_inputs({"input": (2, 3, *IMAGE)}, get_recipe("lffd").normalization, seed=7)["input"]
    with torch.no_grad():
        decoded = model.decode(model(torch.from_numpy(x)), IMAGE)
    scores, boxes = decoded["scores"][..., 0], decoded["boxes"]
    assert scores.mean().item() < 0.05 and 0 < (scores > 0.11).float().mean().item() < 0.1
    assert ((boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])).all()
