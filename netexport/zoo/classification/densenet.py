"""DenseNet-BC (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017).

Each dense layer is BN-ReLU-Conv1x1 (4k bottleneck) then BN-ReLU-Conv3x3 producing k = 32 new maps,
concatenated onto everything before it in the block; transitions halve the channels (compression
θ = 0.5) and the resolution. DenseNet-121: blocks of 6, 12, 24, 16 layers on a 64-channel stem.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model


class BNReLUConv(nn.Sequential):
    """Pre-activation ordering used throughout DenseNet."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        )


class DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth_rate: int, bn_size: int, drop_rate: float = 0.0):
        super().__init__()
        self.bottleneck = BNReLUConv(in_channels, bn_size * growth_rate, 1)
        self.conv = BNReLUConv(bn_size * growth_rate, growth_rate, 3)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()

    def forward(self, x):
        return self.dropout(self.conv(self.bottleneck(x)))


class DenseBlock(nn.Module):
    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int, drop_rate: float):
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate)
            for i in range(num_layers)
        )
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(BNReLUConv(in_channels, out_channels, 1), nn.AvgPool2d(2, 2))


class DenseNet(nn.Module):
    def __init__(
        self,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        growth_rate: int = 32,
        stem_channels: int = 64,
        bn_size: int = 4,
        compression: float = 0.5,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        in_chans: int = 3,
    ):
        super().__init__()
        stages: list[nn.Module] = [
            nn.Conv2d(in_chans, stem_channels, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        channels = stem_channels
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, channels, growth_rate, bn_size, drop_rate)
            stages.append(block)
            channels = block.out_channels
            if i < len(block_config) - 1:
                out = int(channels * compression)
                stages.append(Transition(channels, out))
                channels = out
        stages += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self):
        # Reference Torch implementation (fb.resnet.torch lineage): He normal over fan-out for convs,
        # BN weight 1 bias 0, zero classifier bias.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model
def densenet121(**kwargs):
    return DenseNet((6, 12, 24, 16), growth_rate=32, stem_channels=64, **kwargs)
