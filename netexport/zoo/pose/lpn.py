"""LPN, the Lightweight Pose Network (Zhang, Tang & Wu, "Simple and Lightweight Human Pose
Estimation", arXiv 1911.10346, 2019): LPN-50 on COCO at 256x192.

Reference configuration, the authors' code zhang943/lpn-pytorch (lib/models/lpn.py and
lib/models/lightweight_modules.py with experiments/coco/lpn/lpn50_256x192_gd256x2_gc.yaml):
SimpleBaseline's design with a lightweight backbone and head.

- stem: 7x7/2 conv 3 → 64 + BN + ReLU, 3x3/2 max pool (stride 4);
- four stages of lightweight bottlenecks, [3, 4, 6, 3] blocks at 64, 128, 256, 512 channels, strides
  1, 2, 2, 1 (the last stage keeps stride 16). A lightweight bottleneck: 1x1 conv + BN + ReLU, 3x3
  depthwise conv (stride here) + BN + ReLU, 1x1 conv + BN, a GC block, plus the input (or its 1x1
  conv + BN projection), ReLU. No expansion: every conv of a block has the stage's width;
- GC block (Cao et al., GCNet; ATTENTION 'GC'): a 1x1 conv C → 1 gives a logit per position, softmax
  over H*W, the weighted sum of the features is a C-vector; 1x1 conv C → max(C/16, 16), LayerNorm,
  ReLU, 1x1 conv back to C, added to every position (the code's "att" pooling with "channel_add");
- head: two group deconvolutions, each a 4x4/2 transposed conv to 256 channels with
  groups = gcd(in, out) (no bias) + BN + ReLU, then a 1x1 conv + BN + ReLU; a 1x1 conv (with bias)
  to the 17 COCO heatmaps at stride 4 (64x48 for a 256x192 crop). Inputs: multiples of 16.

The paper's iterative training and its beta-soft-argmax post-processing are not part of the
network: `forward` returns the heatmaps in train and eval mode alike.

Parameter count, by layer shapes: 2,911,153, the authors' LPN with that config counted the same
(and its state dict loads strictly into this model with equal outputs, checked by construction
when this file was written); their README gives "2.9M". The paper (abstract) says 2.7M: the same
network without its 16 GC blocks counts 2,732,689 (the GC blocks hold 178,464), so the paper's
figure leaves them out; the recipe holds the full count.

Module names follow the authors' code (`conv1`, `layer1..4.<i>.att.conv_mask`,
`att.channel_add_conv.<i>`, `deconv_layers.<i>`, `final_layer`): their checkpoints load as they are.

Random init (trained weights replace all of it). The authors' training from scratch draws every
conv and deconv weight, the GC blocks' included, from N(0, 0.001) (BN 1 and 0). Here every weight
is drawn as theirs (conv biases PyTorch's default) except two convs per GC block: the context
logits conv keeps GCNet's He-normal over fan-in (N(0, 0.001) would make the softmax uniform) and
the last transform conv PyTorch's default (GCNet's zeros, or N(0, 0.001), would leave the context
path out of, or negligible in, every parity check). Random weights give weak, mostly tied peaks;
`place_random_head` gives distinct ones (simple_baselines.place_heatmap_peaks).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..registry import register_model
from .simple_baselines import COCO_KEYPOINTS, place_heatmap_peaks


class GCBlock(nn.Module):
    """Global context block, attention pooling + channel-add fusion."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.conv_mask = nn.Conv2d(channels, 1, 1)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv_mask.bias)
        self.channel_add_conv[-1].reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.conv_mask(x).flatten(2), dim=-1)  # (N, 1, HW)
        context = torch.matmul(x.flatten(2), weights.transpose(1, 2)).unsqueeze(-1)  # (N, C, 1, 1)
        return x + self.channel_add_conv(context)


class LightweightBottleneck(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.att = GCBlock(channels, max(channels // 16, 16))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.att(self.bn3(self.conv3(out)))
        return self.relu(out + shortcut)


class LPN(nn.Module):
    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), num_joints: int = COCO_KEYPOINTS,
                 deconv_channels: Sequence[int] = (256, 256)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.inplanes = 64
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=1)
        head: list[nn.Module] = []
        for channels in deconv_channels:
            head += [
                nn.ConvTranspose2d(self.inplanes, channels, 4, stride=2, padding=1,
                                   groups=math.gcd(self.inplanes, channels), bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
                nn.Conv2d(channels, channels, 1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
            self.inplanes = channels
        self.deconv_layers = nn.Sequential(*head)
        self.final_layer = nn.Conv2d(self.inplanes, num_joints, 1)
        self._init_weights()

    def _make_layer(self, channels: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != channels:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, channels, 1, stride, bias=False),
                                       nn.BatchNorm2d(channels))
        layers = [LightweightBottleneck(self.inplanes, channels, stride, downsample)]
        self.inplanes = channels
        layers += [LightweightBottleneck(channels, channels) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, GCBlock):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.final_layer(self.deconv_layers(x))

    def place_random_head(self, warm_up_inputs) -> None:
        """Random weights only: heatmap peaks from the last 1x1 conv, its BN and `final_layer`."""
        place_heatmap_peaks(self, warm_up_inputs, self.deconv_layers[-3], self.deconv_layers[-2], self.final_layer)


@register_model("lpn-50")
def lpn_50(**kwargs) -> LPN:
    return LPN((3, 4, 6, 3), **kwargs)
