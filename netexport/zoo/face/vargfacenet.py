"""VarGFaceNet (Yan et al., "VarGFaceNet: An Efficient Variable Group Convolutional Neural Network for
Lightweight Face Recognition", ICCV Workshops 2019).

Variable group convolution (VarGNet, Zhang et al. 2019): a k x k convolution whose groups hold a fixed
number S of input channels (S = 8 here) instead of a fixed number of groups, so its cost grows with
the width like a pointwise conv's. A "separable" unit is that grouped conv (output = input x factor)
→ BN → PReLU, then a pointwise conv → BN (→ PReLU).

Reference configuration (paper Table 1 and the authors' MXNet symbol, zma-c-137/VarGFaceNet
VarGFaceNet.py, which the paper's numbers come from): 112x112 input, channel multiplier 1.25 on
(32, 64, 128, 256), expansion factor 2, PReLU everywhere, BN eps 2e-5.
- Head setting (keeps resolution early): 3x3 conv stride 1 to 40 channels, then one normal block with
  factor 1 and stride 2 (56x56).
- Stages at 28x28 (80 channels), 14x14 (160), 7x7 (320) with 3, 7 and 4 blocks: the first block of
  each is a down-sampling block (two stride-2 separable branches summed, a separable unit, plus a
  stride-2 separable shortcut), the others normal blocks (two separable units, squeeze-and-excitation
  with reduction 4 and a PReLU inside, identity shortcut); each block ends in a PReLU after the add.
- Embedding setting: 1x1 conv to 1024 + BN + PReLU, a 7x7 variable group conv (1024 → 1024, S = 8,
  no padding: 1x1) + BN, pointwise conv to 512 + BN + PReLU, then a fully connected layer 512 → 512
  and BN: the 512-d embedding (not L2-normalised in the network).

Decisions:
- Module names are ours; the structure, widths and the layers with biases (only the SE convs and the
  fully connected layer) are the authors' symbol's, so its parameter count is matched exactly.
- The input is fixed at 112x112: the 7x7 embedding conv must reduce the 7x7 map to 1x1 for the FC.
- The input normalisation is the symbol's (pixels - 127.5) / 128 (recipe: mean 0.5, std 128/255).
"""

from __future__ import annotations

from torch import nn

from ..registry import register_model

GROUP_SIZE = 8  # S: input channels per group of a variable group convolution
BN_EPS = 2e-5
MULTIPLIER = 1.25
WIDTHS = (32, 64, 128, 256)  # before the multiplier: head, stages 2-4
STAGE_BLOCKS = (3, 7, 4)
LAST_CHANNELS = 1024


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class SeparableVarG(nn.Module):
    """Variable group conv (k x k, groups of S input channels, out = in x factor) → BN → PReLU →
    pointwise conv → BN (→ PReLU unless `pointwise_act` is False)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, factor: int = 2,
                 kernel_size: int = 3, pointwise_act: bool = True):
        super().__init__()
        mid = in_channels * factor
        self.group_conv = nn.Conv2d(in_channels, mid, kernel_size, stride, kernel_size // 2,
                                    groups=in_channels // GROUP_SIZE, bias=False)
        self.group_bn = _bn(mid)
        self.group_act = nn.PReLU(mid)
        self.pointwise = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.pointwise_bn = _bn(out_channels)
        self.pointwise_act = nn.PReLU(out_channels) if pointwise_act else nn.Identity()

    def forward(self, x):
        x = self.group_act(self.group_bn(self.group_conv(x)))
        return self.pointwise_act(self.pointwise_bn(self.pointwise(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation with biased 1x1 convs and a PReLU between them (reduction 4)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, channels // reduction, 1)
        self.act = nn.PReLU(channels // reduction)
        self.expand = nn.Conv2d(channels // reduction, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class NormalBlock(nn.Module):
    """Two separable units (the second without its last PReLU) + SE, plus the shortcut, then PReLU.
    The shortcut is the identity, or (in the head) a stride-2 separable unit without its last PReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, factor: int = 2):
        super().__init__()
        identity = stride == 1 and in_channels == out_channels
        self.shortcut = nn.Identity() if identity else SeparableVarG(in_channels, out_channels, stride, factor,
                                                                      pointwise_act=False)
        self.sep1 = SeparableVarG(in_channels, out_channels, stride, factor)
        self.sep2 = SeparableVarG(out_channels, out_channels, 1, factor, pointwise_act=False)
        self.se = SqueezeExcite(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x):
        return self.act(self.se(self.sep2(self.sep1(x))) + self.shortcut(x))


