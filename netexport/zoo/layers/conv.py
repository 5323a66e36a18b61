"""Convolution + batch norm + activation, the block most CNNs are made of."""

from __future__ import annotations

from typing import Callable

from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor`, never dropping more than 10% (MobileNet rule)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias when followed by BN) → BatchNorm2d → activation; `act=None` leaves it linear."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        groups: int = 1,
        dilation: int = 1,
        act: Callable[[], nn.Module] | None = nn.ReLU,
        bn: bool = True,
        bn_eps: float = 1e-5,
    ):
        if padding is None:
            k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
            padding = tuple((d - 1) // 2 * dilation for d in k)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=not bn)
        ]
        if bn:
            layers.append(nn.BatchNorm2d(out_channels, eps=bn_eps))
        if act is not None:
            layers.append(act())
        super().__init__(*layers)
