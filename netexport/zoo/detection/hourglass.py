"""Hourglass-104 (Law & Deng, "CornerNet: Detecting Objects as Paired Keypoints", ECCV 2018), the
backbone CornerNet, CenterNet-Triplets (Duan et al., ICCV 2019) and CenterNet "Objects as Points"
(Zhou et al., 2019) share; plus corner pooling and its export rewrite.

Reference configuration (princeton-vl/CornerNet models/CornerNet.py, reused unchanged by the other
two): a stem (7x7/2 conv 3→128 + BN + ReLU, then a stride-2 residual 128→256) to stride 4, and two
stacked hourglass modules. Each hourglass recurses 5 times; level i keeps a skip branch of
`modules[i]` residuals at dims[i] channels and goes down through a stride-2 residual (no max
pooling) plus `modules[i] - 1` more to dims[i + 1], with dims (256, 256, 384, 384, 384, 512) and
modules (2, 2, 2, 2, 2, 4); the way back up is `modules[i]` residuals, a nearest 2x upsampling and a
sum with the skip branch. After each hourglass: a 3x3 conv-BN-ReLU to 256 channels (`cnvs`); the
first stack's input and output are merged (1x1 conv + BN each, sum, ReLU, one residual) into the
second stack's input. Heads see only the `cnvs` maps. Residuals are two 3x3 conv-BN (ReLU between),
with a 1x1 conv-BN projection when the shape changes, then ReLU after the sum.

Inputs must be multiples of 128 (stride 4, then 5 halvings that the upsampling path must undo
exactly). Module names follow the official code (`pre`, `kps.<i>.up1`, `cnvs_`, `inters_`, ...).

Corner pooling: top pooling at (i, j) is the maximum of x over column j from row i to the bottom
(a reverse cumulative max along H); left pooling the same along W to the right; bottom and right
pooling are the forward cumulative maxima. ONNX has no cumulative max, so the model always
computes it with the export rewrite "corner-pool" (`cumulative_max`): ceil(log2 L) steps of
y = max(y, y shifted by 1, 2, 4, ... positions). It is exact, because max is: after step k,
y[i] covers x[i .. i + 2^k - 1] (clipped at the border). The shifted copy is filled at the border
with y's own border values instead of -inf padding: those positions are already final, so taking
their max again changes nothing, and no infinities reach FP16/INT8 graphs
(tests/test_rewrites_corner_pool.py checks it against torch.cummax).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

HG104_DIMS = (256, 256, 384, 384, 384, 512)
HG104_MODULES = (2, 2, 2, 2, 2, 4)
HEAT_PRIOR_BIAS = -2.19  # official heatmap bias init: sigmoid(-2.19) ~ 0.1


def static_size(n) -> int:
    """A size the graph is specialised to (spatial sizes, top-k counts) as a Python int.

    While tracing, sizes read from tensors are traced values and int() warns; these are constants
    of the exported graph (netexport exports spatial sizes as static, only the batch is dynamic)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return int(n)


def cumulative_max(x: torch.Tensor, dim: int, reverse: bool) -> torch.Tensor:
    """Running max along `dim` (from the far end when `reverse`), as Slice/Concat/Max only.

    The number of steps follows the length of `dim`: an exported graph is fixed to its spatial size."""
    length = static_size(x.shape[dim])
    y, step = x, 1
    while step < length:
        if reverse:  # y[i] vs y[i + step]; the last `step` entries are final, pair them with themselves
            shifted = torch.cat((y.narrow(dim, step, length - step), y.narrow(dim, length - step, step)), dim)
        else:  # y[i] vs y[i - step]; the first `step` entries are final
            shifted = torch.cat((y.narrow(dim, 0, step), y.narrow(dim, 0, length - step)), dim)
        y = torch.maximum(y, shifted)
        step *= 2
    return y


def top_pool(x: torch.Tensor) -> torch.Tensor:
    return cumulative_max(x, 2, reverse=True)


def bottom_pool(x: torch.Tensor) -> torch.Tensor:
    return cumulative_max(x, 2, reverse=False)


def left_pool(x: torch.Tensor) -> torch.Tensor:
    return cumulative_max(x, 3, reverse=True)


def right_pool(x: torch.Tensor) -> torch.Tensor:
    return cumulative_max(x, 3, reverse=False)


