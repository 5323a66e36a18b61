"""CCNet (Huang et al., "CCNet: Criss-Cross Attention for Semantic Segmentation", ICCV 2019).

Reference configuration (Cityscapes, Section 4): ImageNet ResNet-101 with its last two
down-samplings replaced by dilated convolutions (output stride 8: layer3 dilation 2, layer4
dilation 4 in every block, as the authors' code), then the recurrent criss-cross attention module
(RCCA, Fig. 3): a 3x3 conv reduces 2048 → 512 channels, one criss-cross attention module is
applied R = 2 times with shared weights, a 3x3 conv follows, the result is concatenated with the
backbone features and a 3x3 conv + BN + ReLU + dropout 0.1 + 1x1 classifier gives 19 classes.
Query/key have C/8 channels. In training an auxiliary FCN head on layer3 (deep supervision) adds a
second output; in eval only `out` is returned, upsampled bilinearly (align_corners=False) to the
input size.

Criss-cross attention is written with plain permutes and batched matmuls over columns and rows;
each position attends to the H + W - 1 positions on its row and column: its own position appears in
both sets, so the column affinities get -inf on their diagonal (as the paper's Eq. 2 counts it
once). This is the model's own computation, not a rewrite.

Decisions: the backbone is netexport's torchvision-layout ResNet-101 (7x7 stem) — the authors'
code uses a three-3x3-conv "deep" stem and InPlace-ABN with leaky ReLU; the paper describes neither,
so plain BN + ReLU are used. The authors initialise the attention scale γ to 0, which would leave the
attention path out of every parity check of an untrained model: γ starts at 1 unless
`zero_init_attention=True` (training from scratch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..classification.resnet import Bottleneck, ResNet
from ..layers import ConvBNAct
from ..registry import register_model


def _dilate(layer: nn.Sequential, dilation: int) -> None:
    """Turn a strided ResNet stage into a dilated one: same weights, stride 1, every 3x3 dilated."""
    for block in layer:
        conv = block.conv2
        conv.stride, conv.dilation, conv.padding = (1, 1), (dilation, dilation), (dilation, dilation)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)


def dilated_resnet101(in_chans: int = 3) -> ResNet:
    """ResNet-101 at output stride 8 (layer3 dilation 2, layer4 dilation 4), without its head.
    Parameter names stay torchvision's, so ImageNet checkpoints load unchanged."""
    backbone = ResNet(Bottleneck, [3, 4, 23, 3], num_classes=0, in_chans=in_chans)
    _dilate(backbone.layer3, 2)
    _dilate(backbone.layer4, 4)
    return backbone


class FCNHead(nn.Sequential):
    """The auxiliary (deep supervision) head on layer3: 3x3 conv, BN, ReLU, dropout, 1x1 classifier."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float, channels: int = 512):
        super().__init__(
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(channels, num_classes, 1),
        )


class CrissCrossAttention(nn.Module):
    """Eq. 1-2: every position aggregates values along its row and column, softmax over both."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query(x), self.key(x), self.value(x)
        height = x.shape[2]
        # column affinities (n, W, H, H'): <q[:, :, i, j], k[:, :, i', j]>
        col = torch.matmul(q.permute(0, 3, 2, 1), k.permute(0, 3, 1, 2))
        # the diagonal from the traced height (Range + Equal), so dynamic-shape exports stay size-generic;
        # torch.eye would export as EyeLike(bool)
        rows = torch.arange(height, device=x.device)
        diagonal = rows[:, None] == rows[None, :]
        col = col.masked_fill(diagonal, float("-inf"))
        # row affinities (n, H, W, W'): <q[:, :, i, j], k[:, :, i, j']>
        row = torch.matmul(q.permute(0, 2, 3, 1), k.permute(0, 2, 1, 3))
        attention = torch.softmax(torch.cat([col.permute(0, 2, 1, 3), row], dim=3), dim=3)
        att_col = attention[..., :height].permute(0, 2, 1, 3)  # (n, W, H, H')
        att_row = attention[..., height:]  # (n, H, W, W')
        out_col = torch.matmul(att_col, v.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
        out_row = torch.matmul(att_row, v.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.gamma * (out_col + out_row) + x


class RCCAHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, recurrence: int = 2, channels: int = 512,
                 dropout: float = 0.1):
        super().__init__()
        inter = in_channels // 4
        self.recurrence = recurrence
        self.reduce = ConvBNAct(in_channels, inter, 3)
        self.cca = CrissCrossAttention(inter)
        self.post = ConvBNAct(inter, inter, 3)
        self.bottleneck = ConvBNAct(in_channels + inter, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.reduce(x)
        for _ in range(self.recurrence):  # the same module (shared weights) R times
            out = self.cca(out)
        out = self.post(out)
        out = self.bottleneck(torch.cat([x, out], 1))
        return self.classifier(self.dropout(out))


class CCNet(nn.Module):
    def __init__(self, num_classes: int = 19, in_chans: int = 3, recurrence: int = 2,
                 zero_init_attention: bool = False):
        super().__init__()
        self.backbone = dilated_resnet101(in_chans)
        self.head = RCCAHead(2048, num_classes, recurrence)
        self.aux_head = FCNHead(1024, num_classes, dropout=0.1)
        # He init for the conv-BN layers; the attention projections keep PyTorch's fan-in default:
        # with He fan-out init the affinities reach O(100), the softmax becomes an argmax over
        # near-ties and fp32 rounding alone flips it (measured max |Δ| 0.2 on 38 at 769x769).
        projections = {id(m) for m in self.head.cca.modules()}
        for m in self.head.modules():
            if isinstance(m, nn.Conv2d) and id(m) not in projections:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if zero_init_attention:
            nn.init.zeros_(self.head.cca.gamma)

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        _, _, c4, c5 = self.backbone.forward_stages(x)
        out = F.interpolate(self.head(c5), size=size, mode="bilinear", align_corners=False)
        if self.training:
            aux = F.interpolate(self.aux_head(c4), size=size, mode="bilinear", align_corners=False)
            return out, aux
        return out


@register_model("ccnet")
def ccnet(**kwargs) -> CCNet:
    return CCNet(**kwargs)
