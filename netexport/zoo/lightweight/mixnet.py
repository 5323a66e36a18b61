"""MixNet (Tan & Le, "MixConv: Mixed Depthwise Convolutional Kernels", BMVC 2019).

MixConv splits a depthwise convolution's channels into groups, each with its own kernel size (3x3,
5x5, ... one size more per group), and concatenates the results. MixNet-S and -M are the searched
networks of the paper's architecture figure (as defined in the official TensorFlow mixnet_builder):
a 3x3/2 stem, a depthwise-separable block, then MBConv blocks (inverted residuals) whose depthwise
convs are MixConvs and whose expansion / projection 1x1 convs may be split into two groups as well
(grouped 1x1 convs, possibly of unequal size); ReLU in the first stages, Swish with
squeeze-and-excitation (reduced to `se` x the block's input channels) from the 40-channel stage on;
a 1x1 head to 1536 channels, global average pool, dropout, fully connected. MixNet-L is MixNet-M
with a width multiplier of 1.3 (channels rounded to multiples of 8; the head stays 1536). Channel
groups are split evenly, the first taking any remainder, with torch.split, and joined with torch.cat.

Decided: padding is PyTorch's symmetric k//2 (TensorFlow's 'SAME' pads stride-2 convs
asymmetrically; the parameters are the same); BN epsilon 1e-3 as the TensorFlow model, as
efficientnet.py does. Parameter names follow timm's EfficientNet (conv_stem, blocks.i.j.conv_pw /
conv_dw / se / conv_pwl, conv_head, classifier; a split conv's parts are .0, .1, ...).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..layers import make_divisible
from ..registry import register_model

BN_EPS = 1e-3  # official TensorFlow implementation (batch_norm_epsilon)


def split_channels(channels: int, groups: int) -> list[int]:
    """Equal shares of `channels`; the first group takes the remainder."""
    sizes = [channels // groups] * groups
    sizes[0] += channels - sum(sizes)
    return sizes


class MixedConv2d(nn.ModuleList):
    """Channels split into len(kernel_sizes) groups, each convolved with its own kernel, concatenated.

    `depthwise`: each part is depthwise (in = out channels); otherwise each part is a dense conv over
    its share of the input channels (a grouped conv with possibly unequal groups).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_sizes: Sequence[int], stride: int = 1, depthwise=False
    ):
        self.in_splits = split_channels(in_channels, len(kernel_sizes))
        self.out_splits = split_channels(out_channels, len(kernel_sizes))
        super().__init__(
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=cout if depthwise else 1, bias=False)
            for k, cin, cout in zip(kernel_sizes, self.in_splits, self.out_splits)
        )

    def forward(self, x):
        parts = torch.split(x, self.in_splits, dim=1)
        return torch.cat([conv(part) for conv, part in zip(self, parts)], dim=1)


