"""FaceBoxes decode against anchors, boxes and scores computed by hand (a 128x128 input: Inception3
4x4 with 21 anchors per location, conv3_2 2x2 and conv4_2 1x1 with one anchor each)."""

import math

import pytest
import torch

from netexport.zoo.face.faceboxes import FaceBoxes

SIZES = (4, 2, 1)
ANCHORS = (21, 1, 1)
IMAGE = (128, 128)
N = 16 * 21 + 4 + 1


def zero_outputs():
    out = []
    for size, a in zip(SIZES, ANCHORS):
        out += [torch.zeros(1, a * 2, size, size), torch.zeros(1, a * 4, size, size)]
    return out


@pytest.fixture(scope="module")
def model():
    return FaceBoxes().eval()


def test_zero_offsets_give_the_released_prior_boxes(model):
    decoded = model.decode(zero_outputs(), IMAGE)
    boxes = decoded["boxes"][0]
    assert boxes.shape == (N, 4) and decoded["scores"].shape == (1, N, 1)
    # Inception3 row 1, col 2: cell centre (80, 48). Anchor 5 = the 32-px anchor at densified row 1,
    # column 1 (shifts -8, -8): centre (72, 40), Caffe's size - 1 = 31 px wide
    base = (1 * 4 + 2) * 21
    torch.testing.assert_close(boxes[base + 5], torch.tensor([56.5, 24.5, 87.5, 55.5]))
    # anchor 16 + 3: the 64-px anchor at densified row 1, column 1 (shifts 0, 0): 63 px about (80, 48)
    torch.testing.assert_close(boxes[base + 19], torch.tensor([48.5, 16.5, 111.5, 79.5]))
    # anchor 20: the 128-px anchor, not densified
    torch.testing.assert_close(boxes[base + 20], torch.tensor([16.5, -15.5, 143.5, 111.5]))
    # conv3_2 row 1, col 0: centre (32, 96), 256 px; conv4_2's one location: centre (64, 64), 512 px
    torch.testing.assert_close(boxes[336 + 2], torch.tensor([-95.5, -31.5, 159.5, 223.5]))
    torch.testing.assert_close(boxes[340], torch.tensor([-191.5, -191.5, 319.5, 319.5]))
    # two equal logits: face probability 1/2 everywhere
    torch.testing.assert_close(decoded["scores"], torch.full((1, N, 1), 0.5))


def test_known_offsets_and_logits_decode_to_the_known_box_and_score(model):
    out = zero_outputs()
    # Inception3 (0, 0), anchor 0: shifts (-16, -16) from the cell centre (16, 16): centre (0, 0), 31 px
    out[1][0, 0:4, 0, 0] = torch.tensor([1.0, -2.0, 5 * math.log(2.0), 0.0])
    out[0][0, 1, 0, 0] = math.log(3.0)  # face logit; background stays 0
    out[4][0, 0, 0, 0] = math.log(4.0)  # conv4_2: background logit ln 4, face 0
    decoded = model.decode(out, IMAGE)
    # variances 0.1 on the centre (cx += 0.1 * 1 * 31, cy += 0.1 * -2 * 31), 0.2 on log-size (w x 2)
    cx, cy, w, h = 3.1, -6.2, 62.0, 31.0
    torch.testing.assert_close(decoded["boxes"][0, 0], torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
    assert decoded["scores"][0, 0, 0].item() == pytest.approx(0.75)
    assert decoded["scores"][0, N - 1, 0].item() == pytest.approx(0.2)
