"""MobileNeXt (Zhou et al., "Rethinking Bottleneck Structure for Efficient Mobile Network Design",
ECCV 2020), width 1.0 at 224.

The sandglass block flips MobileNetV2's inverted residual: the shortcut joins the wide ends, and
the block runs 3x3 depthwise (ReLU6) → 1x1 reduction by t (linear) → 1x1 expansion (ReLU6) → 3x3
depthwise (linear, carries the stride). The network (Table 2, repeats as in the authors' code): a
3x3/2 stem of 32 channels, then (t, channels, repeats, stride) (2, 96, 1, 2), (6, 144, 1, 1),
(6, 192, 3, 2), (6, 288, 3, 2), (6, 384, 4, 1), (6, 576, 4, 2), (6, 960, 3, 1), (6, 1280, 1, 1),
global pool, dropout 0.2 and a dense classifier.

Decisions, taken from the authors' code (yitu-opensource/MobileNeXt,
mobilenext/codebase/models/mnext.py) where the paper is not specific:
- the reduced width is in_channels // t, but at least ceil(out_channels / 6) rounded to a multiple
  of 16 (so the 1x1 bottleneck never falls below a sixth of the block's output);
- a block that changes the channel count has no shortcut; at stride 1 it is only the two 1x1
  convs, at stride 2 the two 1x1 convs and the strided depthwise conv; the first block (t = 2) and
  single-block stages at stride 1 (144 and 1280 channels) keep both depthwise convs;
- the shortcut adds the whole input (the paper's identity tensor multiplier at 1.0);
- He-normal (fan-out) convolutions, N(0, 0.01) classifier, BN 1 / 0.
Module names follow that code (`features.N.conv.M`, `classifier.1`), so its checkpoints load.
"""

from __future__ import annotations

import math

from torch import nn

from ..layers import ConvBNAct, make_divisible
from ..registry import register_model

# Table 2: (reduction ratio t, output channels, repeats, first stride), after a 32-channel stem.
MOBILENEXT_STAGES = (
    (2, 96, 1, 2),
    (6, 144, 1, 1),
    (6, 192, 3, 2),
    (6, 288, 3, 2),
    (6, 384, 4, 1),
    (6, 576, 4, 2),
    (6, 960, 3, 1),
    (6, 1280, 1, 1),
)


def _depthwise(channels: int, stride: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False)
    return [conv, nn.BatchNorm2d(channels)]


def _pointwise(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]


class SandglassBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, reduction: int,
                 keep_depthwise: bool = False):
        super().__init__()
        hidden = in_channels // reduction
        if hidden < out_channels / 6:
            hidden = make_divisible(math.ceil(out_channels / 6), 16)
        # 1x1 reduction (linear) → 1x1 expansion (ReLU6)
        bottleneck = _pointwise(in_channels, hidden) + _pointwise(hidden, out_channels) + [nn.ReLU6(inplace=True)]
        head = _depthwise(in_channels) + [nn.ReLU6(inplace=True)]
        if in_channels != out_channels and not keep_depthwise and reduction != 2:
            # a channel-changing block (not the first, t = 2) drops the leading depthwise conv, and
            # the trailing one too unless it strides
            layers = bottleneck + (_depthwise(out_channels, stride) if stride > 1 else [])
        else:
            layers = head + bottleneck + _depthwise(out_channels, stride)
        self.conv = nn.Sequential(*layers)
        self.use_residual = in_channels == out_channels and stride == 1 and not keep_depthwise

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNeXt(nn.Module):
    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.2, stages=MOBILENEXT_STAGES):
        super().__init__()
        channels = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvBNAct(in_chans, channels, 3, stride=2, act=nn.ReLU6)]
        for t, c, n, s in stages:
            # the authors keep the last stage at 1280 channels below width 1.0
            out = c if (c == stages[-1][1] and width_mult < 1.0) else make_divisible(c * width_mult)
            layers.append(SandglassBlock(channels, out, s, t, keep_depthwise=n == 1 and s == 1))
            channels = out
            layers += [SandglassBlock(channels, out, 1, t) for _ in range(n - 1)]
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


@register_model("mobilenext")
def mobilenext(**kwargs) -> MobileNeXt:
    return MobileNeXt(width_mult=1.0, **kwargs)
