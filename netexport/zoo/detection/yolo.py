"""YOLO v1-v3 (Redmon et al.) and the Darknet blocks they are built from.

yolov1 — "You Only Look Once: Unified, Real-Time Object Detection", CVPR 2016, the paper's network
(Fig. 3): 24 convolutional layers (with biases; batch norm came with v2) and 2 fully connected
layers, leaky ReLU 0.1 everywhere but the last layer, dropout 0.5 after the first FC (train only),
448x448 input, S=7, B=2, C=20 (VOC). The FC output is kept in darknet's layout (its yolo.cfg,
`[detection] side=7 num=2 sqrt=1 softmax=0`): 7*7*20 class probabilities, then 7*7*2 box
confidences, then 7*7*2*4 boxes (x, y relative to the cell, sqrt(w), sqrt(h) relative to the
image) — the paper's 7x7x30 tensor, 1470 values, so darknet weights load as they are.

yolov2 — "YOLO9000: Better, Faster, Stronger", CVPR 2017: the VOC detector of Table 3 (76.8 mAP at
416), as darknet's yolov2-voc.cfg, the configuration released with those weights: Darknet-19 less
its classifier, three 3x3x1024 convs, the passthrough from the last 26x26x512 layer (a 1x1 conv to
64 channels, then darknet's `reorg` to 13x13x256), concatenated before a 3x3x1024 conv and the 1x1
output conv: 5 anchors x (4 + 1 + 20) = 125 channels. The paper's text reorganises all 512
channels (13x13x2048, darknet's earlier yolo-voc.2.0.cfg): `passthrough_channels=None` gives that.

Export rewrite `darknet-reorg-as-reshape`: darknet's reorg layer (reorg_cpu, forward=0, called with
the *input's* w, h, c) reads the input buffer as if it had C/4 channels of 2Hx2W and stacks its
2x2 neighbourhoods — not the channel order of ONNX SpaceToDepth, and not a space-to-depth of the
real 26x26 map. `darknet_reorg` computes the same permutation with one reshape, one transpose and
one reshape; tests/test_rewrites_yolo.py checks it against a transcription of darknet's index loop.

yolov3 — "YOLOv3: An Incremental Improvement", 2018, darknet's yolov3.cfg: Darknet-53, then three
detection scales (strides 32, 16, 8: 13/26/52 at 416) of 3 anchors x (4 + 1 + 80) = 255
channels, 9 COCO anchors, nearest 2x upsampling and [upsampled, backbone] concatenation.

`forward` returns the raw head outputs; `decode` is the paper's inference: v1 boxes per cell with
w = out^2 and class-specific confidence Pr(class|object) * confidence (no sigmoid or softmax, as
darknet); v2 sigmoid(tx) + cx, anchor * exp(tw), sigmoid objectness x softmax classes; v3 the same
with sigmoid (independent logistic) classes.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvBNAct
from ..registry import register_model
from .boxes import centre_size_to_corners

LEAKY = partial(nn.LeakyReLU, 0.1)

# yolov2-voc.cfg [region] anchors, in 13x13-grid cells (multiples of the stride)
YOLOV2_VOC_ANCHORS = ((1.3221, 1.73145), (3.19275, 4.00944), (5.05587, 8.09892), (9.47112, 4.84053),
                      (11.2364, 10.0071))
# yolov3.cfg anchors in input pixels; masks 6,7,8 / 3,4,5 / 0,1,2 for strides 32 / 16 / 8
YOLOV3_COCO_ANCHORS = ((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198),
                       (373, 326))


def anchors_per_level(anchors) -> torch.Tensor:
    """Nine (w, h) anchors, smallest first as in the cfg → [3, 3, 2], rows for strides 32, 16, 8
    (the [yolo] masks 6,7,8 / 3,4,5 / 0,1,2, the order of the outputs)."""
    return torch.tensor(anchors, dtype=torch.float32).reshape(3, 3, 2).flip(0)


def conv_bn_leaky(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> ConvBNAct:
    """Darknet's `[convolutional] batch_normalize=1 activation=leaky` (pad = size // 2)."""
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, act=LEAKY)


