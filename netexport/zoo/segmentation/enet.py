"""ENet (Paszke et al., "ENet: A Deep Neural Network Architecture for Real-Time Semantic
Segmentation", arXiv:1606.02147, 2016).

Reference configuration (Table 1, as the authors' Torch code e-lab/ENet-training,
train/models/encoder.lua + decoder.lua; Cityscapes, 19 classes):
- initial block: a 3x3/2 conv (13 channels, with bias) concatenated with a 2x2/2 max pool of the
  image, BN, PReLU.
- encoder bottlenecks (internal width = output / 4): 1x1 projection (2x2/2 when downsampling),
  BN, PReLU, the middle conv (3x3, dilated 3x3 or asymmetric 1x5 + 5x1), BN, PReLU, 1x1 expansion,
  BN, spatial dropout (0.01 in stage 1, 0.1 after); the main branch is the identity or, when
  downsampling, a 2x2/2 max pool whose indices are kept, zero-padded to the output channels; sum,
  PReLU. Per-channel PReLU; BN eps 1e-3; the 1x1 projections are bias-free, the middle convs not.
  Stage 1: bottleneck1.0 (16→64, down) + 4 regular; stages 2 and 3: regular, dilated 2,
  asymmetric 5, dilated 4, regular, dilated 8, asymmetric 5, dilated 16 (stage 2 after
  bottleneck2.0, 64→128, down).
- decoder (ReLU instead of PReLU, no dropout): bottleneck4.0 upsampling to 64 — main branch 1x1 conv
  + BN and max unpooling with the indices of bottleneck2.0, the other branch 1x1, 3x3/2 transposed
  conv, 1x1 — then 2 regular bottlenecks; bottleneck5.0 upsampling to 16 (indices of
  bottleneck1.0) and 1 regular; a 2x2/2 transposed conv ("fullconv") to the classes at the input
  resolution.

Export rewrite `max-unpool-as-first-max-mask` (netexport/zoo/layers/max_unpool.py): a downsampling
bottleneck keeps its pre-pool activations instead of MaxPool's indices (TensorRT has neither
MaxUnpool nor the indices output) and the upsampling bottleneck unpools with their first-maximum
masks; tests/test_rewrites_max_unpool.py proves the whole network equal to the index-based ENet.

Decisions: canonical input 720x1280, the largest resolution of the paper's timing table (Table 2);
sides must be multiples of 8 (three 2x2 poolings undone exactly by the decoder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.max_unpool import max_unpool_from_activations
from ..registry import register_model

BN_EPS = 1e-3


class InitialBlock(nn.Module):
    def __init__(self, in_chans: int = 3, out_channels: int = 16):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_channels - in_chans, 3, 2, 1)
        self.pool = nn.MaxPool2d(2, 2)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.act = nn.PReLU(out_channels)

    def forward(self, x):
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


def _bn_act(channels: int, relu: bool) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels, eps=BN_EPS), nn.ReLU(inplace=True) if relu else nn.PReLU(channels)]


class Bottleneck(nn.Module):
    """Encoder (PReLU) or decoder (ReLU) bottleneck; `kind` is regular, dilated or asymmetric."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = False, kind: str = "regular",
                 dilation: int = 1, dropout: float = 0.0, relu: bool = False):
        super().__init__()
        internal = out_channels // 4
        self.downsample = downsample
        self.pad_channels = out_channels - in_channels
        stride = 2 if downsample else 1
        if kind == "asymmetric":
            middle = [nn.Conv2d(internal, internal, (1, 5), padding=(0, 2), bias=False),
                      nn.Conv2d(internal, internal, (5, 1), padding=(2, 0))]
        else:
            middle = [nn.Conv2d(internal, internal, 3, padding=dilation, dilation=dilation)]
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, internal, stride, stride, bias=False), *_bn_act(internal, relu),
            *middle, *_bn_act(internal, relu),
            nn.Conv2d(internal, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels, eps=BN_EPS),
            nn.Dropout2d(dropout),
        )
        self.act = nn.ReLU(inplace=True) if relu else nn.PReLU(out_channels)

    def forward(self, x):
        """Downsampling blocks also return their input, whose window maxima the decoder unpools to."""
        main = F.max_pool2d(x, 2, 2) if self.downsample else x
        if self.pad_channels:
            main = F.pad(main, (0, 0, 0, 0, 0, self.pad_channels))
        out = self.act(main + self.branch(x))
        return (out, x) if self.downsample else out


class UpsamplingBottleneck(nn.Module):
    """Decoder bottleneck that unpools its main branch to an encoder pooling's window maxima."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        internal = out_channels // 4
        self.main = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                  nn.BatchNorm2d(out_channels, eps=BN_EPS))
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, internal, 1, bias=False), *_bn_act(internal, True),
            nn.ConvTranspose2d(internal, internal, 3, 2, 1, output_padding=1), *_bn_act(internal, True),
            nn.Conv2d(internal, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels, eps=BN_EPS),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x, pre_pool):
        return self.act(max_unpool_from_activations(self.main(x), pre_pool) + self.branch(x))


# stages 2 and 3 after their first block: (kind, dilation)
STAGE_PATTERN = (("regular", 1), ("dilated", 2), ("asymmetric", 1), ("dilated", 4),
                 ("regular", 1), ("dilated", 8), ("asymmetric", 1), ("dilated", 16))


class ENet(nn.Module):
    def __init__(self, num_classes: int = 19, in_chans: int = 3):
        super().__init__()
        self.initial = InitialBlock(in_chans, 16)
        self.bottleneck1_0 = Bottleneck(16, 64, downsample=True, dropout=0.01)
        self.stage1 = nn.Sequential(*(Bottleneck(64, 64, dropout=0.01) for _ in range(4)))
        self.bottleneck2_0 = Bottleneck(64, 128, downsample=True, dropout=0.1)
        self.stage2 = nn.Sequential(*(Bottleneck(128, 128, kind=k, dilation=d, dropout=0.1) for k, d in STAGE_PATTERN))
        self.stage3 = nn.Sequential(*(Bottleneck(128, 128, kind=k, dilation=d, dropout=0.1) for k, d in STAGE_PATTERN))
        self.bottleneck4_0 = UpsamplingBottleneck(128, 64)
        self.stage4 = nn.Sequential(Bottleneck(64, 64, relu=True), Bottleneck(64, 64, relu=True))
        self.bottleneck5_0 = UpsamplingBottleneck(64, 16)
        self.stage5 = Bottleneck(16, 16, relu=True)
        self.fullconv = nn.ConvTranspose2d(16, num_classes, 2, 2)

    def forward(self, x):
        x = self.initial(x)
        x, pre_pool1 = self.bottleneck1_0(x)
        x, pre_pool2 = self.bottleneck2_0(self.stage1(x))
        x = self.stage3(self.stage2(x))
        x = self.stage4(self.bottleneck4_0(x, pre_pool2))
        x = self.stage5(self.bottleneck5_0(x, pre_pool1))
        return self.fullconv(x)


@register_model("enet")
def enet(**kwargs) -> ENet:
    return ENet(**kwargs)
