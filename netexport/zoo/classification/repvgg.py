"""RepVGG (Ding et al., CVPR 2021): multi-branch blocks for training, plain 3x3 convs for deploy.

Each training-time block sums a 3x3 conv-BN, a 1x1 conv-BN and (when shapes allow) an identity BN,
then applies ReLU. `reparameterize()` folds the three branches into one 3x3 conv with bias, in place;
netexport calls it before export.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..layers import ConvBNAct
from ..registry import register_model


def _fuse_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of conv(kernel) → bn in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class RepVGGBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.groups = stride, groups
        self.conv_3x3 = ConvBNAct(in_channels, out_channels, 3, stride, groups=groups, act=None)
        self.conv_1x1 = ConvBNAct(in_channels, out_channels, 1, stride, groups=groups, act=None)
        self.identity = nn.BatchNorm2d(in_channels) if in_channels == out_channels and stride == 1 else None
        self.reparam: nn.Conv2d | None = None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        if self.reparam is not None:
            return self.act(self.reparam(x))
        out = self.conv_3x3(x) + self.conv_1x1(x)
        if self.identity is not None:
            out = out + self.identity(x)
        return self.act(out)

    @torch.no_grad()
    def fused_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        kernel, bias = _fuse_bn(self.conv_3x3[0].weight, self.conv_3x3[1])
        k1, b1 = _fuse_bn(self.conv_1x1[0].weight, self.conv_1x1[1])
        kernel = kernel + nn.functional.pad(k1, [1, 1, 1, 1])
        bias = bias + b1
        if self.identity is not None:
            # identity as a 3x3 kernel: 1 at the centre of each channel's own input (within its group)
            in_per_group = self.in_channels // self.groups
            eye = torch.zeros_like(kernel)
            idx = torch.arange(self.in_channels)
            eye[idx, idx % in_per_group, 1, 1] = 1.0
            k_id, b_id = _fuse_bn(eye, self.identity)
            kernel, bias = kernel + k_id, bias + b_id
        return kernel, bias

    def reparameterize(self) -> None:
        if self.reparam is not None:
            return
        kernel, bias = self.fused_kernel_bias()
        conv = nn.Conv2d(self.in_channels, self.out_channels, 3, self.stride, 1, groups=self.groups)
        conv.to(device=kernel.device, dtype=kernel.dtype)
        conv.weight.data.copy_(kernel)
        conv.bias.data.copy_(bias)
        self.reparam = conv
        del self.conv_3x3, self.conv_1x1, self.identity
        self.identity = None


class RepVGG(nn.Module):
    def __init__(
        self,
        layers: Sequence[int],
        width_multipliers: Sequence[float],
        num_classes: int = 1000,
        in_chans: int = 3,
        groups_map: dict[int, int] | None = None,
    ):
        super().__init__()
        groups_map = groups_map or {}
        widths = [int(base * w) for base, w in zip((64, 128, 256, 512), width_multipliers)]
        channels = min(64, int(64 * width_multipliers[0]))
        self.stage0 = RepVGGBlock(in_chans, channels, stride=2)
        index = 1  # block index over the whole body, as used by the paper's group maps
        stages = []
        for width, depth in zip(widths, layers):
            blocks = []
            for i in range(depth):
                blocks.append(RepVGGBlock(channels, width, 2 if i == 0 else 1, groups_map.get(index, 1)))
                channels = width
                index += 1
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3, self.stage4 = stages
        self.num_features = channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        # the reference implementation keeps PyTorch's default initialisation

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage4(self.stage3(self.stage2(self.stage1(self.stage0(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.forward_features(x)), 1))

    def reparameterize(self) -> "RepVGG":
        """Fuse every block into a single 3x3 conv (deploy form); safe to call again."""
        for m in [m for m in self.modules() if isinstance(m, RepVGGBlock)]:
            m.reparameterize()
        return self


@register_model
def repvgg_a0(**kwargs) -> RepVGG:
    return RepVGG([2, 4, 14, 1], [0.75, 0.75, 0.75, 2.5], **kwargs)
