"""Feature Pyramid Network (Lin et al., CVPR 2017) on a ResNet body: C2-C5 → P2-P5.

Each level: a 1x1 lateral conv to 256 channels, plus the coarser level upsampled 2x (nearest),
then a 3x3 output conv. No extra levels (P6) and no detection heads: the model outputs the pyramid.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..classification.resnet import ResNet, resnet50
from ..registry import register_model


class FeaturePyramid(nn.Module):
    """Top-down pathway with lateral connections over `in_channels` maps, finest first."""

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # as torchvision / Detectron
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        top = self.lateral[-1](features[-1])
        outs = [self.output[-1](top)]
        for i in range(len(features) - 2, -1, -1):
            # inputs are multiples of 32 (recipe divisor), so every level is exactly twice the next
            top = self.lateral[i](features[i]) + F.interpolate(top, scale_factor=2.0, mode="nearest")
            outs.insert(0, self.output[i](top))
        return tuple(outs)


class FPN(nn.Module):
    def __init__(self, backbone: ResNet, out_channels: int = 256):
        super().__init__()
        self.body = backbone
        self.fpn = FeaturePyramid(backbone.stage_channels, out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.fpn(self.body.forward_stages(x))


@register_model
def fpn_resnet50(out_channels: int = 256, **kwargs) -> FPN:
    return FPN(resnet50(num_classes=0, **kwargs), out_channels)
