"""FaceBoxes (Zhang et al., "FaceBoxes: A CPU Real-time Face Detector with High Accuracy", IJCB 2017).

Reference configuration (paper §3, the authors' released Caffe model sfzhang15/FaceBoxes,
models/faceboxes/deploy.prototxt):
- RDCL (Rapidly Digested Convolutional Layers): conv1 7x7/4, 24 filters, C.ReLU (48 channels), max pool
  3x3/2; conv2 5x5/2, 64 filters, C.ReLU (128 channels), max pool 3x3/2: stride 32 after four layers.
- MSCL (Multiple Scale Convolutional Layers): three Inception modules (128 channels each: a 1x1 branch,
  3x3 average pool + 1x1, 1x1 + 3x3, 1x1 + 3x3 + 3x3, 32 channels per branch), then conv3_1 1x1/128 +
  conv3_2 3x3/2/256 and conv4_1 1x1/128 + conv4_2 3x3/2/256. Detection layers: Inception3 (stride 32,
  anchors 32, 64, 128), conv3_2 (stride 64, anchor 256), conv4_2 (stride 128, anchor 512).
- Anchor densification (paper §3.3): anchor 32 is tiled 4x4 times and anchor 64 2x2 times per
  Inception3 location, so every anchor scale has density 4: 16 + 4 + 1 = 21 anchors there, 1 on the
  other two layers. Each detection layer has a 3x3 conv for 2 class scores (background, face) and one
  for 4 box offsets per anchor; scores are a softmax over the two classes.
- Every conv is conv → BN → scale/shift → ReLU as in the authors' Caffe model; C.ReLU is conv → BN →
  concat(x, -x) → scale/shift over the doubled channels → ReLU (Shang et al.'s C.ReLU).

Decisions:
- Anchors follow the authors' PriorBox layer exactly: centres ((j + 0.5) step, (i + 0.5) step); the
  densified copies are shifted by k·step/n - step/2 (k = 0..n-1: -16, -8, 0, 8 px for anchor 32 and
  -16, 0 px for anchor 64), row offset outer, column offset inner; Caffe's pixel convention makes an
  anchor of size s span s - 1 pixels. Per location: the 16 anchors 32, the 4 anchors 64, anchor 128.
- Box coding is SSD's (variances 0.1, 0.1, 0.2, 0.2, i.e. R-CNN deltas with weights 10, 10, 5, 5),
  not clipped (the released DetectionOutput does not clip). `decode` uses boxes.decode_deltas, whose
  log-size clamp at log(1000/16) only touches boxes 62x their anchor.
- Pools are Caffe's (no padding, ceil mode), so a 640x480 image gives 20x15, 10x8 and 5x4 maps.
- Layers and their order follow the released Caffe model; module names are the PyTorch port's
  (conv1, inception1..3, conv3_1 ..., loc/conf) with the Inception branches named after their role.
  The widely used PyTorch port (zisianw/FaceBoxes.PyTorch) differs in three details: its C.ReLU has an affine BN over
  24/64 channels instead of the scale over 48/128 (176 parameters fewer), its pools are padded instead
  of ceil-mode (same sizes, shifted windows), and its Inception concatenates the 1x1 branch before the
  pooled one.
- The released model reads BGR pixels minus (104, 117, 123); this input is RGB (the recipe's
  normalisation holds the same means in RGB order), so Caffe weights need conv1's input channels
  reversed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..detection.boxes import decode_deltas, flatten_level
from ..registry import register_model

# (stride, anchor sizes) per detection layer, and the densification factor of each anchor size
LEVELS = ((32, (32, 64, 128)), (64, (256,)), (128, (512,)))
DENSIFY = {32: 4, 64: 2}
VARIANCE_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # 1/0.1, 1/0.1, 1/0.2, 1/0.2
HEAD_BIAS = 0.2  # the released model's bias filler for the prediction convs


def anchors_per_location(sizes) -> int:
    return sum(DENSIFY.get(s, 1) ** 2 for s in sizes)


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) → BN → ReLU: Caffe's conv, BatchNorm, Scale (the BN's affine part here), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)


class ChannelAffine(nn.Module):
    """Per-channel scale and shift (Caffe's Scale layer with a bias term)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class CReLU(nn.Module):
    """Concatenated ReLU: conv → BN (no affine) → [x, -x] → scale/shift over 2C channels → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, affine=False)
        self.scale = ChannelAffine(2 * out_channels)

    def forward(self, x):
        x = self.bn(self.conv(x))
        return torch.relu(self.scale(torch.cat((x, -x), dim=1)))


class Inception(nn.Module):
    """Four 32-channel branches on a 128-channel input, concatenated in the released model's order:
    3x3 average pool + 1x1; 1x1; 1x1 (24) + 3x3; 1x1 (24) + 3x3 + 3x3. The average pool counts the
    zero padding, as Caffe's AVE pooling does."""

    def __init__(self, in_channels: int = 128):
        super().__init__()
        self.pool = nn.AvgPool2d(3, 1, 1)
        self.branch_pool = ConvBNReLU(in_channels, 32, 1)
        self.branch1x1 = ConvBNReLU(in_channels, 32, 1)
        self.branch3x3_reduce = ConvBNReLU(in_channels, 24, 1)
        self.branch3x3 = ConvBNReLU(24, 32, 3, padding=1)
        self.branch3x3_2_reduce = ConvBNReLU(in_channels, 24, 1)
        self.branch3x3_2 = ConvBNReLU(24, 32, 3, padding=1)
        self.branch3x3_3 = ConvBNReLU(32, 32, 3, padding=1)

    def forward(self, x):
        return torch.cat((
            self.branch_pool(self.pool(x)),
            self.branch1x1(x),
            self.branch3x3(self.branch3x3_reduce(x)),
            self.branch3x3_3(self.branch3x3_2(self.branch3x3_2_reduce(x))),
        ), dim=1)


class FaceBoxes(nn.Module):
    """Raw outputs per detection layer: class logits [B, A*2, H, W] (background, face per anchor), then
    box offsets [B, A*4, H, W], for Inception3, conv3_2, conv4_2."""

    def __init__(self, num_classes: int = 2, in_chans: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = CReLU(in_chans, 24, 7, 4, 3)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = CReLU(48, 64, 5, 2, 2)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception1 = Inception()
        self.inception2 = Inception()
        self.inception3 = Inception()
        self.conv3_1 = ConvBNReLU(128, 128, 1)
        self.conv3_2 = ConvBNReLU(128, 256, 3, 2, 1)
        self.conv4_1 = ConvBNReLU(256, 128, 1)
        self.conv4_2 = ConvBNReLU(128, 256, 3, 2, 1)
        channels = (128, 256, 256)
        anchors = [anchors_per_location(sizes) for _, sizes in LEVELS]
        self.loc = nn.ModuleList(nn.Conv2d(c, a * 4, 3, padding=1) for c, a in zip(channels, anchors))
        self.conf = nn.ModuleList(nn.Conv2d(c, a * num_classes, 3, padding=1) for c, a in zip(channels, anchors))
        self._init_weights()

    def _init_weights(self):
        # released model: backbone convs N(0, 0.01); prediction convs Caffe "xavier" (uniform with
        # variance 1/fan_in) and bias 0.2; BN/Scale at 1 and 0
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
        for conv in (*self.loc, *self.conf):
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            bound = math.sqrt(3.0 / fan_in)
            nn.init.uniform_(conv.weight, -bound, bound)
            nn.init.constant_(conv.bias, HEAD_BIAS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.pool2(self.conv2(self.pool1(self.conv1(x))))
        s1 = self.inception3(self.inception2(self.inception1(x)))
        s2 = self.conv3_2(self.conv3_1(s1))
        s3 = self.conv4_2(self.conv4_1(s2))
        out = []
        for source, conf, loc in zip((s1, s2, s3), self.conf, self.loc):
            out += [conf(source), loc(source)]
        return tuple(out)

    @staticmethod
    def prior_boxes(sizes) -> torch.Tensor:
        """Anchors [N, 4] (x1, y1, x2, y2, input pixels) for detection maps of the given (h, w) sizes,
        location-major, in the released PriorBox layer's order (see the module docstring)."""
        per_level = []
        for (h, w), (step, anchor_sizes) in zip(sizes, LEVELS):
            shapes = []
            for size in anchor_sizes:
                n = DENSIFY.get(size, 1)
                shifts = [k * step / n - (step / 2 if n > 1 else 0.0) for k in range(n)]
                half = (size - 1) / 2
                shapes += [(dx - half, dy - half, dx + half, dy + half) for dy in shifts for dx in shifts]
            base = torch.tensor(shapes, dtype=torch.float32)  # [A, 4] about the cell centre
            ys = (torch.arange(h, dtype=torch.float32) + 0.5) * step
            xs = (torch.arange(w, dtype=torch.float32) + 0.5) * step
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            centres = torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=1).repeat(1, 2)  # [HW, 4]
            per_level.append((centres[:, None, :] + base[None]).reshape(-1, 4))
        return torch.cat(per_level)

    def decode(self, outputs, image_size) -> dict[str, torch.Tensor]:
        conf_maps, loc_maps = outputs[0::2], outputs[1::2]
        sizes = [tuple(int(d) for d in t.shape[-2:]) for t in conf_maps]
        anchors = self.prior_boxes(sizes)
        logits = torch.cat([flatten_level(t, self.num_classes) for t in conf_maps], dim=1)
        deltas = torch.cat([flatten_level(t, 4) for t in loc_maps], dim=1)
        boxes = decode_deltas(anchors, deltas, weights=VARIANCE_WEIGHTS)
        return {"boxes": boxes, "scores": logits.softmax(dim=-1)[..., 1:]}  # C = 1: face


@register_model("faceboxes")
def faceboxes(**kwargs) -> FaceBoxes:
    return FaceBoxes(**kwargs)
