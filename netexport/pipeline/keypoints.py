"""End-to-end pose graphs: heatmaps → keypoint coordinates and scores, in one ONNX graph.

A pose model returns one heatmap per keypoint. `HeatmapPeaks` appends the decoding every top-down
pose paper uses at test time: each keypoint is its heatmap's maximum (the first in row-major order,
as argmax), moved a quarter of a cell towards its higher neighbour on each axis (Newell et al. 2016,
Xiao et al. 2018: it halves the quantisation error of the argmax), then scaled to input pixels:

    keypoints [B, K, 2] (x, y in input pixels) · scores [B, K] (the heatmap maximum)

The argmax is taken as the best row, then the best column of that row, which picks the same cell as
a flattened argmax without integer division (exact in any precision, and plain for TensorRT). The
quarter shift is applied where both neighbours on that axis exist. Run eagerly, the same module is
the PyTorch reference the exported graph is verified against.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import InputError
from ..recipes import Recipe

OUTPUTS = ("keypoints", "scores")
TASKS = ("pose",)
QUARTER = 0.25


def _take(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """t [B, K, L] at index [B, K] → [B, K] (clamped to the valid range)."""
    index = index.clamp(0, t.shape[-1] - 1)
    return torch.gather(t, 2, index.unsqueeze(-1)).squeeze(-1)


def _quarter_shift(line: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """±0.25 towards the higher neighbour of `at` along `line` [B, K, L]; 0 on the borders and ties."""
    step = torch.sign(_take(line, at + 1) - _take(line, at - 1)) * QUARTER
    inside = (at > 0) & (at < line.shape[-1] - 1)
    return torch.where(inside, step, torch.zeros_like(step))


def decode_heatmaps(heatmaps: torch.Tensor, image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """heatmaps [B, K, h, w] of an input of image_size (H, W) → keypoints [B, K, 2] (x, y), scores [B, K]."""
    height, width = heatmaps.shape[-2:]
    row_best = heatmaps.amax(dim=3)  # [B, K, h]
    y = row_best.argmax(dim=2)  # [B, K]
    row = torch.gather(heatmaps, 2, y[..., None, None].expand(-1, -1, 1, width)).squeeze(2)  # [B, K, w]
    x = row.argmax(dim=2)
    column = torch.gather(heatmaps, 3, x[..., None, None].expand(-1, -1, height, 1)).squeeze(3)  # [B, K, h]
    scores = _take(row, x)
    fx = x.to(heatmaps.dtype) + _quarter_shift(row, x)
    fy = y.to(heatmaps.dtype) + _quarter_shift(column, y)
    cell = torch.tensor([image_size[1] / width, image_size[0] / height], dtype=heatmaps.dtype)
    return torch.stack((fx, fy), dim=-1) * cell, scores


class HeatmapPeaks(nn.Module):
    """A pose model whose outputs are keypoints and their scores instead of heatmaps."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        out = self.model(x)
        heatmaps = out[0] if isinstance(out, (tuple, list)) else out
        return decode_heatmaps(heatmaps, tuple(x.shape[-2:]))


def check_request(recipe: Recipe, given_options: list[str]) -> None:
    if given_options:
        raise InputError(f"{', '.join(given_options)} applies to detectors' --end2end only; {recipe.name} is a pose model")


def end2end_recipe(recipe: Recipe, cell: tuple[float, float]) -> Recipe:
    """The recipe of the keypoint graph: keypoints are judged by location (half a heatmap cell of
    `cell` input pixels (x, y)), scores by the precision's tolerance."""
    return dataclasses.replace(recipe, outputs=OUTPUTS, task_check="keypoints", keypoint_cell=cell,
                               output_tolerances={})


def heatmap_cell(model: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """Input pixels per heatmap cell (x, y), from one forward pass at the export size."""
    with torch.no_grad():
        out = model(x)
    heatmaps = out[0] if isinstance(out, (tuple, list)) else out
    return x.shape[-1] / heatmaps.shape[-1], x.shape[-2] / heatmaps.shape[-2]
