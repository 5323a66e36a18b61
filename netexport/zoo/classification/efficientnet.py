"""EfficientNet (Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs", ICML 2019).

B0 is the searched baseline of Table 1: a stem, seven stages of MBConv blocks (inverted residuals
with squeeze-and-excitation reducing to a quarter of the block's input channels, SiLU/Swish), a
1x1 head to 1280 channels, dropout 0.2. Stochastic depth (drop rate rising linearly towards 0.2)
acts only in training; in eval it is the identity, so it never reaches the exported graph.
"""

from __future__ import annotations

import math

from torch import nn

from ..layers import ConvBNAct, SqueezeExcite, make_divisible
from ..registry import register_model

BN_EPS = 1e-3  # official TensorFlow implementation (batch_norm_epsilon)

# Table 1: (expand ratio, kernel, stride, out channels, repeats) per stage, after a 32-channel stem.
B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


class StochasticDepth(nn.Module):
    """Drops the whole residual branch per sample with probability p during training only."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class MBConv(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        se_ratio: float = 0.25,
        drop_path: float = 0.0,
    ):
        super().__init__()
        hidden = in_channels * expand_ratio
        self.expand = (
            ConvBNAct(in_channels, hidden, 1, act=nn.SiLU, bn_eps=BN_EPS)
            if expand_ratio != 1
            else nn.Identity()
        )
        self.depthwise = ConvBNAct(
            hidden, hidden, kernel_size, stride, groups=hidden, act=nn.SiLU, bn_eps=BN_EPS
        )
        self.se = SqueezeExcite(hidden, max(1, int(in_channels * se_ratio)), act=nn.SiLU)
        self.project = ConvBNAct(hidden, out_channels, 1, act=None, bn_eps=BN_EPS)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.drop_path = StochasticDepth(drop_path) if self.use_residual else nn.Identity()

    def forward(self, x):
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return x + self.drop_path(out) if self.use_residual else out


class EfficientNet(nn.Module):
    def __init__(
        self,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.2,
        stages=B0_STAGES,
        num_classes: int = 1000,
        in_chans: int = 3,
    ):
        super().__init__()
        channels = make_divisible(32 * width_mult)
        self.stem = ConvBNAct(in_chans, channels, 3, stride=2, act=nn.SiLU, bn_eps=BN_EPS)
        repeats = [math.ceil(n * depth_mult) for *_, n in stages]
        total, index = sum(repeats), 0
        blocks: list[nn.Module] = []
        for (expand, kernel, stride, out, _), n in zip(stages, repeats):
            out = make_divisible(out * width_mult)
            stage = []
            for i in range(n):
                # drop probability grows linearly with the block's depth in the network
                drop_path = drop_path_rate * index / total
                block_stride = stride if i == 0 else 1
                stage.append(MBConv(channels, out, kernel, block_stride, expand, drop_path=drop_path))
                channels = out
                index += 1
            blocks.append(nn.Sequential(*stage))
        self.blocks = nn.Sequential(*blocks)
        head = make_divisible(1280 * max(1.0, width_mult))
        self.head = ConvBNAct(channels, head, 1, act=nn.SiLU, bn_eps=BN_EPS)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(head, num_classes)
        self._init_weights()

    def _init_weights(self):
        # Official implementation: He normal over fan-out for convs, uniform ±1/sqrt(fan-out) for the
        # dense layer, zero biases; BN weight 1 bias 0. Its fan-out is k*k*out/groups: a depthwise
        # kernel has fan-out k*k (torch's fan_out would count all channels and shrink it ~C-fold).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(self.pool(x).flatten(1)))


@register_model("efficientnet-b0")
def efficientnet_b0(**kwargs):
    return EfficientNet(width_mult=1.0, depth_mult=1.0, **kwargs)
