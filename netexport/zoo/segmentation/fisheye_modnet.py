"""FisheyeMODNet (Yahiaoui et al., "FisheyeMODNet: Moving Object detection on Surround-view Cameras
for Autonomous Driving", IMVIP 2019, arXiv:1908.11789).

Moving-object detection as two-class (static / moving) semantic segmentation of a fisheye frame,
from two consecutive RGB frames (t-1, t). The paper's network is a lightweight two-stream
encoder-decoder whose encoder is ResNet-10-like and shares its weights across the sequential
images, so each frame is encoded once (a deployed system reuses the previous frame's features).

Reference configuration as built here:
- Encoder: ResNet-10, i.e. the ResNet-18 design (7x7/2 stem + 3x3/2 max pool, BasicBlocks of
  64/128/256/512 channels) with one block per stage; one module applied to both frames.
- Fusion: the two frames' features are concatenated channel-wise at strides 8, 16 and 32.
- Decoder: FCN8s-style, as the group's MODNet (Siam et al., 2018): a 1x1 scoring conv to the two
  classes on each fused level, 2x transposed convs with summed skips from stride 32 to 8, then an
  8x transposed conv back to the input resolution. The output is per-pixel logits (the softmax
  belongs to the loss); sides must be multiples of 32 so every upsampling lands exactly.

Decisions: the paper gives no layer table, so the fusion levels and the FCN8s decoder above are
the reading of its "two-stream encoder, fused features, upsampling decoder" description; the
canonical input is the full 1280x800 fisheye frame (a training size below it was not confirmed);
the paper prints no parameter count (the recipe records this configuration's own count). The
transposed convs start as bilinear upsampling, as in FCN; FCN's zero-initialised scoring convs
would make an untrained model output constant zeros, so they keep PyTorch's default init.
"""

from __future__ import annotations

import torch
from torch import nn

from ..classification.resnet import BasicBlock, ResNet
from ..registry import register_model


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """(channels, channels, k, k) transposed-conv weight that upsamples each channel bilinearly."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    ramp = 1 - torch.abs(torch.arange(kernel_size, dtype=torch.float32) - center) / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    for c in range(channels):
        weight[c, c] = ramp[:, None] * ramp[None, :]
    return weight


def _upsample(channels: int, factor: int) -> nn.ConvTranspose2d:
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
        up.bias.zero_()
    return up


class FisheyeMODNet(nn.Module):
    def __init__(self, num_classes: int = 2, in_chans: int = 3):
        super().__init__()
        # ResNet-10 trunk, shared by both frames (num_classes=0: no pooling/fc head)
        self.encoder = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=0, in_chans=in_chans)
        c3, c4, c5 = (2 * c for c in self.encoder.stage_channels[1:])  # two frames concatenated
        self.score8 = nn.Conv2d(c3, num_classes, 1)
        self.score16 = nn.Conv2d(c4, num_classes, 1)
        self.score32 = nn.Conv2d(c5, num_classes, 1)
        self.up32 = _upsample(num_classes, 2)
        self.up16 = _upsample(num_classes, 2)
        self.up8 = _upsample(num_classes, 8)

    def forward(self, previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        _, *prev = self.encoder.forward_stages(previous)
        _, *curr = self.encoder.forward_stages(current)
        f8, f16, f32 = (torch.cat(pair, dim=1) for pair in zip(prev, curr))
        x = self.up32(self.score32(f32))
        x = self.up16(self.score16(f16) + x)
        return self.up8(self.score8(f8) + x)


@register_model("fisheye-modnet")
def fisheye_modnet(**kwargs):
    return FisheyeMODNet(**kwargs)
