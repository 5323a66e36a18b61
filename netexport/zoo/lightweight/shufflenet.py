"""ShuffleNet v1 (Zhang et al., CVPR 2018) and ShuffleNet v2 (Ma et al., ECCV 2018).

- shufflenet-v1: Table 1 of the paper at 1x with g=3 groups: a 24-channel 3x3/2 stem and 3x3/2 max
  pool, then stages of 4/8/4 units with 240/480/960 channels. A unit is 1x1 group conv (bottleneck
  a quarter of the stage's output channels) → BN → ReLU → channel shuffle → 3x3 depthwise conv → BN
  → 1x1 group conv → BN, added to the input (stride 1) or, at stride 2, concatenated with a 3x3/2
  average pool of the input (the branch then makes output - input channels); ReLU after the merge.
  Stage 2's first 1x1 conv is not grouped (24 input channels, Section 3.3). The paper gives no
  parameter count; the official implementation (megvii-model/ShuffleNet-Series, ShuffleNetV1) has
  the same layers and a bias-free classifier, and its count is the reference. Decided: the shuffle sits
  where the paper's Figure 2 puts it (after the first group conv) and uses the paper's
  reshape-to-(g, n)-transpose-flatten order; megvii shuffles after the depthwise conv with the inverse
  permutation, which is the same network up to a permutation of the depthwise weights.
- shufflenet-v2-x0.5 ... x2.0: Table 5 of the v2 paper; a unit splits channels in half, runs one half
  through 1x1 → 3x3 depthwise → 1x1, concatenates and shuffles with 2 groups; downsampling units run
  both halves (branch1 on the whole input). Module names follow torchvision's ShuffleNetV2, so its
  state dicts load unchanged.

Channel shuffle is reshape → transpose → reshape on sizes read from the tensor at run time, so a
dynamic-batch export keeps the batch symbolic.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvBNAct
from ..registry import register_model


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave `groups` channel groups: view channels as (groups, n), transpose to (n, groups), flatten."""
    batch, channels, height, width = x.shape
    x = x.reshape(batch, groups, channels // groups, height, width)
    return x.transpose(1, 2).reshape(batch, channels, height, width)


# ---------------------------------------------------------------------------------------------
# ShuffleNet v1
# ---------------------------------------------------------------------------------------------


class ShuffleV1Unit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int, group_first: bool = True):
        super().__init__()
        self.stride = stride
        self.groups = groups
        mid = out_channels // 4
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        self.compress = ConvBNAct(in_channels, mid, 1, groups=groups if group_first else 1)
        self.depthwise = ConvBNAct(mid, mid, 3, stride, groups=mid, act=None)
        self.expand = ConvBNAct(mid, branch_out, 1, groups=groups, act=None)
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()

    def forward(self, x):
        out = self.compress(x)
        out = self.expand(self.depthwise(channel_shuffle(out, self.groups)))
        if self.stride == 1:
            return F.relu(x + out)
        return F.relu(torch.cat((self.shortcut(x), out), 1))


class ShuffleNetV1(nn.Module):
    def __init__(
        self,
        groups: int = 3,
        stage_channels: Sequence[int] = (240, 480, 960),
        stage_repeats: Sequence[int] = (4, 8, 4),
        stem_channels: int = 24,
        num_classes: int = 1000,
        in_chans: int = 3,
    ):
        super().__init__()
        self.conv1 = ConvBNAct(in_chans, stem_channels, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels = stem_channels
        for index, (out, repeats) in enumerate(zip(stage_channels, stage_repeats)):
            units = []
            for i in range(repeats):
                group_first = not (index == 0 and i == 0)
                units.append(ShuffleV1Unit(channels, out, 2 if i == 0 else 1, groups, group_first))
                channels = out
            setattr(self, f"stage{index + 2}", nn.Sequential(*units))
        self.num_features = channels
        self.fc = nn.Linear(channels, num_classes, bias=False)  # bias-free, as the official model
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(x.mean((2, 3)))


# ---------------------------------------------------------------------------------------------
# ShuffleNet v2
# ---------------------------------------------------------------------------------------------


def _depthwise_bn(channels: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False), nn.BatchNorm2d(channels)]


def _pointwise_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class InvertedResidual(nn.Module):
    """ShuffleNet v2 unit (torchvision's name for it; its Sequential indices are kept)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        half = out_channels // 2
        if stride == 1 and in_channels != 2 * half:
            raise ValueError("a stride-1 ShuffleNet v2 unit keeps its channel count")
        # stride 1: the left half passes untouched; stride 2: branch1 downsamples the whole input
        self.branch1 = (
            nn.Sequential(*_depthwise_bn(in_channels, stride), *_pointwise_bn_relu(in_channels, half))
            if stride > 1
            else nn.Sequential()
        )
        branch2_in = in_channels if stride > 1 else half
        self.branch2 = nn.Sequential(
            *_pointwise_bn_relu(branch2_in, half), *_depthwise_bn(half, stride), *_pointwise_bn_relu(half, half)
        )

    def forward(self, x):
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)
            out = torch.cat((left, self.branch2(right)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(
        self,
        stage_channels: Sequence[int],
        stage_repeats: Sequence[int] = (4, 8, 4),
        num_classes: int = 1000,
        in_chans: int = 3,
    ):
        super().__init__()
        if len(stage_channels) != 5:
            raise ValueError("stage_channels: stem, three stages and conv5")
        stem, *stages, last = stage_channels
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_chans, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)
        )
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels = stem
        for index, (out, repeats) in enumerate(zip(stages, stage_repeats)):
            units = [InvertedResidual(channels, out, 2)] + [InvertedResidual(out, out, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{index + 2}", nn.Sequential(*units))
            channels = out
        self.conv5 = nn.Sequential(*_pointwise_bn_relu(channels, last))
        self.num_features = last
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean((2, 3)))


@register_model("shufflenet-v1")
def shufflenet_v1(**kwargs) -> ShuffleNetV1:
    return ShuffleNetV1(groups=3, stage_channels=(240, 480, 960), **kwargs)


@register_model("shufflenet-v2-x0.5")
def shufflenet_v2_x0_5(**kwargs) -> ShuffleNetV2:
    return ShuffleNetV2((24, 48, 96, 192, 1024), **kwargs)


@register_model("shufflenet-v2-x1.0")
def shufflenet_v2_x1_0(**kwargs) -> ShuffleNetV2:
    return ShuffleNetV2((24, 116, 232, 464, 1024), **kwargs)


@register_model("shufflenet-v2-x1.5")
def shufflenet_v2_x1_5(**kwargs) -> ShuffleNetV2:
    return ShuffleNetV2((24, 176, 352, 704, 1024), **kwargs)


@register_model("shufflenet-v2-x2.0")
def shufflenet_v2_x2_0(**kwargs) -> ShuffleNetV2:
    return ShuffleNetV2((24, 244, 488, 976, 2048), **kwargs)
