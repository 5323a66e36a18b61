"""GhostNet (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020), width 1.0.

A Ghost module makes half of its output channels with an ordinary 1x1 convolution and the other
half from those by a cheap 3x3 depthwise convolution (ratio s = 2, d = 3), concatenated. A Ghost
bottleneck is Ghost module (expansion, ReLU) → [3x3 or 5x5 depthwise conv, stride 2, only where the
block strides] → [SE] → Ghost module (projection, linear) plus a shortcut: identity, or depthwise
conv + BN + 1x1 conv + BN where the shape changes. Table 1 gives the blocks; after them a 1x1 conv
to 960 channels, global pool, a 1x1 conv to 1280 with bias and ReLU (no BN), dropout 0.2, and the
classifier.

Decisions, from the authors' implementation (huawei-noah/Efficient-AI-Backbones,
ghostnet_pytorch/ghostnet.py), which the paper leaves open: SE squeezes to a quarter of its input
channels rounded to a multiple of 4 and gates with hard-sigmoid, relu6(x + 3) / 6 (exactly
nn.Hardsigmoid, ONNX HardSigmoid); every convolution but the head conv has no bias; channel counts
are rounded to multiples of 4; PyTorch's default initialisation (the authors define none). Module
names follow that implementation (conv_stem, blocks.N.M.ghost1.primary_conv, conv_head, ...), so
its checkpoints load unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..layers import make_divisible
from ..registry import register_model

# Table 1, stage by stage: (depthwise kernel, expansion channels, output channels, SE ratio, stride).
GHOSTNET_STAGES = (
    ((3, 16, 16, 0.0, 1),),
    ((3, 48, 24, 0.0, 2),),
    ((3, 72, 24, 0.0, 1),),
    ((5, 72, 40, 0.25, 2),),
    ((5, 120, 40, 0.25, 1),),
    ((3, 240, 80, 0.0, 2),),
    (
        (3, 200, 80, 0.0, 1),
        (3, 184, 80, 0.0, 1),
        (3, 184, 80, 0.0, 1),
        (3, 480, 112, 0.25, 1),
        (3, 672, 112, 0.25, 1),
    ),
    ((5, 672, 160, 0.25, 2),),
    (
        (5, 960, 160, 0.0, 1),
        (5, 960, 160, 0.25, 1),
        (5, 960, 160, 0.0, 1),
        (5, 960, 160, 0.25, 1),
    ),
)


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, groups: int = 1, relu: bool = True):
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class GhostModule(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, ratio: int = 2, dw_size: int = 3,
                 relu: bool = True):
        super().__init__()
        self.out_channels = out_channels
        primary = math.ceil(out_channels / ratio)
        # ceil() makes one channel too many for odd widths: trim only then (no Slice node otherwise)
        self.trim = primary * ratio != out_channels
        self.primary_conv = _conv_bn(in_channels, primary, 1, relu=relu)
        self.cheap_operation = _conv_bn(primary, primary * (ratio - 1), dw_size, groups=primary, relu=relu)

    def forward(self, x):
        x1 = self.primary_conv(x)
        out = torch.cat([x1, self.cheap_operation(x1)], dim=1)
        return out[:, : self.out_channels] if self.trim else out


class SqueezeExcite(nn.Module):
    """SE of the authors' code: reduce to make_divisible(C * ratio, 4), ReLU, expand, hard-sigmoid."""

    def __init__(self, channels: int, se_ratio: float = 0.25):
        super().__init__()
        reduced = make_divisible(channels * se_ratio, 4)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(reduced, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.conv_expand(self.act1(self.conv_reduce(self.avg_pool(x)))))


class GhostBottleneck(nn.Module):
    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, dw_kernel: int = 3,
                 stride: int = 1, se_ratio: float = 0.0):
        super().__init__()
        self.stride = stride
        pad = (dw_kernel - 1) // 2
        self.ghost1 = GhostModule(in_channels, mid_channels, relu=True)
        if stride > 1:
            self.conv_dw = nn.Conv2d(
                mid_channels, mid_channels, dw_kernel, stride, pad, groups=mid_channels, bias=False
            )
            self.bn_dw = nn.BatchNorm2d(mid_channels)
        self.se = SqueezeExcite(mid_channels, se_ratio) if se_ratio > 0 else None
        self.ghost2 = GhostModule(mid_channels, out_channels, relu=False)
        if in_channels == out_channels and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, dw_kernel, stride, pad, groups=in_channels, bias=False),
                nn.BatchNorm2d(in_channels),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        out = self.ghost1(x)
        if self.stride > 1:
            out = self.bn_dw(self.conv_dw(out))
        if self.se is not None:
            out = self.se(out)
        return self.ghost2(out) + self.shortcut(x)


class ConvBnAct(nn.Module):
    """The 1x1 conv after the last stage; named as in the authors' code (conv, bn1, act1)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act1 = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act1(self.bn1(self.conv(x)))


class GhostNet(nn.Module):
    def __init__(self, stages=GHOSTNET_STAGES, width: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.2, head_channels: int = 1280):
        super().__init__()
        channels = make_divisible(16 * width, 4)
        self.conv_stem = nn.Conv2d(in_chans, channels, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = nn.ReLU(inplace=True)
        blocks: list[nn.Module] = []
        for stage in stages:
            layers = []
            for kernel, expansion, out, se_ratio, stride in stage:
                out = make_divisible(out * width, 4)
                mid = make_divisible(expansion * width, 4)
                layers.append(GhostBottleneck(channels, mid, out, kernel, stride, se_ratio))
                channels = out
            blocks.append(nn.Sequential(*layers))
        last = make_divisible(stages[-1][-1][1] * width, 4)
        blocks.append(nn.Sequential(ConvBnAct(channels, last)))
        self.blocks = nn.Sequential(*blocks)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(last, head_channels, 1, bias=True)
        self.act2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head_channels, num_classes)

    def forward(self, x):
        x = self.blocks(self.act1(self.bn1(self.conv_stem(x))))
        x = self.act2(self.conv_head(self.global_pool(x)))
        return self.classifier(self.dropout(x.flatten(1)))


@register_model("ghostnet")
def ghostnet(**kwargs) -> GhostNet:
    return GhostNet(width=1.0, **kwargs)
