"""LFFD (He et al., "LFFD: A Light and Fast Face Detector for Edge Devices", arXiv 1904.10633, 2019).

Reference configuration: the paper's v1 network (the authors' release YonghaoHe/LFFD-A-Light-and-Fast-
Face-Detector-for-Edge-Devices, symbol_10_560_25L_8scales_v1.py + configuration_10_560_25L_8scales_v1.py):
25 3x3 conv layers with ReLU and no batch norm. conv1 and conv2 are stride-2 unpadded convs (64
filters); conv3..conv10 are four residual pairs at stride 4, conv11 (stride 2, unpadded) and two pairs
at stride 8, conv16 (stride 2, unpadded, 128 filters) and one pair at stride 16, conv19 (stride 2,
unpadded) and three pairs at stride 32. A residual pair adds its second conv's output to the pair's
input *before* the ReLU (the stream carries pre-activation sums, as the released symbol). Eight
branches read the ReLU outputs of conv8, conv10, conv13, conv15, conv18, conv21, conv23, conv25
(receptive fields 55, 71, 111, 143, 223, 383, 511, 639 pixels; strides 4, 4, 8, 8, 16, 32, 32, 32).

Each branch: 1x1 conv (128) + ReLU, then a score head (1x1 conv 128 + ReLU + 1x1 conv to 2 logits:
channel 0 face, channel 1 background, softmax) and a box head (1x1 conv 128 + ReLU + 1x1 conv to 4).
No anchors: every location is one receptive field (RF) whose centre is (stride - 1 + stride·j,
stride - 1 + stride·i) (unpadded stride-2 convs put the first centre at stride - 1), and the box head
regresses the face's corners relative to it, normalised by a per-branch constant c:
x1 = cx - t0·c, y1 = cy - t1·c, x2 = cx - t2·c, y2 = cy - t3·c.

Decisions:
- c is half the upper bound of each branch's face-scale range (15, 20, 40, 70, 110, 250, 400, 560 px),
  as the released configuration trains and predicts ("we use param_bbox_large_list for better
  regression"), not half the RF size.
- `forward` returns the two logits per location (the released deploy symbol ends in a softmax and
  keeps channel 0); `decode` applies the softmax and keeps the face probability, and clips x1, y1 at 0
  and x2, y2 at the image size, as the released predict.py does.
- The released evaluation's NMS divides the intersection by the lower-scored box's area; the
  end-to-end graph uses standard IoU NMS (see recipes/face/lffd.yaml).
- Random init only: `place_random_head` centres the box offsets on mid-range faces and gives the
  score heads a 0.01 face prior (see its docstring; recipes/face/lffd.yaml has the measurements).
- The input is the released symbol's (pixels - 127.5) / 127.5 (recipe normalisation mean 0.5, std 0.5),
  on BGR images there; the symmetric normalisation lets Caffe/MXNet weights load with conv1's input
  channels reversed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..detection.boxes import flatten_level
from ..registry import register_model

# Per branch: the conv whose output it reads, its stride, face-scale range (the released config)
BRANCHES = (
    ("conv8", 4, (10, 15)),
    ("conv10", 4, (15, 20)),
    ("conv13", 8, (20, 40)),
    ("conv15", 8, (40, 70)),
    ("conv18", 16, (70, 110)),
    ("conv21", 32, (110, 250)),
    ("conv23", 32, (250, 400)),
    ("conv25", 32, (400, 560)),
)
# Layers after conv2: a stride-2 down-sampling conv, or a residual pair "convA+convB" whose convB
# output is added to the pair's input (both pre-activation); then the layer's width. Branches read
# the ReLU of the conv they are named after.
LAYERS = (
    ("conv3+conv4", 64), ("conv5+conv6", 64), ("conv7+conv8", 64), ("conv9+conv10", 64),
    ("conv11", 64), ("conv12+conv13", 64), ("conv14+conv15", 64),
    ("conv16", 128), ("conv17+conv18", 128),
    ("conv19", 128), ("conv20+conv21", 128), ("conv22+conv23", 128), ("conv24+conv25", 128),
)
BRANCH_WIDTH = 128
FACE_PRIOR = 0.01  # random init only: the mean face probability place_random_head gives each branch


class LossBranch(nn.Module):
    """1x1 conv + ReLU shared by a score head (→ 2 logits) and a box head (→ 4 offsets)."""

    def __init__(self, in_channels: int, width: int = BRANCH_WIDTH):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 1)
        self.score = nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(inplace=True), nn.Conv2d(width, 2, 1))
        self.bbox = nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(inplace=True), nn.Conv2d(width, 4, 1))

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        return self.score(x), self.bbox(x)


class LFFD(nn.Module):
    """Raw outputs per branch: score logits [B, 2, H, W] (face, background), box offsets [B, 4, H, W].
    Layer names are the released symbol's (conv1 .. conv25; a branch is named after the conv it reads)."""

    def __init__(self, in_chans: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 64, 3, 2, 0)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 0)
        channels = 64
        for names, width in LAYERS:
            if "+" in names:
                for name in names.split("+"):
                    setattr(self, name, nn.Conv2d(width, width, 3, 1, 1))
            else:
                setattr(self, names, nn.Conv2d(channels, width, 3, 2, 0))
            channels = width
        widths = {name: width for names, width in LAYERS for name in names.split("+")}
        self.branches = nn.ModuleDict((name, LossBranch(widths[name])) for name, _, _ in BRANCHES)
        self._init_weights()

    def _init_weights(self):
        # released training: MXNet's default Xavier (uniform, averaged fan, magnitude 3), zero biases
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.conv2(torch.relu(self.conv1(x)))  # pre-activation: the first pair adds conv2's output
        out = []
        for names, _ in LAYERS:
            if "+" in names:
                first, second = names.split("+")
                x = x + getattr(self, second)(torch.relu(getattr(self, first)(torch.relu(x))))
                if second in self.branches:
                    out += self.branches[second](torch.relu(x))
            else:
                x = getattr(self, names)(torch.relu(x))
        return tuple(out)

    def place_random_head(self, warm_up_inputs, spread: float = 0.1) -> None:
        """Random weights only: give the heads the outputs a trained LFFD has on an image.

        Boxes: after the init the box offsets are N(0, 1) about 0, so half the boxes have x2 < x1 (a
        trained head never gives those, and NMS implementations treat them differently). Each branch's
        offsets are centred on a face in the middle of its scale range (t = ±f/(2c), f = mid-range)
        with a `spread` standard deviation.

        Scores: the untrained score heads call most locations faces (at 128x128, 82% of the 2,448
        locations score above the recipe's 0.11 threshold, and NMS leaves ~950 densely overlapping
        boxes), where a trained detector finds background almost everywhere. Each branch's score bias
        is shifted so its mean face-minus-background logit on the warm-up images is logit(FACE_PRIOR),
        the 0.01 prior RetinaNet's head starts from; the spread of the logits about it is untouched."""
        for name, _, (small, large) in BRANCHES:
            last = self.branches[name].bbox[-1]
            last.weight.mul_(spread)
            t = (small + large) / 2 / large
            last.bias.copy_(torch.tensor([t, t, -t, -t]))
        target = math.log(FACE_PRIOR / (1 - FACE_PRIOR))
        outputs = self(*warm_up_inputs)
        for (name, _, _), score in zip(BRANCHES, outputs[0::2]):
            delta = target - float((score[:, 0] - score[:, 1]).mean())
            self.branches[name].score[-1].bias.add_(torch.tensor([delta / 2, -delta / 2]))

    def decode(self, outputs, image_size) -> dict[str, torch.Tensor]:
        height, width = image_size
        boxes, scores = [], []
        for score, box, (_, stride, (_, large)) in zip(outputs[0::2], outputs[1::2], BRANCHES):
            h, w = score.shape[-2:]
            ys = torch.arange(h, dtype=torch.float32) * stride + (stride - 1)
            xs = torch.arange(w, dtype=torch.float32) * stride + (stride - 1)
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            centres = torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=1).repeat(1, 2)  # [HW, 4]
            boxes.append(centres - flatten_level(box, 4) * (large / 2))
            scores.append(flatten_level(score, 2).softmax(dim=-1)[..., :1])
        boxes = torch.cat(boxes, dim=1)
        low = boxes[..., :2].clamp(min=0.0)
        high = torch.minimum(boxes[..., 2:], torch.tensor([float(width), float(height)]))
        return {"boxes": torch.cat((low, high), dim=-1), "scores": torch.cat(scores, dim=1)}


@register_model("lffd")
def lffd(**kwargs) -> LFFD:
    return LFFD(**kwargs)
