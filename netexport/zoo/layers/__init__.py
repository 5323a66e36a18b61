"""Blocks shared by several model families."""

from .conv import ConvBNAct, make_divisible
from .squeeze_excite import SqueezeExcite

__all__ = ["ConvBNAct", "SqueezeExcite", "make_divisible"]
