"""lw-net: Light-Weight RefineNet (Nekrasov, Shen & Reid, "Light-Weight RefineNet for Real-Time
Semantic Segmentation", BMVC 2018).

Which network "lw-net" means: DESIGN.md names it without a paper. "LW" in the segmentation
literature is Light-Weight RefineNet, published as a real-time segmentation network with official
code and weights (DrSleep/light-weight-refinenet); it is built here in its ResNet-50 form,
RF-LW-ResNet-50 ("55 FPS on 512x512 inputs", 27M parameters), on PASCAL VOC (21 classes), the
paper's main benchmark, at the paper's 512x512 timing size. (The model list of DESIGN.md matches
the folder of a public PyTorch model collection whose "LW_Network" file cites no paper and has no
reference configuration, so it could not be built "faithful to its paper".)

Reference configuration (Fig. 2, official models/resnet.py):
- encoder: ResNet-50 (torchvision layout and names, so ImageNet checkpoints load), outputs of
  layer1..layer4 at strides 4..32.
- decoder: every level is reduced by a bias-free 1x1 conv (2048→512 with ReLU at 1/32; 1024, 512,
  256 → 256 at the others, each followed by a second 1x1 "adapt" conv); the coarser path is
  refined by chained residual pooling (CRP: four times 5x5/1 max pool → 1x1 conv, each result summed
  into the running output), reduced by a 1x1 conv, upsampled bilinearly (align_corners=True) to the
  next level and summed with it, ReLU, CRP, ... down to 1/4; a 3x3 conv (with bias) gives the 21
  class scores at 1/4, upsampled bilinearly to the input (the paper evaluates at full resolution).
Light-weight RefineNet has no RCU blocks and uses 1x1 convs in CRP; no BN in the decoder.

Decisions: the official network returns the 1/4 map and the training/evaluation code resizes it;
here the final resize (bilinear, align_corners=False) is part of forward so the output is at the
input's resolution. Any input whose sides are multiples of 32 is accepted.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .. import centre_class_logits
from ..classification.resnet import Bottleneck, ResNet
from ..registry import register_model


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, bias=False)


class ChainedResidualPooling(nn.Module):
    """Light-weight CRP: x + Σ_i t_i, t_i = conv_i(maxpool5x5(t_{i-1})), t_0 = x."""

    def __init__(self, channels: int, stages: int = 4):
        super().__init__()
        self.pool = nn.MaxPool2d(5, 1, 2)
        self.convs = nn.ModuleList(_conv1x1(channels, channels) for _ in range(stages))

    def forward(self, x):
        top = x
        for conv in self.convs:
            top = conv(self.pool(top))
            x = x + top
        return x


class RefineLevel(nn.Module):
    """One decoder level: reduce (+ adapt) the encoder map, add the upsampled coarser path, ReLU, CRP."""

    def __init__(self, in_channels: int, channels: int, out_channels: int | None, top: bool = False):
        super().__init__()
        self.reduce = _conv1x1(in_channels, channels)
        self.adapt = None if top else _conv1x1(channels, channels)
        self.crp = ChainedResidualPooling(channels)
        self.project = _conv1x1(channels, out_channels) if out_channels else None

    def forward(self, feature, coarser=None):
        x = self.reduce(feature)
        if self.adapt is not None:
            x = self.adapt(x)
        if coarser is not None:
            x = x + F.interpolate(coarser, size=x.shape[-2:], mode="bilinear", align_corners=True)
        x = self.crp(F.relu(x))
        return self.project(x) if self.project is not None else x


class LightWeightRefineNet(nn.Module):
    def __init__(self, num_classes: int = 21, in_chans: int = 3, layers=(3, 4, 6, 3)):
        super().__init__()
        self.backbone = ResNet(Bottleneck, list(layers), num_classes=0, in_chans=in_chans)
        c2, c3, c4, c5 = self.backbone.stage_channels
        self.level4 = RefineLevel(c5, 512, 256, top=True)
        self.level3 = RefineLevel(c4, 256, 256)
        self.level2 = RefineLevel(c3, 256, 256)
        self.level1 = RefineLevel(c2, 256, None)
        self.classifier = nn.Conv2d(256, num_classes, 3, padding=1)

    def forward(self, x):
        l1, l2, l3, l4 = self.backbone.forward_stages(x)
        out = self.level4(l4)
        out = self.level3(l3, out)
        out = self.level2(l2, out)
        out = self.level1(l1, out)
        out = self.classifier(out)
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def place_random_head(self, warm_up_inputs) -> None:
        centre_class_logits(self, self.classifier, warm_up_inputs)


@register_model("lw-net")
def lw_net(**kwargs) -> LightWeightRefineNet:
    return LightWeightRefineNet(**kwargs)
