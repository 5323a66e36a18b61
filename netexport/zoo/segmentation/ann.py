"""Asymmetric Non-local Neural Network (Zhu et al., "Asymmetric Non-local Neural Networks for
Semantic Segmentation", ICCV 2019).

Reference configuration (Cityscapes, Section 4.1-4.2): dilated ResNet-101 at output stride 8
(shared with CCNet, see ccnet.py). The Asymmetric Fusion Non-local Block (AFNB) fuses stage 4
(1024 ch, keys and values) into stage 5 (2048 ch, queries); a 3x3 conv to 512 channels and the
Asymmetric Pyramid Non-local Block (APNB) follow, then a 1x1 classifier to 19 classes. Both blocks
sample their keys and values with pyramid pooling (sizes 1, 3, 6, 8: 110 anchor positions instead
of H·W), key/query 256 and value 256 channels; the output of the attention is concatenated with
the block's input and fused by a 1x1 conv + BN (+ ReLU in APNB) + dropout 0.05, as the authors'
code. In training an auxiliary FCN head on stage 4 adds a second output (deep supervision, weight
0.4 in the paper's loss); in eval only `out` is returned, upsampled bilinearly to the input size.

Export rewrite `adaptive-avg-pool-as-matmul` (netexport/zoo/layers/adaptive_pool.py) for the pyramid
sampling: 3, 6 and 8 bins rarely divide the feature map (97x97 at the 769x769 crop).

Decisions: the paper does not say how the logits are upsampled; align_corners=False (the authors'
code uses True with 769 = 8·96 + 1 crops). Their code zero-initialises the attention output conv W
so training starts from the backbone; an untrained model with W = 0 would leave both non-local
blocks out of every parity check, so W keeps its random init unless `zero_init_attention=True`.
The backbone uses the torchvision 7x7 stem (the authors' code uses a three-3x3-conv "deep" stem).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.adaptive_pool import adaptive_avg_pool_as_matmul
from ..registry import register_model
from .ccnet import FCNHead, dilated_resnet101

PYRAMID_SIZES = (1, 3, 6, 8)


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, relu: bool = True) -> nn.Sequential:
    """Conv (with bias, as the authors' code) → BN → ReLU."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
              nn.BatchNorm2d(out_channels)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class PyramidSampling(nn.Module):
    """(N, C, H, W) → (N, C, S): the bins of every pyramid level, flattened and concatenated."""

    def __init__(self, sizes=PYRAMID_SIZES):
        super().__init__()
        self.sizes = tuple(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([adaptive_avg_pool_as_matmul(x, s).flatten(2) for s in self.sizes], dim=2)


class PyramidAttention(nn.Module):
    """Asymmetric non-local attention: queries at every position of `high`, keys and values at the
    pyramid-sampled anchors of `low`; returns W(context) with `out_channels` channels."""

    def __init__(self, low_channels: int, high_channels: int, key_channels: int, value_channels: int,
                 out_channels: int, share_query_key: bool = False, sizes=PYRAMID_SIZES):
        super().__init__()
        self.key_channels = key_channels
        self.key = _conv_bn(low_channels, key_channels, 1)
        self.query = self.key if share_query_key else _conv_bn(high_channels, key_channels, 1)
        self.value = nn.Conv2d(low_channels, value_channels, 1)
        self.out = nn.Conv2d(value_channels, out_channels, 1)
        self.sample = PyramidSampling(sizes)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        n, _, h, w = high.shape
        query = self.query(high).flatten(2).transpose(1, 2)  # (N, HW, Ck)
        key = self.sample(self.key(low))  # (N, Ck, S)
        value = self.sample(self.value(low)).transpose(1, 2)  # (N, S, Cv)
        affinity = torch.softmax(torch.matmul(query, key) * self.key_channels**-0.5, dim=-1)
        context = torch.matmul(affinity, value).transpose(1, 2).reshape(n, -1, h, w)
        return self.out(context)


class AFNB(nn.Module):
    """Asymmetric Fusion Non-local Block: stage-5 queries attend to stage-4 anchors."""

    def __init__(self, low_channels: int, high_channels: int, out_channels: int, key_channels: int,
                 value_channels: int, dropout: float):
        super().__init__()
        self.attention = PyramidAttention(low_channels, high_channels, key_channels, value_channels, out_channels)
        self.fuse = _conv_bn(out_channels + high_channels, out_channels, 1, relu=False)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        context = self.attention(low, high)
        return self.dropout(self.fuse(torch.cat([context, high], 1)))


class APNB(nn.Module):
    """Asymmetric Pyramid Non-local Block: self-attention with pyramid-sampled keys/values."""

    def __init__(self, channels: int, key_channels: int, value_channels: int, dropout: float):
        super().__init__()
        self.attention = PyramidAttention(channels, channels, key_channels, value_channels, channels,
                                          share_query_key=True)
        self.fuse = _conv_bn(2 * channels, channels, 1)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fuse(torch.cat([self.attention(x, x), x], 1)))


class ANN(nn.Module):
    def __init__(self, num_classes: int = 19, in_chans: int = 3, key_channels: int = 256,
                 value_channels: int = 256, dropout: float = 0.05, zero_init_attention: bool = False):
        super().__init__()
        self.backbone = dilated_resnet101(in_chans)
        self.fusion = AFNB(1024, 2048, 2048, key_channels, value_channels, dropout)
        self.context = _conv_bn(2048, 512, 3)
        self.apnb = APNB(512, key_channels, value_channels, dropout)
        self.classifier = nn.Conv2d(512, num_classes, 1)
        self.aux_head = FCNHead(1024, num_classes, dropout=dropout)
        # He init for the conv-BN layers; the attention projections (key, query, value, W) keep
        # PyTorch's fan-in default: He fan-out init made the AFNB context ~20x larger than the
        # stage-5 features it is concatenated with.
        projections = {id(m) for block in (self.fusion, self.apnb) for m in block.attention.modules()}
        head = (self.fusion, self.context, self.apnb, self.classifier)
        for m in (m for part in head for m in part.modules()):
            if isinstance(m, nn.Conv2d) and id(m) not in projections:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        if zero_init_attention:
            for block in (self.fusion, self.apnb):
                nn.init.zeros_(block.attention.out.weight)

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        _, _, c4, c5 = self.backbone.forward_stages(x)
        feats = self.apnb(self.context(self.fusion(c4, c5)))
        out = F.interpolate(self.classifier(feats), size=size, mode="bilinear", align_corners=False)
        if self.training:
            aux = F.interpolate(self.aux_head(c4), size=size, mode="bilinear", align_corners=False)
            return out, aux
        return out


@register_model("ann")
def ann(**kwargs) -> ANN:
    return ANN(**kwargs)
