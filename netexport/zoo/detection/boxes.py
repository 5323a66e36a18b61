"""Box arithmetic shared by the detectors' `decode` methods.

The decode contract (netexport.pipeline.end2end builds the end-to-end graph on it): a detector's
`decode(outputs, image_size)` takes the tuple its `forward` returned and the input's (height, width)
and returns a dict of per-candidate tensors:

- `boxes`  [B, N, 4]  x1, y1, x2, y2 in input pixels,
- `scores` [B, N, C]  class probabilities (0 where a candidate cannot be that class),
- optionally more [B, N, ...] tensors (e.g. polygon contours), gathered with the kept boxes.

Everything is plain tensor arithmetic on shapes known at export time, so it traces into ONNX.
"""

from __future__ import annotations

import torch


def grid_points(height: int, width: int, stride: int, offset: float = 0.5,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Centres (x, y) of a height x width feature map's cells in input pixels, row-major: [H*W, 2]."""
    ys = (torch.arange(height, dtype=dtype) + offset) * stride
    xs = (torch.arange(width, dtype=dtype) + offset) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=1)


def anchor_boxes(height: int, width: int, stride: int, sizes, ratios, offset: float = 0.5) -> torch.Tensor:
    """Anchors [H*W*A, 4] (x1, y1, x2, y2), A = len(sizes) * len(ratios), anchors fastest-varying.

    `ratios` are height / width; each anchor keeps the area size**2."""
    shapes = []
    for size in sizes:
        for ratio in ratios:
            w = size / ratio ** 0.5
            h = size * ratio ** 0.5
            shapes.append((-w / 2, -h / 2, w / 2, h / 2))
    base = torch.tensor(shapes, dtype=torch.float32)  # [A, 4]
    centres = grid_points(height, width, stride, offset).repeat(1, 2)  # [HW, 4]
    return (centres[:, None, :] + base[None, :, :]).reshape(-1, 4)


def decode_deltas(anchors: torch.Tensor, deltas: torch.Tensor, weights=(1.0, 1.0, 1.0, 1.0),
                  clamp: float = 4.135166556742356) -> torch.Tensor:
    """R-CNN box coding: deltas [..., N, 4] (dx, dy, dw, dh) against anchors [N, 4] → boxes.

    dw and dh are clamped at log(1000/16), as Detectron does, so exp never overflows."""
    wx, wy, ww, wh = weights
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    cx = anchors[:, 0] + 0.5 * widths
    cy = anchors[:, 1] + 0.5 * heights
    dx, dy = deltas[..., 0] / wx, deltas[..., 1] / wy
    dw = torch.clamp(deltas[..., 2] / ww, max=clamp)
    dh = torch.clamp(deltas[..., 3] / wh, max=clamp)
    pcx, pcy = dx * widths + cx, dy * heights + cy
    pw, ph = torch.exp(dw) * widths, torch.exp(dh) * heights
    return torch.stack((pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph), dim=-1)


def decode_distances(points: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    """Anchor-free coding: distances [..., N, 4] (left, top, right, bottom) from points [N, 2] → boxes."""
    x, y = points[:, 0], points[:, 1]
    return torch.stack((x - ltrb[..., 0], y - ltrb[..., 1], x + ltrb[..., 2], y + ltrb[..., 3]), dim=-1)


def centre_size_to_corners(cxcywh: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = cxcywh.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def flatten_level(t: torch.Tensor, per_location: int) -> torch.Tensor:
    """A head's [B, A*K, H, W] map → [B, H*W*A, K] (location-major, then anchor), the anchor order above."""
    b, _, h, w = t.shape
    return t.reshape(b, -1, per_location, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, per_location)
