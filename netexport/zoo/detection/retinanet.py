"""RetinaNet (Lin et al., Focal Loss for Dense Object Detection, ICCV 2017) and FSAF (Zhu et al.,
Feature Selective Anchor-Free Module for Single-Shot Object Detection, CVPR 2019), ResNet-50-FPN, COCO.

Shared pieces (FCOS, FoveaBox and other dense heads build on them):
- `FPNP3P7`: ResNet body, FPN over C3-C5 (fpn.py's top-down pathway), P6 a 3x3/2 conv and P7 a
  ReLU then 3x3/2 conv on P6. The RetinaNet paper (and Detectron) takes P6 from C5; FCOS takes it
  from P5 (`extra_input="p5"`).
- `ConvTower`: `num_convs` x (3x3 conv, optional GroupNorm, ReLU) at constant width.
- `RetinaNetHead`: a classification and a box tower (4 convs, 256 channels, no norm) shared by all
  levels, each ending in a 3x3 predictor: A*K class logits and A*4 box deltas per location.

RetinaNet reference configuration: P3-P7 (strides 8-128), A = 9 anchors per location (areas 32²..512²
on P3..P7, scales {2^0, 2^1/3, 2^2/3} x aspect ratios {1:2, 1:1, 2:1}), R-CNN box deltas with unit
weights, 80 sigmoid classes. Init as the paper: tower and predictor convs N(0, 0.01) with zero bias,
class bias -log((1-π)/π) with π = 0.01 (so every random-init score starts near 0.01).

FSAF headline configuration (the paper's "anchor-based + FSAF" model): the RetinaNet above plus an
anchor-free branch per level, a 3x3 conv with K filters on the classification tower and a 3x3 conv
with 4 filters on the box tower. The anchor-free box output, after a ReLU, is the distance from the
location to the box's left, top, right and bottom edges in units of S * stride with S = 4.0 (the
paper's normalisation of offsets on the projected box). Its bias starts at 0.25, as mmdetection's
FSAFHead (so initial boxes do not have zero area). At inference both branches give candidates: the
anchor-based ones of every level, then the anchor-free ones of every level.

Decisions:
- `forward` returns pre-activation outputs (logits, deltas, anchor-free offsets before the ReLU);
  `decode` applies the sigmoid and the ReLU. Raw outputs per level: `cls_pN [B, A*K, H, W]`,
  `box_pN [B, A*4, H, W]` (+ FSAF `af_cls_pN [B, K, H, W]`, `af_box_pN [B, 4, H, W]`). Channel
  a*K + k is anchor a's class k (a = scale index * 3 + ratio index); candidates run level by level,
  row-major over locations, anchors fastest, as boxes.flatten_level reads them.
- Anchors and anchor-free locations are centred on the feature cells ((i + 0.5) * stride); the
  papers leave the offset open. Decoded boxes are clipped to the image, as every reference
  implementation does at inference.
- Module names do not follow torchvision: its COCO checkpoints have 91 classes (and its v1 RetinaNet
  takes P6 from P5), so they do not load into the paper configurations in any case.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..classification.resnet import ResNet, resnet50
from ..registry import register_model
from .boxes import anchor_boxes, decode_deltas, decode_distances, flatten_level, grid_points
from .fpn import FeaturePyramid

STRIDES = (8, 16, 32, 64, 128)  # P3..P7
PRIOR_PROB = 0.01


def prior_bias(prob: float = PRIOR_PROB) -> float:
    """Focal-loss prior: the bias that makes sigmoid(logit) = prob when the weights contribute nothing."""
    return -math.log((1 - prob) / prob)


def predictor(in_channels: int, out_channels: int, bias: float = 0.0) -> nn.Conv2d:
    """A head's last 3x3 conv, N(0, 0.01) weights and a constant bias."""
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.constant_(conv.bias, bias)
    return conv


