"""SegNet (Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder
Architecture for Image Segmentation", TPAMI 2017).

Reference configuration (Section 3, Fig. 2; the authors' Caffe `segnet_train.prototxt` for CamVid):
the encoder is the 13 convolutions of VGG16 (3x3, 64-128-256-512-512 channels), each followed by
batch norm and ReLU, with a 2x2/2 max pooling after each of the five stages that also records the
position of every maximum. The decoder mirrors it: each stage up-samples its input by placing
each value at the position its encoder pooling took the maximum from (max-unpooling, zeros
elsewhere), then 3x3 conv + BN + ReLU layers whose widths mirror the encoder (512 → 512 → 512,
512 → 512 → 256, 256 → 256 → 128, 128 → 64, 64) — 13 decoder convolutions, the last a 3x3 conv to
the 11 CamVid classes without BN/ReLU (its soft-max belongs to the loss). Input 360x480 (CamVid).

Decisions:
- Pooling rounds up (`ceil_mode=True`) as the authors' Caffe pooling does: at 360x480 the stride-8
  map is 45x60, pool4 gives 23x30 and pool5 12x15 (the prototxt's upsample5 restores 23x30); each
  unpooling restores its encoder map's exact size. `max_unpool_from_activations` handles either
  rounding.
- Initialisation: He (MSRA) for every convolution, as the prototxt's fillers.

Export rewrite `max-unpool-as-first-max-mask` (netexport/zoo/layers/max_unpool.py): the decoder
unpools with the first-maximum masks of the encoder's pre-pool activations instead of pooling
indices, which TensorRT lacks; tests/test_rewrites_max_unpool.py also proves the whole network
equal to the index-based SegNet. Like any max-unpooling network it is discontinuous in its encoder
activations (near-tied window maxima; the recipe records the measurements).
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers.max_unpool import max_unpool_from_activations
from ..registry import register_model

# VGG16's 13 convolutions, stage by stage (Table 1 of Simonyan & Zisserman, configuration D).
ENCODER_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv (with bias, as the prototxt) → BN → ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels),
                         nn.ReLU(inplace=True))


class EncoderStage(nn.Module):
    """Conv-BN-ReLU layers; returns the pooled map and the pre-pool activations (whose window
    maxima the decoder's unpooling reads instead of pooling indices)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], ceil_mode: bool = True):
        super().__init__()
        self.convs = nn.Sequential(*(conv_bn_relu(c_in, c_out) for c_in, c_out in zip((in_channels, *widths), widths)))
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=ceil_mode)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.convs(x)
        return self.pool(x), x


class DecoderStage(nn.Module):
    """Max-unpooling with the encoder's window maxima, then conv layers mirroring the encoder's."""

    def __init__(self, width: int, depth: int, out_channels: int, ceil_mode: bool = True,
                 classifier: bool = False):
        super().__init__()
        self.ceil_mode = ceil_mode
        layers = [conv_bn_relu(width, width) for _ in range(depth - 1)]
        # the network's last layer is a plain 3x3 conv to the classes (no BN, no ReLU)
        layers.append(nn.Conv2d(width, out_channels, 3, padding=1) if classifier else conv_bn_relu(width, out_channels))
        self.convs = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, pre_pool: torch.Tensor) -> torch.Tensor:
        return self.convs(max_unpool_from_activations(x, pre_pool, self.ceil_mode))


class SegNet(nn.Module):
    def __init__(self, num_classes: int = 11, in_chans: int = 3, ceil_mode: bool = True):
        super().__init__()
        encoders, channels = [], in_chans
        for widths in ENCODER_STAGES:
            encoders.append(EncoderStage(channels, widths, ceil_mode))
            channels = widths[-1]
        self.encoders = nn.ModuleList(encoders)
        # decoder stage k mirrors encoder stage k: its convs keep the stage width and the last one
        # narrows to the width of the stage before (the classes for the first stage)
        decoders = []
        for k in reversed(range(len(ENCODER_STAGES))):
            widths = ENCODER_STAGES[k]
            out = ENCODER_STAGES[k - 1][-1] if k > 0 else num_classes
            decoders.append(DecoderStage(widths[-1], len(widths), out, ceil_mode, classifier=k == 0))
        self.decoders = nn.ModuleList(decoders)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # MSRA filler of the prototxt (fan-in), zero bias
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre_pools = []
        for encoder in self.encoders:
            x, pre_pool = encoder(x)
            pre_pools.append(pre_pool)
        for decoder, pre_pool in zip(self.decoders, reversed(pre_pools)):
            x = decoder(x, pre_pool)
        return x


@register_model("segnet")
def segnet(**kwargs) -> SegNet:
    return SegNet(**kwargs)
