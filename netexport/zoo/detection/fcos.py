"""FCOS (Tian et al., FCOS: Fully Convolutional One-Stage Object Detection, ICCV 2019), ResNet-50-FPN, COCO.

Reference configuration (the ICCV paper and the authors' first release):
- ResNet-50, FPN P3-P7 (strides 8-128, 256 channels); P6 and P7 are stride-2 3x3 convs on P5 and
  on ReLU(P6) — FCOS takes P6 from P5, unlike RetinaNet (C5).
- Head shared across levels: a classification and a regression tower, each 4 x (3x3 conv, GroupNorm
  32, ReLU); K = 80 class logits on the classification tower; the 1-channel center-ness branch on the
  classification tower too (the paper's original placement — the later "improvements" moved it to
  the regression tower); 4 regression values per location, distances exp(s_l * x) in input pixels
  with a learnable scalar s_l per level (initial 1).
- Init: tower and predictor convs N(0, 0.01), zero bias; class bias -log((1-π)/π), π = 0.01.

Decisions:
- `forward` returns per level `cls_pN [B, K, H, W]` (logits), `box_pN [B, 4, H, W]` = s_l * x (log
  distances left, top, right, bottom), `ctr_pN [B, 1, H, W]` (center-ness logit). `decode` applies
  exp and the sigmoids.
- Score = sigmoid(cls) * sigmoid(center-ness), as the paper ranks detections (the square root came
  later). The authors' code thresholds the class probability alone at 0.05 before multiplying; the
  end-to-end graph thresholds the product.
- Locations are the cell centres ((i + 0.5) * stride, the authors' stride // 2 offset); boxes are
  clipped to the image.

`FCOSHead` is meant for reuse (PolarMask): towers of any width/depth/norm, the center-ness branch on
either tower, and `forward_single` returning the tower features next to the predictions.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..registry import register_model
from .boxes import decode_distances, flatten_level, grid_points
from .retinanet import (STRIDES, ConvTower, FPNP3P7, clip_boxes, predictor, prior_bias, resnet50_fpn_p3p7,
                        spread_random_head)

__all__ = ["Scale", "FCOSHead", "FCOS", "ConvTower", "FPNP3P7"]


class Scale(nn.Module):
    """A learnable scalar multiplier (one per pyramid level in FCOS's regression branch)."""

    def __init__(self, value: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class FCOSHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, channels: int = 256, num_convs: int = 4,
                 norm: str | None = "gn", num_levels: int = 5, centerness_on: str = "cls"):
        super().__init__()
        if centerness_on not in ("cls", "box"):
            raise ValueError(f"centerness_on must be 'cls' or 'box', not {centerness_on!r}")
        self.num_classes = num_classes
        self.centerness_on = centerness_on
        self.cls_tower = ConvTower(in_channels, channels, num_convs, norm)
        self.box_tower = ConvTower(in_channels, channels, num_convs, norm)
        self.cls_logits = predictor(channels, num_classes, prior_bias())
        self.bbox_pred = predictor(channels, 4)
        self.centerness = predictor(channels, 1)
        self.scales = nn.ModuleList(Scale(1.0) for _ in range(num_levels))

    def forward_single(self, x: torch.Tensor, level: int):
        """One level: (class logits, s_l * box regression, center-ness logit, cls features, box features)."""
        cls_feat, box_feat = self.cls_tower(x), self.box_tower(x)
        ctr = self.centerness(cls_feat if self.centerness_on == "cls" else box_feat)
        return self.cls_logits(cls_feat), self.scales[level](self.bbox_pred(box_feat)), ctr, cls_feat, box_feat

    def forward(self, features: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return [self.forward_single(x, level)[:3] for level, x in enumerate(features)]


class FCOS(nn.Module):
    def __init__(self, backbone: FPNP3P7, num_classes: int = 80, strides: Sequence[int] = STRIDES, **head_kwargs):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.head = FCOSHead(backbone.out_channels, num_classes, num_levels=len(self.strides), **head_kwargs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t for level in self.head(self.backbone(x)) for t in level)

    def place_random_head(self, warm_up_inputs) -> None:
        head = self.head
        spread_random_head(self, warm_up_inputs, self.backbone, [head.cls_logits, head.bbox_pred, head.centerness])

    def decode(self, outputs: Sequence[torch.Tensor], image_size: Sequence[int]) -> dict[str, torch.Tensor]:
        boxes, scores = [], []
        for cls, box, ctr, stride in zip(outputs[0::3], outputs[1::3], outputs[2::3], self.strides):
            h, w = cls.shape[-2:]
            points = grid_points(h, w, stride).to(box.dtype)
            boxes.append(decode_distances(points, torch.exp(flatten_level(box, 4))))
            scores.append(torch.sigmoid(flatten_level(cls, self.num_classes)) * torch.sigmoid(flatten_level(ctr, 1)))
        return {"boxes": clip_boxes(torch.cat(boxes, 1), image_size), "scores": torch.cat(scores, 1)}


@register_model("fcos")
def fcos(num_classes: int = 80, **kwargs) -> FCOS:
    return FCOS(resnet50_fpn_p3p7("p5", **kwargs), num_classes)
