"""ANN's export rewrite `pyramid-pooling-as-matmul` computes exactly adaptive average pooling."""

import pytest
import torch
import torch.nn.functional as F

from netexport.zoo.segmentation.ann import PYRAMID_SIZES, PyramidSampling, adaptive_avg_pool_as_matmul


@pytest.mark.parametrize("height,width", [(8, 8), (13, 17), (97, 97), (64, 128), (5, 3)])
@pytest.mark.parametrize("size", PYRAMID_SIZES)
def test_matmul_pooling_equals_adaptive_avg_pool(height, width, size):
    x = torch.randn(2, 4, height, width, generator=torch.Generator().manual_seed(height * width + size))
    torch.testing.assert_close(adaptive_avg_pool_as_matmul(x, size), F.adaptive_avg_pool2d(x, size))


def test_pyramid_sampling_equals_concatenated_adaptive_pools():
    x = torch.randn(1, 8, 97, 97, generator=torch.Generator().manual_seed(0))
    expected = torch.cat([F.adaptive_avg_pool2d(x, s).flatten(2) for s in PYRAMID_SIZES], dim=2)
    got = PyramidSampling()(x)
    assert got.shape == (1, 8, 1 + 9 + 36 + 64)
    torch.testing.assert_close(got, expected)
