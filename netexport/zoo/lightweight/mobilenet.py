"""MobileNet V1, V2 and V3.

- V1 (Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
  Applications", 2017), 1.0x at 224: Table 1 — a 3x3/2 stem of 32 channels, then 13 depthwise
  separable layers (3x3 depthwise → BN → ReLU → 1x1 pointwise → BN → ReLU, Figure 3) to 1024
  channels, global average pool, one FC layer. The paper's 7x7 average pool is the global pool at
  224; we pool globally so reduced input sizes run. The last depthwise layer runs at stride 1 (its
  map stays 7x7 in Table 1), as the reference implementations do.
- V2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018), 1.0x at
  224: Table 2 — inverted residuals (1x1 expansion, 3x3 depthwise, linear 1x1 projection, ReLU6),
  a 1x1 head to 1280 channels, dropout 0.2 before the classifier (eval: identity).
- V3 (Howard et al., "Searching for MobileNetV3", ICCV 2019): Tables 1 (large) and 2 (small) —
  V2 blocks with optional squeeze-and-excitation (squeeze to a quarter of the expanded channels,
  rounded to a multiple of 8, ReLU then a hard-sigmoid gate) and ReLU or hard-swish per block; the
  last stage is a 1x1 conv (960 / 576) → pool → a 1280 / 1024 hidden layer with hard-swish (no BN)
  → classifier. Batch-norm eps 1e-3 as the official TensorFlow models. Table 2 marks SE on the
  small model's last 1x1 conv; the authors' released models (and torchvision) have none there, and
  the parameter count matches those. Hard-swish and hard-sigmoid export as ONNX HardSwish (opset
  14) and HardSigmoid, both of which ONNX Runtime and the TensorRT parser implement.

V2 and V3 name their modules as torchvision does (`features.N.conv` / `features.N.block`, SE `fc1`
/ `fc2`, `classifier`), so torchvision state dicts load unchanged.
"""

from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from ..layers import ConvBNAct, make_divisible
from ..registry import register_model


def _init_weights(model: nn.Module) -> None:
    # He normal over fan-out for convolutions, N(0, 0.01) for dense layers, zero biases, BN 1 / 0.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------
# MobileNet V1

