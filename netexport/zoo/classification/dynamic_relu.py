"""Dynamic ReLU (Chen et al., "Dynamic ReLU", ECCV 2020) on MobileNetV2 x1.0.

DY-ReLU-B (spatial-shared, channel-wise; Section 3.2): y_c = max_k (a_c^k(x) · x_c + b_c^k(x)),
K = 2 pieces. The hyper function θ(x) is global average pooling → FC C→C/R → ReLU → FC C/R→2KC,
normalised to residuals in [-1, 1] by 2σ(·) - 1; a^k = α^k + λ_a Δa^k and b^k = β^k + λ_b Δb^k with
λ_a = 1.0, λ_b = 0.5, α^1 = 1, α^2 = β^1 = β^2 = 0, so an untrained DY-ReLU starts as ReLU. R = 8,
the paper's chosen trade-off. The coefficients come from the activation's own input, as the
definition states (the authors' DyHead code can feed them from another tensor; not used here).

Backbone: the paper's headline result is MobileNetV2 x1.0 (ImageNet top-1 72.0 → 76.2), so the
model is MobileNetV2 x1.0 (Sandler et al. 2018: stem 32, the seven inverted-residual stages, 1280
head, dropout 0.2, 1000 classes) with DY-ReLU-B in place of every ReLU6 (stem, each expansion and
depthwise convolution, head). The projection convolutions stay linear. The parameter count is this
configuration's own (torchvision's mobilenet_v2 layers plus the hyper functions).
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import make_divisible
from ..registry import register_model

# (expand ratio, out channels, repeats, stride), Table 2 of MobileNetV2
MBV2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class DyReLUB(nn.Module):
    def __init__(self, channels: int, reduction: int = 8, k: int = 2, lambda_a: float = 1.0,
                 lambda_b: float = 0.5):
        super().__init__()
        self.channels, self.k = channels, k
        self.lambda_a, self.lambda_b = lambda_a, lambda_b
        squeeze = max(channels // reduction, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze, 2 * k * channels, 1)
        # initial pieces: a^1 = 1, the rest 0 (ReLU)
        self.register_buffer("alpha", torch.tensor([1.0] + [0.0] * (k - 1)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residuals = 2.0 * torch.sigmoid(self.fc2(self.relu(self.fc1(self.pool(x))))) - 1.0
        coeffs = torch.split(residuals, self.channels, dim=1)  # Δa^1..Δa^K, Δb^1..Δb^K, (N, C, 1, 1)
        out = None
        for i in range(self.k):
            piece = x * (self.alpha[i] + self.lambda_a * coeffs[i]) + self.lambda_b * coeffs[self.k + i]
            out = piece if out is None else torch.maximum(out, piece)
        return out


class ConvBNDyReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, act: bool = True):
        layers = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if act:
            layers.append(DyReLUB(out_channels))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = in_channels * expand_ratio
        layers = [ConvBNDyReLU(in_channels, hidden, 1)] if expand_ratio != 1 else []
        layers += [
            ConvBNDyReLU(hidden, hidden, 3, stride, groups=hidden),
            ConvBNDyReLU(hidden, out_channels, 1, act=False),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class DyReLUMobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 dropout: float = 0.2):
        super().__init__()
        channels = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNDyReLU(in_chans, channels, 3, 2)]
        for expand, out, repeats, stride in MBV2_STAGES:
            out = make_divisible(out * width_mult)
            for i in range(repeats):
                features.append(InvertedResidual(channels, out, stride if i == 0 else 1, expand))
                channels = out
        features.append(ConvBNDyReLU(channels, last, 1))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        # He init for the convolutions; the hyper functions keep PyTorch's default (fan-in) init, as
        # the authors' DY-ReLU module: He fan-out init saturates 2σ(·) - 1, so untrained slopes would
        # swing over their whole range and activations grow with depth.
        hyper = {id(m) for act in self.modules() if isinstance(act, DyReLUB) for m in act.modules()}
        for m in self.modules():
            if id(m) in hyper:
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model("dynamic-relu")
def dynamic_relu(**kwargs) -> DyReLUMobileNetV2:
    return DyReLUMobileNetV2(**kwargs)
