"""ASFF: YOLOv3 with adaptively spatial feature fusion (Liu, Huang & Wang, "Learning Spatial Fusion for
Single-Shot Object Detection", arXiv 1911.09516, 2019).

Reference configuration: "YOLOv3 608 + ASFF" (40.6 AP on COCO test-dev), the authors' code
(ruinmessi/ASFF models/yolov3_asff.py with --asff, without --rfb: RFB and DropBlock make "ASFF*").
It is the paper's "strong baseline" YOLOv3 (Section 3.1: bag-of-freebies training, an anchor-free
branch beside the anchor-based ones, the guided-anchoring mechanism, an extra IoU loss) with an
ASFF module in front of each of the three heads. Architecture, as the authors' code:

- Darknet-53, then the baseline's neck: the stride-32 branch has an SPP block (x and 5/9/13 max
  pools, concatenated) between its 1x1 convs — present in the authors' baseline code, not itemised
  in the paper's text; kept so the released weights load — and each branch ends in its last 1x1
  (512, 256) or 3x3 (256) conv instead of the YOLOv3 head's 3x3: that conv is ASFF's `expand`.
  DropBlock (ASFF* only) is training-only anyway.
- ASFF at level l (0 = stride 32, 512 ch; 1 = stride 16, 256 ch; 2 = stride 8, 256 ch) resizes the
  other two levels to its own (stride-2 3x3 convs, a 3x3/2 max pool first for the 4x step; 1x1
  compression then nearest upsampling), predicts per-pixel weights (1x1 conv to 16 channels per
  level, concatenated, 1x1 conv to 3, softmax over the levels), sums the weighted maps and
  expands with a 3x3 conv to 1024 / 512 / 256 channels.
- Each head is the baseline's guided-anchoring head: a 1x1 conv predicts (w, h) for 4 anchors per
  location (3 anchor-based, scaling that level's anchors, and the anchor-free one, scaling 4 x
  stride); a grouped 1x1 conv turns those into the offsets of a 3x3 deformable conv (4 deformable
  groups, one per anchor: GA's feature adaption), then a 1x1 conv gives 4 x (4 + 1 + 80) = 340
  channels. Mixup, the cosine schedule, sync BN, label smoothing and the IoU loss are training-only.

Outputs per level, coarsest first: the prediction map and the anchor-shape map (`guide`), both
raw; `decode` follows the authors' inference: centre (cell + sigmoid(t)) * stride, size
exp(t) * exp(guide) * anchor, score sigmoid(objectness) * sigmoid(class). The anchors are those of
the code the released Darknet-53 weights were trained with (its (42, 119) and (121, 240) where
yolov3.cfg has (59, 119) and (373, 326); the authors' README notes it).

Export rewrite `deform-conv-as-grid-sample`: ONNX has no deformable convolution below opset 19 and
TensorRT none without a plugin. `deform_conv2d_as_grid_sample` samples the 9 shifted positions per
deformable group with GridSample (bilinear, zeros outside: the DCN kernel's interpolation) and
applies the 3x3 weights as one 1x1 conv over the 9 x C samples; tests/test_rewrites_yolo.py checks
it against torchvision.ops.deform_conv2d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model
from .boxes import centre_size_to_corners
from .yolo import Darknet53, _cell_offsets, anchors_per_level, conv_bn_leaky

# the authors' YOLOv3Head anchors (input pixels), masks 6,7,8 / 3,4,5 / 0,1,2 for strides 32 / 16 / 8
ASFF_ANCHORS = ((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (42, 119), (116, 90), (156, 198), (121, 240))
STRIDES = (32, 16, 8)
GUIDED_ANCHORS = 4  # 3 anchor-based + 1 anchor-free per location


def guided_anchors(anchors) -> torch.Tensor:
    """[3, 4, 2]: per level (stride 32, 16, 8) its three anchors, then the anchor-free 4 x stride."""
    free = torch.tensor([[4.0 * s, 4.0 * s] for s in STRIDES])[:, None, :]
    return torch.cat((anchors_per_level(anchors), free), dim=1)


def deform_conv2d_as_grid_sample(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                                 bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    """Deformable conv (stride 1, dilation 1; DCNv1 offset layout: per deformable group, per kernel
    position (dy, dx)) in GridSample + Conv, the ops ONNX opset 17 and TensorRT have."""
    b, c, h, w = x.shape
    out_channels, _, kh, kw = weight.shape
    taps = kh * kw
    groups = offset.shape[1] // (2 * taps)
    off = offset.reshape(b, groups, taps, 2, h, w)
    ki = torch.arange(kh, dtype=x.dtype).repeat_interleave(kw) - padding  # kernel row of each tap
    kj = torch.arange(kw, dtype=x.dtype).repeat(kh) - padding
    rows = torch.arange(h, dtype=x.dtype)
    cols = torch.arange(w, dtype=x.dtype)
    base_y = (ki[:, None, None] + rows[None, :, None]).expand(taps, h, w)
    base_x = (kj[:, None, None] + cols[None, None, :]).expand(taps, h, w)
    py = base_y + off[:, :, :, 0]
    px = base_x + off[:, :, :, 1]
    # pixel → [-1, 1] with align_corners=False (defined for 1-pixel maps too)
    grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1)  # [B, G, taps, H, W, 2]
    sampled = F.grid_sample(x.reshape(b * groups, c // groups, h, w), grid.reshape(b * groups, taps * h, w, 2),
                            mode="bilinear", padding_mode="zeros", align_corners=False)
    columns = sampled.reshape(b, c * taps, h, w)  # channel index c * taps + tap, as weight.reshape
    return F.conv2d(columns, weight.reshape(out_channels, c * taps, 1, 1), bias)


class DeformConv2d(nn.Module):
    """3x3 deformable convolution (Dai et al. 2017) with bias, as the authors' DCN module."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        conv = nn.Conv2d(in_channels, out_channels, kernel_size)  # borrow torch's default init
        self.weight.data.copy_(conv.weight.data)
        self.bias.data.copy_(conv.bias.data)

    def forward(self, x, offset):
        return deform_conv2d_as_grid_sample(x, offset, self.weight, self.bias, self.padding)


