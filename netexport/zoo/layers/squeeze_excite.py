"""Squeeze-and-Excitation (Hu et al., 2018): channel gates from globally pooled features."""

from __future__ import annotations

from typing import Callable

from torch import nn


class SqueezeExcite(nn.Module):
    def __init__(
        self,
        channels: int,
        reduced_channels: int,
        act: Callable[[], nn.Module] = nn.ReLU,
        gate: Callable[[], nn.Module] = nn.Sigmoid,
    ):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced_channels, 1)
        self.act = act()
        self.expand = nn.Conv2d(reduced_channels, channels, 1)
        self.gate = gate()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
