"""GAM-ResNet-50 (Liu et al., "Global Attention Mechanism: Retain Information to Enhance
Channel-Spatial Interactions", arXiv 2112.05561, 2021).

Reference configuration: ResNet-50 with a GAM module, CBAM's sequential channel-then-spatial
design with both submodules made pooling-free. With rate r = 4:

- channel submodule: permute (N, C, H, W) → (N, H, W, C), a two-layer MLP C → C/r → ReLU → C at
  every position (no pooling), permute back, sigmoid, multiply;
- spatial submodule: 7x7 conv C → C/r, BN, ReLU, 7x7 conv C/r → C, BN, sigmoid, multiply; no
  pooling. For ResNet-50 the paper makes these group convolutions with channel shuffle, to keep
  the parameter count from growing too much.

Decided:
- one module on the residual branch of every bottleneck, after the last 1x1 conv + BN and before
  the residual add, where CBAM, the design GAM extends, sits;
- 4 groups (= r; the paper does not give the number) and the shuffle between the two grouped convs,
  where it lets every output group of the second see every group of the first (ShuffleNet);
- convs followed by BN carry no bias.
Count: per block C^2/2 + 1.25C (MLP) + 49C^2/8 + 2.5C (spatial) = 133,348,672 over the 16 blocks,
158,905,704 with ResNet-50. Without groups it would be ~529M parameters. The paper's ImageNet
table could not be retrieved here, so that count is derived, not matched to a published one.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..classification.resnet import Bottleneck, ResNet
from ..layers import ConvBNAct
from ..registry import register_model

GAM_RATE = 4
GAM_GROUPS = 4
KERNEL = 7


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(N, g*k, H, W) → channel order k-major: group i's j-th channel moves to j*g + i."""
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


class GAM(nn.Module):
    def __init__(self, channels: int, rate: int = GAM_RATE, groups: int = GAM_GROUPS, kernel_size: int = KERNEL):
        super().__init__()
        hidden = channels // rate
        self.groups = groups
        self.channel_mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )
        self.spatial_reduce = ConvBNAct(channels, hidden, kernel_size, groups=groups)
        self.spatial_expand = ConvBNAct(hidden, channels, kernel_size, groups=groups, act=None)

    def forward(self, x):
        channel_logits = self.channel_mlp(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = x * torch.sigmoid(channel_logits)
        spatial = self.spatial_reduce(x)
        if self.groups > 1:
            spatial = channel_shuffle(spatial, self.groups)
        return x * torch.sigmoid(self.spatial_expand(spatial))


@register_model("gam-resnet50")
def gam_resnet50(rate: int = GAM_RATE, groups: int = GAM_GROUPS, **kwargs) -> ResNet:
    return ResNet(
        Bottleneck, [3, 4, 6, 3], block_kwargs={"attn_layer": partial(GAM, rate=rate, groups=groups)}, **kwargs
    )
