"""Fully Convolutional Networks (Long, Shelhamer & Darrell, "Fully Convolutional Networks for
Semantic Segmentation", CVPR 2015; extended in TPAMI 2016).

Reference configuration (the VGG16 nets of Section 4, as the authors' released Caffe models
voc-fcn32s / voc-fcn16s / voc-fcn8s, trained in stages 32s → 16s → 8s): VGG16's 13 convolutions and
five 2x2 max poolings, the classifier's fc6 (7x7, 4096) and fc7 (1x1, 4096) cast as convolutions
(ReLU, dropout 0.5 in training), a 1x1 scoring layer to the 21 PASCAL VOC classes, and learned
up-sampling (transposed convolutions without bias):
- fcn-32s: score_fr up-sampled 32x to the input;
- fcn-16s: score_fr up-sampled 2x, summed with a 1x1 score of pool4, up-sampled 16x;
- fcn-8s: that sum up-sampled 2x again, summed with a 1x1 score of pool3, up-sampled 8x.
Section 4.3: intermediate (2x) up-samplings are initialised to bilinear interpolation and learned;
the final up-sampling is fixed to bilinear interpolation (its weight does not train, but it is a
parameter, as in the Caffe nets, and counted). Canonical input 500x500 (the largest VOC side).

The Caffe "pad 100 + crop" trick, kept as the reference does it: conv1_1 pads by 100 pixels and
every pooling rounds up (Caffe's ceil mode), so fc6's 7x7 valid convolution has a map to work on
for any input size and the score maps always overhang the image; each skip score and the final
output are then cropped at the offsets Caffe's coordinate mapping computes (fcn-32s: output 19;
fcn-16s: pool4 5, output 27; fcn-8s: pool4 5, pool3 9, output 31; independent of the input size).
The output therefore has exactly the input's height and width for every input size (no divisor),
and the converted Caffe weights (e.g. wkentaro/pytorch-fcn's, whose module names these follow)
give the reference's outputs. The price is compute on a (H + 200) x (W + 200) first-stage map.
The crops read their sizes from the tensors, so dynamic-shape exports stay size-generic.

Initialisation: He for the VGG convolutions (as vgg.py) and fc6/fc7; the paper zero-initialises
the scoring layers, which would make an untrained net output constant zeros, so they keep
PyTorch's default initialisation; up-sampling layers start as bilinear interpolation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model

# VGG16 (configuration D) convolution widths per stage; each stage ends in a 2x2/2 max pooling.
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
CAFFE_PAD = 100
# Crop offsets from the Caffe models' coordinate mapping (voc-fcn*s/net.py `crop` layers).
CROP_POOL4, CROP_POOL3 = 5, 9
CROP_OUTPUT = {32: 19, 16: 27, 8: 31}


def bilinear_upsampling_weight(channels: int, kernel_size: int) -> torch.Tensor:
    """(channels, channels, k, k) transposed-conv weight that up-samples each channel bilinearly."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    ramp = 1 - torch.abs(torch.arange(kernel_size, dtype=torch.float32) - center) / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = ramp[:, None] * ramp[None, :]
    return weight


def upsampling(channels: int, factor: int, learned: bool) -> nn.ConvTranspose2d:
    """Transposed conv (kernel 2·factor, stride factor, no bias) starting as bilinear up-sampling."""
    layer = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, bias=False)
    with torch.no_grad():
        layer.weight.copy_(bilinear_upsampling_weight(channels, 2 * factor))
    layer.weight.requires_grad_(learned)
    return layer


def crop_like(x: torch.Tensor, offset: int, reference: torch.Tensor) -> torch.Tensor:
    """Caffe's Crop layer: `reference`'s height and width from `offset` on (sizes read from the tensor)."""
    return x[:, :, offset: offset + reference.shape[2], offset: offset + reference.shape[3]]


class FCN(nn.Module):
    """FCN-VGG16 with `stride` 32, 16 or 8 (how many skip layers refine the prediction)."""

    def __init__(self, stride: int = 32, num_classes: int = 21, in_chans: int = 3, drop_rate: float = 0.5):
        super().__init__()
        if stride not in CROP_OUTPUT:
            raise ValueError(f"FCN stride must be 32, 16 or 8, not {stride}")
        self.stride = stride
        # VGG16 trunk with Caffe's layer names (conv1_1 ... conv5_3), so converted Caffe weights load
        self.stage_layers: list[list[str]] = []
        channels = in_chans
        for s, widths in enumerate(VGG16_STAGES, start=1):
            names = []
            for i, width in enumerate(widths, start=1):
                padding = CAFFE_PAD if (s, i) == (1, 1) else 1
                self.add_module(f"conv{s}_{i}", nn.Conv2d(channels, width, 3, padding=padding))
                names.append(f"conv{s}_{i}")
                channels = width
            self.stage_layers.append(names)
        self.fc6 = nn.Conv2d(channels, 4096, 7)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.drop = nn.Dropout2d(drop_rate)
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        if stride == 32:
            self.upscore = upsampling(num_classes, 32, learned=False)
        else:
            self.score_pool4 = nn.Conv2d(512, num_classes, 1)
            self.upscore2 = upsampling(num_classes, 2, learned=True)
        if stride == 16:
            self.upscore16 = upsampling(num_classes, 16, learned=False)
        if stride == 8:
            self.score_pool3 = nn.Conv2d(256, num_classes, 1)
            self.upscore_pool4 = upsampling(num_classes, 2, learned=True)
            self.upscore8 = upsampling(num_classes, 8, learned=False)
        self._init_weights()

    def _init_weights(self) -> None:
        scores = {m for name, m in self.named_children() if name.startswith("score")}
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m not in scores:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, pools = x, []
        for names in self.stage_layers:
            for name in names:
                h = F.relu(getattr(self, name)(h))
            h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            pools.append(h)
        h = self.drop(F.relu(self.fc6(h)))
        h = self.drop(F.relu(self.fc7(h)))
        score = self.score_fr(h)
        if self.stride == 32:
            return crop_like(self.upscore(score), CROP_OUTPUT[32], x)
        up = self.upscore2(score)
        score = up + crop_like(self.score_pool4(pools[3]), CROP_POOL4, up)
        if self.stride == 16:
            return crop_like(self.upscore16(score), CROP_OUTPUT[16], x)
        up = self.upscore_pool4(score)
        score = up + crop_like(self.score_pool3(pools[2]), CROP_POOL3, up)
        return crop_like(self.upscore8(score), CROP_OUTPUT[8], x)


@register_model("fcn-32s")
def fcn_32s(**kwargs) -> FCN:
    return FCN(stride=32, **kwargs)


@register_model("fcn-16s")
def fcn_16s(**kwargs) -> FCN:
    return FCN(stride=16, **kwargs)


@register_model("fcn-8s")
def fcn_8s(**kwargs) -> FCN:
    return FCN(stride=8, **kwargs)