class DarknetResidual(nn.Module):
    """Darknet-53 residual unit: 1x1 to half the channels, 3x3 back, `[shortcut] from=-3`."""

    def __init__(self, channels: int):
        super().__init__()
        self.reduce = conv_bn_leaky(channels, channels // 2, 1)
        self.expand = conv_bn_leaky(channels // 2, channels, 3)

    def forward(self, x):
        return x + self.expand(self.reduce(x))


class Darknet53(nn.Module):
    """Darknet-53 body (YOLOv3 Table 1, no classifier): returns the stride-8, 16 and 32 maps."""

    STAGES = ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4))  # (channels, residual units)

    def __init__(self, in_chans: int = 3):
        super().__init__()
        self.stem = conv_bn_leaky(in_chans, 32, 3)
        channels, stages = 32, []
        for out, repeats in self.STAGES:
            stages.append(nn.Sequential(conv_bn_leaky(channels, out, 3, 2),
                                        *(DarknetResidual(out) for _ in range(repeats))))
            channels = out
        self.stages = nn.ModuleList(stages)
        self.stage_channels = (256, 512, 1024)

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= 2:
                outs.append(x)
        return tuple(outs)  # C3 (stride 8), C4 (16), C5 (32)


def init_darknet(module: nn.Module) -> None:
    """darknet's make_convolutional_layer: weights uniform in ±sqrt(2 / fan_in), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            bound = math.sqrt(2.0 / (m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]))
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def darknet_reorg(x: torch.Tensor, stride: int = 2) -> torch.Tensor:
    """darknet's `[reorg]` (reorg_cpu(input, w, h, c, batch, stride, forward=0)) as reshape/permute.

    [B, C, H, W] → [B, C*s*s, H/s, W/s]. darknet views the input buffer as [C/s², H*s, W*s] and
    writes output channel k = (dy*s + dx) * C/s² + c2 of an [C, H, W]-shaped buffer from position
    (c2, j*s + dy, i*s + dx) of that view; the result is then read as [C*s², H/s, W/s]."""
    b, c, h, w = x.shape
    s = stride
    view = x.reshape(b, c // (s * s), h, s, w, s)  # (c2, j, dy, i, dx) of the [C/s², H*s, W*s] view
    return view.permute(0, 3, 5, 1, 2, 4).reshape(b, c * s * s, h // s, w // s)


def _cell_offsets(height: int, width: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Column and row index of each cell, row-major: two [H*W] tensors."""
    rows, cols = torch.meshgrid(torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij")
    return cols.reshape(-1), rows.reshape(-1)


def decode_yolov1(out: torch.Tensor, image_size, side: int = 7, boxes_per_cell: int = 2,
                  num_classes: int = 20) -> dict[str, torch.Tensor]:
    """darknet's get_detection_boxes on the flat [B, S*S*(C + B*5)] output (sqrt=1, softmax=0)."""
    height, width = image_size
    batch, cells = out.shape[0], side * side
    cls = out[:, : cells * num_classes].reshape(batch, cells, 1, num_classes)
    conf_end = cells * (num_classes + boxes_per_cell)
    conf = out[:, cells * num_classes: conf_end].reshape(batch, cells, boxes_per_cell, 1)
    box = out[:, conf_end:].reshape(batch, cells, boxes_per_cell, 4)
    cols, rows = _cell_offsets(side, side, out.dtype)
    cx = (box[..., 0] + cols[:, None]) * (width / side)
    cy = (box[..., 1] + rows[:, None]) * (height / side)
    w = box[..., 2] * box[..., 2] * width
    h = box[..., 3] * box[..., 3] * height
    boxes = centre_size_to_corners(torch.stack((cx, cy, w, h), dim=-1))
    scores = conf * cls  # class-specific confidence: Pr(class | object) * Pr(object) * IoU
    return {"boxes": boxes.reshape(batch, -1, 4), "scores": scores.reshape(batch, -1, num_classes)}


def decode_anchor_level(t: torch.Tensor, anchors: torch.Tensor, image_size, softmax_classes: bool) -> dict:
    """One YOLOv2/v3 level [B, A*(5+C), H, W] → boxes [B, H*W*A, 4], scores [B, H*W*A, C].

    darknet's region/yolo layers: per anchor the channels are tx, ty, tw, th, objectness, classes;
    box centre (cell + sigmoid(t)) * stride, size anchor (input pixels) * exp(t)."""
    b, _, h, w = t.shape
    num_anchors = anchors.shape[0]
    height, width = image_size
    p = t.reshape(b, num_anchors, -1, h, w).permute(0, 3, 4, 1, 2).reshape(b, h * w, num_anchors, -1)
    cols, rows = _cell_offsets(h, w, t.dtype)
    cx = (torch.sigmoid(p[..., 0]) + cols[:, None]) * (width / w)
    cy = (torch.sigmoid(p[..., 1]) + rows[:, None]) * (height / h)
    bw = torch.exp(p[..., 2]) * anchors[:, 0]
    bh = torch.exp(p[..., 3]) * anchors[:, 1]
    classes = torch.softmax(p[..., 5:], dim=-1) if softmax_classes else torch.sigmoid(p[..., 5:])
    scores = torch.sigmoid(p[..., 4:5]) * classes
    boxes = centre_size_to_corners(torch.stack((cx, cy, bw, bh), dim=-1))
    return {"boxes": boxes.reshape(b, -1, 4), "scores": scores.reshape(b, h * w * num_anchors, -1)}


class YOLOv1(nn.Module):
    # (kernel, filters, stride) per conv, "M" a 2x2/2 max pool: the paper's Fig. 3
    LAYERS = ((7, 64, 2), "M", (3, 192, 1), "M",
              (1, 128, 1), (3, 256, 1), (1, 256, 1), (3, 512, 1), "M",
              *((1, 256, 1), (3, 512, 1)) * 4, (1, 512, 1), (3, 1024, 1), "M",
              *((1, 512, 1), (3, 1024, 1)) * 2, (3, 1024, 1), (3, 1024, 2),
              (3, 1024, 1), (3, 1024, 1))

    def __init__(self, num_classes: int = 20, side: int = 7, boxes_per_cell: int = 2, in_chans: int = 3):
        super().__init__()
        self.num_classes, self.side, self.boxes_per_cell = num_classes, side, boxes_per_cell
        layers, channels = [], in_chans
        for spec in self.LAYERS:
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            kernel, filters, stride = spec
            layers += [nn.Conv2d(channels, filters, kernel, stride, kernel // 2), LEAKY()]
            channels = filters
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(channels * side * side, 4096),
            LEAKY(),
            nn.Dropout(0.5),
            nn.Linear(4096, side * side * (num_classes + boxes_per_cell * 5)),
        )

    def forward(self, x):
        return self.classifier(self.features(x))

    def place_random_head(self, _warm_up_inputs=None, spread: float = 0.1) -> None:
        """Random weights only: darknet reads the last layer's outputs unbounded, as probabilities,
        confidences, cell offsets and square roots of sizes, and trains them toward [0, 1]. After the
        unit-variance init they are N(0, 1), so scores (conf x class prob) are signed and boxes have
        arbitrary sizes. Shrink the layer to a `spread` standard deviation around the targets' middle:
        class probability 1/C, confidence 0.5, offsets 0.5, sqrt sizes 0.3 (a box ~30% of the image)."""
        last = self.classifier[-1]
        last.weight.mul_(spread)
        cells = self.side * self.side
        bias = torch.empty(cells, self.num_classes + self.boxes_per_cell * 5)
        classes_end = cells * self.num_classes
        conf_end = classes_end + cells * self.boxes_per_cell
        flat = bias.view(-1)
        flat[:classes_end] = 1.0 / self.num_classes
        flat[classes_end:conf_end] = 0.5
        boxes = flat[conf_end:].view(cells, self.boxes_per_cell, 4)
        boxes[..., :2] = 0.5
        boxes[..., 2:] = 0.3
        last.bias.copy_(flat)

    def decode(self, outputs, image_size):
        out = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
        return decode_yolov1(out, image_size, self.side, self.boxes_per_cell, self.num_classes)


class YOLOv2(nn.Module):
    """Darknet-19 detector with the passthrough layer (yolov2-voc.cfg)."""

    def __init__(self, num_classes: int = 20, anchors=YOLOV2_VOC_ANCHORS, passthrough_channels: int | None = 64,
                 in_chans: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32) * 32, persistent=False)
        pool = partial(nn.MaxPool2d, 2, 2)
        # Darknet-19 up to the last 26x26x512 conv (its layer 16, the passthrough source) ...
        self.stage1 = nn.Sequential(
            conv_bn_leaky(in_chans, 32, 3), pool(),
            conv_bn_leaky(32, 64, 3), pool(),
            conv_bn_leaky(64, 128, 3), conv_bn_leaky(128, 64, 1), conv_bn_leaky(64, 128, 3), pool(),
            conv_bn_leaky(128, 256, 3), conv_bn_leaky(256, 128, 1), conv_bn_leaky(128, 256, 3), pool(),
            conv_bn_leaky(256, 512, 3), conv_bn_leaky(512, 256, 1), conv_bn_leaky(256, 512, 3),
            conv_bn_leaky(512, 256, 1), conv_bn_leaky(256, 512, 3),
        )
        # ... then the stride-32 convs and the two added 3x3x1024 convs
        self.stage2 = nn.Sequential(
            pool(),
            conv_bn_leaky(512, 1024, 3), conv_bn_leaky(1024, 512, 1), conv_bn_leaky(512, 1024, 3),
            conv_bn_leaky(1024, 512, 1), conv_bn_leaky(512, 1024, 3),
            conv_bn_leaky(1024, 1024, 3), conv_bn_leaky(1024, 1024, 3),
        )
        if passthrough_channels is None:
            self.passthrough, passthrough_channels = nn.Identity(), 512
        else:
            self.passthrough = conv_bn_leaky(512, passthrough_channels, 1)
        self.fuse = conv_bn_leaky(1024 + 4 * passthrough_channels, 1024, 3)
        self.head = nn.Conv2d(1024, len(anchors) * (5 + num_classes), 1)
        init_darknet(self)

    def forward(self, x):
        fine = self.stage1(x)
        coarse = self.stage2(fine)
        # [route] layers=-1,-4: the reorganised passthrough first, then the 13x13x1024 map
        x = torch.cat((darknet_reorg(self.passthrough(fine), 2), coarse), dim=1)
        return (self.head(self.fuse(x)),)

    def decode(self, outputs, image_size):
        return decode_anchor_level(outputs[0], self.anchors, image_size, softmax_classes=True)


def detection_block(in_channels: int, channels: int) -> nn.Sequential:
    """yolov3.cfg's five convs before each output: 1x1 c, 3x3 2c, 1x1 c, 3x3 2c, 1x1 c."""
    return nn.Sequential(
        conv_bn_leaky(in_channels, channels, 1), conv_bn_leaky(channels, channels * 2, 3),
        conv_bn_leaky(channels * 2, channels, 1), conv_bn_leaky(channels, channels * 2, 3),
        conv_bn_leaky(channels * 2, channels, 1),
    )


class YOLOv3(nn.Module):
    def __init__(self, num_classes: int = 80, anchors=YOLOV3_COCO_ANCHORS, in_chans: int = 3):
        super().__init__()
        self.num_classes = num_classes
        out = 3 * (5 + num_classes)
        self.register_buffer("anchors", anchors_per_level(anchors), persistent=False)
        self.backbone = Darknet53(in_chans)
        self.block5 = detection_block(1024, 512)
        self.head5 = nn.Sequential(conv_bn_leaky(512, 1024, 3), nn.Conv2d(1024, out, 1))
        self.lateral4 = conv_bn_leaky(512, 256, 1)
        self.block4 = detection_block(256 + 512, 256)
        self.head4 = nn.Sequential(conv_bn_leaky(256, 512, 3), nn.Conv2d(512, out, 1))
        self.lateral3 = conv_bn_leaky(256, 128, 1)
        self.block3 = detection_block(128 + 256, 128)
        self.head3 = nn.Sequential(conv_bn_leaky(128, 256, 3), nn.Conv2d(256, out, 1))
        init_darknet(self)

    def forward(self, x):
        c3, c4, c5 = self.backbone(x)
        x5 = self.block5(c5)
        x4 = self.block4(torch.cat((F.interpolate(self.lateral4(x5), scale_factor=2.0, mode="nearest"), c4), 1))
        x3 = self.block3(torch.cat((F.interpolate(self.lateral3(x4), scale_factor=2.0, mode="nearest"), c3), 1))
        return self.head5(x5), self.head4(x4), self.head3(x3)

    def decode(self, outputs, image_size):
        levels = [decode_anchor_level(t, self.anchors[i], image_size, softmax_classes=False)
                  for i, t in enumerate(outputs)]
        return {k: torch.cat([lv[k] for lv in levels], dim=1) for k in ("boxes", "scores")}


@register_model("yolov1")
def yolov1(**kwargs) -> YOLOv1:
    return YOLOv1(**kwargs)


@register_model("yolov2")
def yolov2(**kwargs) -> YOLOv2:
    return YOLOv2(**kwargs)


@register_model("yolov3")
def yolov3(**kwargs) -> YOLOv3:
    return YOLOv3(**kwargs)