class GuidedAnchorHead(nn.Module):
    """The baseline's head: anchor shapes → deformable feature adaption → predictions."""

    def __init__(self, in_channels: int, num_classes: int, anchors=GUIDED_ANCHORS):
        super().__init__()
        self.guide_wh = nn.Conv2d(in_channels, 2 * anchors, 1)
        self.conv_offset = nn.Conv2d(2 * anchors, 2 * 9 * anchors, 1, groups=anchors)
        self.dconv = DeformConv2d(in_channels, in_channels, 3, padding=1)
        self.conv = nn.Conv2d(in_channels, anchors * (5 + num_classes), 1)

    def forward(self, x):
        guide = self.guide_wh(x)
        return self.conv(self.dconv(x, self.conv_offset(guide))), guide


class ASFF(nn.Module):
    """Adaptive spatial fusion of the three levels into `level` (0 = stride 32)."""

    LEVEL_CHANNELS = (512, 256, 256)
    EXPAND = (1024, 512, 256)

    def __init__(self, level: int, weight_channels: int = 16):
        super().__init__()
        self.level = level
        dim = self.LEVEL_CHANNELS[level]
        if level == 0:
            self.stride_level_1 = conv_bn_leaky(256, dim, 3, 2)
            self.stride_level_2 = conv_bn_leaky(256, dim, 3, 2)
        elif level == 1:
            self.compress_level_0 = conv_bn_leaky(512, dim, 1)
            self.stride_level_2 = conv_bn_leaky(256, dim, 3, 2)
        else:
            self.compress_level_0 = conv_bn_leaky(512, dim, 1)
        self.weight_level_0 = conv_bn_leaky(dim, weight_channels, 1)
        self.weight_level_1 = conv_bn_leaky(dim, weight_channels, 1)
        self.weight_level_2 = conv_bn_leaky(dim, weight_channels, 1)
        self.weight_levels = nn.Conv2d(3 * weight_channels, 3, 1)
        self.expand = conv_bn_leaky(dim, self.EXPAND[level], 3)

    def forward(self, x0, x1, x2):
        up = lambda t, f: F.interpolate(t, scale_factor=float(f), mode="nearest")  # noqa: E731
        if self.level == 0:
            r0, r1 = x0, self.stride_level_1(x1)
            r2 = self.stride_level_2(F.max_pool2d(x2, 3, stride=2, padding=1))
        elif self.level == 1:
            r0, r1, r2 = up(self.compress_level_0(x0), 2), x1, self.stride_level_2(x2)
        else:
            r0, r1, r2 = up(self.compress_level_0(x0), 4), up(x1, 2), x2
        logits = self.weight_levels(torch.cat(
            (self.weight_level_0(r0), self.weight_level_1(r1), self.weight_level_2(r2)), dim=1))
        w = torch.softmax(logits, dim=1)
        return self.expand(r0 * w[:, 0:1] + r1 * w[:, 1:2] + r2 * w[:, 2:3])


