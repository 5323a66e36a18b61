"""SINet (Park et al., "SINet: Extreme Lightweight Portrait Segmentation Networks with Spatial Squeeze
Modules and Information Blocking Decoder", WACV 2020).

Reference configuration (the paper's 0.087M-parameter model, 224x224 input, 2 classes; the authors'
release clovaai/ext_portrait_segmentation, models/SINet.py with p=2, q=8, chnn=1):
- Encoder: CBR 3x3/2 to 12 channels (conv → BN → PReLU); a depthwise-separable 3x3/2 conv to 16 with
  SINet's squeeze block between depthwise and pointwise (global average → FC → PReLU [→ FC → PReLU],
  multiplied in: the gate is a PReLU, not a sigmoid); two S2 modules (48 channels) at stride 4; BN +
  PReLU over concat(16, 48); the separable squeeze conv 3x3/2 to 48; eight S2 modules (96 channels)
  at stride 8; BN + PReLU over concat(48, 96); 1x1 conv to the classes.
- S2 module (spatial squeeze): grouped 1x1 conv (2 groups) to half the width, channel shuffle, then two
  S2 blocks on that same tensor, concatenated, (+ the input when widths match), BN, PReLU. An S2
  block: average pool r x r (r > 1 only), depthwise k x k + BN, PReLU, 1x1 conv, bilinear upsampling
  by r (align_corners), BN. (k, r) per module and branch as the release:
  [(3,1),(5,1)], [(3,1),(3,1)] at stride 4 and [(3,1),(5,1)], [(3,1),(3,1)], [(5,1),(3,2)],
  [(5,2),(3,4)], [(3,1),(3,1)], [(5,1),(5,1)], [(3,2),(3,4)], [(3,1),(5,2)] at stride 8.
- Information blocking decoder: the encoder's logits upsampled x2 + BN (stride 4); their confidence
  (max softmax probability) gates the stride-4 features: the 1x1 CBR of the last stride-4 S2 module's
  output is multiplied by (1 - confidence) and added to the upsampled logits; x2 upsampling + BN, then
  x2 upsampling and a 3x3 conv: logits at the input resolution.

Decisions:
- Module names follow the release, so its state dicts load: the release's Test_SINet.json builds the
  2-class model (the default here, the paper's) for its result/SINet/SINet.pth. Its training config
  SINet.json trains the encoder alone (Enc_SINet) with the Lovasz hinge.
- Export-friendly forms of the same arithmetic: the squeeze block's average pool over the whole map is
  a mean over H and W, and the channel shuffle is unflatten/transpose/flatten over channels only, so
  no traced spatial size freezes the graph (the input size may change, in multiples of 32: the
  stride-8 maps are pooled by 4 and upsampled back).
- Random init only: `place_random_head` scales the first conv to the tiny inputs (below) and
  re-estimates the BN statistics, and sets the last BN's shift to 0 (see its docstring).
- Input normalisation: the release standardises BGR pixels with its data set's mean and std and then
  divides by 255, i.e. (p - mean) / (255 std); recipes/segmentation/sinet.yaml holds those figures in
  RGB order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model

BN_EPS = 1e-3
# (kernel, pool) of the two S2 blocks in each S2 module: 2 modules at stride 4, then 8 at stride 8
S2_CONFIG = (
    ((3, 1), (5, 1)), ((3, 1), (3, 1)),
    ((3, 1), (5, 1)), ((3, 1), (3, 1)), ((5, 1), (3, 2)), ((5, 2), (3, 4)),
    ((3, 1), (3, 1)), ((5, 1), (5, 1)), ((3, 2), (3, 4)), ((3, 1), (5, 2)),
)
DIMS = (16, 48, 96)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """nn.UpsamplingBilinear2d: bilinear with aligned corners."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=True)


class CBR(nn.Module):
    """Conv (no bias) → BN → PReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, bias=False)
        self.bn = _bn(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class BR(nn.Module):
    """BN → PReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = _bn(channels)
        self.act = nn.PReLU(channels)

    def forward(self, x):
        return self.act(self.bn(x))


class SqueezeBlock(nn.Module):
    """Channel weights from the global average: FC → PReLU (→ FC → PReLU when `divide` > 1)."""

    def __init__(self, channels: int, divide: float):
        super().__init__()
        if divide > 1:
            mid = int(channels / divide)
            self.dense = nn.Sequential(nn.Linear(channels, mid), nn.PReLU(mid), nn.Linear(mid, channels),
                                       nn.PReLU(channels))
        else:
            self.dense = nn.Sequential(nn.Linear(channels, channels), nn.PReLU(channels))

    def forward(self, x):
        weights = self.dense(x.mean(dim=(2, 3)))
        return x * weights[:, :, None, None]


class SESeparableCBR(nn.Module):
    """Depthwise k x k (stride) → squeeze block → pointwise 1x1 → BN → PReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, divide: float):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=in_channels,
                      bias=False),
            SqueezeBlock(in_channels, divide),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )
        self.bn = _bn(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class S2Block(nn.Module):
    """[avg pool r] → depthwise k x k + BN → PReLU → 1x1 → [bilinear x r] → BN."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, pool: int):
        super().__init__()
        self.pool = pool
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, kernel_size, 1, (kernel_size - 1) // 2, groups=in_channels,
                      bias=False),
            _bn(in_channels),
        )
        self.act_conv1x1 = nn.Sequential(nn.PReLU(in_channels), nn.Conv2d(in_channels, out_channels, 1, bias=False))
        self.bn = _bn(out_channels)

    def forward(self, x):
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool, self.pool)
        x = self.act_conv1x1(self.conv(x))
        if self.pool > 1:
            x = upsample(x, self.pool)
        return self.bn(x)


