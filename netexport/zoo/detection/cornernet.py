"""CornerNet (Law & Deng, "CornerNet: Detecting Objects as Paired Keypoints", ECCV 2018) and
CenterNet-Triplets (Duan et al., "CenterNet: Keypoint Triplets for Object Detection", ICCV 2019).

Reference configurations: princeton-vl/CornerNet models/CornerNet.py and Duankaiwen/CenterNet
models/CenterNet-104.py, both on the Hourglass-104 body of hourglass.py, COCO's 80 classes.

CornerNet: each stack's 256-channel map goes through a top-left and a bottom-right corner pooling
module (two 3x3 conv-BN-ReLU branches to 128 channels, pooled top/left resp. bottom/right, summed,
3x3 conv + BN, plus a 1x1 conv-BN of the input, ReLU, then a 3x3 conv-BN-ReLU), and from each of
those, three heads (3x3 conv 256→256 + ReLU, 1x1 conv): heatmaps (80), embeddings (1), offsets (2).
Training supervises both stacks; inference uses only the second, as the paper. In eval mode
`forward` returns that stack's six raw maps (heatmaps are logits: the sigmoid is in `decode`); in
train mode the first stack's six follow them.

CenterNet-Triplets adds a center-keypoint branch (center pooling: the maxima along the whole row
plus the whole column, here top∘bottom and left∘right corner pooling as the official code; heads
heatmap (80) and offsets (2)) and replaces corner pooling by cascade corner pooling (each direction
first adds the max along the perpendicular border direction, then pools: official `pool` with its
look_conv branches). Inference outputs, in the official order: the six corner maps, then ct_heat,
ct_regr.

Decode (the papers' inference, official kp_utils._decode + test/coco.py): sigmoid heatmaps, 3x3
max-pool peak suppression, the top k corners of each kind over all classes (k = 100 for CornerNet,
70 for CenterNet-Triplets, config/*.json `top_k`), every top-left x bottom-right pair as a candidate
box; a pair scores the mean of its two corner scores when both corners are of the same class, their
embeddings are within 0.5 (`ae_threshold`) and the bottom-right corner is not left of / above the
top-left one, else 0. Corners are located at (x + offset) * input/output size (4 at multiples of 128).
CenterNet-Triplets then takes the top 70 center keypoints: a box keeps its pair only if a center
keypoint of its class lies strictly inside its central region (the middle third for boxes of area
<= 150^2 px, else the middle fifth: n = 3 / 5 in eq. 1), and its score becomes the mean of the three
keypoint scores (the best such center's), else 0. Decided here: the official code ranks the pairs and
keeps the 1000 best before that check; decode keeps all k*k pairs (the NMS and top-K that follow do
the ranking), and class scores are the pair score at its class, 0 elsewhere ([B, k*k, 80]).
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from .hourglass import (
    HEAT_PRIOR_BIAS,
    Convolution,
    StackedHourglass,
    bottom_pool,
    class_scores,
    gather_positions,
    head,
    left_pool,
    right_pool,
    top_keypoints,
    top_pool,
)

NUM_CLASSES = 80
POOL_DIM = 128
EMBEDDING_THRESHOLD = 0.5  # config ae_threshold
SMALL_BOX_AREA = 22500.0  # test/coco.py: n = 3 up to 150 x 150 pixels, 5 above


class CornerPool(nn.Module):
    """CornerNet's corner pooling module; `pool1` runs along H, `pool2` along W."""

    def __init__(self, dim: int, pool1, pool2):
        super().__init__()
        self.pool1, self.pool2 = pool1, pool2
        self.p1_conv1 = Convolution(3, dim, POOL_DIM)
        self.p2_conv1 = Convolution(3, dim, POOL_DIM)
        self.p_conv1 = nn.Conv2d(POOL_DIM, dim, 3, padding=1, bias=False)
        self.p_bn1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = Convolution(3, dim, dim)

    def pooled(self, x):
        return self.pool1(self.p1_conv1(x)) + self.pool2(self.p2_conv1(x))

    def forward(self, x):
        merged = self.p_bn1(self.p_conv1(self.pooled(x))) + self.bn1(self.conv1(x))
        return self.conv2(self.relu1(merged))


class CascadeCornerPool(CornerPool):
    """Cascade corner pooling: before pooling along one axis, add the max along the other (look_conv)."""

    def __init__(self, dim: int, pool1, pool2):
        super().__init__(dim, pool1, pool2)
        self.look_conv1 = Convolution(3, dim, POOL_DIM)
        self.look_conv2 = Convolution(3, dim, POOL_DIM)
        self.P1_look_conv = nn.Conv2d(POOL_DIM, POOL_DIM, 3, padding=1, bias=False)
        self.P2_look_conv = nn.Conv2d(POOL_DIM, POOL_DIM, 3, padding=1, bias=False)

    def pooled(self, x):
        along_1 = self.pool1(self.P1_look_conv(self.p1_conv1(x) + self.pool2(self.look_conv1(x))))
        along_2 = self.pool2(self.P2_look_conv(self.p2_conv1(x) + self.pool1(self.look_conv2(x))))
        return along_1 + along_2