class SPP(nn.Module):
    def forward(self, x):
        return torch.cat((x, F.max_pool2d(x, 5, 1, 2), F.max_pool2d(x, 9, 1, 4), F.max_pool2d(x, 13, 1, 6)), 1)


def _unit(channels: int) -> nn.Sequential:
    """The authors' resblock(ch, shortcut=False): 1x1 to ch/2, 3x3 back, no residual add."""
    return nn.Sequential(conv_bn_leaky(channels, channels // 2, 1), conv_bn_leaky(channels // 2, channels, 3))


class YOLOv3ASFF(nn.Module):
    def __init__(self, num_classes: int = 80, anchors=ASFF_ANCHORS, in_chans: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("anchors", guided_anchors(anchors), persistent=False)
        self.backbone = Darknet53(in_chans)
        self.neck5 = nn.Sequential(_unit(1024), conv_bn_leaky(1024, 512, 1), SPP(), conv_bn_leaky(2048, 512, 1),
                                   conv_bn_leaky(512, 1024, 3), conv_bn_leaky(1024, 512, 1))
        self.lateral4 = conv_bn_leaky(512, 256, 1)
        self.neck4 = nn.Sequential(conv_bn_leaky(768, 256, 1), conv_bn_leaky(256, 512, 3), _unit(512),
                                   conv_bn_leaky(512, 256, 1))
        self.lateral3 = conv_bn_leaky(256, 128, 1)
        self.neck3 = nn.Sequential(conv_bn_leaky(384, 128, 1), conv_bn_leaky(128, 256, 3), _unit(256),
                                   conv_bn_leaky(256, 128, 1), conv_bn_leaky(128, 256, 3))
        self.fusions = nn.ModuleList(ASFF(level) for level in range(3))
        self.heads = nn.ModuleList(GuidedAnchorHead(c, num_classes) for c in ASFF.EXPAND)

    def forward(self, x):
        c3, c4, c5 = self.backbone(x)
        f0 = self.neck5(c5)
        f1 = self.neck4(torch.cat((F.interpolate(self.lateral4(f0), scale_factor=2.0, mode="nearest"), c4), 1))
        f2 = self.neck3(torch.cat((F.interpolate(self.lateral3(f1), scale_factor=2.0, mode="nearest"), c3), 1))
        outs = []
        for fusion, head in zip(self.fusions, self.heads):
            outs += head(fusion(f0, f1, f2))
        return tuple(outs)

    def decode(self, outputs, image_size):
        levels = [decode_guided_level(outputs[2 * i], outputs[2 * i + 1], self.anchors[i], image_size)
                  for i in range(3)]
        return {k: torch.cat([lv[k] for lv in levels], dim=1) for k in ("boxes", "scores")}


def decode_guided_level(pred: torch.Tensor, guide: torch.Tensor, anchors: torch.Tensor, image_size) -> dict:
    """pred [B, A*(5+C), H, W] and guide [B, A*2, H, W] → boxes [B, H*W*A, 4], scores [B, H*W*A, C]."""
    b, _, h, w = pred.shape
    num_anchors = anchors.shape[0]
    height, width = image_size
    p = pred.reshape(b, num_anchors, -1, h, w).permute(0, 3, 4, 1, 2).reshape(b, h * w, num_anchors, -1)
    g = guide.reshape(b, num_anchors, 2, h, w).permute(0, 3, 4, 1, 2).reshape(b, h * w, num_anchors, 2)
    cols, rows = _cell_offsets(h, w, pred.dtype)
    cx = (torch.sigmoid(p[..., 0]) + cols[:, None]) * (width / w)
    cy = (torch.sigmoid(p[..., 1]) + rows[:, None]) * (height / h)
    bw = torch.exp(p[..., 2] + g[..., 0]) * anchors[:, 0]  # exp(t) * (exp(guide) * anchor)
    bh = torch.exp(p[..., 3] + g[..., 1]) * anchors[:, 1]
    scores = torch.sigmoid(p[..., 4:5]) * torch.sigmoid(p[..., 5:])
    boxes = centre_size_to_corners(torch.stack((cx, cy, bw, bh), dim=-1))
    return {"boxes": boxes.reshape(b, -1, 4), "scores": scores.reshape(b, h * w * num_anchors, -1)}


@register_model("asff")
def asff(**kwargs) -> YOLOv3ASFF:
    return YOLOv3ASFF(**kwargs)
