"""GoogLeNet / Inception-v1 (Szegedy et al., "Going Deeper with Convolutions", CVPR 2015).

The paper's network as trained in BVLC Caffe (models/bvlc_googlenet): no batch norm, biased convs,
local response norm after the first pool and after conv2, max pools with Caffe's ceil rounding
(so 224 gives the paper's 112/56/28/14/7 grid), real 5x5 branches, global average pool, dropout 0.4.
Two auxiliary classifiers (after 4a and 4d) run only in train mode; eval returns just the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvBNAct
from ..registry import register_model


class LocalResponseNorm(nn.Module):
    """Cross-channel LRN, x / (k + alpha/n * sum of x^2 over n neighbouring channels)^beta (Caffe's).

    Same maths as nn.LocalResponseNorm, written as a channel-wise 3D average pool so the exported
    graph is Unsqueeze → AveragePool → Squeeze with static pads (the functional form exports its
    padding through shape arithmetic and If nodes).
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        if size % 2 != 1:
            raise ValueError("LocalResponseNorm here takes an odd (centred) window")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        # zero-padded average of x^2 over the channel window (count_include_pad: divides by n)
        avg = F.avg_pool3d((x * x).unsqueeze(1), (self.size, 1, 1), stride=1, padding=(self.size // 2, 0, 0))
        return x / (avg.squeeze(1) * self.alpha + self.k).pow(self.beta)


def conv_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> ConvBNAct:
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, bn=False)


class Inception(nn.Module):
    """1x1 | 1x1→3x3 | 1x1→5x5 | 3x3 max pool→1x1, concatenated (Table 1 columns)."""

    def __init__(
        self, in_ch: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int
    ):
        super().__init__()
        self.branch1 = conv_relu(in_ch, ch1x1, 1)
        self.branch2 = nn.Sequential(conv_relu(in_ch, ch3x3red, 1), conv_relu(ch3x3red, ch3x3, 3))
        self.branch3 = nn.Sequential(conv_relu(in_ch, ch5x5red, 1), conv_relu(ch5x5red, ch5x5, 5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_relu(in_ch, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class AuxClassifier(nn.Module):
    """5x5/3 average pool → 1x1 conv 128 → fc 1024 → dropout 0.7 → fc (paper section 5)."""

    def __init__(self, in_channels: int, num_classes: int, drop_rate: float = 0.7):
        super().__init__()
        self.conv = conv_relu(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x):
        h, w = x.shape[-2:]
        if (h - 5) // 3 + 1 == 4 and (w - 5) // 3 + 1 == 4:  # the paper's 14x14 grid (224 input)
            x = F.avg_pool2d(x, 5, 3)
        else:  # other input sizes (train mode only): pool to the same 4x4 grid the fc expects
            x = F.adaptive_avg_pool2d(x, 4)
        x = torch.flatten(self.conv(x), 1)
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


class GoogLeNet(nn.Module):
    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True, drop_rate: float = 0.4
    ):
        super().__init__()
        self.conv1 = conv_relu(in_chans, 64, 7, 2)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.lrn1 = LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv2 = conv_relu(64, 64, 1)
        self.conv3 = conv_relu(64, 192, 3)
        self.lrn2 = LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)

        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)

        self.aux1 = AuxClassifier(512, num_classes) if aux_logits else None
        self.aux2 = AuxClassifier(528, num_classes) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # the paper's 7x7 average pool at 224
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(1024, num_classes)
        self.num_features = 1024
        self._init_weights()

    def _init_weights(self) -> None:
        # He (fan-in) normal, zero biases. BVLC Caffe's xavier + 0.2-bias fillers leave this 22-layer
        # net without BN input-insensitive at random init (logits vary ~400x less between images than
        # between classes), which makes the exported graph untestable (DESIGN.md §4).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.lrn1(x)
        x = self.lrn2(self.conv3(self.conv2(x)))
        x = self.maxpool2(x)
        x = self.inception3b(self.inception3a(x))
        x = self.maxpool3(x)
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        if aux1 is not None:
            return x, aux1, aux2
        return x


@register_model
def googlenet(**kwargs):
    return GoogLeNet(**kwargs)