class DownsampleBlock(nn.Module):
    """Two stride-2 separable branches summed → PReLU → separable unit, plus a stride-2 separable
    shortcut, then PReLU (the branch-merge block)."""

    def __init__(self, in_channels: int, out_channels: int, factor: int = 2):
        super().__init__()
        self.shortcut = SeparableVarG(in_channels, out_channels, 2, factor, pointwise_act=False)
        self.branch1 = SeparableVarG(in_channels, out_channels, 2, factor, pointwise_act=False)
        self.branch2 = SeparableVarG(in_channels, out_channels, 2, factor, pointwise_act=False)
        self.merge_act = nn.PReLU(out_channels)
        self.sep2 = SeparableVarG(out_channels, out_channels, 1, factor, pointwise_act=False)
        self.act = nn.PReLU(out_channels)

    def forward(self, x):
        merged = self.merge_act(self.branch1(x) + self.branch2(x))
        return self.act(self.sep2(merged) + self.shortcut(x))


class Embedding(nn.Module):
    """1x1 conv to 1024 → 7x7 variable group conv to 1x1 → pointwise to 512 → FC 512 → BN."""

    def __init__(self, in_channels: int, last_channels: int = LAST_CHANNELS, embedding_size: int = 512):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(in_channels, last_channels, 1, bias=False), _bn(last_channels),
                                    nn.PReLU(last_channels))
        self.group_conv = nn.Sequential(
            nn.Conv2d(last_channels, last_channels, 7, groups=last_channels // GROUP_SIZE, bias=False),
            _bn(last_channels))
        self.pointwise = nn.Sequential(nn.Conv2d(last_channels, last_channels // 2, 1, bias=False),
                                       _bn(last_channels // 2), nn.PReLU(last_channels // 2))
        self.fc = nn.Linear(last_channels // 2, embedding_size)
        self.bn = nn.BatchNorm1d(embedding_size, eps=BN_EPS)

    def forward(self, x):
        x = self.pointwise(self.group_conv(self.expand(x)))
        return self.bn(self.fc(x.flatten(1)))


class VarGFaceNet(nn.Module):
    def __init__(self, embedding_size: int = 512, in_chans: int = 3):
        super().__init__()
        widths = [int(w * MULTIPLIER) for w in WIDTHS]
        self.stem = nn.Sequential(nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False), _bn(widths[0]),
                                  nn.PReLU(widths[0]))
        self.head = NormalBlock(widths[0], widths[0], stride=2, factor=1)
        stages = []
        for in_width, out_width, blocks in zip(widths, widths[1:], STAGE_BLOCKS):
            stages.append(nn.Sequential(DownsampleBlock(in_width, out_width),
                                        *(NormalBlock(out_width, out_width) for _ in range(blocks - 1))))
        self.stages = nn.Sequential(*stages)
        self.embedding = Embedding(widths[-1], LAST_CHANNELS, embedding_size)
        self._init_weights()

    def _init_weights(self):
        # insightface training (the authors' framework): Xavier gaussian, fan-out, magnitude 2 (He
        # normal over fan-out) for weights, zero biases; PReLU slopes 0.25 (torch's default)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.embedding(self.stages(self.head(self.stem(x))))

    def place_random_head(self, _warm_up_inputs=None) -> None:
        """Random weights only: the random-init BN shift (recipe `random_init.bn_shift`, which keeps
        the deep stack stable) would also put +shift on every dimension of the embedding BN's output,
        a constant that dominates any cosine between embeddings. Its shift goes back to the paper's 0."""
        nn.init.zeros_(self.embedding.bn.bias)


@register_model("vargfacenet")
def vargfacenet(**kwargs) -> VarGFaceNet:
    return VarGFaceNet(**kwargs)
