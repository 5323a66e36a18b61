"""Non-local ResNet-50 (Wang et al., "Non-local Neural Networks", CVPR 2018).

Reference configuration: the paper's 2-D placement of five embedded-Gaussian non-local blocks,
"3 to res4 and 2 to res3, to every other residual block": after residual blocks 2 and 4 of res3
(layer2) and 2, 4 and 6 of res4 (layer3), as the authors' release counts "every other" (block i
gets one when i % 2 == 1, zero-based). The block (paper Fig. 2, Sec. 3.3):

- theta, phi, g: 1x1 convs C → C' = C/2 (the bottleneck halving channels), with biases;
- f(x_i, x_j) = exp(theta(x_i)^T phi(x_j)), normalised over j: a softmax over positions;
- y_i = sum_j softmax_j * g(x_j); z = BN(W_z y) + x with W_z a 1x1 conv C' → C.

Where the paper leaves details to its code, this follows the authors' release
(facebookresearch/video-nonlocal-net, whose defaults produced the paper's numbers):
- the subsampling trick of Sec. 3.3 is on: phi and g see a 2x2/2 max-pooled input, so the
  attention is HW x HW/4 (784 x 196 for res3 at 224x224);
- theta^T phi is scaled by C'^-1/2 before the softmax;
- the convs start from N(0, 0.01^2) with zero bias.
Decided: the BN scale starts at 1, not at the release's 0, which makes every block an identity
at random init and would leave the export checks blind to it. Trained weights replace it.

Parameters: 2C^2 + 4.5C (weights, biases, BN) per block: 526,592 at C = 512 and 2,101,760 at
C = 1024, 7,358,464 for the five, 32,915,496 with ResNet-50 (torchvision's 25,557,032). The
paper gives no count for a 2-D classifier; that sum is the reference.
The backbone keeps torchvision's module names (the blocks live in `nonlocal_blocks`), so a
torchvision ResNet-50 checkpoint loads into it with only the non-local weights missing.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from ..classification.resnet import Bottleneck, ResNet
from ..registry import register_model

# stage → zero-based indices of the residual blocks followed by a non-local block
PAPER_PLACEMENT = {"layer2": (1, 3), "layer3": (1, 3, 5)}
NONLOCAL_INIT_STD = 0.01


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block with a residual connection."""

    def __init__(self, channels: int, inner_channels: int | None = None, subsample: bool = True,
                 scale: bool = True):
        super().__init__()
        inner = inner_channels or channels // 2
        self.pool = nn.MaxPool2d(2, 2) if subsample else nn.Identity()
        self.scale = inner ** -0.5 if scale else 1.0
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.out = nn.Conv2d(inner, channels, 1)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        theta = self.theta(x)  # (N, C', H, W)
        pooled = self.pool(x)
        phi = self.phi(pooled).flatten(2)  # (N, C', HW_j)
        g = self.g(pooled).flatten(2)
        logits = torch.matmul(theta.flatten(2).transpose(1, 2), phi)  # (N, HW_i, HW_j)
        attn = torch.softmax(logits * self.scale, dim=-1)
        y = torch.matmul(g, attn.transpose(1, 2))  # y[:, :, i] = sum_j attn[i, j] g[:, :, j]
        return x + self.bn(self.out(y.reshape_as(theta)))


class NonLocalResNet(ResNet):
    """ResNet with non-local blocks inserted after chosen residual blocks of chosen stages."""

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 6, 3),
        placement: Mapping[str, Sequence[int]] = PAPER_PLACEMENT,
        **kwargs,
    ):
        super().__init__(Bottleneck, layers, **kwargs)
        self.nonlocal_blocks = nn.ModuleDict()
        for stage, indices in placement.items():
            blocks = getattr(self, stage)
            for i in indices:
                self.nonlocal_blocks[f"{stage}_{i}"] = NonLocalBlock(blocks[i].conv3.out_channels)
        for m in self.nonlocal_blocks.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=NONLOCAL_INIT_STD)
                nn.init.zeros_(m.bias)

    def _run_stage(self, stage: str, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(getattr(self, stage)):
            x = block(x)
            key = f"{stage}_{i}"
            if key in self.nonlocal_blocks:
                x = self.nonlocal_blocks[key](x)
        return x

    def forward_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c2 = self._run_stage("layer1", self.stem(x))
        c3 = self._run_stage("layer2", c2)
        c4 = self._run_stage("layer3", c3)
        c5 = self._run_stage("layer4", c4)
        return c2, c3, c4, c5

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x)[-1]


@register_model("nonlocal-resnet50")
def nonlocal_resnet50(**kwargs) -> NonLocalResNet:
    return NonLocalResNet((3, 4, 6, 3), PAPER_PLACEMENT, **kwargs)
