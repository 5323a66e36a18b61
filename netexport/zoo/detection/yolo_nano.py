"""YOLO Nano (Wong et al., "YOLO Nano: a Highly Compact You Only Look Once Convolutional Neural Network
for Object Detection", arXiv:1910.01271, 2019).

A 416x416 detector for PASCAL VOC (20 classes; 69.1% mAP on VOC2007 test; "model size ~4.0MB",
4.57B operations), designed by human-machine collaboration (generative synthesis). Its modules:
- PEP(x): 1x1 projection to x channels, 1x1 expansion, 3x3 depthwise, 1x1 linear projection to the
  output width (residual when input and output widths match at stride 1);
- EP: 1x1 expansion, 3x3 depthwise (stride 1 or 2), 1x1 linear projection (residual likewise);
- FCA(8): fully-connected attention, a squeeze-and-excitation gate with reduction ratio 8;
and three YOLOv3-style heads at strides 32, 16, 8 (13x13, 26x26, 52x52 at 416x416).

Channel configuration, read from the paper's Figure 1 (output width; PEP's projection width x):
  conv3x3 12, conv3x3/2 24, PEP(7) 24, EP/2 70, PEP(25) 70, PEP(24) 70, EP/2 150, PEP(56) 150,
  conv1x1 150, FCA(8), PEP(73) 150, PEP(71) 150, PEP(75) 150 [→ 52x52 skip],
  EP/2 325, PEP(132/124/141/140/137/135/133) 325, PEP(140) 325 [→ 26x26 skip],
  EP/2 545, PEP(276) 545, conv1x1 230, EP 489, PEP(213) 469, conv1x1 189 [→ 13x13 head],
  13x13: EP 462, conv1x1 75 (yolo_13);  conv1x1 105, upsample 2x, concat the 26x26 skip (430),
  PEP(113) 325, PEP(99) 207, conv1x1 98 [→ 26x26 head: EP 183, conv1x1 75 (yolo_26)];
  conv1x1 47, upsample 2x, concat the 52x52 skip (197), PEP(58) 122, PEP(52) 87, PEP(47) 93,
  conv1x1 75 (yolo_52).

Decisions (the paper gives none of these):
- Size. The paper states a model size, ~4.0 MB (">15.1x smaller than Tiny YOLOv2"), not a
  parameter count. At 4 bytes per weight that would be ~1.0M parameters, which no reading of
  Figure 1 reaches (without any expansion it already has 2.89M); at one byte per weight it is ~4.0M,
  the count we match.
- Expansion widths. The figure gives only output and PEP projection widths. A PEP expanding its
  projection 2x and an EP whose expansion layer keeps its input width give 3,959,391 parameters
  (-1.0% of 4.0M); expanding both 2x (as some re-implementations do) gives 4,661,112 (+16.5%), an EP
  expanding to its output width 4,950,433. Ours computes 2.80G multiply-adds at 416x416; the paper's
  4.57B "operations" is neither 2.80G MACs nor 5.60G FLOPs, so the per-layer widths of the synthesised
  network are not fully recoverable from the figure.
- Activations ReLU6 after every conv except the linear projections and the heads (MobileNetV2 style,
  whose inverted residual PEP/EP extend); nearest-neighbour upsampling; BN everywhere but the heads.
- Anchors: YOLOv3's (Redmon & Farhadi 2018) at 416x416, three per scale.
- `decode` is YOLOv3's: centre (sigmoid(t) + cell) * stride, size anchor * exp(t), score =
  sigmoid(objectness) * sigmoid(class).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvBNAct
from ..registry import register_model
from .boxes import flatten_level, grid_points

# YOLOv3 anchors (w, h) in pixels at 416x416, for the heads in output order (strides 32, 16, 8).
ANCHORS = (
    ((116, 90), (156, 198), (373, 326)),
    ((30, 61), (62, 45), (59, 119)),
    ((10, 13), (16, 30), (33, 23)),
)
PEP_EXPANSION = 2
EP_EXPANSION = 1


def conv1x1(in_channels: int, out_channels: int, act: bool = True) -> ConvBNAct:
    return ConvBNAct(in_channels, out_channels, 1, act=nn.ReLU6 if act else None)


def _inverted(in_channels: int, hidden: int, out_channels: int, stride: int) -> list[nn.Module]:
    return [
        conv1x1(in_channels, hidden),
        ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
        conv1x1(hidden, out_channels, act=False),
    ]


class EP(nn.Module):
    """Expansion-projection: 1x1 expansion, 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expansion: int = EP_EXPANSION):
        super().__init__()
        self.block = nn.Sequential(*_inverted(in_channels, in_channels * expansion, out_channels, stride))
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