# Table 1: (pointwise output channels, depthwise stride) of the 13 depthwise separable layers.
V1_LAYERS = (
    (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)


class DepthwiseSeparable(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.depthwise = ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pointwise = ConvBNAct(in_channels, out_channels, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class MobileNetV1(nn.Module):
    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        channels = int(32 * width_mult)
        layers: list[nn.Module] = [ConvBNAct(in_chans, channels, 3, stride=2)]
        for out, stride in V1_LAYERS:
            out = int(out * width_mult)
            layers.append(DepthwiseSeparable(channels, out, stride))
            channels = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        _init_weights(self)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


# ---------------------------------------------------------------------------------------------
# MobileNet V2

# Table 2: (expansion t, output channels c, repeats n, first stride s), after a 32-channel stem.
V2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidualV2(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, act=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            nn.Conv2d(hidden, out_channels, 1, bias=False),  # linear bottleneck: no activation
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(
        self,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.2,
        stages=V2_STAGES,
    ):
        super().__init__()
        channels = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNAct(in_chans, channels, 3, stride=2, act=nn.ReLU6)]
        for t, c, n, s in stages:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidualV2(channels, out, s if i == 0 else 1, t))
                channels = out
        layers.append(ConvBNAct(channels, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        _init_weights(self)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


# ---------------------------------------------------------------------------------------------
# MobileNet V3

RE, HS = nn.ReLU, nn.Hardswish

# Tables 1 and 2: (kernel, expanded channels, output channels, SE, activation, stride).
V3_LARGE = (
    (3, 16, 16, False, RE, 1),
    (3, 64, 24, False, RE, 2),
    (3, 72, 24, False, RE, 1),
    (5, 72, 40, True, RE, 2),
    (5, 120, 40, True, RE, 1),
    (5, 120, 40, True, RE, 1),
    (3, 240, 80, False, HS, 2),
    (3, 200, 80, False, HS, 1),
    (3, 184, 80, False, HS, 1),
    (3, 184, 80, False, HS, 1),
    (3, 480, 112, True, HS, 1),
    (3, 672, 112, True, HS, 1),
    (5, 672, 160, True, HS, 2),
    (5, 960, 160, True, HS, 1),
    (5, 960, 160, True, HS, 1),
)
V3_SMALL = (
    (3, 16, 16, True, RE, 2),
    (3, 72, 24, False, RE, 2),
    (3, 88, 24, False, RE, 1),
    (5, 96, 40, True, HS, 2),
    (5, 240, 40, True, HS, 1),
    (5, 240, 40, True, HS, 1),
    (5, 120, 48, True, HS, 1),
    (5, 144, 48, True, HS, 1),
    (5, 288, 96, True, HS, 2),
    (5, 576, 96, True, HS, 1),
    (5, 576, 96, True, HS, 1),
)
V3_BN_EPS = 1e-3


class SqueezeExcitationV3(nn.Module):
    """SE with a hard-sigmoid gate, as the paper; attribute names as torchvision's SqueezeExcitation."""

    def __init__(self, channels: int, squeeze_channels: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))


class InvertedResidualV3(nn.Module):
    def __init__(
        self,
        in_channels: int,
        kernel_size: int,
        expanded: int,
        out_channels: int,
        use_se: bool,
        act: Callable[[], nn.Module],
        stride: int,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(ConvBNAct(in_channels, expanded, 1, act=act, bn_eps=V3_BN_EPS))
        layers.append(
            ConvBNAct(expanded, expanded, kernel_size, stride, groups=expanded, act=act, bn_eps=V3_BN_EPS)
        )
        if use_se:
            layers.append(SqueezeExcitationV3(expanded, make_divisible(expanded // 4)))
        layers.append(ConvBNAct(expanded, out_channels, 1, act=None, bn_eps=V3_BN_EPS))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        return x + self.block(x) if self.use_residual else self.block(x)


class MobileNetV3(nn.Module):
    def __init__(
        self,
        blocks: Sequence[tuple],
        last_channels: int,
        hidden_channels: int,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.2,
    ):
        super().__init__()
        channels = 16
        layers: list[nn.Module] = [ConvBNAct(in_chans, channels, 3, stride=2, act=HS, bn_eps=V3_BN_EPS)]
        for kernel, expanded, out, use_se, act, stride in blocks:
            layers.append(InvertedResidualV3(channels, kernel, expanded, out, use_se, act, stride))
            channels = out
        layers.append(ConvBNAct(channels, last_channels, 1, act=HS, bn_eps=V3_BN_EPS))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        # The paper's two 1x1 convs after the pool, without BN: on a 1x1 map they are dense layers.
        self.classifier = nn.Sequential(
            nn.Linear(last_channels, hidden_channels),
            nn.Hardswish(),
            nn.Dropout(dropout),
            nn.Linear(hidden_channels, num_classes),
        )
        _init_weights(self)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


@register_model("mobilenet-v1")
def mobilenet_v1(**kwargs) -> MobileNetV1:
    return MobileNetV1(width_mult=1.0, **kwargs)


@register_model("mobilenet-v2")
def mobilenet_v2(**kwargs) -> MobileNetV2:
    return MobileNetV2(width_mult=1.0, **kwargs)


@register_model("mobilenet-v3-large")
def mobilenet_v3_large(**kwargs) -> MobileNetV3:
    return MobileNetV3(V3_LARGE, last_channels=960, hidden_channels=1280, **kwargs)


@register_model("mobilenet-v3-small")
def mobilenet_v3_small(**kwargs) -> MobileNetV3:
    return MobileNetV3(V3_SMALL, last_channels=576, hidden_channels=1024, **kwargs)
