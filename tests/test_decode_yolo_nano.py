"""YOLO Nano decode (YOLOv3 box coding) against boxes and scores computed by hand for single cells."""

import math

import pytest
import torch

from netexport.zoo.detection.yolo_nano import YOLONano

CLASSES = 20
PER_ANCHOR = 5 + CLASSES


@pytest.fixture(scope="module")
def model():
    return YOLONano(num_classes=CLASSES).eval()


def zero_outputs(height=416, width=416):
    return [torch.zeros(1, 3 * PER_ANCHOR, height // s, width // s) for s in (32, 16, 8)]


def test_one_cell_of_the_stride_32_head(model):
    out = zero_outputs()
    row, col, anchor = 1, 2, 1  # anchor (156, 198)
    base = anchor * PER_ANCHOR
    out[0][0, base + 2, row, col] = math.log(2.0)  # tw: width doubles
    out[0][0, base + 0, row, col] = math.log(3.0)  # tx: sigmoid = 0.75
    out[0][0, base + 5 + 4, row, col] = math.log(3.0)  # class 4: sigmoid = 0.75
    decoded = model.decode(out, (416, 416))
    assert decoded["boxes"].shape == (1, (13 * 13 + 26 * 26 + 52 * 52) * 3, 4)
    index = (row * 13 + col) * 3 + anchor
    cx, cy = (col + 0.75) * 32, (row + 0.5) * 32  # (88, 48)
    w, h = 156 * 2.0, 198.0
    expected_box = torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    torch.testing.assert_close(decoded["boxes"][0, index], expected_box)
    expected = torch.full((CLASSES,), 0.25)  # objectness sigmoid(0) = 0.5 times class sigmoid(0) = 0.5
    expected[4] = 0.5 * 0.75
    torch.testing.assert_close(decoded["scores"][0, index], expected)


def test_one_cell_of_the_stride_8_head_on_a_wide_input(model):
    out = zero_outputs(416, 832)  # maps 13x26, 26x52, 52x104: rows and columns must not swap
    row, col, anchor = 3, 90, 2  # anchor (33, 23)
    base = anchor * PER_ANCHOR
    out[2][0, base + 1, row, col] = -math.log(3.0)  # ty: sigmoid = 0.25
    out[2][0, base + 3, row, col] = math.log(0.5)  # th: height halves
    out[2][0, base + 4, row, col] = math.log(4.0)  # objectness 0.8
    decoded = model.decode(out, (416, 832))
    index = (13 * 26 + 26 * 52) * 3 + (row * 104 + col) * 3 + anchor
    cx, cy = (col + 0.5) * 8, (row + 0.25) * 8
    w, h = 33.0, 23 * 0.5
    expected_box = torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    torch.testing.assert_close(decoded["boxes"][0, index], expected_box)
    torch.testing.assert_close(decoded["scores"][0, index], torch.full((CLASSES,), 0.8 * 0.5))


def test_raw_outputs_have_the_head_layout(model):
    with torch.no_grad():
        out = model(torch.rand(1, 3, 128, 128))
    assert [tuple(t.shape) for t in out] == [(1, 75, 4, 4), (1, 75, 8, 8), (1, 75, 16, 16)]
