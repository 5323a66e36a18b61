"""CBAM-ResNet-50 (Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018).

Reference configuration (paper Sec. 3 and 4, ImageNet ResNet-50 + CBAM, 28.09M parameters in
its ImageNet tables): on the residual branch of every bottleneck, after the last 1x1 conv + BN and
before the residual add, a channel gate then a spatial gate, applied in sequence:

- channel: sigma(MLP(AvgPool(F)) + MLP(MaxPool(F))), one MLP shared by both pooled vectors,
  C → C/16 → ReLU → C with biases (written as 1x1 convs, so no flatten/reshape reaches the graph);
- spatial: sigma(f7x7([AvgPool_c(F); MaxPool_c(F)])), the two channel-pooled maps concatenated in
  the paper's order (average, max) and a 7x7 conv to one map.

Decided: the 7x7 spatial conv is followed by batch norm and has no bias, as in the authors'
release; the paper does not mention it, and either way the model has 28.09M parameters
(28,089,624 with BN, 28,089,608 with a bias instead).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..classification.resnet import Bottleneck, ResNet
from ..layers import ConvBNAct
from ..registry import register_model

CBAM_REDUCTION = 16
SPATIAL_KERNEL = 7


class ChannelGate(nn.Module):
    def __init__(self, channels: int, reduction: int = CBAM_REDUCTION):
        super().__init__()
        hidden = channels // reduction
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )

    def forward(self, x):
        logits = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(logits)


class SpatialGate(nn.Module):
    def __init__(self, kernel_size: int = SPATIAL_KERNEL):
        super().__init__()
        self.conv = ConvBNAct(2, 1, kernel_size, act=None)

    def forward(self, x):
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int = CBAM_REDUCTION, kernel_size: int = SPATIAL_KERNEL):
        super().__init__()
        self.channel = ChannelGate(channels, reduction)
        self.spatial = SpatialGate(kernel_size)

    def forward(self, x):
        return self.spatial(self.channel(x))


@register_model("cbam-resnet50")
def cbam_resnet50(reduction: int = CBAM_REDUCTION, **kwargs) -> ResNet:
    return ResNet(
        Bottleneck, [3, 4, 6, 3], block_kwargs={"attn_layer": partial(CBAM, reduction=reduction)}, **kwargs
    )
