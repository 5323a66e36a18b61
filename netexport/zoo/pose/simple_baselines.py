"""Simple Baselines for human pose estimation (Xiao, Wu & Wei, "Simple Baselines for Human Pose
Estimation and Tracking", ECCV 2018), ResNet-50 on COCO at 256x192.

Reference configuration, the authors' code microsoft/human-pose-estimation.pytorch
(lib/models/pose_resnet.py with experiments/coco/resnet50/256x192_d256x3_adam_lr1e-3.yaml): an
ImageNet ResNet-50 without its pooling and classifier (C5, stride 32), then three deconvolution
layers, each a 4x4 transposed conv with stride 2 (padding 1, no bias) to 256 channels + BN + ReLU,
which bring the map back to stride 4, and a 1x1 conv (with bias) to one heatmap per COCO keypoint
(17): a 256x192 crop gives 64x48 heatmaps. Inputs: multiples of 32.

Parameter count, by layer shapes: ResNet-50 without fc 23,508,032 (torchvision's 25,557,032 less
its 2048x1000 + 1000 classifier); deconvs 2048·256·16 + 2·256·256·16 = 10,485,760; their three BNs
3·512 = 1,536; the final 1x1 conv 256·17 + 17 = 4,369. Total 33,999,697: the authors' PoseResNet
(Bottleneck, [3, 4, 6, 3]) with that config counts the same, and its state dict loads strictly
into this model with equal outputs (checked by construction when this file was written). It is
the "34.0M" the LPN and HRNet authors quote for pose_resnet_50.

The backbone is netexport's ResNet (torchvision's v1.5 bottleneck, stride on the 3x3 conv, as the
authors' default style 'pytorch'); its load hook maps the authors' top-level stem names (`conv1`,
`bn1`), and `layer1..4`, `deconv_layers.<i>`, `final_layer` are theirs: their checkpoints load as
they are.

Random init (trained weights replace all of it). The paper starts the backbone from ImageNet; here
it gets the ResNet's random init, and the head the authors' (pose_resnet.py init_weights): deconv
weights N(0, 0.001), BN 1 and 0 (before the BN warm-up), final conv N(0, 0.001) with bias 0. Random
weights give weak, mostly tied peaks; `place_random_head` gives distinct ones (`place_heatmap_peaks`).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..classification.resnet import Bottleneck, ResNet
from ..registry import register_model

COCO_KEYPOINTS = 17


def bilinear_kernel(size: int = 4) -> torch.Tensor:
    """The 2-D kernel with which a stride-2 transposed conv of this size upsamples bilinearly."""
    centre = (size - 1) / 2
    line = 1 - torch.abs(torch.arange(size, dtype=torch.float32) - centre) / (size / 2)
    return line[:, None] * line[None, :]


def _principal_directions(x: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` leading principal directions (columns, unit length) of features x [B, C, H, W]
    over images and positions, after removing what every image shares at a position (padding and
    position effects). Each direction's sign is fixed (its largest component positive), so the
    result does not depend on the eigensolver's sign convention."""
    x = x.double()
    x = x - x.mean(dim=0, keepdim=True)
    flat = x.permute(1, 0, 2, 3).reshape(x.shape[1], -1)
    cov = flat @ flat.T / flat.shape[1]
    _, evecs = torch.linalg.eigh(cov)
    directions = evecs[:, -count:].flip(1)
    signs = torch.sign(directions.gather(0, directions.abs().argmax(0, keepdim=True)))
    return (directions * signs).float()