def column_max(x: torch.Tensor) -> torch.Tensor:
    return bottom_pool(top_pool(x))


def row_max(x: torch.Tensor) -> torch.Tensor:
    return right_pool(left_pool(x))


class CenterPool(CornerPool):
    """Center pooling: the max over the whole column plus the max over the whole row."""

    def __init__(self, dim: int):
        super().__init__(dim, column_max, row_max)


class CornerNet(StackedHourglass):
    corner_pool = CornerPool
    top_k = 100

    def __init__(self, num_classes: int = NUM_CLASSES, num_stacks: int = 2, top_k: int | None = None, **body):
        super().__init__(num_stacks, **body)
        self.num_classes = num_classes
        self.top_k = top_k or self.top_k
        cnv, mid, stacks = self.cnv_dim, self.head_dim, range(num_stacks)
        self.tl_cnvs = nn.ModuleList(self.corner_pool(cnv, top_pool, left_pool) for _ in stacks)
        self.br_cnvs = nn.ModuleList(self.corner_pool(cnv, bottom_pool, right_pool) for _ in stacks)
        self.tl_heats = nn.ModuleList(head(cnv, mid, num_classes, HEAT_PRIOR_BIAS) for _ in stacks)
        self.br_heats = nn.ModuleList(head(cnv, mid, num_classes, HEAT_PRIOR_BIAS) for _ in stacks)
        self.tl_tags = nn.ModuleList(head(cnv, mid, 1) for _ in stacks)
        self.br_tags = nn.ModuleList(head(cnv, mid, 1) for _ in stacks)
        self.tl_regrs = nn.ModuleList(head(cnv, mid, 2) for _ in stacks)
        self.br_regrs = nn.ModuleList(head(cnv, mid, 2) for _ in stacks)

    def stack_outputs(self, i: int, cnv: torch.Tensor) -> tuple[torch.Tensor, ...]:
        tl, br = self.tl_cnvs[i](cnv), self.br_cnvs[i](cnv)
        return (self.tl_heats[i](tl), self.br_heats[i](br), self.tl_tags[i](tl), self.br_tags[i](br),
                self.tl_regrs[i](tl), self.br_regrs[i](br))

    def pair_corners(self, outputs, image_size):
        """Every top-k top-left x top-k bottom-right pair: boxes [B, k*k, 4] in input pixels, the pair
        score [B, k*k] (0 for rejected pairs) and the pair's class [B, k*k]."""
        tl_heat, br_heat, tl_tag, br_tag, tl_regr, br_regr = outputs[:6]
        b, _, h, w = tl_heat.shape
        scale_x, scale_y = image_size[1] / w, image_size[0] / h
        tl_score, tl_cls, tl_pos, tl_y, tl_x = top_keypoints(tl_heat, self.top_k)
        br_score, br_cls, br_pos, br_y, br_x = top_keypoints(br_heat, self.top_k)
        k = tl_score.shape[1]
        tl_off, br_off = gather_positions(tl_regr, tl_pos), gather_positions(br_regr, br_pos)
        tl_x, tl_y = (tl_x + tl_off[:, 0]).unsqueeze(2), (tl_y + tl_off[:, 1]).unsqueeze(2)  # [B, k, 1]
        br_x, br_y = (br_x + br_off[:, 0]).unsqueeze(1), (br_y + br_off[:, 1]).unsqueeze(1)  # [B, 1, k]
        distance = (gather_positions(tl_tag, tl_pos)[:, 0].unsqueeze(2)
                    - gather_positions(br_tag, br_pos)[:, 0].unsqueeze(1)).abs()
        keep = ((tl_cls.unsqueeze(2) == br_cls.unsqueeze(1)) & (distance <= EMBEDDING_THRESHOLD)
                & (br_x >= tl_x) & (br_y >= tl_y))
        mean = (tl_score.unsqueeze(2) + br_score.unsqueeze(1)) * 0.5
        score = torch.where(keep, mean, torch.zeros_like(mean))
        boxes = torch.stack(torch.broadcast_tensors(tl_x * scale_x, tl_y * scale_y, br_x * scale_x, br_y * scale_y), -1)
        classes = tl_cls.unsqueeze(2).expand(b, k, k)
        return boxes.reshape(b, k * k, 4), score.reshape(b, k * k), classes.reshape(b, k * k)

    def decode(self, outputs, image_size):
        boxes, score, classes = self.pair_corners(outputs, image_size)
        return {"boxes": boxes, "scores": class_scores(score, classes, self.num_classes)}


