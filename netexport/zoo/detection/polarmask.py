"""PolarMask (Xie et al., "PolarMask: Single Shot Instance Segmentation with Polar Representation", CVPR 2020).

An instance is a centre plus the lengths of 36 rays cast from it every 10 degrees; the 36 end points
are its contour polygon. The network is FCOS's with the box regression replaced by ray regression:
ResNet-50 → FPN P3-P7 (256 channels; P6 a stride-2 3x3 conv on P5, P7 one on ReLU(P6), as the
official config: `extra_convs_on_inputs=False, relu_before_extra_convs=True`) → one head shared
by the levels: a classification tower (4 x conv3x3-GN(32)-ReLU) ending in the 80-class logits and
the polar-centerness logit, and a mask tower (same) ending in 36 ray lengths, exp(s_l * conv) with a
learnt scale s_l per level. Init as the official head: tower and predictor convs N(0, 0.01), class
bias -log((1 - 0.01) / 0.01).

`forward` returns the raw heads per level (cls, centerness logits; ray lengths, exp included as the
head ends with it). `decode` follows the paper's inference: score = sigmoid(cls) x sigmoid(centerness)
at every location, contour vertex k = centre + d_k (cos θ_k, sin θ_k), θ_k = 10k degrees (Eq. 1-2;
image axes, y down), clipped to the image as the official decode does, box = the contour's bounding
box (the paper runs NMS on it). Extra output `contours` [B, N, 36, 2] (x, y): the instance masks.

Decided here:
- Head as the paper (Fig. 2): no box branch. The official code (xieenze/PolarMask, PolarMask_Head)
  also keeps FCOS's box tower and 4-channel box regression (2,370,569 more parameters) and by
  default runs NMS on those boxes; the paper does not describe it.
- Ray directions as Eq. 1-2. The official decode puts x = c_x + d sin θ, y = c_y + d cos θ (issue
  #40 there notes the difference), while its data loader (get_angle) trains ray k toward the image
  direction 180° - 10k: an official checkpoint's rays need re-indexing (ours[j] = theirs[(18 - j) % 36]
  by that reading, unconfirmed on real weights) before its contours follow this decode.
- Scores are the paper's product; the official code ranks by sigmoid(cls) x (sigmoid(centerness) + 0.5).
- Backbone: the zoo's ResNet-50 (torchvision layout, stride on the 3x3 conv). The official configs
  use MSRA's caffe-style ResNet-50 (stride on the 1x1 conv): same parameter count.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..classification.resnet import resnet50
from ..registry import register_model
from .boxes import flatten_level, grid_points
from .fpn import FeaturePyramid

STRIDES = (8, 16, 32, 64, 128)


class ConvGNReLU(nn.Sequential):
    """mmdet's ConvModule with GN: 3x3 conv without bias, GroupNorm(32), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 32):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.gn = nn.GroupNorm(groups, out_channels)
        self.activate = nn.ReLU(inplace=True)


class Scale(nn.Module):
    """A learnt scalar multiplier (one per pyramid level for the ray regression)."""

    def __init__(self, value: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([value]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class PyramidP3P7(nn.Module):
    """C3-C5 → P3-P5 (top-down FPN), P6 = conv3x3/2(P5), P7 = conv3x3/2(ReLU(P6))."""

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256):
        super().__init__()
        self.fpn = FeaturePyramid(in_channels, out_channels)
        self.p6 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for m in (self.p6, self.p7):  # as FeaturePyramid's own convs
            nn.init.kaiming_uniform_(m.weight, a=1)
            nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        p3, p4, p5 = self.fpn(features)
        p6 = self.p6(p5)
        p7 = self.p7(F.relu(p6))
        return p3, p4, p5, p6, p7


class PolarMaskHead(nn.Module):
    def __init__(self, num_classes: int = 80, in_channels: int = 256, num_rays: int = 36,
                 stacked_convs: int = 4, num_levels: int = 5, prior_prob: float = 0.01):
        super().__init__()
        self.cls_convs = nn.Sequential(*(ConvGNReLU(in_channels, in_channels) for _ in range(stacked_convs)))
        self.mask_convs = nn.Sequential(*(ConvGNReLU(in_channels, in_channels) for _ in range(stacked_convs)))
        self.polar_cls = nn.Conv2d(in_channels, num_classes, 3, padding=1)
        self.polar_centerness = nn.Conv2d(in_channels, 1, 3, padding=1)
        self.polar_mask = nn.Conv2d(in_channels, num_rays, 3, padding=1)
        self.scales_mask = nn.ModuleList(Scale(1.0) for _ in range(num_levels))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.polar_cls.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, features: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        outs = []
        for x, scale in zip(features, self.scales_mask):
            cls_feat = self.cls_convs(x)
            rays = torch.exp(scale(self.polar_mask(self.mask_convs(x))))
            outs.append((self.polar_cls(cls_feat), self.polar_centerness(cls_feat), rays))
        return outs


class PolarMask(nn.Module):
    strides = STRIDES

    def __init__(self, num_classes: int = 80, num_rays: int = 36, channels: int = 256):
        super().__init__()
        self.num_classes = num_classes
        self.num_rays = num_rays
        self.body = resnet50(num_classes=0)
        self.neck = PyramidP3P7(self.body.stage_channels[1:], channels)
        self.head = PolarMaskHead(num_classes, channels, num_rays, num_levels=len(self.strides))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """[cls_p3, centerness_p3, rays_p3, cls_p4, ...]: logits, logit, ray lengths in pixels."""
        features = self.neck(self.body.forward_stages(x)[1:])
        return tuple(t for level in self.head(features) for t in level)

    def ray_directions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """cos θ_k and sin θ_k for θ_k = k * 360 / num_rays degrees (constants in the graph)."""
        angles = [2 * math.pi * k / self.num_rays for k in range(self.num_rays)]
        return torch.tensor([math.cos(a) for a in angles]), torch.tensor([math.sin(a) for a in angles])

    def decode(self, outputs: Sequence[torch.Tensor], image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        height, width = image_size
        cos, sin = self.ray_directions()
        scores, contours = [], []
        for level, stride in enumerate(self.strides):
            cls, centerness, rays = outputs[3 * level: 3 * level + 3]
            points = grid_points(cls.shape[2], cls.shape[3], stride)  # [HW, 2]
            prob = torch.sigmoid(flatten_level(cls, self.num_classes)) * torch.sigmoid(flatten_level(centerness, 1))
            dist = flatten_level(rays, self.num_rays)  # [B, HW, R]
            xs = torch.clamp(points[:, 0:1] + dist * cos, min=0.0, max=float(width))
            ys = torch.clamp(points[:, 1:2] + dist * sin, min=0.0, max=float(height))
            scores.append(prob)
            contours.append(torch.stack((xs, ys), dim=-1))  # [B, HW, R, 2]
        contour = torch.cat(contours, dim=1)
        xs, ys = contour[..., 0], contour[..., 1]
        boxes = torch.stack((xs.amin(-1), ys.amin(-1), xs.amax(-1), ys.amax(-1)), dim=-1)
        return {"boxes": boxes, "scores": torch.cat(scores, dim=1), "contours": contour}


@register_model
def polarmask(num_classes: int = 80, **kwargs) -> PolarMask:
    return PolarMask(num_classes=num_classes, **kwargs)
