"""Fast-SCNN (Poudel et al., "Fast-SCNN: Fast Semantic Segmentation Network", BMVC 2019).

Reference configuration (Tables 1-3, Cityscapes, 19 classes, full-resolution 1024x2048 input):
- learning to downsample: Conv2D 3x3/2 (32), DSConv /2 (48), DSConv /2 (64) → 1/8.
- global feature extractor: MobileNet-v2 linear bottlenecks (expansion 6): 64 ch x3 /2,
  96 ch x3 /2, 128 ch x3 /1 (1/32), then a pyramid pooling module (bins 1, 2, 3, 6 as PSPNet; each
  pooled map 1x1-conv'd to 32 channels, upsampled and concatenated with the input, a 1x1 conv back
  to 128).
- feature fusion (Table 3): the 1/32 features upsampled x4, a 3x3 depthwise conv with dilation 4,
  a 1x1 conv; the 1/8 features through a 1x1 conv; sum, ReLU (both 1x1 convs linear, with BN).
- classifier: two DSConv (128) and a 1x1 conv to the classes at 1/8; the logits are upsampled x8
  bilinearly to the input size. DSConv = 3x3 depthwise + BN + ReLU, 1x1 + BN + ReLU.
All convs are followed by BN (bias-free) except the classifier. In training an auxiliary head on the
learning-to-downsample output (3x3 conv to 32 + BN + ReLU + dropout 0.1 + 1x1 to the classes, as
the public implementation Tramac/Fast-SCNN-pytorch) adds a second output.

The pyramid pooling uses the export rewrite `adaptive-avg-pool-as-matmul` (layers/adaptive_pool.py): bins of 3
and 6 do not divide the 32x64 map of a 1024x2048 input.

Decisions: the paper gives the layer table but not every detail; these follow Tramac's
implementation, whose parameter count is the reference: PPM branches of 1x1 conv-BN-ReLU to C/4,
dropout 0.1 before the classifier's 1x1 conv (eval: identity), the auxiliary head. Its two fusion
1x1 convs carry a bias before their BN; here they are bias-free (256 parameters fewer). The
depthwise fusion conv is dilated 4 as the paper's Table 3 (Tramac's is not; same parameters), and
bilinear resizes use align_corners=False. Without the training-only head the network has 1,137,795
parameters, 2.5% above the paper's rounded 1.11M.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import centre_class_logits
from ..layers import ConvBNAct
from ..layers.adaptive_pool import adaptive_avg_pool_as_matmul
from ..registry import register_model

# Table 1: (expansion t, channels c, repeats n, stride s) of the global feature extractor
BOTTLENECKS = ((6, 64, 3, 2), (6, 96, 3, 2), (6, 128, 3, 1))


class DSConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels),
            ConvBNAct(in_channels, out_channels, 1),
        )


class LinearBottleneck(nn.Module):
    """MobileNet-v2 inverted residual: 1x1 expand, 3x3 depthwise (stride), 1x1 linear projection."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int, stride: int):
        super().__init__()
        hidden = in_channels * expansion
        self.block = nn.Sequential(
            ConvBNAct(in_channels, hidden, 1),
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
            ConvBNAct(hidden, out_channels, 1, act=None),
        )
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


class PyramidPooling(nn.Module):
    def __init__(self, channels: int, bins=(1, 2, 3, 6)):
        super().__init__()
        self.bins = tuple(bins)
        self.reduce = nn.ModuleList(ConvBNAct(channels, channels // 4, 1) for _ in self.bins)
        self.project = ConvBNAct(2 * channels, channels, 1)

    def forward(self, x):
        size = x.shape[-2:]
        pooled = [F.interpolate(conv(adaptive_avg_pool_as_matmul(x, bins)), size=size, mode="bilinear",
                                align_corners=False) for bins, conv in zip(self.bins, self.reduce)]
        return self.project(torch.cat([x, *pooled], 1))


class FeatureFusion(nn.Module):
    def __init__(self, high_channels: int, low_channels: int, out_channels: int):
        super().__init__()
        self.low_dw = ConvBNAct(low_channels, low_channels, 3, groups=low_channels, dilation=4)
        self.low_pw = ConvBNAct(low_channels, out_channels, 1, act=None)
        self.high_pw = ConvBNAct(high_channels, out_channels, 1, act=None)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, high, low):
        low = F.interpolate(low, size=high.shape[-2:], mode="bilinear", align_corners=False)
        return self.relu(self.low_pw(self.low_dw(low)) + self.high_pw(high))


class FastSCNN(nn.Module):
    def __init__(self, num_classes: int = 19, in_chans: int = 3, dropout: float = 0.1):
        super().__init__()
        self.learning_to_downsample = nn.Sequential(
            ConvBNAct(in_chans, 32, 3, 2), DSConv(32, 48, 2), DSConv(48, 64, 2))
        layers, channels = [], 64
        for t, c, n, s in BOTTLENECKS:
            for i in range(n):
                layers.append(LinearBottleneck(channels, c, t, s if i == 0 else 1))
                channels = c
        self.global_features = nn.Sequential(*layers)
        self.ppm = PyramidPooling(128)
        self.fusion = FeatureFusion(64, 128, 128)
        self.classifier = nn.Sequential(
            DSConv(128, 128), DSConv(128, 128), nn.Dropout(dropout), nn.Conv2d(128, num_classes, 1))
        self.aux_head = nn.Sequential(
            ConvBNAct(64, 32, 3), nn.Dropout(dropout), nn.Conv2d(32, num_classes, 1))

    def forward(self, x):
        high = self.learning_to_downsample(x)
        low = self.ppm(self.global_features(high))
        out = self.classifier(self.fusion(high, low))
        out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.training:
            aux = F.interpolate(self.aux_head(high), size=x.shape[-2:], mode="bilinear", align_corners=False)
            return out, aux
        return out

    def place_random_head(self, warm_up_inputs) -> None:
        centre_class_logits(self, self.classifier[-1], warm_up_inputs)


@register_model("fast-scnn")
def fast_scnn(**kwargs) -> FastSCNN:
    return FastSCNN(**kwargs)