class CenterNetTriplets(CornerNet):
    corner_pool = CascadeCornerPool
    top_k = 70

    def __init__(self, num_classes: int = NUM_CLASSES, num_stacks: int = 2, top_k: int | None = None, **body):
        super().__init__(num_classes, num_stacks, top_k, **body)
        cnv, mid, stacks = self.cnv_dim, self.head_dim, range(num_stacks)
        self.ct_cnvs = nn.ModuleList(CenterPool(cnv) for _ in stacks)
        self.ct_heats = nn.ModuleList(head(cnv, mid, num_classes, HEAT_PRIOR_BIAS) for _ in stacks)
        self.ct_regrs = nn.ModuleList(head(cnv, mid, 2) for _ in stacks)

    present_classes = 2  # place_random_head: how many classes the random keypoint heads agree on

    def place_random_head(self, warm_up_inputs) -> None:
        """Random weights only: make the three keypoint heads fire for the same few classes, as a
        trained model's do on an image holding a few objects.

        Untrained, each heatmap's top 70 keypoints fall on the ~10 classes whose channels happen to
        have the highest mean, a different set for top-left, bottom-right and center heads, so no
        triplet agrees on a class and the decode keeps nothing (PyTorch itself gives 0 detections:
        the end-to-end check would have nothing to compare). On the warm-up images, each heatmap's
        channel means are set to the -2.19 prior, then the first `present_classes` channels are
        raised by 1.0 (about 5x the within-channel spread), the same classes in all three heads. The
        positions, embeddings and offsets stay random. Measured on the two 128x128 verification
        inputs, detections after NMS at 0.5: 9 and 26 with 2 classes, 2 and 4 with 4."""
        heads = [*self.tl_heats, *self.br_heats, *self.ct_heats]
        means: dict[int, torch.Tensor] = {}

        def record(module, _inputs, output):
            means[id(module)] = output.mean(dim=(0, 2, 3))

        hooks = [h[-1].register_forward_hook(record) for h in heads]
        was_training = self.training
        self.train()  # every stack's heads run (eval runs only the last)
        for bn in (m for m in self.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.eval()  # keep the warmed-up statistics
        try:
            self(*warm_up_inputs)
        finally:
            for hook in hooks:
                hook.remove()
            self.train(was_training)
        for h in heads:
            last = h[-1]
            last.bias.add_(HEAT_PRIOR_BIAS - means[id(last)])
            last.bias[: self.present_classes] += 1.0

    def stack_outputs(self, i: int, cnv: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ct = self.ct_cnvs[i](cnv)
        return super().stack_outputs(i, cnv) + (self.ct_heats[i](ct), self.ct_regrs[i](ct))

    def decode(self, outputs, image_size):
        boxes, pair_score, classes = self.pair_corners(outputs, image_size)
        ct_heat, ct_regr = outputs[6:8]
        _, _, h, w = ct_heat.shape
        ct_score, ct_cls, ct_pos, ct_y, ct_x = top_keypoints(ct_heat, self.top_k)
        offset = gather_positions(ct_regr, ct_pos)
        ct_x = ((ct_x + offset[:, 0]) * (image_size[1] / w)).unsqueeze(1)  # [B, 1, k]
        ct_y = ((ct_y + offset[:, 1]) * (image_size[0] / h)).unsqueeze(1)
        x1, y1, x2, y2 = (c.unsqueeze(2) for c in boxes.unbind(-1))  # [B, N, 1]
        # central region (eq. 1): ((n+1) tl + (n-1) br) / 2n .. ((n-1) tl + (n+1) br) / 2n, n = 3 or 5
        small = (x2 - x1) * (y2 - y1) <= SMALL_BOX_AREA
        near = torch.where(small, 4.0 / 6.0, 6.0 / 10.0)
        far = torch.where(small, 2.0 / 6.0, 4.0 / 10.0)
        inside = ((ct_x > near * x1 + far * x2) & (ct_x < far * x1 + near * x2)
                  & (ct_y > near * y1 + far * y2) & (ct_y < far * y1 + near * y2)
                  & (ct_cls.unsqueeze(1) == classes.unsqueeze(2)))  # [B, N, k]
        # the best center inside (scores are >= 0; -1 marks "none")
        ct_score = ct_score.unsqueeze(1).expand_as(inside)
        best_center = torch.where(inside, ct_score, torch.full_like(ct_score, -1.0)).amax(dim=2)
        keep = (best_center >= 0) & (pair_score > 0)
        triplet = (2.0 * pair_score + best_center) / 3.0
        score = torch.where(keep, triplet, torch.zeros_like(triplet))
        return {"boxes": boxes, "scores": class_scores(score, classes, self.num_classes)}


@register_model("cornernet")
def cornernet(**kwargs) -> CornerNet:
    return CornerNet(**kwargs)


@register_model("centernet-triplets")
def centernet_triplets(**kwargs) -> CenterNetTriplets:
    return CenterNetTriplets(**kwargs)
