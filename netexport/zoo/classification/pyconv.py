"""PyConvResNet (Duta et al., "Pyramidal Convolution: Rethinking Convolutional Neural Networks for
Visual Recognition", 2020).

A pyramidal convolution (PyConv, Section 3) splits a layer's output channels over several kernel
sizes, larger kernels with more groups so every level costs about the same; the levels run on the
same input and are concatenated. PyConvResNet-50 (Fig. 4 / Table 1) is a ResNet-50 bottleneck
network whose 3x3 convolutions become PyConvs, with fewer levels as the maps shrink:

    stage 1 (64 ch):  kernels 3, 5, 7, 9 with groups 1, 4, 8, 16, 16 channels each
    stage 2 (128 ch): kernels 3, 5, 7    with groups 1, 4, 8,     32, 32, 64 channels
    stage 3 (256 ch): kernels 3, 5       with groups 1, 4,        128 channels each
    stage 4 (512 ch): kernel 3           (a plain 3x3 conv)

The stem is a 7x7/2 conv + BN + ReLU without max pooling: the first stage strides by 2 in its
first block instead. A projection shortcut that also strides is a 3x3/2 max pool followed by the
1x1 conv + BN (the paper's down-sampling, from its iResNet work), so strided blocks see every
input position.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..registry import register_model

# per stage: (planes, kernels, groups, share of the planes per level)
STAGES = (
    (64, (3, 5, 7, 9), (1, 4, 8, 16), (1 / 4, 1 / 4, 1 / 4, 1 / 4)),
    (128, (3, 5, 7), (1, 4, 8), (1 / 4, 1 / 4, 1 / 2)),
    (256, (3, 5), (1, 4), (1 / 2, 1 / 2)),
    (512, (3,), (1,), (1,)),
)


class PyConv(nn.Module):
    """Levels of (kernel, groups) convolutions over the same input, concatenated on channels."""

    def __init__(self, in_channels: int, level_channels: Sequence[int], kernels: Sequence[int],
                 groups: Sequence[int], stride: int = 1):
        super().__init__()
        self.levels = nn.ModuleList(
            nn.Conv2d(in_channels, out, k, stride, k // 2, groups=g, bias=False)
            for out, k, g in zip(level_channels, kernels, groups)
        )

    def forward(self, x):
        if len(self.levels) == 1:
            return self.levels[0](x)
        return torch.cat([level(x) for level in self.levels], 1)


class PyConvBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None,
                 kernels: Sequence[int], groups: Sequence[int], shares: Sequence[float]):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = PyConv(planes, [int(planes * s) for s in shares], kernels, groups, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class PyConvResNet(nn.Module):
    def __init__(self, layers: Sequence[int], num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = 64
        for index, (blocks, (planes, kernels, groups, shares)) in enumerate(zip(layers, STAGES), start=1):
            setattr(self, f"layer{index}", self._make_layer(planes, blocks, kernels, groups, shares))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * PyConvBottleneck.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes, blocks, kernels, groups, shares, stride: int = 2) -> nn.Sequential:
        out = planes * PyConvBottleneck.expansion
        downsample = nn.Sequential(
            nn.MaxPool2d(3, stride, 1),
            nn.Conv2d(self.inplanes, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )
        layers = [PyConvBottleneck(self.inplanes, planes, stride, downsample, kernels, groups, shares)]
        self.inplanes = out
        layers += [PyConvBottleneck(out, planes, 1, None, kernels, groups, shares) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


@register_model("pyconv-resnet50")
def pyconv_resnet50(**kwargs) -> PyConvResNet:
    return PyConvResNet([3, 4, 6, 3], **kwargs)