def place_heatmap_peaks(model: nn.Module, warm_up_inputs, hidden_conv: nn.Module, hidden_bn: nn.BatchNorm2d,
                        final_conv: nn.Conv2d, copies: int = 8, floor_knot: float = -2.0,
                        knot_step: float = 0.5, sharpness: float = 2.0, floor: float = 0.01) -> None:
    """Random weights only: give every heatmap one input-dependent peak, by setting the weights of
    the head's last three layers (no layer is added, removed or reshaped).

    Untrained, a pose head's maps are weak random fields: measured at the recipes' test sizes on 8
    synthetic inputs, the maximum beats every other cell by more than the FP16 tie margin in
    15% (LPN-50), 43% (Simple Baselines) and 1% (hourglass, a quarter of its peaks on the border)
    of the maps, so a heatmap-peaks check would mostly compare ties. With the placement below: 99%,
    95% and 16%. Here, for each of the K keypoints:
    - `hidden_conv` (the layer before `hidden_bn`, a deconv or a 1x1 conv): `copies` of its output
      channels all project its input on the k-th principal direction of the warm-up features,
      taken after removing what the warm-up images share at each position (padding and position
      effects), so the projection varies between images rather than across fixed places. A deconv
      gets the direction times the bilinear kernel (2x upsampling of the projection);
    - `hidden_bn` standardises the projection with its warm-up mean and variance (z_k) and shifts
      copy j by a knot t_j, so after the ReLU copy j is max(z_k - t_j, 0); t_0 = `floor_knot` (a
      practically linear floor, so no map is flat), t_1.. = 0, `knot_step`, 2 `knot_step`, ...;
    - `final_conv` sums the copies: heatmap k = f(z_k) = floor·z_k + sum_j w_j max(z_k - t_j, 0), the
      slope above t_j (j >= 1) being exp(`sharpness`·t_j) (a convex, exponential-like profile), then
      divides by the median map maximum over the warm-up batch (peaks of about 1).
    So each heatmap peaks where its projection is largest, a place that moves with the image, and
    each keypoint follows another direction. The hidden channels left over keep their random
    weights and feed nothing (their final-conv weights are 0)."""
    channels = hidden_bn.num_features
    joints = final_conv.out_channels
    if joints * copies > channels:
        raise ValueError(f"{joints} heatmaps x {copies} copies need more than {channels} hidden channels")
    captured = {}
    hook = hidden_conv.register_forward_hook(lambda m, i, o: captured.setdefault("x", i[0].detach()))
    try:
        model(*warm_up_inputs)
    finally:
        hook.remove()
    x = captured["x"]
    directions = _principal_directions(x, joints)  # [C_in, joints]
    slots = torch.arange(joints * copies).reshape(joints, copies)
    weight = hidden_conv.weight.data
    if isinstance(hidden_conv, nn.ConvTranspose2d):  # [C_in, C_out, k, k]: bilinear 2x upsampling of v.x
        kernel = bilinear_kernel(weight.shape[-1])
        for k in range(joints):
            weight[:, slots[k]] = directions[:, k, None, None, None] * kernel
    else:  # 1x1 conv [C_out, C_in, 1, 1]
        for k in range(joints):
            weight[slots[k]] = directions[:, k].reshape(1, -1, 1, 1)
    if hidden_conv.bias is not None:
        hidden_conv.bias.data[slots.flatten()] = 0.0
    y = hidden_conv(x)
    mean, var = y.mean(dim=(0, 2, 3)), y.var(dim=(0, 2, 3))
    knots = torch.cat([torch.tensor([floor_knot]), torch.arange(copies - 1, dtype=torch.float32) * knot_step])
    slope = torch.exp(sharpness * knots[1:])
    increments = torch.cat([torch.tensor([floor]), slope[:1], slope[1:] - slope[:-1]])
    for k in range(joints):
        hidden_bn.running_mean[slots[k]] = mean[slots[k]]
        hidden_bn.running_var[slots[k]] = var[slots[k]]
        hidden_bn.weight.data[slots[k]] = 1.0
        hidden_bn.bias.data[slots[k]] = -knots
    final_conv.weight.data.zero_()
    final_conv.bias.data.fill_(floor * floor_knot)  # the floor's offset: 0 where z is at its mean
    for k in range(joints):
        final_conv.weight.data[k, slots[k], 0, 0] = increments
    out = model(*warm_up_inputs)
    out = out[0] if isinstance(out, (tuple, list)) else out
    scale = float(out.flatten(2).amax(2).median())
    final_conv.weight.data /= scale
    final_conv.bias.data /= scale


def deconv_layers(in_channels: int, channels: Sequence[int], kernel: int = 4) -> nn.Sequential:
    """Per entry of `channels`: transposed conv (kernel 4, stride 2, padding 1: exactly 2x) + BN + ReLU."""
    layers: list[nn.Module] = []
    for out_channels in channels:
        layers += [
            nn.ConvTranspose2d(in_channels, out_channels, kernel, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        in_channels = out_channels
    return nn.Sequential(*layers)


class SimpleBaseline(ResNet):
    """ResNet backbone → deconvolution head → `final_layer` heatmaps (stride 4)."""

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), num_joints: int = COCO_KEYPOINTS,
                 deconv_channels: Sequence[int] = (256, 256, 256), final_kernel: int = 1):
        super().__init__(Bottleneck, layers, num_classes=0)
        self.deconv_layers = deconv_layers(self.num_features, deconv_channels)
        self.final_layer = nn.Conv2d(deconv_channels[-1], num_joints, final_kernel, padding=final_kernel // 2)
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.deconv_layers(self.forward_features(x)))

    def place_random_head(self, warm_up_inputs) -> None:
        """Random weights only: heatmap peaks from the last deconv, its BN and `final_layer`."""
        place_heatmap_peaks(self, warm_up_inputs, self.deconv_layers[-3], self.deconv_layers[-2], self.final_layer)


@register_model("simple-baselines-resnet50")
def simple_baselines_resnet50(**kwargs) -> SimpleBaseline:
    return SimpleBaseline((3, 4, 6, 3), **kwargs)
