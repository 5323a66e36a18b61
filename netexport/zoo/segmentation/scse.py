"""U-Net with scSE blocks (Roy et al., "Concurrent Spatial and Channel 'Squeeze & Excitation' in
Fully Convolutional Networks", MICCAI 2018).

The block (Section 2): channel SE (cSE: global average pool → FC C→C/r → ReLU → FC → sigmoid,
channel gates, r = 2) and spatial SE (sSE: 1x1 conv C→1 → sigmoid, pixel gates) applied to the same
feature map and added: x̂ = x·σ(cSE) + x·σ(sSE). The paper adds SE blocks after every encoder and
decoder block of its F-CNNs (DenseNet, SD-Net, U-Net).

Configuration chosen for the U-Net (the paper cites Ronneberger et al. and does not print the
widths): the original U-Net's four encoder blocks of two 3x3 conv + BN + ReLU (64, 128, 256, 512
channels, 2x2 max pooling), a 1024-channel bottleneck, four decoder blocks (2x2 transposed conv
up-sampling, skip concatenation, two 3x3 conv + BN + ReLU), 'same' padding so the output keeps the
input size, scSE after each of the eight encoder/decoder blocks, and a 1x1 classifier. Input and
classes follow the paper's whole-brain task: single-channel 256x256 MRI slices (MALC), 28 classes
(27 structures + background, as QuickNAT). The parameter count is this configuration's own.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import ConvBNAct
from ..registry import register_model


class ChannelSE(nn.Module):
    def __init__(self, channels: int, reduction: int = 2):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)  # FC on the pooled vector
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(self.relu(self.fc1(self.pool(x)))))


class SpatialSE(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(x))


class SCSE(nn.Module):
    """Concurrent spatial and channel squeeze & excitation; the two recalibrations are added."""

    def __init__(self, channels: int, reduction: int = 2):
        super().__init__()
        self.cse = ChannelSE(channels, reduction)
        self.sse = SpatialSE(channels)

    def forward(self, x):
        return self.cse(x) + self.sse(x)


class ConvBlock(nn.Sequential):
    """Two 3x3 conv + BN + ReLU, optionally followed by scSE."""

    def __init__(self, in_channels: int, out_channels: int, scse: bool = True):
        super().__init__(
            ConvBNAct(in_channels, out_channels, 3),
            ConvBNAct(out_channels, out_channels, 3),
            SCSE(out_channels) if scse else nn.Identity(),
        )


class DecoderBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.block = ConvBlock(2 * out_channels, out_channels)

    def forward(self, x, skip):
        return self.block(torch.cat([skip, self.up(x)], 1))


class SCSEUNet(nn.Module):
    def __init__(self, num_classes: int = 28, in_chans: int = 1, widths=(64, 128, 256, 512, 1024)):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        encoder, channels = [], in_chans
        for width in widths[:-1]:
            encoder.append(ConvBlock(channels, width))
            channels = width
        self.encoder = nn.ModuleList(encoder)
        self.bottleneck = ConvBlock(channels, widths[-1], scse=False)
        self.decoder = nn.ModuleList(
            DecoderBlock(wide, narrow) for wide, narrow in zip(widths[:0:-1], widths[-2::-1])
        )
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)
        # He init for the convolutions; the SE layers keep PyTorch's default (fan-in) init, as the
        # authors' code: He fan-out init of sSE's C→1 conv would saturate every gate.
        se_layers = {id(m) for block in self.modules() if isinstance(block, SCSE) for m in block.modules()}
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and id(m) not in se_layers:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for block, skip in zip(self.decoder, reversed(skips)):
            x = block(x, skip)
        return self.classifier(x)


@register_model("scse")
def scse(**kwargs) -> SCSEUNet:
    return SCSEUNet(**kwargs)
