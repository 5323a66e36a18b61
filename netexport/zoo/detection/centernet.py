"""CenterNet (Zhou, Wang & Krähenbühl, "Objects as Points", arXiv 1904.07850, 2019), Hourglass-104.

Reference configuration: xingyizhou/CenterNet src/lib/models/networks/large_hourglass.py with the
COCO `ctdet` heads: the Hourglass-104 body of hourglass.py (two stacks, the body CornerNet uses) and,
on each stack's 256-channel map directly (no corner pooling), three heads of 3x3 conv 256→256 + ReLU
and a 1x1 conv: `hm` center heatmaps (80 classes, bias -2.19), `wh` box sizes (2) and `reg` center
offsets (2), at stride 4 on 512x512 inputs. Inference uses the second stack only; in eval mode
`forward` returns its raw (heatmap, wh, offset) maps, heatmap as logits; train mode appends the first
stack's three.

Why Hourglass-104 is the registered backbone: the paper's faster variants (DLA-34, ResNet-18/101)
put deformable convolutions in their upsampling layers, which neither ONNX opset 17 nor TensorRT
has as an op (only as plugins); Hourglass-104 is the paper's most accurate configuration and is
plain convolution.

Decode (ctdet_decode): sigmoid heatmap, a 3x3 max-pool keeps local maxima (the paper's replacement
for NMS); every position is a candidate, scored by its peak value at each class (0 where it is not a
peak), so the downstream top-K sees the same ranking as the paper's top-100. Box = center
(x + offset) ± size / 2, times the output stride (input size / map size: 4). Decided here: the size
enters as |size|, so x1 <= x2 and y1 <= y2 always; trained sizes are positive (identical to the
paper), while an untrained head's negative sizes would otherwise give inverted boxes whose IoU with
themselves is 0.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from .hourglass import HEAT_PRIOR_BIAS, StackedHourglass, head, heatmap_peaks

NUM_CLASSES = 80


class CenterNet(StackedHourglass):
    def __init__(self, num_classes: int = NUM_CLASSES, num_stacks: int = 2, **body):
        super().__init__(num_stacks, **body)
        self.num_classes = num_classes
        cnv, mid, stacks = self.cnv_dim, self.head_dim, range(num_stacks)
        self.hm = nn.ModuleList(head(cnv, mid, num_classes, HEAT_PRIOR_BIAS) for _ in stacks)
        self.wh = nn.ModuleList(head(cnv, mid, 2) for _ in stacks)
        self.reg = nn.ModuleList(head(cnv, mid, 2) for _ in stacks)

    def stack_outputs(self, i: int, cnv: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.hm[i](cnv), self.wh[i](cnv), self.reg[i](cnv)

    def decode(self, outputs, image_size):
        heat, wh, offset = outputs[:3]
        b, c, h, w = heat.shape
        scores = heatmap_peaks(heat).reshape(b, c, h * w).transpose(1, 2)  # [B, HW, C]
        ys = torch.arange(h, dtype=heat.dtype, device=heat.device).reshape(1, h, 1)
        xs = torch.arange(w, dtype=heat.dtype, device=heat.device).reshape(1, 1, w)
        cx, cy = xs + offset[:, 0], ys + offset[:, 1]  # [B, H, W], in output cells
        # trained sizes are positive; an untrained head's negative size gives the mirrored, valid box
        half_w, half_h = wh[:, 0].abs() * 0.5, wh[:, 1].abs() * 0.5
        sx, sy = image_size[1] / w, image_size[0] / h
        boxes = torch.stack(((cx - half_w) * sx, (cy - half_h) * sy, (cx + half_w) * sx, (cy + half_h) * sy), -1)
        return {"boxes": boxes.reshape(b, h * w, 4), "scores": scores}


@register_model("centernet")
def centernet(**kwargs) -> CenterNet:
    return CenterNet(**kwargs)
