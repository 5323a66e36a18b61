"""PolarMask decode against hand computation: known ray lengths at a known location → polygon and box."""

import math

import pytest
import torch

from netexport.pipeline.end2end import NmsSettings, reference_detections
from netexport.zoo import create_model
from netexport.zoo.detection.polarmask import polarmask

SIZE = 128  # P3 16x16, P4 8x8, P5 4x4, P6 2x2, P7 1x1


@pytest.fixture(scope="module")
def model():
    return polarmask().eval()


def _zero_outputs(model, batch=1):
    outs = []
    for stride in model.strides:
        side = SIZE // stride
        outs += [torch.full((batch, model.num_classes, side, side), -10.0), torch.zeros(batch, 1, side, side),
                 torch.ones(batch, model.num_rays, side, side)]
    return outs


def test_one_p3_location_gives_the_hand_computed_polygon_box_and_score(model):
    outs = _zero_outputs(model)
    cls, ctr, rays = outs[0], outs[1], outs[2]
    row, col = 2, 3  # centre (3.5 * 8, 2.5 * 8) = (28, 20)
    cls[0, 5, row, col] = 2.0
    ctr[0, 0, row, col] = 0.5
    rays[0, :, row, col] = 1.0
    rays[0, 0, row, col] = 12.0   # 0 degrees: +x
    rays[0, 9, row, col] = 6.0    # 90 degrees: +y (down)
    rays[0, 18, row, col] = 4.0   # 180 degrees: -x
    rays[0, 27, row, col] = 8.0   # 270 degrees: -y (up)
    got = model.decode(outs, (SIZE, SIZE))
    n = 16 * 16 + 8 * 8 + 4 * 4 + 2 * 2 + 1
    assert got["boxes"].shape == (1, n, 4) and got["scores"].shape == (1, n, 80)
    assert got["contours"].shape == (1, n, 36, 2)
    index = row * 16 + col
    # the other 32 rays have length 1, inside the four long ones
    torch.testing.assert_close(got["boxes"][0, index], torch.tensor([28 - 4.0, 20 - 8.0, 28 + 12.0, 20 + 6.0]))
    contour = got["contours"][0, index]
    torch.testing.assert_close(contour[0], torch.tensor([40.0, 20.0]))
    torch.testing.assert_close(contour[9], torch.tensor([28.0, 26.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(contour[18], torch.tensor([24.0, 20.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(contour[27], torch.tensor([28.0, 12.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(contour[3], torch.tensor([28 + math.cos(math.radians(30)), 20.5]))
    torch.testing.assert_close(contour[21], torch.tensor([28 - math.cos(math.radians(30)), 19.5]))
    expected = 1 / (1 + math.exp(-2.0)) * 1 / (1 + math.exp(-0.5))
    torch.testing.assert_close(got["scores"][0, index, 5], torch.tensor(expected))
    assert float(got["scores"][0, index, 4]) == pytest.approx(1 / (1 + math.exp(10.0)) / (1 + math.exp(-0.5)))


def test_levels_follow_each_other_and_contours_are_clipped_to_the_image(model):
    outs = _zero_outputs(model)
    rays = outs[5]  # P4, stride 16
    row, col = 1, 6  # centre (6.5 * 16, 1.5 * 16) = (104, 24)
    rays[0, 0, row, col] = 1000.0  # far past the right edge
    rays[0, 27, row, col] = 50.0   # past the top edge
    got = model.decode(outs, (SIZE, SIZE))
    index = 16 * 16 + row * 8 + col
    torch.testing.assert_close(got["contours"][0, index, 0], torch.tensor([128.0, 24.0]))
    torch.testing.assert_close(got["contours"][0, index, 27], torch.tensor([104.0, 0.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(got["boxes"][0, index], torch.tensor([103.0, 0.0, 128.0, 25.0]))
    # P7's single location is the last candidate, centred at (64, 64)
    torch.testing.assert_close(got["contours"][0, -1, 0], torch.tensor([65.0, 64.0]))


def test_end_to_end_reference_keeps_contours_with_their_boxes():
    model = create_model("polarmask")
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        candidates = model.decode(model(x), (SIZE, SIZE))
    best = candidates["scores"].amax(-1).sort(dim=1, descending=True).values  # [B, N]
    threshold = float(best[:, 20].min())  # every image has ~20+ candidates above it, most are below
    dets = reference_detections(model, x, NmsSettings(max_detections=100, score_threshold=threshold, iou_threshold=0.5))
    assert dets["contours"].shape == (2, 100, 36, 2)
    for b in range(2):
        n = int(dets["num_dets"][b, 0])
        assert n > 0
        boxes, contours = dets["boxes"][b, :n], dets["contours"][b, :n]
        assert torch.isfinite(boxes).all() and (boxes >= 0).all() and (boxes <= SIZE).all()
        torch.testing.assert_close(boxes[:, :2], contours.amin(1))
        torch.testing.assert_close(boxes[:, 2:], contours.amax(1))