def mixed_conv(in_channels: int, out_channels: int, kernel_sizes: Sequence[int], stride=1, depthwise=False):
    """A plain Conv2d when there is one kernel size, a MixedConv2d otherwise."""
    if len(kernel_sizes) == 1:
        k = kernel_sizes[0]
        groups = out_channels if depthwise else 1
        return nn.Conv2d(in_channels, out_channels, k, stride, k // 2, groups=groups, bias=False)
    return MixedConv2d(in_channels, out_channels, kernel_sizes, stride, depthwise)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int, act: type[nn.Module]):
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.act = act()
        self.conv_expand = nn.Conv2d(reduced, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        scale = self.conv_expand(self.act(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x * self.gate(scale)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class DepthwiseSeparable(nn.Module):
    """Depthwise conv → BN → act → pointwise conv → BN, residual when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, kernels: Sequence[int], stride: int, act):
        super().__init__()
        self.conv_dw = mixed_conv(in_channels, in_channels, kernels, stride, depthwise=True)
        self.bn1 = _bn(in_channels)
        self.act = act()
        self.conv_pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = _bn(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x):
        out = self.bn2(self.conv_pw(self.act(self.bn1(self.conv_dw(x)))))
        return x + out if self.has_skip else out


class MixBlock(nn.Module):
    """MBConv with MixConv: (split) 1x1 expand → MixConv depthwise → SE → (split) 1x1 project."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernels: Sequence[int],
        stride: int,
        expand: int,
        act,
        se: float = 0.0,
        pw_groups: int = 1,
        pwl_groups: int = 1,
    ):
        super().__init__()
        mid = in_channels * expand
        self.conv_pw = mixed_conv(in_channels, mid, [1] * pw_groups)
        self.bn1 = _bn(mid)
        self.act1 = act()
        self.conv_dw = mixed_conv(mid, mid, kernels, stride, depthwise=True)
        self.bn2 = _bn(mid)
        self.act2 = act()
        self.se = SqueezeExcite(mid, max(1, int(in_channels * se)), act) if se else nn.Identity()
        self.conv_pwl = mixed_conv(mid, out_channels, [1] * pwl_groups)
        self.bn3 = _bn(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x):
        out = self.act1(self.bn1(self.conv_pw(x)))
        out = self.se(self.act2(self.bn2(self.conv_dw(out))))
        out = self.bn3(self.conv_pwl(out))
        return x + out if self.has_skip else out


# One row per block kind: (repeats, kernel sizes, stride, expansion, out channels, SE ratio,
# expansion-conv groups, projection-conv groups, swish). Expansion 1 marks the depthwise-separable block.
# The paper's MixNet-S / MixNet-M figure, as in the official mixnet_builder.
MIXNET_S = (
    ((1, (3,), 1, 1, 16, 0.0, 1, 1, False),),
    ((1, (3,), 2, 6, 24, 0.0, 2, 2, False), (1, (3,), 1, 3, 24, 0.0, 2, 2, False)),
    ((1, (3, 5, 7), 2, 6, 40, 0.5, 1, 1, True), (3, (3, 5), 1, 6, 40, 0.5, 2, 2, True)),
    ((1, (3, 5, 7), 2, 6, 80, 0.25, 1, 2, True), (2, (3, 5), 1, 6, 80, 0.25, 1, 2, True)),
    ((1, (3, 5, 7), 1, 6, 120, 0.5, 2, 2, True), (2, (3, 5, 7, 9), 1, 3, 120, 0.5, 2, 2, True)),
    ((1, (3, 5, 7, 9, 11), 2, 6, 200, 0.5, 1, 1, True), (2, (3, 5, 7, 9), 1, 6, 200, 0.5, 1, 2, True)),
)
MIXNET_M = (
    ((1, (3,), 1, 1, 24, 0.0, 1, 1, False),),
    ((1, (3, 5, 7), 2, 6, 32, 0.0, 2, 2, False), (1, (3,), 1, 3, 32, 0.0, 2, 2, False)),
    ((1, (3, 5, 7, 9), 2, 6, 40, 0.5, 1, 1, True), (3, (3, 5), 1, 6, 40, 0.5, 2, 2, True)),
    ((1, (3, 5, 7), 2, 6, 80, 0.25, 1, 1, True), (3, (3, 5, 7, 9), 1, 6, 80, 0.25, 2, 2, True)),
    ((1, (3,), 1, 6, 120, 0.5, 1, 1, True), (3, (3, 5, 7, 9), 1, 3, 120, 0.5, 2, 2, True)),
    ((1, (3, 5, 7, 9), 2, 6, 200, 0.5, 1, 1, True), (3, (3, 5, 7, 9), 1, 6, 200, 0.5, 1, 2, True)),
)


class MixNet(nn.Module):
    def __init__(
        self,
        stages=MIXNET_S,
        stem_channels: int = 16,
        width_mult: float = 1.0,
        num_features: int = 1536,
        drop_rate: float = 0.2,
        num_classes: int = 1000,
        in_chans: int = 3,
    ):
        super().__init__()
        channels = make_divisible(stem_channels * width_mult)
        self.conv_stem = nn.Conv2d(in_chans, channels, 3, 2, 1, bias=False)
        self.bn1 = _bn(channels)
        self.act1 = nn.ReLU(inplace=True)
        blocks = []
        for stage in stages:
            layers: list[nn.Module] = []
            for repeats, kernels, stride, expand, out, se, pw_groups, pwl_groups, swish in stage:
                act = nn.SiLU if swish else nn.ReLU
                out = make_divisible(out * width_mult)
                for i in range(repeats):
                    s = stride if i == 0 else 1
                    if expand == 1:
                        layers.append(DepthwiseSeparable(channels, out, kernels, s, act))
                    else:
                        layers.append(MixBlock(channels, out, kernels, s, expand, act, se, pw_groups, pwl_groups))
                    channels = out
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*blocks)
        self.conv_head = nn.Conv2d(channels, num_features, 1, bias=False)
        self.bn2 = _bn(num_features)
        self.act2 = nn.ReLU(inplace=True)
        self.num_features = num_features
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(num_features, num_classes)
        self._init_weights()

    def _init_weights(self):
        # As the TensorFlow model: He normal over fan-out (k*k*out/groups) for convs, uniform
        # ±1/sqrt(fan-out) for the dense layer, zero biases.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.act2(self.bn2(self.conv_head(self.blocks(x))))
        return self.classifier(self.dropout(x.mean((2, 3))))


@register_model("mixnet-s")
def mixnet_s(**kwargs) -> MixNet:
    return MixNet(MIXNET_S, stem_channels=16, **kwargs)


@register_model("mixnet-m")
def mixnet_m(**kwargs) -> MixNet:
    return MixNet(MIXNET_M, stem_channels=24, drop_rate=0.25, **kwargs)


@register_model("mixnet-l")
def mixnet_l(**kwargs) -> MixNet:
    return MixNet(MIXNET_M, stem_channels=24, width_mult=1.3, drop_rate=0.25, **kwargs)
