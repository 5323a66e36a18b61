"""GC-ResNet-50 (Cao et al., "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and
Beyond", ICCV Workshops 2019 / TPAMI 2020).

Reference configuration, the paper's ResNet-50 setting ("GC r4, c3-c5, after 1x1"): a global
context block with bottleneck ratio 1/4 after the last 1x1 conv (+ BN) of every bottleneck of
stages c3, c4 and c5, before the residual add; stage c2 has none. The block (paper Fig. 4d):

- context modelling: a 1x1 conv C → 1 (with bias) gives one logit per position, softmax over all
  H*W positions, and the attention-weighted sum of x over positions gives a C-vector;
- transform: 1x1 conv C → C/4, LayerNorm over (C/4, 1, 1), ReLU, 1x1 conv C/4 → C (all biased);
- fusion: broadcast add to every position of x.

Per block C^2/2 + 2.75C + 1 parameters: 10,000,909 over c3-c5, the "+10.0M" of the ratio-1/4
row of the paper's ablation (R50 Mask R-CNN 44.4M → 54.4M); 35,557,941 for the classifier.

Decided: the last transform conv is not zero-initialised (the paper's training recipe). Zero would
make every block an identity at random init and the export checks blind to it; trained weights
replace the initialisation in any case.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..classification.resnet import Bottleneck, ResNet
from ..registry import register_model

GC_RATIO = 1 / 4
C2_CHANNELS = 256  # bottleneck output width of stage c2 in ResNet-50, which gets no block


class GlobalContextBlock(nn.Module):
    def __init__(self, channels: int, ratio: float = GC_RATIO):
        super().__init__()
        hidden = int(channels * ratio)
        self.context_mask = nn.Conv2d(channels, 1, 1)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )

    def reset_parameters(self) -> None:
        """The authors' initialisation of the context logits: He-normal over fan-in, zero bias.
        (The host ResNet's He-over-fan-out gives this C → 1 conv a std of sqrt(2): logits in the
        hundreds and a one-hot softmax.)"""
        nn.init.kaiming_normal_(self.context_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.context_mask.bias)

    def forward(self, x):
        weights = torch.softmax(self.context_mask(x).flatten(2), dim=-1)  # (N, 1, HW)
        context = torch.matmul(x.flatten(2), weights.transpose(1, 2)).unsqueeze(-1)  # (N, C, 1, 1)
        return x + self.transform(context)


def gc_c3_to_c5(channels: int, ratio: float = GC_RATIO) -> nn.Module:
    return nn.Identity() if channels <= C2_CHANNELS else GlobalContextBlock(channels, ratio)


@register_model("gc-resnet50")
def gc_resnet50(ratio: float = GC_RATIO, **kwargs) -> ResNet:
    model = ResNet(
        Bottleneck, [3, 4, 6, 3], block_kwargs={"attn_layer": partial(gc_c3_to_c5, ratio=ratio)}, **kwargs
    )
    for m in model.modules():  # after the ResNet's own initialisation, which covers every conv
        if isinstance(m, GlobalContextBlock):
            m.reset_parameters()
    return model
