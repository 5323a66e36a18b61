"""SSD (Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016): SSD300 on VGG-16.

Base network: VGG-16 through conv5_3 with pool3 in ceil mode (75 → 38), pool5 changed to 3x3 stride 1,
and fc6/fc7 turned into convolutions: fc6 a 3x3 conv with dilation 6 (1024 channels), fc7 a 1x1 conv.
Extra layers conv8_2 … conv11_2 (1x1 reduction, then 3x3 stride 2 / valid) give six source maps:
conv4_3 38x38 (L2-normalised, learnable per-channel scale initialised to 20), fc7 19x19, conv8_2 10x10,
conv9_2 5x5, conv10_2 3x3, conv11_2 1x1. Each map has a 3x3 conv predicting, per default box, class
scores and (cx, cy, w, h) offsets.

Decisions:
- Classes: 21 (PASCAL VOC's 20 + background), the setting of the paper's main results (Table 1,
  SSD300 74.3 mAP on VOC2007 test). torchvision's `ssd300_vgg16` is the COCO model (91 classes); module
  names follow it, so its state dicts load (built with num_classes=21 its count equals ours).
- Default boxes are those of the authors' released VOC model (Caffe `ssd_pascal.py`), which implements
  §2.2/§3.1 of the paper: scale 0.1 on conv4_3, s_min 0.2 and s_max 0.9 spread over the other five maps
  (in whole percents, step 17: 0.2, 0.37, 0.54, 0.71, 0.88), an extra box of scale sqrt(s_k s_k+1) at
  aspect ratio 1 (s_7 = 1.05), aspect ratios {1, 2, 1/2} on conv4_3, conv10_2, conv11_2 (4 boxes) and
  {1, 2, 1/2, 3, 1/3} elsewhere (6 boxes): 8732 boxes. Centres are ((j + 0.5) step, (i + 0.5) step) with
  steps 8, 16, 32, 64, 100, 300 pixels, not clipped.
- The input is a fixed 300x300 (the default boxes are laid out for it).
- `decode`: SSD's box coding with variances (0.1, 0.2), i.e. R-CNN deltas with weights (10, 10, 5, 5)
  against centre-size priors; scores are the softmax over the 21 classes without the background.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model
from .boxes import centre_size_to_corners, decode_deltas, flatten_level

IMAGE_SIZE = 300
# VGG-16 (configuration D) through conv4_3; "C" is pool3 in ceil mode so 75x75 becomes 38x38.
VGG16_TO_CONV4_3 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512)
# Extra layers after fc7: (1x1 reduction width, 3x3 output width, stride, padding).
EXTRAS = ((256, 512, 2, 1), (128, 256, 2, 1), (128, 256, 1, 0), (128, 256, 1, 0))
SOURCE_CHANNELS = (512, 1024, 512, 256, 256, 256)
# Default boxes of the VOC SSD300 (see the module docstring): one scale more than there are maps.
SCALES = (0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05)
STEPS = (8, 16, 32, 64, 100, 300)
ASPECT_RATIOS = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
VARIANCE_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # 1/0.1, 1/0.1, 1/0.2, 1/0.2


def boxes_per_location(ratios) -> int:
    return 2 + 2 * len(ratios)


def _relu_conv(in_channels: int, out_channels: int, kernel: int, **kwargs) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel, **kwargs), nn.ReLU(inplace=True)]


class VGG16Base(nn.Module):
    """VGG-16 with fc6/fc7 as convolutions, plus the extra layers: returns the six source maps."""

    def __init__(self, in_chans: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_chans
        for width in VGG16_TO_CONV4_3:
            if width in ("M", "C"):
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=width == "C"))
            else:
                layers += _relu_conv(channels, width, 3, padding=1)
                channels = width
        self.features = nn.Sequential(*layers)
        # conv4_3's L2 normalisation: one learnable scale per channel (ParseNet), initialised to 20
        self.scale_weight = nn.Parameter(torch.full((512,), 20.0))
        fc = nn.Sequential(
            nn.MaxPool2d(3, 1, padding=1),  # pool5, 3x3 stride 1
            *_relu_conv(512, 1024, 3, padding=6, dilation=6),  # fc6
            *_relu_conv(1024, 1024, 1),  # fc7
        )
        conv5 = [nn.MaxPool2d(2, 2)] + [m for _ in range(3) for m in _relu_conv(512, 512, 3, padding=1)]
        extra = [nn.Sequential(*conv5, fc)]
        channels = 1024
        for reduce, out, stride, padding in EXTRAS:
            extra.append(nn.Sequential(
                *_relu_conv(channels, reduce, 1),
                *_relu_conv(reduce, out, 3, stride=stride, padding=padding),
            ))
            channels = out
        self.extra = nn.ModuleList(extra)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.features(x)
        sources = [self.scale_weight.view(1, -1, 1, 1) * F.normalize(x, dim=1)]
        for block in self.extra:
            x = block(x)
            sources.append(x)
        return sources


class ScoringHead(nn.Module):
    """One 3x3 conv per source map predicting `per_box` values for each of its default boxes."""

    def __init__(self, channels, boxes, per_box: int):
        super().__init__()
        self.module_list = nn.ModuleList(nn.Conv2d(c, a * per_box, 3, padding=1) for c, a in zip(channels, boxes))


class SSDHead(nn.Module):
    def __init__(self, channels, boxes, num_classes: int):
        super().__init__()
        self.classification_head = ScoringHead(channels, boxes, num_classes)
        self.regression_head = ScoringHead(channels, boxes, 4)


class SSD300(nn.Module):
    def __init__(self, num_classes: int = 21, in_chans: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.boxes = tuple(boxes_per_location(r) for r in ASPECT_RATIOS)
        self.backbone = VGG16Base(in_chans)
        self.head = SSDHead(SOURCE_CHANNELS, self.boxes, num_classes)
        self._init_weights()

    def _init_weights(self):
        # VGG-16's layers up to fc7 (the paper starts them from ImageNet weights): He init as torchvision's
        # VGG; the extra layers and the heads: Xavier, zero bias, as the authors' Caffe model
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d):
                if name.startswith(("backbone.features.", "backbone.extra.0.")):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = []
        for source, cls, box in zip(self.backbone(x), self.head.classification_head.module_list,
                                    self.head.regression_head.module_list):
            out += [cls(source), box(source)]
        return tuple(out)

    @staticmethod
    def default_boxes(sizes, image_size) -> torch.Tensor:
        """Default boxes [N, 4] as (cx, cy, w, h) in input pixels, for maps of the given (h, w) sizes;
        location-major, then box: [s_k, sqrt(s_k s_k+1), then each ratio r as r and 1/r]."""
        height, width = image_size
        per_level = []
        for k, ((h, w), step, ratios) in enumerate(zip(sizes, STEPS, ASPECT_RATIOS)):
            s, s_next = SCALES[k], SCALES[k + 1]
            shapes = [(s, s), (math.sqrt(s * s_next),) * 2]
            for r in ratios:
                shapes += [(s * math.sqrt(r), s / math.sqrt(r)), (s / math.sqrt(r), s * math.sqrt(r))]
            wh = torch.tensor(shapes, dtype=torch.float32) * torch.tensor([width, height], dtype=torch.float32)
            ys = (torch.arange(h, dtype=torch.float32) + 0.5) * (step * height / IMAGE_SIZE)
            xs = (torch.arange(w, dtype=torch.float32) + 0.5) * (step * width / IMAGE_SIZE)
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            centres = torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=1)  # [HW, 2]
            a = len(shapes)
            per_level.append(torch.cat((centres.repeat_interleave(a, dim=0), wh.repeat(h * w, 1)), dim=1))
        return torch.cat(per_level)

    def decode(self, outputs, image_size) -> dict[str, torch.Tensor]:
        cls_maps, box_maps = outputs[0::2], outputs[1::2]
        sizes = [tuple(int(d) for d in t.shape[-2:]) for t in cls_maps]
        priors = centre_size_to_corners(self.default_boxes(sizes, image_size))
        logits = torch.cat([flatten_level(t, self.num_classes) for t in cls_maps], dim=1)
        deltas = torch.cat([flatten_level(t, 4) for t in box_maps], dim=1)
        boxes = decode_deltas(priors, deltas, weights=VARIANCE_WEIGHTS)
        return {"boxes": boxes, "scores": logits.softmax(dim=-1)[..., 1:]}


@register_model("ssd300-vgg16")
def ssd300_vgg16(**kwargs) -> SSD300:
    return SSD300(**kwargs)
