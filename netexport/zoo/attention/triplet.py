"""Triplet-attention ResNet-50 (Misra et al., "Rotate to Attend: Convolutional Triplet Attention
Module", WACV 2021).

Reference configuration: ResNet-50 with a triplet-attention module on the residual branch of every
bottleneck, after the last 1x1 conv + BN and before the residual add (the paper's ImageNet table:
25.56M parameters; 4,800 on top of ResNet-50 here). The module has three branches, each a gate
over one pair of the (C, H, W) axes: Z-pool (max and mean, concatenated in that order) along the
remaining axis, a 7x7 conv (2 → 1, no bias) + batch norm, sigmoid, multiply. The branch outputs are
averaged: y = (y_CW + y_CH + y_HW) / 3.

Export rewrite "triplet-pooled-rotation": the paper rotates the whole tensor so the pooled axis
comes first, gates it and rotates it back (`forward_rotated`, kept as the reference). `forward`
rotates only the two small pooled maps into that layout and rotates the gate back to broadcast
over x: the same arithmetic on the same weights, without four full-size Transposes per block in
the graph (tests/test_rewrites_triplet.py checks the two agree).
"""

from __future__ import annotations

import torch
from torch import nn

from ..classification.resnet import Bottleneck, ResNet
from ..layers import ConvBNAct
from ..registry import register_model

KERNEL = 7


def z_pool(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Max and mean of x along `dim`, stacked on a new axis 1 (the conv's two input channels)."""
    return torch.stack([x.amax(dim=dim), x.mean(dim=dim)], dim=1)


class TripletAttention(nn.Module):
    def __init__(self, channels: int, kernel_size: int = KERNEL):
        super().__init__()
        # channels is unused: the module is channel-count free, as in the paper
        self.cw = ConvBNAct(2, 1, kernel_size, act=None)  # pools over H, attends over (C, W)
        self.hc = ConvBNAct(2, 1, kernel_size, act=None)  # pools over W, attends over (H, C)
        self.hw = ConvBNAct(2, 1, kernel_size, act=None)  # pools over C, attends over (H, W)

    def forward(self, x):
        # (N, 2, C, W) -> gate (N, 1, C, W) -> (N, C, 1, W)
        cw = torch.sigmoid(self.cw(z_pool(x, 2))).transpose(1, 2)
        # pooled (N, 2, C, H) laid out as the paper's (N, 2, H, C) -> gate -> (N, C, H, 1)
        hc = torch.sigmoid(self.hc(z_pool(x, 3).transpose(2, 3))).permute(0, 3, 2, 1)
        hw = torch.sigmoid(self.hw(z_pool(x, 1)))  # (N, 1, H, W)
        return (x * cw + x * hc + x * hw) * (1.0 / 3.0)

    def forward_rotated(self, x):
        """The paper's formulation: rotate x, Z-pool the leading axis, gate, rotate back."""
        x_cw = x.permute(0, 2, 1, 3)  # (N, H, C, W)
        y_cw = (x_cw * torch.sigmoid(self.cw(z_pool(x_cw, 1)))).permute(0, 2, 1, 3)
        x_hc = x.permute(0, 3, 2, 1)  # (N, W, H, C)
        y_hc = (x_hc * torch.sigmoid(self.hc(z_pool(x_hc, 1)))).permute(0, 3, 2, 1)
        y_hw = x * torch.sigmoid(self.hw(z_pool(x, 1)))
        return (y_cw + y_hc + y_hw) * (1.0 / 3.0)


@register_model("triplet-resnet50")
def triplet_resnet50(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], block_kwargs={"attn_layer": TripletAttention}, **kwargs)
