"""Stacked hourglass networks (Newell, Yang & Deng, "Stacked Hourglass Networks for Human Pose
Estimation", ECCV 2016): 8 stacks, the paper's final network, on MPII (16 keypoints).

Reference configuration, the authors' Torch code princeton-vl/pose-hg-train (src/models/hg.lua and
src/models/layers/Residual.lua with the defaults of src/opts.lua: nStack 8, nFeats 256,
nModules 1; 256x256 input, 64x64 heatmaps, one per MPII joint):

- stem: 7x7/2 conv 3 → 64 + BN + ReLU, residual 64 → 128, 2x2 max pool, residuals 128 → 128 and
  128 → 256: a 256x256 crop becomes a 64x64 map (stride 4);
- 8 stacks. Each: an hourglass of depth 4 (at each level one residual on the skip branch; 2x2 max
  pool, one residual, then the next level (at the bottom one residual), one residual, nearest 2x
  upsampling, sum with the skip branch: 13 residuals, all at 256 features), one residual at the
  output resolution, a 1x1 conv + BN + ReLU (`fc`), and a 1x1 conv to the 16 heatmaps (`score`).
  Between stacks: next input = this input + 1x1 conv of the `fc` features + 1x1 conv of the
  heatmaps (16 → 256);
- the residual module is the paper's (Fig. 4, left) pre-activation bottleneck: BN-ReLU-1x1 conv to
  half the output width, BN-ReLU-3x3 conv, BN-ReLU-1x1 conv to the output width, plus the input (or
  its 1x1 conv projection when the width changes). Every conv has a bias, as Torch's.

Every stack's heatmaps are supervised in training (intermediate supervision); at test time the
paper reads the last stack's: eval `forward` returns only those, train mode returns the last
stack's then the 7 intermediate ones (`train_aux_outputs: 7` in the recipe). Inputs: multiples of
64 (stride 4, then 4 halvings that the nearest upsampling must undo exactly).

Parameter count, by layer shapes (the reference is Torch code, so it is counted by hand): residual
256 → 256 214,528; stem 9,472 + 128 + residuals 58,112 + 54,016 + 230,912 = 352,640; per stack 14
residuals + fc 66,304 + score 4,112, plus fc_ 65,792 and score_ 4,352 between stacks:
352,640 + 7 · 3,143,952 + 3,073,808 = 25,434,112. The widely used port
bearpaw/pytorch-pose `hg8` has another stem (residuals 64 → 128, 128 → 256, 256 → 256; 25,594,624
parameters), so its checkpoints do not fit; the top-level module names (`hg`, `res`, `fc`, `score`,
`fc_`, `score_`) are borrowed from it.

Weights start as PyTorch's defaults: conv weights and biases uniform ±1/sqrt(fan-in), Torch7's
default for its convolutions too; BN 1 and 0 (then the BN warm-up). Random weights give weak,
mostly tied peaks; `place_random_head` sharpens the last stack's (simple_baselines.place_heatmap_peaks).
Not the CornerNet Hourglass-104 of detection/hourglass.py: that one uses post-activation 3x3 residuals,
strided convs instead of pooling, wider deep levels and 2 stacks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model
from .simple_baselines import place_heatmap_peaks

MPII_KEYPOINTS = 16


class PreActResidual(nn.Module):
    """BN-ReLU-1x1 (out/2), BN-ReLU-3x3 (out/2), BN-ReLU-1x1 (out), plus the (projected) input."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + self.skip(x)


class Hourglass(nn.Module):
    """One level: skip branch `up1`; pool, `low1`, the next level (or `low2` at the bottom), `low3`, 2x up."""

    def __init__(self, depth: int, channels: int):
        super().__init__()
        self.up1 = PreActResidual(channels, channels)
        self.low1 = PreActResidual(channels, channels)
        self.low2 = Hourglass(depth - 1, channels) if depth > 1 else PreActResidual(channels, channels)
        self.low3 = PreActResidual(channels, channels)

    def forward(self, x):
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2, 2))))
        return self.up1(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")


class StackedHourglass(nn.Module):
    def __init__(self, num_stacks: int = 8, num_joints: int = MPII_KEYPOINTS, channels: int = 256, depth: int = 4):
        super().__init__()
        self.num_stacks = num_stacks
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = PreActResidual(64, 128)
        self.maxpool = nn.MaxPool2d(2, 2)
        self.layer2 = PreActResidual(128, 128)
        self.layer3 = PreActResidual(128, channels)
        stacks = range(num_stacks)
        self.hg = nn.ModuleList(Hourglass(depth, channels) for _ in stacks)
        self.res = nn.ModuleList(PreActResidual(channels, channels) for _ in stacks)
        self.fc = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
            for _ in stacks
        )
        self.score = nn.ModuleList(nn.Conv2d(channels, num_joints, 1) for _ in stacks)
        self.fc_ = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(num_stacks - 1))
        self.score_ = nn.ModuleList(nn.Conv2d(num_joints, channels, 1) for _ in range(num_stacks - 1))

    def forward(self, x: torch.Tensor):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.maxpool(self.layer1(x))))
        heatmaps = []
        for i in range(self.num_stacks):
            y = self.fc[i](self.res[i](self.hg[i](x)))
            score = self.score[i](y)
            heatmaps.append(score)
            if i < self.num_stacks - 1:
                x = x + self.fc_[i](y) + self.score_[i](score)
        if not self.training:
            return heatmaps[-1]
        return (heatmaps[-1], *heatmaps[:-1])

    def place_random_head(self, warm_up_inputs) -> None:
        """Random weights only: heatmap peaks from the last stack's `fc` and `score` (the output read at
        test time); the earlier heads feed the next stacks and stay as drawn."""
        fc = self.fc[-1]
        place_heatmap_peaks(self, warm_up_inputs, fc[0], fc[1], self.score[-1])


@register_model("stacked-hourglass")
def stacked_hourglass(**kwargs) -> StackedHourglass:
    return StackedHourglass(**kwargs)
