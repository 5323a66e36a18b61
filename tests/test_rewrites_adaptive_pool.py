"""Export rewrite `adaptive-avg-pool-as-matmul` (netexport/zoo/layers/adaptive_pool.py) computes
exactly adaptive average pooling at any input size, in PyTorch and as one exported graph; the
pyramid poolings of ANN and ICNet built on it equal the same blocks built on F.adaptive_avg_pool2d."""

import pytest
import torch
import torch.nn.functional as F

from netexport.zoo.layers.adaptive_pool import adaptive_avg_pool_as_matmul
from netexport.zoo.segmentation.ann import PYRAMID_SIZES, PyramidSampling
from netexport.zoo.segmentation.icnet import PYRAMID_BINS, SumPyramidPooling


@pytest.mark.parametrize("height,width", [(8, 8), (13, 17), (97, 97), (32, 64), (2, 2), (5, 3), (64, 128)])
@pytest.mark.parametrize("bins", [1, 2, 3, 6, 8])
def test_matmul_pooling_equals_adaptive_avg_pool(height, width, bins):
    x = torch.randn(2, 4, height, width, generator=torch.Generator().manual_seed(height * width + bins))
    torch.testing.assert_close(adaptive_avg_pool_as_matmul(x, bins), F.adaptive_avg_pool2d(x, bins))


def test_ann_pyramid_sampling_equals_concatenated_adaptive_pools():
    x = torch.randn(1, 8, 97, 97, generator=torch.Generator().manual_seed(0))
    expected = torch.cat([F.adaptive_avg_pool2d(x, s).flatten(2) for s in PYRAMID_SIZES], dim=2)
    got = PyramidSampling()(x)
    assert got.shape == (1, 8, 1 + 9 + 36 + 64)
    torch.testing.assert_close(got, expected)


def test_icnet_sum_pyramid_pooling_equals_adaptive_pools():
    x = torch.randn(1, 8, 32, 64, generator=torch.Generator().manual_seed(0))
    expected = x + sum(F.interpolate(F.adaptive_avg_pool2d(x, b), size=(32, 64), mode="bilinear",
                                     align_corners=False) for b in PYRAMID_BINS)
    torch.testing.assert_close(SumPyramidPooling()(x), expected)


def test_one_exported_graph_pools_every_size(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    bins = (1, 2, 3, 6, 8)

    class Pool(torch.nn.Module):
        def forward(self, x):
            return torch.cat([adaptive_avg_pool_as_matmul(x, b).flatten(2) for b in bins], 2)

    path = tmp_path / "pool.onnx"
    torch.onnx.export(Pool(), (torch.randn(1, 3, 32, 64),), str(path), opset_version=17, dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {2: "h", 3: "w"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in ((32, 64), (24, 40), (13, 7)):
        x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(size[0]))
        expected = torch.cat([F.adaptive_avg_pool2d(x, b).flatten(2) for b in bins], 2)
        got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
        torch.testing.assert_close(got, expected)
