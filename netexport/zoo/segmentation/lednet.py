"""LEDNet (Wang et al., "LEDNet: A Lightweight Encoder-Decoder Network for Real-Time Semantic
Segmentation", ICIP 2019).

Reference configuration (Table 1, Cityscapes, 19 classes, 1024x512 input):
- encoder: a downsampling unit (3x3/2 conv to out - in channels, concatenated with a 2x2 max pool,
  BN, ReLU) to 32 channels, 3 split-shuffle-non-bottleneck (SS-nbt) units; downsampling to 64,
  2 SS-nbt; downsampling to 128, 8 SS-nbt with dilations 1, 2, 5, 9, 2, 5, 9, 17 → 1/8.
- SS-nbt: the channels are split in halves; one half goes 3x1, ReLU, 1x3, BN, ReLU, then the same
  pair dilated, BN; the other 1x3 first. The halves are concatenated, added to the input, ReLU,
  then the channels are shuffled (2 groups). Convs carry biases; BN eps 1e-3 (authors' code).
- decoder: the attention pyramid network (APN): a 1x1 conv-BN-ReLU of the encoder output (mid
  branch) is multiplied by an attention map from a 3-level pyramid of single-channel convs (7x7/2,
  5x5/2, 3x3/2 + 3x3; 7x7, 5x5 refinements at each level, upsampled and summed coarse to fine),
  plus a global-pooling branch; the class map at 1/8 is upsampled x8 bilinearly to the input.
The conv-BN-ReLU units of the APN, the bilinear resizes (align_corners=True) and the dropout rates
(0.03 in the first two stages, 0.3 after; identity in eval) follow the authors' code
(xiaoyufenfei/LEDNet, train/lednet.py).

Decisions: the authors' code has an encoder-only classifier (1x1, used when pre-training the
encoder) that is not part of the segmentation network and is left out; its APN predicts 20 maps
(19 classes + void) where the paper's benchmark has 19. Its downsampling unit pools with padding 1,
which does not line up with the conv at even sizes; the ENet/ERFNet 2x2/2 pool is used. Input sides
must be multiples of 64 (1/8 encoder, then three stride-2 levels in the APN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model

BN_EPS = 1e-3
# (dilation, dropout) of the 8 SS-nbt units after the third downsampling
STAGE3 = ((1, 0.3), (2, 0.3), (5, 0.3), (9, 0.3), (2, 0.3), (5, 0.3), (9, 0.3), (17, 0.3))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class Downsampler(nn.Module):
    """ENet-style downsampling: [3x3/2 conv (out - in channels), 2x2/2 max pool] → BN → ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, 2, 1)
        self.pool = nn.MaxPool2d(2, 2)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


def _factorized(channels: int, first: str, dilation: int) -> list[nn.Module]:
    """A 3x1/1x3 pair (in the order `first` starts), dilated along its own axis."""
    vertical = nn.Conv2d(channels, channels, (3, 1), padding=(dilation, 0), dilation=(dilation, 1))
    horizontal = nn.Conv2d(channels, channels, (1, 3), padding=(0, dilation), dilation=(1, dilation))
    pair = [vertical, horizontal] if first == "vertical" else [horizontal, vertical]
    return [pair[0], nn.ReLU(inplace=True), pair[1], nn.BatchNorm2d(channels, eps=BN_EPS)]


class SSnbt(nn.Module):
    """Split-shuffle-non-bottleneck unit."""

    def __init__(self, channels: int, dilation: int, dropout: float):
        super().__init__()
        half = channels // 2
        self.left = nn.Sequential(*_factorized(half, "vertical", 1), nn.ReLU(inplace=True),
                                  *_factorized(half, "vertical", dilation), nn.Dropout2d(dropout))
        self.right = nn.Sequential(*_factorized(half, "horizontal", 1), nn.ReLU(inplace=True),
                                   *_factorized(half, "horizontal", dilation), nn.Dropout2d(dropout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        left, right = x.chunk(2, dim=1)
        out = self.relu(x + torch.cat([self.left(left), self.right(right)], 1))
        return channel_shuffle(out, 2)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2),
        nn.BatchNorm2d(out_channels, eps=BN_EPS),
        nn.ReLU(inplace=True),
    )


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


class APN(nn.Module):
    """Attention pyramid network: mid(x) · pyramid attention(x) + global context."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.global_branch = _conv_bn_relu(in_channels, num_classes, 1)
        self.mid = _conv_bn_relu(in_channels, num_classes, 1)
        self.down1 = _conv_bn_relu(in_channels, 1, 7, 2)
        self.down2 = _conv_bn_relu(1, 1, 5, 2)
        self.down3 = nn.Sequential(_conv_bn_relu(1, 1, 3, 2), _conv_bn_relu(1, 1, 3))
        self.conv2 = _conv_bn_relu(1, 1, 5)
        self.conv1 = _conv_bn_relu(1, 1, 7)

    def forward(self, x):
        context = self.global_branch(x.mean(dim=(2, 3), keepdim=True))
        x1 = self.down1(x)
        x2 = self.down2(x1)
        x3 = self.down3(x2)
        attention = _resize(self.conv2(x2) + _resize(x3, x2), x1)
        attention = _resize(self.conv1(x1) + attention, x)
        return self.mid(x) * attention + context  # context broadcasts over space (a 1x1 → HxW resize)


def three_stage_encoder(in_chans: int, unit) -> nn.Sequential:
    """LEDNet's encoder layout (also LRNNet's, with its own `unit(channels, dilation, dropout)`):
    downsample to 32 + 3 units, to 64 + 2 units, to 128 + 8 dilated units (STAGE3)."""
    layers: list[nn.Module] = [Downsampler(in_chans, 32)]
    layers += [unit(32, 1, 0.03) for _ in range(3)]
    layers.append(Downsampler(32, 64))
    layers += [unit(64, 1, 0.03) for _ in range(2)]
    layers.append(Downsampler(64, 128))
    layers += [unit(128, d, p) for d, p in STAGE3]
    return nn.Sequential(*layers)


class LEDNet(nn.Module):
    def __init__(self, num_classes: int = 19, in_chans: int = 3):
        super().__init__()
        self.encoder = three_stage_encoder(in_chans, SSnbt)
        self.apn = APN(128, num_classes)

    def forward(self, x):
        out = self.apn(self.encoder(x))
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=True)


@register_model("lednet")
def lednet(**kwargs) -> LEDNet:
    return LEDNet(**kwargs)
