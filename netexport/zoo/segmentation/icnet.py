"""ICNet (Zhao et al., "ICNet for Real-Time Semantic Segmentation on High-Resolution Images", ECCV 2018).

Reference configuration: the released Cityscapes model (hszhao/ICNet,
evaluation/prototxt/icnet_cityscapes_bnnomerge.prototxt), i.e. the paper's final ICNet after its
kernel-halving compression (Section 5), 19 classes, full-resolution 1024x2048 input:
- low-resolution branch (1/4 image): a half-width PSPNet50 — three 3x3 stem convs (32, 32, 64) and
  a 3x3/2 max pool, then ResNet-50 bottlenecks [3, 4, 6, 3] with widths 32/64/128/256 and outputs
  128/256/512/1024, in the Caffe ("v1") layout that strides on the first 1x1 conv. conv1..conv3_1
  run on the 1/2 image (shared with the medium branch); conv3_1 is then downsampled by 2 and
  conv3_2..conv5_3 continue at 1/32 of the input, conv4 dilated 2 and conv5 dilated 4. Pyramid
  pooling (bins 1, 2, 3, 6) is summed, not concatenated, with conv5_3 (no convs on the pooled maps),
  then a 1x1 conv to 256 (conv5_4_k1).
- medium branch: conv3_1 of the 1/2 image (1/16 of the input, 256 channels).
- high-resolution branch: three 3x3/2 convs (32, 32, 64) on the full image, 1/8 of the input.
- cascade feature fusion (CFF, Fig. 3) twice: the coarser map is upsampled 2x and passed through a
  3x3 conv with dilation 2 + BN, the finer one through a 1x1 conv + BN, both to 128 channels; sum,
  ReLU. Then a 2x upsampling, the 1x1 classifier conv6_cls at 1/4 of the input, and a 4x bilinear
  upsampling to the input size (the released deploy net's conv6_interp).
- cascade label guidance (training only): classifiers on the upsampled inputs of both CFF units
  (sub4_out at 1/16, sub24_out at 1/8); in train mode forward returns (out, sub24, sub4).

All convs are bias-free with BN except the classifiers. The paper reports no parameter count; the
recipe records the count of the released prototxt's layer shapes (plus the two train-only
classifiers).

Export rewrite `adaptive-avg-pool-as-matmul` (netexport/zoo/layers/adaptive_pool.py) for the pyramid
pooling: 3 and 6 bins rarely divide the feature map (32x64 at 1024x2048).

Decisions: the released model pools with fixed Caffe windows sized for a 1025x2049 input and
Caffe's Interp layers; this is the PyTorch formulation of the same design on 1024x2048 (adaptive
pooling as PSPNet defines it, bilinear resizing with align_corners=False for every Interp).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .. import centre_class_logits
from ..layers import ConvBNAct
from ..layers.adaptive_pool import adaptive_avg_pool_as_matmul
from ..registry import register_model

PYRAMID_BINS = (1, 2, 3, 6)


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def _half(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)


class CaffeBottleneck(nn.Module):
    """PSPNet's bottleneck: 1x1 reduce (carries the stride), 3x3 (dilated), 1x1 increase, projection."""

    def __init__(self, in_channels: int, mid: int, out_channels: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.reduce = ConvBNAct(in_channels, mid, 1, stride)
        self.conv = ConvBNAct(mid, mid, 3, dilation=dilation)
        self.increase = ConvBNAct(mid, out_channels, 1, act=None)
        self.proj = (ConvBNAct(in_channels, out_channels, 1, stride, act=None)
                     if stride != 1 or in_channels != out_channels else None)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        shortcut = x if self.proj is None else self.proj(x)
        return self.relu(self.increase(self.conv(self.reduce(x))) + shortcut)


def _stage(in_channels: int, mid: int, out_channels: int, blocks: int, stride: int = 1, dilation: int = 1):
    layers = [CaffeBottleneck(in_channels, mid, out_channels, stride, dilation)]
    layers += [CaffeBottleneck(out_channels, mid, out_channels, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class SumPyramidPooling(nn.Module):
    """ICNet's pyramid pooling: the input plus its bin averages upsampled back, summed."""

    def __init__(self, bins=PYRAMID_BINS):
        super().__init__()
        self.bins = tuple(bins)

    def forward(self, x):
        out = x
        for bins in self.bins:
            out = out + _resize(adaptive_avg_pool_as_matmul(x, bins), x)
        return out


class CascadeFeatureFusion(nn.Module):
    """CFF (Fig. 3): 2x-upsampled coarse map → dilated 3x3 conv + BN, fine map → 1x1 conv + BN; sum, ReLU."""

    def __init__(self, low_channels: int, high_channels: int, out_channels: int, num_classes: int):
        super().__init__()
        self.conv_low = ConvBNAct(low_channels, out_channels, 3, dilation=2, act=None)
        self.conv_high = ConvBNAct(high_channels, out_channels, 1, act=None)
        self.relu = nn.ReLU(inplace=True)
        self.classifier = nn.Conv2d(low_channels, num_classes, 1)  # label guidance, training only

    def forward(self, low, high):
        low = _resize(low, high)
        out = self.relu(self.conv_low(low) + self.conv_high(high))
        return out, (self.classifier(low) if self.training else None)


class ICNet(nn.Module):
    def __init__(self, num_classes: int = 19, in_chans: int = 3):
        super().__init__()
        # conv1_1 .. conv3_1 on the 1/2 image (shared by the medium and low branches)
        self.stem = nn.Sequential(OrderedDict(
            conv1_1=ConvBNAct(in_chans, 32, 3, 2),
            conv1_2=ConvBNAct(32, 32, 3),
            conv1_3=ConvBNAct(32, 64, 3),
            pool1=nn.MaxPool2d(3, 2, 1),
        ))
        self.conv2 = _stage(64, 32, 128, 3)
        self.conv3_1 = CaffeBottleneck(128, 64, 256, stride=2)
        # conv3_2 .. conv5_3 on the 1/32 map
        self.conv3 = _stage(256, 64, 256, 3)
        self.conv4 = _stage(256, 128, 512, 6, dilation=2)
        self.conv5 = _stage(512, 256, 1024, 3, dilation=4)
        self.pyramid = SumPyramidPooling()
        self.conv5_4 = ConvBNAct(1024, 256, 1)
        # high-resolution branch on the full image
        self.sub1 = nn.Sequential(ConvBNAct(in_chans, 32, 3, 2), ConvBNAct(32, 32, 3, 2), ConvBNAct(32, 64, 3, 2))
        self.cff_sub24 = CascadeFeatureFusion(256, 256, 128, num_classes)
        self.cff_sub12 = CascadeFeatureFusion(128, 64, 128, num_classes)
        self.conv6_cls = nn.Conv2d(128, num_classes, 1)

    def forward(self, x):
        sub2 = self.conv3_1(self.conv2(self.stem(_half(x))))  # 1/16
        sub4 = self.conv5_4(self.pyramid(self.conv5(self.conv4(self.conv3(_half(sub2))))))  # 1/32
        sub1 = self.sub1(x)  # 1/8
        sub24, aux4 = self.cff_sub24(sub4, sub2)
        sub12, aux24 = self.cff_sub12(sub24, sub1)
        sub12 = F.interpolate(sub12, scale_factor=2.0, mode="bilinear", align_corners=False)
        out = _resize(self.conv6_cls(sub12), x)
        if self.training:
            return out, aux24, aux4
        return out

    def place_random_head(self, warm_up_inputs) -> None:
        centre_class_logits(self, self.conv6_cls, warm_up_inputs)


@register_model("icnet")
def icnet(**kwargs) -> ICNet:
    return ICNet(**kwargs)