class PEP(nn.Module):
    """Projection-expansion-projection: 1x1 projection to x, then an EP block expanding x."""

    def __init__(self, in_channels: int, out_channels: int, x: int, expansion: int = PEP_EXPANSION):
        super().__init__()
        self.block = nn.Sequential(conv1x1(in_channels, x), *_inverted(x, x * expansion, out_channels, 1))
        self.residual = in_channels == out_channels

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


class FCA(nn.Module):
    """Fully-connected attention: global average pool, FC (C/r) + ReLU6, FC (C) + sigmoid, channel gate."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU6(),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        gate = self.fc(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


class YOLONano(nn.Module):
    def __init__(self, num_classes: int = 20, in_chans: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.anchors = ANCHORS
        head = len(ANCHORS[0]) * (5 + num_classes)
        self.stage8 = nn.Sequential(  # to the 52x52 (stride 8) skip
            ConvBNAct(in_chans, 12, 3, act=nn.ReLU6),
            ConvBNAct(12, 24, 3, 2, act=nn.ReLU6),
            PEP(24, 24, 7),
            EP(24, 70, 2),
            PEP(70, 70, 25),
            PEP(70, 70, 24),
            EP(70, 150, 2),
            PEP(150, 150, 56),
            conv1x1(150, 150),
            FCA(150, 8),
            PEP(150, 150, 73),
            PEP(150, 150, 71),
            PEP(150, 150, 75),
        )
        self.stage16 = nn.Sequential(  # to the 26x26 skip
            EP(150, 325, 2),
            *(PEP(325, 325, x) for x in (132, 124, 141, 140, 137, 135, 133, 140)),
        )
        self.stage32 = nn.Sequential(
            EP(325, 545, 2),
            PEP(545, 545, 276),
            conv1x1(545, 230),
            EP(230, 489),
            PEP(489, 469, 213),
            conv1x1(469, 189),
        )
        self.head32 = nn.Sequential(EP(189, 462), nn.Conv2d(462, head, 1))
        self.lateral32 = conv1x1(189, 105)
        self.neck16 = nn.Sequential(PEP(430, 325, 113), PEP(325, 207, 99), conv1x1(207, 98))
        self.head16 = nn.Sequential(EP(98, 183), nn.Conv2d(183, head, 1))
        self.lateral16 = conv1x1(98, 47)
        self.neck8 = nn.Sequential(PEP(197, 122, 58), PEP(122, 87, 52), PEP(87, 93, 47))
        self.head8 = nn.Conv2d(93, head, 1)
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
        # Output convs N(0, 0.01) as in RetinaNet/FCOS heads: He init there gives raw outputs of std ~5
        # untrained, i.e. boxes exp(5)-fold their anchors; small ones keep boxes near their anchors.
        for head in (self.head32[-1], self.head16[-1], self.head8):
            nn.init.normal_(head.weight, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c8 = self.stage8(x)
        c16 = self.stage16(c8)
        c32 = self.stage32(c16)
        up = F.interpolate(self.lateral32(c32), scale_factor=2.0, mode="nearest")
        n16 = self.neck16(torch.cat((up, c16), dim=1))
        up = F.interpolate(self.lateral16(n16), scale_factor=2.0, mode="nearest")
        n8 = self.neck8(torch.cat((up, c8), dim=1))
        return self.head32(c32), self.head16(n16), self.head8(n8)

    def decode(self, outputs, image_size) -> dict[str, torch.Tensor]:
        height, width = image_size
        boxes, scores = [], []
        for t, anchors in zip(outputs, self.anchors):
            h, w = (int(d) for d in t.shape[-2:])
            stride_x, stride_y = width / w, height / h
            a = len(anchors)
            p = flatten_level(t, 5 + self.num_classes)  # [B, H*W*A, 5 + C], location-major then anchor
            cells = grid_points(h, w, 1, offset=0.0).repeat_interleave(a, dim=0)  # [HWA, 2] (col, row)
            sizes = torch.tensor(anchors, dtype=torch.float32).repeat(h * w, 1)  # [HWA, 2]
            xy = p[..., 0:2].sigmoid() + cells
            cx, cy = xy[..., 0] * stride_x, xy[..., 1] * stride_y
            bw, bh = sizes[:, 0] * p[..., 2].exp(), sizes[:, 1] * p[..., 3].exp()
            boxes.append(torch.stack((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), dim=-1))
            scores.append(p[..., 4:5].sigmoid() * p[..., 5:].sigmoid())
        return {"boxes": torch.cat(boxes, dim=1), "scores": torch.cat(scores, dim=1)}


@register_model("yolo-nano")
def yolo_nano(**kwargs) -> YOLONano:
    return YOLONano(**kwargs)
