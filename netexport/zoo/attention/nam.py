"""NAM-ResNet-50 (Liu et al., "NAM: Normalization-based Attention Module", ImageNet PPF workshop at
NeurIPS 2021).

Reference configuration: ResNet-50 with NAM's channel attention on the residual branch of every
bottleneck, after the last 1x1 conv + BN and before the residual add (where the paper's code
base, CBAM's, puts its modules). The module is a batch norm whose scale factors measure channel
importance (paper Eq. 1): M_c = sigmoid(W_gamma * BN(F)), W_gamma_i = gamma_i / sum_j gamma_j,
output M_c * F. Its only parameters are the BN's gamma and beta: 2C per block, 30,208 over the
16 blocks on top of ResNet-50's 25,557,032 (25,587,240).

Decided:
- the weights are |gamma_i| / sum_j |gamma_j|, as in the authors' release: the paper's gamma_i /
  sum_j gamma_j is the same while all gammas are positive, and the absolute values keep the
  normaliser away from zero once training makes some negative;
- no ReLU before the sigmoid: the authors' release adds one (sigmoid(ReLU(.)) >= 0.5), Eq. 1
  does not, and the paper is the reference;
- channel attention only: the paper's pixel-normalisation spatial submodule is left out. It is a
  batch norm over a fixed number of H*W positions, which would tie the model to one input size.
The weights are a function of parameters only, so the exported graph folds them to a constant.
"""

from __future__ import annotations

import torch
from torch import nn

from ..classification.resnet import Bottleneck, ResNet
from ..registry import register_model


class NAMChannel(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        gamma = self.bn.weight.abs()
        weight = (gamma / gamma.sum()).view(1, -1, 1, 1)
        return x * torch.sigmoid(self.bn(x) * weight)


@register_model("nam-resnet50")
def nam_resnet50(**kwargs) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], block_kwargs={"attn_layer": NAMChannel}, **kwargs)