class Convolution(nn.Module):
    """k x k conv (+ BN) + ReLU; without BN the conv has a bias (the heads' first layer)."""

    def __init__(self, k: int, in_dim: int, out_dim: int, stride: int = 1, with_bn: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, k, stride, (k - 1) // 2, bias=not with_bn)
        self.bn = nn.BatchNorm2d(out_dim) if with_bn else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Residual(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_dim, out_dim, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_dim, out_dim, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_dim)
        if stride != 1 or in_dim != out_dim:
            self.skip = nn.Sequential(nn.Conv2d(in_dim, out_dim, 1, stride, bias=False), nn.BatchNorm2d(out_dim))
        else:
            self.skip = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu(out + self.skip(x))


def residuals(in_dim: int, out_dim: int, count: int, stride: int = 1, change_last: bool = False) -> nn.Sequential:
    """`count` residuals from in_dim to out_dim; the first changes the shape, or the last if `change_last`."""
    if change_last:
        dims = [in_dim] * count + [out_dim]
    else:
        dims = [in_dim] + [out_dim] * count
    return nn.Sequential(*(Residual(a, b, stride if i == 0 else 1) for i, (a, b) in enumerate(zip(dims, dims[1:]))))


class HourglassModule(nn.Module):
    def __init__(self, depth: int, dims: Sequence[int], modules: Sequence[int]):
        super().__init__()
        dim, next_dim = dims[0], dims[1]
        self.up1 = residuals(dim, dim, modules[0])
        self.low1 = residuals(dim, next_dim, modules[0], stride=2)
        if depth > 1:
            self.low2 = HourglassModule(depth - 1, dims[1:], modules[1:])
        else:
            self.low2 = residuals(next_dim, next_dim, modules[1])
        self.low3 = residuals(next_dim, dim, modules[0], change_last=True)

    def forward(self, x):
        low = self.low3(self.low2(self.low1(x)))
        return self.up1(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")


def head(cnv_dim: int, mid_dim: int, out_dim: int, bias: float | None = None) -> nn.Sequential:
    """A prediction head: 3x3 conv (bias, no BN) + ReLU, then a 1x1 conv to `out_dim` maps."""
    layers = nn.Sequential(Convolution(3, cnv_dim, mid_dim, with_bn=False), nn.Conv2d(mid_dim, out_dim, 1))
    if bias is not None:
        nn.init.constant_(layers[-1].bias, bias)
    return layers


class StackedHourglass(nn.Module):
    """The shared body: `stack_features(x)` returns each stack's 256-channel `cnvs` map, in order.

    Subclasses add their heads; in eval mode they only need the last map (the paper's inference)."""

    def __init__(self, num_stacks: int = 2, dims: Sequence[int] = HG104_DIMS,
                 modules: Sequence[int] = HG104_MODULES, cnv_dim: int = 256):
        super().__init__()
        self.num_stacks = num_stacks
        self.cnv_dim = cnv_dim
        curr = dims[0]
        self.head_dim = curr
        self.pre = nn.Sequential(Convolution(7, 3, 128, stride=2), Residual(128, curr, stride=2))
        self.kps = nn.ModuleList(HourglassModule(len(dims) - 1, dims, modules) for _ in range(num_stacks))
        self.cnvs = nn.ModuleList(Convolution(3, curr, cnv_dim) for _ in range(num_stacks))
        self.inters = nn.ModuleList(Residual(curr, curr) for _ in range(num_stacks - 1))
        self.inters_ = nn.ModuleList(
            nn.Sequential(nn.Conv2d(curr, curr, 1, bias=False), nn.BatchNorm2d(curr)) for _ in range(num_stacks - 1)
        )
        self.cnvs_ = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cnv_dim, curr, 1, bias=False), nn.BatchNorm2d(curr)) for _ in range(num_stacks - 1)
        )
        self.relu = nn.ReLU(inplace=True)

    def stack_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        inter = self.pre(x)
        features = []
        for i in range(self.num_stacks):
            cnv = self.cnvs[i](self.kps[i](inter))
            features.append(cnv)
            if i < self.num_stacks - 1:
                inter = self.inters[i](self.relu(self.inters_[i](inter) + self.cnvs_[i](cnv)))
        return features

    def stack_outputs(self, i: int, cnv: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError  # the subclass's heads on stack i's map

    def forward(self, x):
        """Eval: the last stack's outputs (the papers' inference); train: then every earlier stack's."""
        features = self.stack_features(x)
        final = self.stack_outputs(len(features) - 1, features[-1])
        if not self.training:
            return final
        return final + tuple(t for i in range(len(features) - 1) for t in self.stack_outputs(i, features[i]))


# ---- decode helpers shared by the keypoint detectors ----
# Plain tensor ops that trace into ONNX. Masks are applied with Where rather than by multiplying with
# a bool cast to float, and coordinates come from float grids rather than int casts: no Cast to a
# float type in the decode graph, which an FP16 conversion would otherwise have to retype.

def heatmap_peaks(heat_logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid scores with everything that is not a 3x3 local maximum set to 0 (the papers' NMS)."""
    heat = torch.sigmoid(heat_logits)
    peak = F.max_pool2d(heat, 3, stride=1, padding=1)
    return torch.where(peak == heat, heat, torch.zeros_like(heat))


def top_keypoints(heat_logits: torch.Tensor, k: int):
    """The k best peaks over all classes and positions: scores, classes, flat positions (y*W+x), ys, xs."""
    b, c, h, w = heat_logits.shape
    k = min(k, static_size(c * h * w))
    scores, index = heatmap_peaks(heat_logits).reshape(b, c * h * w).topk(k, dim=1)
    # indices are >= 0, so truncating division is floor division (and exports as a plain Div)
    classes = torch.div(index, h * w, rounding_mode="trunc")
    position = index - classes * (h * w)
    grid_y, grid_x = torch.meshgrid(torch.arange(h, dtype=heat_logits.dtype, device=heat_logits.device),
                                    torch.arange(w, dtype=heat_logits.dtype, device=heat_logits.device), indexing="ij")
    ys = grid_y.reshape(1, h * w).expand(b, h * w).gather(1, position)
    xs = grid_x.reshape(1, h * w).expand(b, h * w).gather(1, position)
    return scores, classes, position, ys, xs


def gather_positions(feature: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """feature [B, D, H, W] at flat positions [B, K] → [B, D, K]."""
    b, d = feature.shape[:2]
    return feature.reshape(b, d, -1).gather(2, position.unsqueeze(1).expand(b, d, position.shape[1]))


def class_scores(score: torch.Tensor, classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """score [B, N] at class classes [B, N] → [B, N, C] with 0 at the other classes (no ONNX OneHot)."""
    at_class = classes.unsqueeze(-1) == torch.arange(num_classes, device=classes.device)
    return torch.where(at_class, score.unsqueeze(-1), torch.zeros_like(score).unsqueeze(-1))
