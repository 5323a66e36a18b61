"""LRNNet (Jiang et al., "LRNNet: A Light-Weighted Network with Efficient Reduced Non-Local
Operation for Real-Time Semantic Segmentation", ICME Workshops 2020, arXiv:2006.02706).

Reference configuration (Cityscapes, 19 classes, 1024x512 input, 0.68M parameters):
- encoder: LEDNet's three-stage ResNet-style layout (see lednet.py) with the factorized
  convolution block (FCB) in place of SS-nbt: a downsampling unit to 32 channels and 3 FCB, a
  downsampling unit to 64 and 2 FCB, a downsampling unit to 128 and 8 FCB with dilations
  1, 2, 5, 9, 2, 5, 9, 17 (dilated convolutions keep the output at 1/8).
- FCB (Fig. 2c): the channels are split in two halves; each half models short-range,
  less informative features with a pair of undilated 1-D convolutions (3x1 then 1x3 on one half,
  1x3 then 3x1 on the other; ReLU between, BN + ReLU after); the halves are merged and a 3x3
  depthwise convolution with the block's dilation (long-range, 2-D) followed by a 1x1 pointwise
  convolution (+ BN) mixes them; residual sum, ReLU, channel shuffle.
- decoder: the efficient reduced non-local module (SVN) in two branches: the lower branch is the
  input (residual); the upper branch is a non-local bottleneck whose keys and values are not every
  position but the dominant singular vectors of spatial sub-regions of the embedded feature map.
  A 1x1 classifier gives the classes at 1/8, upsampled x8 bilinearly to the input.

The regional singular vectors are computed in the graph by power iteration (matmuls and norms,
exportable as they are): for a region's C'xn matrix M, u ← normalise(M Mᵀ u) from the region's
mean vector, 3 steps (an approximation where the top two singular values are close; the number
of steps is our choice); the region is represented by σ·u/√n with σ = ‖Mᵀu‖, so a region of identical
vectors f is represented by f itself (the start vector also fixes u's sign). Exportable as it is;
written so FP16 does not overflow (see `regional_singular_vectors`).

Decisions (the paper's text does not give them; its authors released no code): embeddings as the
non-local block of Wang et al. — query, key and value 1x1 convs to C' = C/2 = 64 channels, an output
1x1 conv back to C with BN added to the input; keys from the key embedding's regional singular
vectors, values from the value embedding's; softmax(q·k/√C') over the regions; regions of 8x8
positions of the 1/8 map (so input sides are multiples of 64); FCB convs with biases and BN eps 1e-3
as LEDNet, dropout as LEDNet (identity in eval). With these the count is 676,287, 0.5% below
the paper's rounded 0.68M.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import centre_class_logits
from ..registry import register_model
from .lednet import BN_EPS, channel_shuffle, three_stage_encoder

REGION = 8  # sub-region side, in positions of the 1/8 feature map
POWER_STEPS = 3


class FCB(nn.Module):
    """Factorized convolution block."""

    def __init__(self, channels: int, dilation: int, dropout: float):
        super().__init__()
        half = channels // 2

        def branch(first_vertical: bool) -> nn.Sequential:
            vertical = nn.Conv2d(half, half, (3, 1), padding=(1, 0))
            horizontal = nn.Conv2d(half, half, (1, 3), padding=(0, 1))
            a, b = (vertical, horizontal) if first_vertical else (horizontal, vertical)
            return nn.Sequential(a, nn.ReLU(inplace=True), b, nn.BatchNorm2d(half, eps=BN_EPS), nn.ReLU(inplace=True))

        self.left = branch(True)
        self.right = branch(False)
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, groups=channels)
        self.bn_dw = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.pointwise = nn.Conv2d(channels, channels, 1)
        self.bn_pw = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.dropout = nn.Dropout2d(dropout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        left, right = x.chunk(2, dim=1)
        out = torch.cat([self.left(left), self.right(right)], 1)
        out = self.dropout(self.bn_pw(self.pointwise(self.bn_dw(self.depthwise(out)))))
        return channel_shuffle(self.relu(x + out), 2)


def regional_singular_vectors(x: torch.Tensor, region: int = REGION, steps: int = POWER_STEPS) -> torch.Tensor:
    """(N, C, H, W) → (N, S, C): each region's dominant left singular vector scaled by σ/√n.

    Regions are `region` x `region` tiles in row-major order (H and W multiples of `region`).
    Written so every intermediate stays O(1) (FP16-safe): each region is divided by its largest
    |entry| p before the Gram matrix G = M Mᵀ / (n p²) is formed, the iterate is rescaled by its
    largest entry, and σ/√n is read back as p · sqrt(uᵀ G u)."""
    n, c, h, w = x.shape
    tiles = x.reshape(n, c, h // region, region, w // region, region)
    tiles = tiles.permute(0, 2, 4, 1, 3, 5).reshape(n, -1, c, region * region)  # (N, S, C, n)
    peak = tiles.abs().amax(dim=(2, 3), keepdim=True) + 1e-6  # (N, S, 1, 1)
    unit = tiles / (peak * float(region))  # M / (p √n)
    gram = torch.matmul(unit, unit.transpose(2, 3))  # (N, S, C, C)
    u = unit.mean(dim=3, keepdim=True)  # (N, S, C, 1): start from the region mean (fixes the sign)
    for _ in range(steps):
        u = torch.matmul(gram, u)
        u = u / (u.abs().amax(dim=2, keepdim=True) + 1e-6)
    u = u / (u.norm(dim=2, keepdim=True) + 1e-6)
    scale = torch.sqrt(torch.matmul(u.transpose(2, 3), torch.matmul(gram, u)).clamp_min(0.0)) * peak  # σ/√n
    return (u * scale).squeeze(3)


class SVN(nn.Module):
    """Reduced non-local module: residual + attention of every position over regional singular vectors."""

    def __init__(self, channels: int, reduced: int, region: int = REGION):
        super().__init__()
        self.region = region
        self.reduced = reduced
        self.query = nn.Conv2d(channels, reduced, 1)
        self.key = nn.Conv2d(channels, reduced, 1)
        self.value = nn.Conv2d(channels, reduced, 1)
        self.out = nn.Sequential(nn.Conv2d(reduced, channels, 1), nn.BatchNorm2d(channels, eps=BN_EPS))

    def forward(self, x):
        n, _, h, w = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)  # (N, HW, C')
        keys = regional_singular_vectors(self.key(x), self.region)  # (N, S, C')
        values = regional_singular_vectors(self.value(x), self.region)
        attention = torch.softmax(torch.matmul(query, keys.transpose(1, 2)) * self.reduced**-0.5, dim=-1)
        context = torch.matmul(attention, values).transpose(1, 2).reshape(n, self.reduced, h, w)
        return x + self.out(context)


class LRNNet(nn.Module):
    def __init__(self, num_classes: int = 19, in_chans: int = 3, region: int = REGION):
        super().__init__()
        self.encoder = three_stage_encoder(in_chans, FCB)
        self.svn = SVN(128, 64, region)
        self.classifier = nn.Conv2d(128, num_classes, 1)

    def forward(self, x):
        out = self.classifier(self.svn(self.encoder(x)))
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def place_random_head(self, warm_up_inputs) -> None:
        centre_class_logits(self, self.classifier, warm_up_inputs)


@register_model("lrnnet")
def lrnnet(**kwargs) -> LRNNet:
    return LRNNet(**kwargs)
