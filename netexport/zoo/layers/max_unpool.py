"""Export rewrite `max-unpool-as-first-max-mask`: 2x2/2 max pooling with indices followed by
max-unpooling (SegNet, ENet), without index tensors.

ONNX has MaxUnpool, but TensorRT supports neither it nor MaxPool's index output.
`max_unpool_from_activations(values, pre_pool)` computes exactly
`MaxUnpool2d(2, 2)(values, indices, output_size=pre_pool.shape[-2:])` with
`indices = MaxPool2d(2, 2, return_indices=True)(pre_pool)[1]`: for each 2x2 window it builds a
one-hot mask of the first maximum of the pre-pool activations in PyTorch's scan order (row-major:
top-left, top-right, bottom-left, bottom-right; a later element wins only if strictly greater, so
ties such as ReLU zeros or equal INT8 values go to the earliest) and selects the values with it.
Only slices, Max, Equal, boolean ops, Where, reshapes and concatenation; sizes are read from the
tensors, so a dynamic-shape export keeps them symbolic. Floor and ceil mode pooling are both
handled. tests/test_rewrites_max_unpool.py proves it equal to nn.MaxPool2d(return_indices=True) +
nn.MaxUnpool2d. NaNs are outside the contract: PyTorch's pooling picks a NaN, the mask does not.

Any network built on this, with indices or without, is discontinuous in its pre-pool activations:
where a window's two largest entries differ by less than a backend's rounding, that backend places
the value one pixel away from PyTorch's.
"""

from __future__ import annotations

import torch


def _even_windows(x: torch.Tensor, ceil_mode: bool) -> torch.Tensor:
    """The part of `x` the 2x2/2 pooling windows cover, made even. Floor mode drops an odd last
    row/column. Ceil mode completes it with a copy of the last row/column: a copy equals the real
    element it duplicates and comes after it in scan order, so it never becomes the first maximum
    (an -inf fill would do the same but puts an infinite constant into the graph)."""
    height, width = x.shape[-2], x.shape[-1]
    if ceil_mode:
        x = torch.cat([x, x[..., -1:, :]], dim=-2)
        x = torch.cat([x, x[..., -1:]], dim=-1)
        return x[..., : (height + 1) // 2 * 2, : (width + 1) // 2 * 2]
    return x[..., : height // 2 * 2, : width // 2 * 2]


def first_max_masks(pre_pool: torch.Tensor, ceil_mode: bool = False) -> list[torch.Tensor]:
    """Four (N, C, h, w) boolean masks, one per window position in scan order, marking where
    max pooling with indices finds each window's maximum (the first one on ties)."""
    x = _even_windows(pre_pool, ceil_mode)
    phases = [x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]]
    window_max = torch.maximum(torch.maximum(phases[0], phases[1]), torch.maximum(phases[2], phases[3]))
    masks, taken = [], None
    for phase in phases[:3]:
        hit = phase == window_max
        if taken is not None:
            hit = hit & ~taken
        masks.append(hit)
        taken = hit if taken is None else taken | hit
    masks.append(~taken)  # no earlier position holds the maximum, so the last one does
    return masks


def max_unpool_from_activations(values: torch.Tensor, pre_pool: torch.Tensor, ceil_mode: bool = False) -> torch.Tensor:
    """MaxPool2d(2, 2, return_indices=True) of `pre_pool` + MaxUnpool2d(2, 2) of `values` (pooled
    size): `values` placed where `pre_pool`'s window maxima are, zeros elsewhere, at pre_pool's size."""
    # Where, not a multiplication by the cast mask: no Cast to FP32 left for FP16 conversion to mistype
    top_left, top_right, bottom_left, bottom_right = (
        torch.where(m, values, 0.0) for m in first_max_masks(pre_pool, ceil_mode)
    )
    # interleave the four phases back into (N, C, 2h, 2w)
    even_rows = torch.stack([top_left, top_right], dim=-1).flatten(-2)
    odd_rows = torch.stack([bottom_left, bottom_right], dim=-1).flatten(-2)
    out = torch.stack([even_rows, odd_rows], dim=-2).flatten(-3, -2)
    height, width = pre_pool.shape[-2], pre_pool.shape[-1]
    if ceil_mode:  # the windows overhang the map: drop the padded row/column
        return out[..., :height, :width]
    # floor mode: an odd last row/column was in no window, so it receives zeros
    out = torch.cat([out, torch.zeros_like(pre_pool[..., height // 2 * 2:, : width // 2 * 2])], dim=-2)
    return torch.cat([out, torch.zeros_like(pre_pool[..., width // 2 * 2:])], dim=-1)
