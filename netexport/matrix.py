"""The verification matrix: which (model, precision, backend) cells a run covers, and how shards split it.

The matrix is ordered model → precision → backend, always the same way for the same selection, so
`--shard I/N` needs no coordination: shard I takes every N-th cell starting at I-1, and the N shards
cover every cell exactly once (round-robin also spreads each model's heavy cells across machines).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

PRECISION_ORDER = ("fp32", "fp16", "int8")
BACKEND_ORDER = ("onnxruntime", "tensorrt-rtx", "tensorrt")


FORMS = ("raw", "end2end")  # a detector's raw heads, and its graph with decode + NMS


@dataclass(frozen=True)
class Cell:
    model: str
    precision: str
    backend: str
    form: str = "raw"

    @property
    def key(self) -> str:
        return f"{self.model}/{self.precision}/{self.backend}" + ("" if self.form == "raw" else f"/{self.form}")


def build(models: list[str], precisions: list[str], backends: list[str],
          end2end_models: frozenset[str] = frozenset()) -> list[Cell]:
    """Every cell, model by model; detectors with an end-to-end form get those cells too."""
    precisions = sorted(set(precisions), key=PRECISION_ORDER.index)
    backends = sorted(set(backends), key=BACKEND_ORDER.index)
    return [Cell(m, p, b, form) for m in dict.fromkeys(models)
            for form in (FORMS if m in end2end_models else FORMS[:1]) for p in precisions for b in backends]


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' → (2, 4); shards count from 1."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"bad --shard {text!r}: expected I/N such as 1/4") from None
    if count < 1 or not 1 <= index <= count:
        raise InputError(f"bad --shard {text!r}: need 1 <= I <= N")
    return index, count


def shard(cells: list[Cell], index: int, count: int) -> list[Cell]:
    return cells[index - 1::count]
