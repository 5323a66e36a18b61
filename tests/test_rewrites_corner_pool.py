"""Export rewrite "corner-pool": log-step doubling equals the cumulative max corner pooling is defined by."""

import pytest
import torch

from netexport.zoo.detection.cornernet import column_max, row_max
from netexport.zoo.detection.hourglass import bottom_pool, left_pool, right_pool, top_pool


def reference_cummax(x: torch.Tensor, dim: int, reverse: bool) -> torch.Tensor:
    """The plain definition: torch.cummax, on the flipped tensor for the reverse direction."""
    if reverse:
        return torch.cummax(x.flip(dim), dim).values.flip(dim)
    return torch.cummax(x, dim).values


POOLS = {"top": (top_pool, 2, True), "bottom": (bottom_pool, 2, False),
         "left": (left_pool, 3, True), "right": (right_pool, 3, False)}
SHAPES = [(2, 3, 1, 1), (1, 4, 2, 7), (2, 5, 8, 8), (1, 2, 13, 31), (3, 4, 32, 32), (1, 1, 128, 5)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(POOLS))
def test_corner_pool_rewrite_equals_cummax(name, shape):
    pool, dim, reverse = POOLS[name]
    generator = torch.Generator().manual_seed(hash((name, shape)) % 2**31)
    x = torch.randn(shape, generator=generator)
    torch.testing.assert_close(pool(x), reference_cummax(x, dim, reverse), rtol=0, atol=0)


def test_corner_pool_rewrite_keeps_ties_and_extremes():
    x = torch.tensor([[[[3.0, -1.0, 3.0, 1e30, -1e30, 0.0, 0.0]]]]).repeat(1, 2, 3, 1)
    for name, (pool, dim, reverse) in POOLS.items():
        torch.testing.assert_close(pool(x), reference_cummax(x, dim, reverse), rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("shape", [(2, 3, 5, 9), (1, 8, 16, 16)])
def test_center_pooling_is_the_whole_row_and_column_max(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(column_max(x), x.amax(dim=2, keepdim=True).expand_as(x), rtol=0, atol=0)
    torch.testing.assert_close(row_max(x), x.amax(dim=3, keepdim=True).expand_as(x), rtol=0, atol=0)


def test_corner_pool_rewrite_exports_without_cumulative_ops(tmp_path):
    import onnx

    class Pools(torch.nn.Module):
        def forward(self, x):
            return top_pool(x) + left_pool(x) + bottom_pool(x) + right_pool(x)

    path = tmp_path / "pools.onnx"
    torch.onnx.export(Pools(), (torch.randn(1, 2, 6, 9),), str(path), opset_version=17, dynamo=False)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert ops <= {"Slice", "Concat", "Max", "Add", "Constant"}, ops
