"""SE-ResNet-50 (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018).

Reference configuration: ResNet-50 with a squeeze-and-excitation gate (global average pool →
1x1 conv to C/16 → ReLU → 1x1 conv to C → sigmoid) on the residual branch of every bottleneck,
after the last 1x1 conv + BN and before the residual add (the paper's Fig. 3 "SE-ResNet module").

Decided: the host is netexport's ResNet-50 (v1.5, stride on the 3x3 conv, as torchvision and
timm's seresnet50); the paper's Caffe model strides on the first 1x1, which changes no parameter
count. With biases in both excitation layers the count is timm seresnet50's, 28,088,024.
"""

from __future__ import annotations

from functools import partial

from ..classification.resnet import Bottleneck, ResNet
from ..layers import SqueezeExcite
from ..registry import register_model

SE_REDUCTION = 16


def se_gate(channels: int, reduction: int = SE_REDUCTION) -> SqueezeExcite:
    return SqueezeExcite(channels, channels // reduction)


@register_model("se-resnet50")
def se_resnet50(reduction: int = SE_REDUCTION, **kwargs) -> ResNet:
    return ResNet(
        Bottleneck, [3, 4, 6, 3], block_kwargs={"attn_layer": partial(se_gate, reduction=reduction)}, **kwargs
    )