def spread_random_head(model: nn.Module, warm_up_inputs, pyramid: "FPNP3P7", predictors: Sequence[nn.Conv2d]) -> None:
    """Random weights only: give a head drawn with the papers' N(0, 0.01) init outputs that vary.

    That init is a training start: each of the towers' convs shrinks the spread of its input about
    3x (fan-in 2304), so the untrained class logits vary by 0.005-0.2 about the -4.6 prior (every
    score ~0.01, near-ties everywhere), and FP16's own rounding at 4.6 (step 0.004) is a sizeable part
    of that signal. The random pyramid levels also differ in scale (P3 ~35x P7 at BN shift 2.5), which
    a trained FPN's do not. So, on the warm-up images: each level's output conv to unit variance, then
    each predictor's weights so its outputs spread ~1 about their bias (the focal prior stays). Tower
    convs have no bias before a ReLU (or a GroupNorm), so their scale does not matter."""
    from .. import scale_layers_to_unit_variance

    levels = [*pyramid.fpn.output, pyramid.p6, pyramid.p7]
    scale_layers_to_unit_variance(model, warm_up_inputs, [*levels, *predictors], keep_bias=True)


class ConvTower(nn.Sequential):
    """`num_convs` x (3x3 conv, optional GroupNorm, ReLU): the subnet in front of a dense predictor.

    norm: None or "gn" (GroupNorm with `gn_groups` groups). Convs keep their bias either way, as the
    RetinaNet and FCOS reference code; weights start N(0, 0.01), biases 0."""

    def __init__(self, in_channels: int, channels: int = 256, num_convs: int = 4,
                 norm: str | None = None, gn_groups: int = 32):
        layers: list[nn.Module] = []
        for i in range(num_convs):
            conv = nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1)
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
            layers.append(conv)
            if norm == "gn":
                layers.append(nn.GroupNorm(gn_groups, channels))
            elif norm is not None:
                raise ValueError(f"norm must be None or 'gn', not {norm!r}")
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class FPNP3P7(nn.Module):
    """ResNet C3-C5 → FPN P3-P5, plus P6 (3x3/2 conv on C5 or P5) and P7 (ReLU, 3x3/2 conv on P6)."""

    def __init__(self, backbone: ResNet, out_channels: int = 256, extra_input: str = "c5"):
        super().__init__()
        if extra_input not in ("c5", "p5"):
            raise ValueError(f"extra_input must be 'c5' or 'p5', not {extra_input!r}")
        self.body = backbone
        self.fpn = FeaturePyramid(backbone.stage_channels[1:], out_channels)
        self.extra_input = extra_input
        p6_in = backbone.stage_channels[-1] if extra_input == "c5" else out_channels
        self.p6 = nn.Conv2d(p6_in, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for conv in (self.p6, self.p7):  # as the FPN's own convs
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        _, c3, c4, c5 = self.body.forward_stages(x)
        p3, p4, p5 = self.fpn((c3, c4, c5))
        p6 = self.p6(c5 if self.extra_input == "c5" else p5)
        p7 = self.p7(F.relu(p6))
        return p3, p4, p5, p6, p7


class RetinaNetHead(nn.Module):
    """Classification and box subnets shared across levels: A*K logits and A*4 values per location."""

    def __init__(self, in_channels: int, num_classes: int, num_anchors: int, channels: int = 256,
                 num_convs: int = 4, norm: str | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.num_anchors = num_anchors
        self.cls_tower = ConvTower(in_channels, channels, num_convs, norm)
        self.box_tower = ConvTower(in_channels, channels, num_convs, norm)
        self.cls_logits = predictor(channels, num_anchors * num_classes, prior_bias())
        self.bbox_reg = predictor(channels, num_anchors * 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_logits(self.cls_tower(x)), self.bbox_reg(self.box_tower(x))


def clip_boxes(boxes: torch.Tensor, image_size: Sequence[int]) -> torch.Tensor:
    """Boxes [..., 4] clipped to the image (height, width)."""
    height, width = image_size
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack((x1.clamp(0, width), y1.clamp(0, height), x2.clamp(0, width), y2.clamp(0, height)), dim=-1)


def retinanet_anchor_shapes(level: int, octave_scales: Sequence[float] = (1.0, 2 ** (1 / 3), 2 ** (2 / 3)),
                            base_size: float = 32.0) -> list[float]:
    """Anchor sizes (square roots of their areas) on P`level`: base 32 on P3, doubling per level."""
    return [base_size * 2 ** (level - 3) * s for s in octave_scales]


class RetinaNet(nn.Module):
    ratios = (0.5, 1.0, 2.0)  # height / width
    anchors_per_location = 9  # 3 octave scales x 3 ratios

    def __init__(self, backbone: FPNP3P7, num_classes: int = 80, num_convs: int = 4):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.num_anchors = self.anchors_per_location
        self.head = RetinaNetHead(backbone.out_channels, num_classes, self.num_anchors, num_convs=num_convs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs: list[torch.Tensor] = []
        for feature in self.backbone(x):
            outputs.extend(self.head(feature))
        return tuple(outputs)

    def place_random_head(self, warm_up_inputs) -> None:
        spread_random_head(self, warm_up_inputs, self.backbone, self._predictors())

    def _predictors(self) -> list[nn.Conv2d]:
        return [self.head.cls_logits, self.head.bbox_reg]

    def _anchor_candidates(self, cls: Sequence[torch.Tensor], box: Sequence[torch.Tensor]):
        boxes, scores = [], []
        for level, (c, b, stride) in enumerate(zip(cls, box, STRIDES), start=3):
            h, w = c.shape[-2:]
            anchors = anchor_boxes(h, w, stride, retinanet_anchor_shapes(level), self.ratios).to(b.dtype)
            boxes.append(decode_deltas(anchors, flatten_level(b, 4)))
            scores.append(torch.sigmoid(flatten_level(c, self.num_classes)))
        return boxes, scores

    def decode(self, outputs: Sequence[torch.Tensor], image_size: Sequence[int]) -> dict[str, torch.Tensor]:
        boxes, scores = self._anchor_candidates(outputs[0::2], outputs[1::2])
        return {"boxes": clip_boxes(torch.cat(boxes, 1), image_size), "scores": torch.cat(scores, 1)}


class FSAF(RetinaNet):
    """RetinaNet with the FSAF anchor-free branch on the same towers; both branches at inference."""

    offset_scale = 4.0  # S: anchor-free offsets are in units of S * stride

    def __init__(self, backbone: FPNP3P7, num_classes: int = 80, num_convs: int = 4):
        super().__init__(backbone, num_classes, num_convs)
        channels = self.head.cls_logits.in_channels
        self.af_cls = predictor(channels, num_classes, prior_bias())
        self.af_box = predictor(channels, 4, bias=0.25)

    def _predictors(self) -> list[nn.Conv2d]:
        return super()._predictors() + [self.af_cls, self.af_box]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        head = self.head
        outputs: list[torch.Tensor] = []
        for feature in self.backbone(x):
            cls_feat, box_feat = head.cls_tower(feature), head.box_tower(feature)
            outputs += [head.cls_logits(cls_feat), head.bbox_reg(box_feat), self.af_cls(cls_feat), self.af_box(box_feat)]
        return tuple(outputs)

    def decode(self, outputs: Sequence[torch.Tensor], image_size: Sequence[int]) -> dict[str, torch.Tensor]:
        boxes, scores = self._anchor_candidates(outputs[0::4], outputs[1::4])
        for c, b, stride in zip(outputs[2::4], outputs[3::4], STRIDES):
            h, w = c.shape[-2:]
            points = grid_points(h, w, stride).to(b.dtype)
            distances = F.relu(flatten_level(b, 4)) * (self.offset_scale * stride)
            boxes.append(decode_distances(points, distances))
            scores.append(torch.sigmoid(flatten_level(c, self.num_classes)))
        return {"boxes": clip_boxes(torch.cat(boxes, 1), image_size), "scores": torch.cat(scores, 1)}


def resnet50_fpn_p3p7(extra_input: str = "c5", **kwargs) -> FPNP3P7:
    return FPNP3P7(resnet50(num_classes=0, **kwargs), 256, extra_input)


@register_model("retinanet")
def retinanet(num_classes: int = 80, **kwargs) -> RetinaNet:
    return RetinaNet(resnet50_fpn_p3p7("c5", **kwargs), num_classes)


@register_model("fsaf")
def fsaf(num_classes: int = 80, **kwargs) -> FSAF:
    return FSAF(resnet50_fpn_p3p7("c5", **kwargs), num_classes)
