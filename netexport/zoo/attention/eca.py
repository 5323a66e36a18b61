"""ECA-ResNet-50 (Wang et al., "ECA-Net: Efficient Channel Attention for Deep CNNs", CVPR 2020).

Reference configuration: ResNet-50 with an ECA gate on the residual branch of every bottleneck,
after the last 1x1 conv + BN and before the residual add: global average pool, a 1-D convolution
across the channel axis without bias and without dimensionality reduction, sigmoid. Its kernel
size is adaptive (paper Eq. 12): k = |log2(C)/gamma + b/gamma|_odd with gamma = 2, b = 1, which
gives k = 5 for C = 256, 512, 1024 and k = 7 for C = 2048: 86 parameters over the 16 blocks on
top of ResNet-50's 25,557,032 (the paper's Table 2: 25.56M, ~80 extra parameters).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from ..classification.resnet import Bottleneck, ResNet
from ..registry import register_model


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """psi(C) of Eq. 12: the nearest odd integer at or above |(log2 C + b) / gamma|."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    def __init__(self, channels: int, gamma: int = 2, b: int = 1):
        super().__init__()
        k = eca_kernel_size(channels, gamma, b)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x):
        y = self.pool(x).squeeze(-1).transpose(1, 2)  # (N, 1, C): channels become the conv's length axis
        y = self.conv(y).transpose(1, 2).unsqueeze(-1)  # back to (N, C, 1, 1)
        return x * torch.sigmoid(y)


@register_model("eca-resnet50")
def eca_resnet50(gamma: int = 2, b: int = 1, **kwargs) -> ResNet:
    return ResNet(
        Bottleneck, [3, 4, 6, 3], block_kwargs={"attn_layer": partial(ECA, gamma=gamma, b=b)}, **kwargs
    )
