"""ResNet (He et al., CVPR 2016) and ResNeXt (Xie et al., CVPR 2017).

Bottlenecks stride on their 3x3 conv ("ResNet v1.5", as torchvision). The class is meant to be
reused: `block_kwargs={"attn_layer": fn}` puts `fn(channels)` on every residual branch (SE, CBAM,
... variants), `forward_stages` returns the C2-C5 maps for feature pyramids, and `num_classes=0`
drops the head. Module names follow torchvision, so its state dicts load as they are.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import torch
from torch import nn

from ..layers import ConvBNAct
from ..registry import register_model

AttnLayer = Callable[[int], nn.Module]


def _attn(attn_layer: AttnLayer | None, channels: int) -> nn.Module:
    return attn_layer(channels) if attn_layer is not None else nn.Identity()


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        attn_layer: AttnLayer | None = None,
    ):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.attn = _attn(attn_layer, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attn(self.bn2(self.conv2(out)))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        attn_layer: AttnLayer | None = None,
    ):
        super().__init__()
        width = int(planes * base_width / 64) * groups
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.attn = _attn(attn_layer, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.attn(self.bn3(self.conv3(out)))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """stem (7x7/2 conv, 3x3/2 max pool) → layer1..layer4 (C2..C5, strides 4..32) → pool → fc."""

    def __init__(
        self,
        block: type[nn.Module],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        groups: int = 1,
        width_per_group: int = 64,
        block_kwargs: dict | None = None,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        self.block = block
        self.groups = groups
        self.base_width = width_per_group
        self.block_kwargs = dict(block_kwargs or {})
        self.inplanes = 64
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False),
                bn1=nn.BatchNorm2d(64),
                relu=nn.ReLU(inplace=True),
                maxpool=nn.MaxPool2d(3, 2, 1),
            )
        )
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.stage_channels = tuple(p * block.expansion for p in (64, 128, 256, 512))
        self.num_features = self.stage_channels[-1]
        self.num_classes = num_classes
        if num_classes > 0:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(self.num_features, num_classes)
        else:
            self.avgpool = self.fc = None
        self._init_weights(zero_init_residual)
        # torchvision names the stem convs conv1/bn1 at top level; accept its checkpoints unchanged.
        self.register_load_state_dict_pre_hook(_torchvision_stem_keys)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        expansion = self.block.expansion
        downsample = None
        if stride != 1 or self.inplanes != planes * expansion:
            downsample = ConvBNAct(self.inplanes, planes * expansion, 1, stride, act=None)
        common = dict(groups=self.groups, base_width=self.base_width, **self.block_kwargs)
        layers = [self.block(self.inplanes, planes, stride, downsample, **common)]
        self.inplanes = planes * expansion
        layers += [self.block(self.inplanes, planes, **common) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:  # Goyal et al. 2017: each residual branch starts as zero
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """C2, C3, C4, C5: the outputs of layer1..layer4 (strides 4, 8, 16, 32)."""
        c2 = self.layer1(self.stem(x))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return c2, c3, c4, c5

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        if self.fc is None:
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _torchvision_stem_keys(module, state_dict, prefix, *args) -> None:
    for name in ("conv1", "bn1"):
        old = f"{prefix}{name}."
        for key in [k for k in state_dict if k.startswith(old)]:
            state_dict[f"{prefix}stem.{name}." + key[len(old):]] = state_dict.pop(key)


@register_model
def resnet18(**kwargs) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model
def resnet34(**kwargs) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model
def resnet50(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


@register_model
def resnet101(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


@register_model
def resnet152(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)


@register_model("resnext50-32x4d")
def resnext50_32x4d(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4, **kwargs)