class GroupedConv1x1(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False, groups=groups)

    def forward(self, x):
        return self.conv(x)


class S2Module(nn.Module):
    """Grouped 1x1 reduce → channel shuffle → two S2 blocks on it, concatenated → (+ x) → BN → PReLU."""

    def __init__(self, in_channels: int, out_channels: int, config, residual: bool = True):
        super().__init__()
        self.groups = len(config)
        width = out_channels // self.groups
        extra = out_channels - self.groups * width
        self.c1 = GroupedConv1x1(in_channels, width, self.groups)
        for i, (kernel, pool) in enumerate(config):
            self.add_module(f"d{i + 1}", S2Block(width, width + (extra if i == 0 else 0), kernel, pool))
        self.BR = BR(out_channels)
        self.residual = residual

    def forward(self, x):
        reduced = self.c1(x)
        # channel shuffle: (groups, C/groups) → (C/groups, groups) over the channel axis only
        reduced = reduced.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)
        out = torch.cat([getattr(self, f"d{i + 1}")(reduced) for i in range(self.groups)], dim=1)
        if self.residual:
            out = out + x
        return self.BR(out)


class SINetEncoder(nn.Module):
    def __init__(self, num_classes: int, p: int = 2, q: int = 8, in_chans: int = 3):
        super().__init__()
        dim1, dim2, dim3 = DIMS
        self.level1 = CBR(in_chans, 12, 3, 2)
        self.level2_0 = SESeparableCBR(12, dim1, 3, 2, divide=1)
        self.level2 = nn.ModuleList(
            S2Module(dim1 if i == 0 else dim2, dim2, S2_CONFIG[i], residual=i > 0) for i in range(p))
        self.BR2 = BR(dim2 + dim1)
        self.level3_0 = SESeparableCBR(dim2 + dim1, dim2, 3, 2, divide=2)
        self.level3 = nn.ModuleList(
            S2Module(dim2 if i == 0 else dim3, dim3, S2_CONFIG[p + i], residual=i > 0) for i in range(q))
        self.BR3 = BR(dim3 + dim2)
        self.classifier = GroupedConv1x1(dim3 + dim2, num_classes, 1)


class SINet(nn.Module):
    """Per-pixel class logits [B, classes, H, W] at the input resolution (H, W multiples of 32)."""

    def __init__(self, num_classes: int = 2, p: int = 2, q: int = 8, in_chans: int = 3):
        super().__init__()
        self.encoder = SINetEncoder(num_classes, p, q, in_chans)
        self.bn_3 = _bn(num_classes)
        self.level2_C = CBR(DIMS[1], num_classes, 1, 1)
        self.bn_2 = _bn(num_classes)
        self.classifier = nn.Sequential(nn.UpsamplingBilinear2d(scale_factor=2),
                                        nn.Conv2d(num_classes, num_classes, 3, 1, 1, bias=False))

    def forward(self, x):
        enc = self.encoder
        stage2_0 = enc.level2_0(enc.level1(x))  # stride 4
        stage2 = stage2_0
        for module in enc.level2:
            stage2 = module(stage2)
        stage3_0 = enc.level3_0(enc.BR2(torch.cat((stage2_0, stage2), dim=1)))  # stride 8
        stage3 = stage3_0
        for module in enc.level3:
            stage3 = module(stage3)
        logits8 = enc.classifier(enc.BR3(torch.cat((stage3_0, stage3), dim=1)))
        # information blocking: where the coarse prediction is confident, the fine features are blocked
        coarse = self.bn_3(upsample(logits8, 2))  # stride 4
        confidence = coarse.softmax(dim=1).amax(dim=1, keepdim=True)
        fine = self.level2_C(stage2) * (1 - confidence) + coarse
        return self.classifier(self.bn_2(upsample(fine, 2)))

    def place_random_head(self, warm_up_inputs) -> None:
        """Random weights only. The release's inputs are tiny ((p - mean) / (255 std), about ±0.01), so
        the first conv's random outputs have a variance near 1e-6, far below the BN's eps of 1e-3: that
        BN then shrinks the signal ~30x instead of normalising it, and the whole network carries a 3%
        signal on its BN shifts (INT8 rounding erases it). A trained first conv is scaled to its
        inputs; here it is scaled to unit output variance on the warm-up images, and every BN's
        statistics are estimated again on the rescaled network."""
        x = warm_up_inputs[0]
        conv = self.encoder.level1.conv
        conv.weight.mul_(1.0 / float(conv(x).std()))
        norms = [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average
        self.train()
        self(x)
        for bn in norms:
            bn.momentum = 0.1
        self.eval()
        # the last BN feeds the bias-free final conv: its random-init shift would become a constant
        # class offset (measured: 90-100% of pixels one class), so it goes back to 0
        nn.init.zeros_(self.bn_2.bias)


@register_model("sinet")
def sinet(**kwargs) -> SINet:
    return SINet(**kwargs)
