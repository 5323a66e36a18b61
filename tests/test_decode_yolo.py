"""YOLO decodes against boxes worked out by hand for one cell (darknet's and the ASFF authors' formulas)."""

import math
from types import SimpleNamespace

import torch

from netexport.zoo.detection.asff import ASFF_ANCHORS, YOLOv3ASFF, guided_anchors
from netexport.zoo.detection.yolo import (
    YOLOV2_VOC_ANCHORS,
    YOLOV3_COCO_ANCHORS,
    YOLOv1,
    YOLOv2,
    YOLOv3,
    anchors_per_level,
)


def _close(t, values):
    torch.testing.assert_close(t, torch.tensor(values, dtype=t.dtype), rtol=1e-5, atol=1e-4)


def test_yolov1_cell_box_and_class_specific_confidence():
    out = torch.zeros(1, 7 * 7 * 30)
    cell, box = 2 * 7 + 3, 1                       # row 2, col 3, second box
    out[0, cell * 20 + 5] = 0.5                    # Pr(class 5 | object)
    out[0, 49 * 20 + cell * 2 + box] = 0.8         # box confidence
    out[0, 49 * 22 + (cell * 2 + box) * 4: 49 * 22 + (cell * 2 + box) * 4 + 4] = torch.tensor([0.5, 0.25, 0.5, 0.2])
    model = SimpleNamespace(side=7, boxes_per_cell=2, num_classes=20)
    got = YOLOv1.decode(model, (out,), (448, 448))
    assert got["boxes"].shape == (1, 98, 4) and got["scores"].shape == (1, 98, 20)
    # centre ((3 + 0.5) / 7, (2 + 0.25) / 7) * 448 = (224, 144); size (0.5², 0.2²) * 448 = (112, 17.92)
    _close(got["boxes"][0, cell * 2 + box], [168.0, 135.04, 280.0, 152.96])
    _close(got["scores"][0, cell * 2 + box, 5], 0.4)
    assert got["scores"][0, cell * 2 + box].count_nonzero() == 1


def test_yolov2_region_cell_softmax_classes():
    t = torch.zeros(1, 5 * 25, 2, 3)               # a 64x96 input: 2x3 grid, stride 32
    a = 3 * 25                                     # anchor 3: (9.47112, 4.84053) cells
    t[0, a + 1, 1, 2] = math.log(3.0)              # sigmoid → 0.75
    t[0, a + 2, 1, 2] = math.log(2.0)              # exp → 2
    t[0, a + 5 + 7, 1, 2] = math.log(19.0)         # softmax over 20: 19 / 38 = 0.5
    model = SimpleNamespace(anchors=torch.tensor(YOLOV2_VOC_ANCHORS) * 32)
    got = YOLOv2.decode(model, (t,), (64, 96))
    i = (1 * 3 + 2) * 5 + 3                        # location-major, then anchor
    cx, cy, w, h = (2 + 0.5) * 32, (1 + 0.75) * 32, 2 * 9.47112 * 32, 4.84053 * 32
    _close(got["boxes"][0, i], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    _close(got["scores"][0, i, 7], 0.5 * 0.5)      # sigmoid(0) objectness x softmax
    _close(got["scores"][0, i].sum(), 0.5)


def test_yolov3_second_level_cell_logistic_classes():
    anchors = anchors_per_level(YOLOV3_COCO_ANCHORS)
    _close(anchors[1], [[30.0, 61.0], [62.0, 45.0], [59.0, 119.0]])  # mask 3,4,5 for stride 16
    outs = (torch.zeros(1, 255, 2, 2), torch.full((1, 255, 4, 4), -20.0), torch.zeros(1, 255, 8, 8))
    a = 2 * 85                                     # anchor (59, 119), row 0, col 3
    outs[1][0, a: a + 5, 0, 3] = torch.tensor([math.log(1 / 3), 0.0, 0.0, math.log(0.5), math.log(4.0)])
    outs[1][0, a + 5 + 11, 0, 3] = 0.0
    got = YOLOv3.decode(SimpleNamespace(anchors=anchors), outs, (64, 64))
    assert got["boxes"].shape == (1, (4 + 16 + 64) * 3, 4)
    i = 2 * 2 * 3 + (0 * 4 + 3) * 3 + 2           # after the 2x2 stride-32 level
    # centre ((3 + 0.25) * 16, (0 + 0.5) * 16) = (52, 8); size (59, 119 * 0.5)
    _close(got["boxes"][0, i], [52 - 29.5, 8 - 29.75, 52 + 29.5, 8 + 29.75])
    _close(got["scores"][0, i, 11], 0.8 * 0.5)
    assert float(got["scores"][0, i].sum()) < 0.4 + 1e-6 * 80


def test_asff_guided_anchor_and_anchor_free_boxes():
    anchors = guided_anchors(ASFF_ANCHORS)
    _close(anchors[2], [[10.0, 13.0], [16.0, 30.0], [33.0, 23.0], [32.0, 32.0]])  # stride 8: + 4 x 8
    outs = []
    for size in (2, 4, 8):
        outs += [torch.zeros(1, 4 * 85, size, size), torch.zeros(1, 8, size, size)]
    pred, guide = outs[4], outs[5]                 # stride 8, row 5, col 1
    pred[0, 3 * 85 + 2, 5, 1] = math.log(2.0)      # anchor-free: w = exp(t) * exp(guide) * 32
    guide[0, 3 * 2 + 0, 5, 1] = math.log(1.5)
    pred[0, 3 * 85 + 5 + 0, 5, 1] = math.log(3.0)  # class 0: sigmoid 0.75
    guide[0, 0 * 2 + 1, 5, 1] = math.log(2.0)      # anchor (10, 13) with its h scaled by 2
    got = YOLOv3ASFF.decode(SimpleNamespace(anchors=anchors), tuple(outs), (64, 64))
    assert got["boxes"].shape == (1, (4 + 16 + 64) * 4, 4)
    base = 2 * 2 * 4 + 4 * 4 * 4 + (5 * 8 + 1) * 4
    cx, cy = (1 + 0.5) * 8, (5 + 0.5) * 8          # (12, 44)
    _close(got["boxes"][0, base + 3], [cx - 48, cy - 16, cx + 48, cy + 16])
    _close(got["scores"][0, base + 3, 0], 0.5 * 0.75)
    _close(got["boxes"][0, base + 0], [cx - 5, cy - 13, cx + 5, cy + 13])
