"""FoveaBox (Kong et al., FoveaBox: Beyond Anchor-based Object Detector, arXiv 2019 / IEEE TIP 2020),
ResNet-50-FPN, COCO.

Reference configuration (the paper's FoveaBox, not the "-align" variant with deformable convs and GN;
the authors' mmdetection config fovea_r50_fpn_4gpu_1x, 36.5 AP):
- ResNet-50, FPN P3-P7 (strides 8-128, 256 channels), P6 from C5 and P7 from ReLU(P6), as RetinaNet.
- No anchors: a RetinaNet-style head (class and box towers of 4 x (3x3 conv, ReLU), 256 channels, no
  norm) predicts per location K = 80 class logits and 4 box values.
- Box coding: location (x, y) maps to the input point (stride * (x + 0.5), stride * (y + 0.5)); the
  four outputs t are log-space distances to the left, top, right, bottom edges normalised by the
  level's base length z_l, i.e. distance = z_l * exp(t). z_l = 16, 32, 64, 128, 256 on P3-P7 (the
  authors' base_edge_list, 2 * stride; a level trains on objects of size z_l to 4 z_l).
- Init: tower and predictor convs N(0, 0.01), zero bias; class bias -log((1-π)/π), π = 0.01.

Decisions: `forward` returns per level `cls_pN [B, K, H, W]` (logits) and `box_pN [B, 4, H, W]` (t);
`decode` applies the sigmoid and z_l * exp(t). Boxes are clipped to the image, as the authors'
inference. No clamp on t (the authors have none).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..registry import register_model
from .boxes import decode_distances, flatten_level, grid_points
from .retinanet import STRIDES, RetinaNet, clip_boxes, resnet50_fpn_p3p7

BASE_EDGES = (16, 32, 64, 128, 256)  # z_l on P3..P7


class FoveaBox(RetinaNet):
    """RetinaNet's network with one prediction per location; only the box coding differs."""

    anchors_per_location = 1

    def decode(self, outputs: Sequence[torch.Tensor], image_size: Sequence[int]) -> dict[str, torch.Tensor]:
        boxes, scores = [], []
        for cls, box, stride, base in zip(outputs[0::2], outputs[1::2], STRIDES, BASE_EDGES):
            h, w = cls.shape[-2:]
            points = grid_points(h, w, stride).to(box.dtype)
            boxes.append(decode_distances(points, base * torch.exp(flatten_level(box, 4))))
            scores.append(torch.sigmoid(flatten_level(cls, self.num_classes)))
        return {"boxes": clip_boxes(torch.cat(boxes, 1), image_size), "scores": torch.cat(scores, 1)}


@register_model("foveabox")
def foveabox(num_classes: int = 80, **kwargs) -> FoveaBox:
    return FoveaBox(resnet50_fpn_p3p7("c5", **kwargs), num_classes)
