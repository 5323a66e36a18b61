"""YOLO family export rewrites compute exactly the original ops.

- `darknet-reorg-as-reshape` (yolov2): `darknet_reorg` against a line-by-line transcription of
  darknet's reorg_cpu (src/blas.c) as its reorg layer calls it (input w, h, c; forward=0).
- `deform-conv-as-grid-sample` (asff): `deform_conv2d_as_grid_sample` against
  torchvision.ops.deform_conv2d (the DCNv1 definition, same offset layout as the authors' DCN).
"""

import numpy as np
import pytest
import torch
from torchvision.ops import deform_conv2d

from netexport.zoo.detection.asff import deform_conv2d_as_grid_sample
from netexport.zoo.detection.yolo import darknet_reorg


def darknet_reorg_cpu(x: np.ndarray, w: int, h: int, c: int, batch: int, stride: int, forward: int) -> np.ndarray:
    x = x.reshape(-1)
    out = np.zeros_like(x)
    out_c = c // (stride * stride)
    for b in range(batch):
        for k in range(c):
            for j in range(h):
                for i in range(w):
                    in_index = i + w * (j + h * (k + c * b))
                    c2 = k % out_c
                    offset = k // out_c
                    w2 = i * stride + offset % stride
                    h2 = j * stride + offset // stride
                    out_index = w2 + w * stride * (h2 + h * stride * (c2 + out_c * b))
                    if forward:
                        out[out_index] = x[in_index]
                    else:
                        out[in_index] = x[out_index]
    return out


@pytest.mark.parametrize("shape", [(2, 64, 6, 6), (1, 16, 4, 8), (1, 8, 2, 2)])
def test_reshape_reorg_equals_darknet_reorg_layer(shape):
    b, c, h, w = shape
    x = torch.randn(shape, generator=torch.Generator().manual_seed(c * h + w))
    expected = darknet_reorg_cpu(x.numpy(), w, h, c, b, 2, forward=0).reshape(b, 4 * c, h // 2, w // 2)
    got = darknet_reorg(x, 2)
    assert got.shape == (b, 4 * c, h // 2, w // 2)
    torch.testing.assert_close(got, torch.from_numpy(expected), rtol=0, atol=0)


def test_darknet_reorg_is_not_space_to_depth():
    """The reason it is a rewrite of its own: darknet's order differs from ONNX SpaceToDepth's."""
    x = torch.randn(1, 8, 4, 4)
    space_to_depth = x.reshape(1, 8, 2, 2, 2, 2).permute(0, 3, 5, 1, 2, 4).reshape(1, 32, 2, 2)
    assert not torch.equal(darknet_reorg(x), space_to_depth)


@pytest.mark.parametrize("height,width", [(1, 1), (5, 7), (13, 13)])
@pytest.mark.parametrize("offset_scale", [0.0, 1.5, 6.0])  # 6 pixels: many samples fall outside
def test_grid_sample_deform_conv_equals_torchvision(height, width, offset_scale):
    g = torch.Generator().manual_seed(height * width + int(offset_scale * 10))
    groups, channels, out_channels = 4, 16, 12
    x = torch.randn(2, channels, height, width, generator=g)
    offset = torch.randn(2, 2 * groups * 9, height, width, generator=g) * offset_scale
    weight = torch.randn(out_channels, channels, 3, 3, generator=g)
    bias = torch.randn(out_channels, generator=g)
    expected = deform_conv2d(x, offset, weight, bias, padding=1)
    got = deform_conv2d_as_grid_sample(x, offset, weight, bias, padding=1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_grid_sample_deform_conv_with_zero_offsets_is_a_plain_conv():
    x = torch.randn(1, 8, 6, 5)
    weight, bias = torch.randn(4, 8, 3, 3), torch.randn(4)
    got = deform_conv2d_as_grid_sample(x, torch.zeros(1, 2 * 2 * 9, 6, 5), weight, bias, padding=1)
    torch.testing.assert_close(got, torch.nn.functional.conv2d(x, weight, bias, padding=1), rtol=1e-4, atol=1e-5)
