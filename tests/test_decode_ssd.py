"""SSD300 decode against hand-computed boxes and scores, its default boxes against torchvision's
DefaultBoxGenerator, and its parameters and module names against torchvision's ssd300_vgg16."""

import copy
import math

import pytest
import torch

from netexport.recipes import get_recipe
from netexport.zoo.detection.ssd import ASPECT_RATIOS, SCALES, STEPS, SSD300

SIZES = (38, 19, 10, 5, 3, 1)
BOXES = (4, 6, 6, 6, 4, 4)
CLASSES = 21


def zero_outputs(batch=1):
    out = []
    for size, boxes in zip(SIZES, BOXES):
        out += [torch.zeros(batch, boxes * CLASSES, size, size), torch.zeros(batch, boxes * 4, size, size)]
    return out


@pytest.fixture(scope="module")
def model():
    return SSD300(num_classes=CLASSES).eval()


def test_zero_deltas_give_the_default_boxes(model):
    boxes = model.decode(zero_outputs(), (300, 300))["boxes"][0]
    assert boxes.shape == (8732, 4)
    # conv4_3, row 0, col 0: centre (4, 4); scale 0.1 → 30 px; then sqrt(0.1 * 0.2) * 300; then ratio 2
    torch.testing.assert_close(boxes[0], torch.tensor([-11.0, -11.0, 19.0, 19.0]))
    half = math.sqrt(0.02) * 300 / 2
    torch.testing.assert_close(boxes[1], torch.tensor([4 - half, 4 - half, 4 + half, 4 + half]))
    w, h = 30 * math.sqrt(2), 30 / math.sqrt(2)
    torch.testing.assert_close(boxes[2], torch.tensor([4 - w / 2, 4 - h / 2, 4 + w / 2, 4 + h / 2]))
    torch.testing.assert_close(boxes[3], torch.tensor([4 - h / 2, 4 - w / 2, 4 + h / 2, 4 + w / 2]))
    # conv11_2, its one location: centre (150, 150), scale 0.88 → 264 px, box 1 sqrt(0.88 * 1.05) * 300
    last = 8732 - 4
    torch.testing.assert_close(boxes[last], torch.tensor([18.0, 18.0, 282.0, 282.0]))
    half = math.sqrt(0.88 * 1.05) * 300 / 2
    torch.testing.assert_close(boxes[last + 1], torch.tensor([150 - half, 150 - half, 150 + half, 150 + half]))
    # fc7 (6 boxes): row 0, col 1 → centre (24, 8); box 4 is aspect ratio 3 at scale 0.2 (60 px)
    index = 38 * 38 * 4 + 1 * 6 + 4
    w, h = 60 * math.sqrt(3), 60 / math.sqrt(3)
    torch.testing.assert_close(boxes[index], torch.tensor([24 - w / 2, 8 - h / 2, 24 + w / 2, 8 + h / 2]))


def test_known_deltas_and_logits_decode_to_the_known_box_and_scores(model):
    out = zero_outputs()
    row, col, box = 2, 5, 2  # conv4_3: centre (44, 20); box 2 = ratio 2 at 30 px
    out[1][0, box * 4:box * 4 + 4, row, col] = torch.tensor([1.0, -2.0, 5 * math.log(2.0), 0.0])
    out[0][0, box * CLASSES + 3, row, col] = math.log(18.0)  # class 3 of 21 (index 2 without background)
    decoded = model.decode(out, (300, 300))
    index = (row * 38 + col) * 4 + box
    w0, h0 = 30 * math.sqrt(2), 30 / math.sqrt(2)
    cx, cy = 44 + 0.1 * w0, 20 - 2 * 0.1 * h0  # variances 0.1 on the centre, 0.2 on log-size
    w, h = w0 * 2.0, h0
    expected_box = torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    torch.testing.assert_close(decoded["boxes"][0, index], expected_box)
    scores = decoded["scores"][0, index]
    assert scores.shape == (20,)
    expected = torch.full((20,), 1 / 38)  # softmax: 20 logits of 0 and one of log 18 → sum 38
    expected[2] = 18 / 38
    torch.testing.assert_close(scores, expected)
    # every other candidate: uniform softmax over 21
    torch.testing.assert_close(decoded["scores"][0, 0], torch.full((20,), 1 / 21))


def test_default_boxes_match_torchvisions_generator_with_the_voc_scales():
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator

    ratios = [list(r) for r in ASPECT_RATIOS]
    generator = DefaultBoxGenerator(ratios, scales=list(SCALES), steps=list(STEPS), clip=False)
    theirs = generator._grid_default_boxes([[s, s] for s in SIZES], [300, 300]) * 300  # relative cx, cy, w, h
    ours = SSD300.default_boxes([(s, s) for s in SIZES], (300, 300))
    torch.testing.assert_close(ours, theirs)


def test_parameters_and_names_match_torchvision_at_21_classes(model):
    """The recipe's count is torchvision's at 21 classes, and torchvision's weights load and agree."""
    from torchvision.models.detection import ssd300_vgg16

    theirs = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21).eval()
    assert sum(p.numel() for p in theirs.parameters()) == get_recipe("ssd300-vgg16").reference.params
    ours = copy.deepcopy(model)
    ours.load_state_dict(theirs.state_dict())  # strict: same names and shapes
    x = torch.randn(1, 3, 300, 300)
    with torch.no_grad():
        head = theirs.head(list(theirs.backbone(x).values()))
        out = ours(x)
    for maps, per_box, key in ((out[0::2], CLASSES, "cls_logits"), (out[1::2], 4, "bbox_regression")):
        flat = [t.reshape(1, -1, per_box, *t.shape[-2:]).permute(0, 3, 4, 1, 2).reshape(1, -1, per_box)
                for t in maps]
        torch.testing.assert_close(torch.cat(flat, dim=1), head[key])

