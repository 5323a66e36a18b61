"""U-Net (Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015).

Reference configuration (Section 2, Fig. 1): a contracting path of four steps of two unpadded
3x3 convolutions + ReLU and a 2x2/2 max pooling (64, 128, 256, 512 channels), two 3x3
convolutions with 1024 channels at the bottom, and an expansive path of four steps: a 2x2
"up-convolution" (transposed conv, stride 2) halving the channels, concatenation with the
correspondingly cropped feature map of the contracting path, two unpadded 3x3 convolutions + ReLU;
a final 1x1 convolution maps the 64 channels to the 2 classes. 23 convolutional layers, no batch
norm. Input: one grey-scale channel (the ISBI EM stacks), the paper's 572x572 tile. Dropout at
the end of the contracting path (after the 512- and 1024-channel steps, as the authors' Caffe
release) acts in training only. Initialisation: Gaussian with std sqrt(2/N), N = k·k·C_in
(Section 3).

Decision: the convolutions stay unpadded ("valid"), as the paper. Padding them would change what
the network computes at every border and the overlap-tile strategy the paper builds on (the
output is the centre of the input tile, its context given by the mirrored border). So the output
is smaller than the input: 572x572 gives 388x388 (Fig. 1), in general sides of s - 184 for the
"seamless" tile sides s = 16·k + 124 (every 2x2 pooling sees an even map). Other sides ≥ 188 also
run: pooling drops an odd row/column and the skip crops stay centred, as they would in Caffe.
Crop offsets are read from the tensors, so dynamic-shape exports stay size-generic.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import register_model

WIDTHS = (64, 128, 256, 512, 1024)


class DoubleConv(nn.Sequential):
    """Two unpadded 3x3 convolutions, each followed by ReLU (each shrinks the map by 2 pixels)."""

    def __init__(self, in_channels: int, out_channels: int, drop_rate: float = 0.0):
        layers = [
            nn.Conv2d(in_channels, out_channels, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3),
            nn.ReLU(inplace=True),
        ]
        if drop_rate:
            layers.append(nn.Dropout(drop_rate))
        super().__init__(*layers)


def center_crop(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The centre of `x` with `like`'s height and width (sizes read from the tensors)."""
    top = (x.shape[2] - like.shape[2]) // 2
    left = (x.shape[3] - like.shape[3]) // 2
    return x[:, :, top: top + like.shape[2], left: left + like.shape[3]]


class UpStep(nn.Module):
    """2x2 up-convolution halving the channels, concatenation with the cropped skip, two 3x3 convs."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.convs = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.convs(torch.cat([center_crop(skip, x), x], dim=1))


class UNet(nn.Module):
    def __init__(self, num_classes: int = 2, in_chans: int = 1, drop_rate: float = 0.5):
        super().__init__()
        # the last two contracting steps (512 and 1024 channels) end in dropout
        self.down = nn.ModuleList(
            DoubleConv(c_in, c_out, drop_rate if c_out >= 512 else 0.0)
            for c_in, c_out in zip((in_chans, *WIDTHS[:-1]), WIDTHS)
        )
        self.pool = nn.MaxPool2d(2, 2)
        self.up = nn.ModuleList(UpStep(c_in, c_out) for c_in, c_out in zip(WIDTHS[:0:-1], WIDTHS[-2::-1]))
        self.classifier = nn.Conv2d(WIDTHS[0], num_classes, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                # incoming connections per output: k·k·C_in; a 2x2/2 up-convolution's outputs each
                # see one input position, C_in connections
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.in_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_in))
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, step in enumerate(self.down):
            x = step(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for step in self.up:
            x = step(x, skips.pop())
        return self.classifier(x)


@register_model("unet")
def unet(**kwargs) -> UNet:
    return UNet(**kwargs)
