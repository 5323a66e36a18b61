"""Export rewrite `adaptive-avg-pool-as-matmul`: adaptive average pooling at any input size.

Pyramid pooling (PSPNet-style: ICNet, Fast-SCNN, ANN) pools to 2, 3, 6 or 8 bins, which rarely
divide the feature map (97x97 at a 769x769 crop, 32x64 at 1024x2048). The TorchScript exporter
rejects such an adaptive pooling, and an exported AveragePool would freeze its window to one input
size. `adaptive_avg_pool_as_matmul` computes the same bin means (PyTorch's floor/ceil bin edges) as
P_h · x · P_wᵀ, with the averaging matrices built inside the graph from the feature map's runtime
size (Range, comparisons, a divide): static exports fold them to constants, dynamic-shape exports
keep one graph for every size. tests/test_rewrites_adaptive_pool.py proves the equality.
"""

from __future__ import annotations

import torch


def _bin_matrix(length, bins: int, like: torch.Tensor) -> torch.Tensor:
    """(bins, length) matrix whose row i averages adaptive-pool bin i; `length` may be a traced size."""
    index = torch.arange(bins, dtype=like.dtype, device=like.device)
    start = torch.floor(index * length / bins)
    end = torch.ceil((index + 1) * length / bins)
    position = torch.arange(length, dtype=like.dtype, device=like.device)
    inside = (position[None, :] >= start[:, None]) & (position[None, :] < end[:, None])
    # Where, not a Cast of the mask: the FP16 converter would keep a Cast's float32 target type
    one, zero = torch.ones((), dtype=like.dtype), torch.zeros((), dtype=like.dtype)
    return torch.where(inside, one, zero) / (end - start)[:, None]


def adaptive_avg_pool_as_matmul(x: torch.Tensor, bins: int) -> torch.Tensor:
    """`F.adaptive_avg_pool2d(x, bins)` for (N, C, H, W) `x` of any size."""
    if bins == 1:
        return x.mean(dim=(2, 3), keepdim=True)
    rows = _bin_matrix(x.shape[-2], bins, x)
    cols = _bin_matrix(x.shape[-1], bins, x)
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))
