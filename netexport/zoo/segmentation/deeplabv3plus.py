"""DeepLabv3+ (Chen, Zhu, Papandreou, Schroff & Adam, "Encoder-Decoder with Atrous Separable
Convolution for Semantic Image Segmentation", ECCV 2018).

Reference configuration: the paper's ResNet-101 model (Section 4.1-4.2, Tables 1-3) on PASCAL VOC
2012 (21 classes, 513x513 crops), at output stride 16:
- Encoder: ImageNet ResNet-101 whose last stage keeps stride 1 and uses atrous convolution;
  as DeepLabv3 (which v3+ takes as its encoder) its three blocks use the multi-grid rates
  (1, 2, 4) x 2 = 2, 4, 8. ASPP on the 2048-channel stride-16 map: a 1x1 conv, three 3x3 convs
  at rates 6, 12, 18, and image pooling (global average pool → 1x1 conv → up-sampled back), each
  256 channels with BN + ReLU, concatenated and projected by a 1x1 conv + BN + ReLU to 256.
- Decoder (Section 3.1, Table 2's best): the low-level features of ResNet's Conv2 stage (layer1,
  256 ch, stride 4) reduced by a 1x1 conv to 48 channels, concatenated with the encoder output
  up-sampled 4x, two 3x3 convs of 256 (BN + ReLU), a 1x1 classifier, then 4x bilinear up-sampling
  to the input.
The paper's best model uses Xception-65 with depthwise-separable ASPP/decoder; the ResNet-101
model (plain convolutions) is chosen because a public implementation with exactly its layer shapes
exists to count against (jfzhang95/pytorch-deeplab-xception, see the recipe). The backbone and ASPP
are laid out as torchvision's deeplabv3_resnet101 (its `backbone.*` keys load as they are, its
`classifier.0.*` ASPP keys under `aspp.*`).

Decisions: bilinear resizes use align_corners=True as the reference TensorFlow implementation
(built for 16k+1 crops such as 513); training-only dropout is left out (the paper names none).
Every resize takes its target size from a tensor (the image-pooling branch is up-sampled to the
ASPP input's size), so the network runs at any input size and dynamic-shape exports stay generic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..classification.resnet import Bottleneck, ResNet
from ..layers import ConvBNAct
from ..registry import register_model

MULTI_GRID = (1, 2, 4)


def resnet101_os16(in_chans: int = 3) -> ResNet:
    """ResNet-101 at output stride 16: layer4 without its stride, atrous rates 2·(1, 2, 4).
    Parameter names stay torchvision's, so ImageNet checkpoints load unchanged."""
    backbone = ResNet(Bottleneck, [3, 4, 23, 3], num_classes=0, in_chans=in_chans)
    for block, grid in zip(backbone.layer4, MULTI_GRID):
        rate = 2 * grid
        block.conv2.stride, block.conv2.dilation, block.conv2.padding = (1, 1), (rate, rate), (rate, rate)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
    return backbone


class ASPPPooling(nn.Sequential):
    """Image-level features: global average pool, 1x1 conv + BN + ReLU, up-sampled to the input's size."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.AdaptiveAvgPool2d(1),  # exported as GlobalAveragePool: any input size
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the size comes from the tensor; from a 1x1 map bilinear up-sampling is an exact broadcast
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=True)


class ASPP(nn.Module):
    def __init__(self, in_channels: int, rates=(6, 12, 18), channels: int = 256):
        super().__init__()
        branches = [ConvBNAct(in_channels, channels, 1)]
        branches += [ConvBNAct(in_channels, channels, 3, dilation=r) for r in rates]
        branches.append(ASPPPooling(in_channels, channels))
        self.convs = nn.ModuleList(branches)
        self.project = ConvBNAct(channels * len(branches), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class Decoder(nn.Module):
    def __init__(self, low_channels: int, num_classes: int, encoder_channels: int = 256,
                 reduced: int = 48, channels: int = 256):
        super().__init__()
        self.reduce = ConvBNAct(low_channels, reduced, 1)
        self.refine = nn.Sequential(
            ConvBNAct(encoder_channels + reduced, channels, 3),
            ConvBNAct(channels, channels, 3),
        )
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = self.reduce(low)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=True)
        return self.classifier(self.refine(torch.cat([x, low], dim=1)))


class DeepLabV3Plus(nn.Module):
    def __init__(self, num_classes: int = 21, in_chans: int = 3, rates=(6, 12, 18)):
        super().__init__()
        self.backbone = resnet101_os16(in_chans)
        self.aspp = ASPP(self.backbone.num_features, rates)
        self.decoder = Decoder(self.backbone.stage_channels[0], num_classes)
        for m in (*self.aspp.modules(), *self.decoder.modules()):
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.backbone.layer1(self.backbone.stem(x))
        high = self.backbone.layer4(self.backbone.layer3(self.backbone.layer2(low)))
        out = self.decoder(self.aspp(high), low)
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=True)


@register_model("deeplabv3plus")
def deeplabv3plus(**kwargs) -> DeepLabV3Plus:
    return DeepLabV3Plus(**kwargs)
