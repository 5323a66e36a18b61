"""LeNet-5 (LeCun et al., "Gradient-Based Learning Applied to Document Recognition", Proc. IEEE 1998).

Faithful to Section II.B: trainable subsampling layers, the partial C3 connection table (Table I),
the scaled-tanh squashing function, and an output layer of Euclidean RBF units with fixed ±1 codes.
Trainable parameters: C1 156 + S2 12 + C3 1,516 + S4 32 + C5 48,120 + F6 10,164 = 60,000.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import register_model

# Table I: the S2 maps each C3 map reads. 0-5 take 3 contiguous maps, 6-11 four contiguous,
# 12-14 four non-contiguous, 15 all six.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip


class Squash(nn.Module):
    """f(a) = A tanh(S a) with A = 1.7159, S = 2/3 (Appendix A), so f(±1) = ±1."""

    amplitude = 1.7159
    slope = 2.0 / 3.0

    def forward(self, x):
        return self.amplitude * torch.tanh(self.slope * x)


class Subsample(nn.Module):
    """S2/S4: the sum of each 2x2 block times a trainable coefficient plus a trainable bias, per map."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        summed = nn.functional.avg_pool2d(x, 2) * 4.0
        return summed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv(nn.Module):
    """C3: each output map sees only its Table I inputs.

    The inputs are gathered once into the order the table lists them (60 channels), then maps with
    3 inputs (0-5), 4 inputs (6-14) and 6 inputs (15) are three grouped convolutions, so the weights
    hold exactly the table's connections and the graph is plain Gather + Conv + Concat.
    """

    def __init__(self, table=C3_TABLE, kernel_size: int = 5):
        super().__init__()
        self.register_buffer("index", torch.tensor([i for row in table for i in row]), persistent=False)
        self.splits: list[int] = []  # gathered channels per conv
        self.convs = nn.ModuleList()
        start = 0
        while start < len(table):
            width = len(table[start])
            end = start
            while end < len(table) and len(table[end]) == width:
                end += 1
            maps = end - start
            self.convs.append(nn.Conv2d(width * maps, maps, kernel_size, groups=maps))
            self.splits.append(width * maps)
            start = end

    def forward(self, x):
        gathered = torch.index_select(x, 1, self.index)
        parts = torch.split(gathered, self.splits, dim=1)
        return torch.cat([conv(part) for conv, part in zip(self.convs, parts)], dim=1)


class RBFOutput(nn.Module):
    """Euclidean RBF units y_i = sum_j (x_j - w_ij)^2 with fixed ±1 parameter vectors (a buffer).

    The paper draws its codes as stylised 7x12 bitmaps; here they are deterministic random ±1
    vectors from a private generator (the global RNG is untouched).
    """

    def __init__(self, in_features: int = 84, num_classes: int = 10, seed: int = 1998):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        codes = torch.randint(0, 2, (num_classes, in_features), generator=gen).float() * 2 - 1
        self.register_buffer("codes", codes)

    def forward(self, x):
        # direct difference rather than |x|^2 - 2x.w + |w|^2: no cancellation in fp16
        diff = x.unsqueeze(1) - self.codes
        return (diff * diff).sum(-1)


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 1, logit_scale: float = 0.1):
        super().__init__()
        self.c1 = nn.Conv2d(in_chans, 6, 5)
        self.s2 = Subsample(6)
        self.c3 = PartialConv()
        self.s4 = Subsample(16)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.act = Squash()
        self.rbf = RBFOutput(84, num_classes)
        # The paper trains the RBF penalties with its own MAP criterion; here logits are
        # -logit_scale * distance (a fixed factor, not trained) for cross-entropy. Distances span
        # ~0-240, and 0.1 keeps the softmax from saturating early (1.0 trains markedly slower).
        self.logit_scale = logit_scale
        self._init_weights()

    def _init_weights(self):
        # Appendix C draws weights from U(±2.4 / F) (F = fan-in) so that weighted sums start in the
        # sigmoid's operating range. Literally 2.4 / F shrinks the sums ~sqrt(F)-fold per layer
        # (F6 states ~0.01, near-equal untrained logits); U(±2.4 / sqrt(F)) meets the stated aim.
        # Biases count as weights with a constant input.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear, Subsample)):
                fan_in = module.weight[0].numel() if module.weight.dim() > 1 else 4  # 2x2 sum
                bound = 2.4 / math.sqrt(fan_in)
                nn.init.uniform_(module.weight, -bound, bound)
                nn.init.uniform_(module.bias, -bound, bound)

    def forward(self, x):
        # Every unit up to F6 squashes its weighted sum (Section II.B), convolutions included.
        x = self.act(self.s2(self.act(self.c1(x))))
        x = self.act(self.s4(self.act(self.c3(x))))
        x = self.act(self.c5(x)).flatten(1)
        x = self.act(self.f6(x))
        return -self.logit_scale * self.rbf(x)


@register_model
def lenet5(**kwargs):
    return LeNet5(**kwargs)

