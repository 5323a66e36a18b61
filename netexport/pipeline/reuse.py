"""Reuse of the expensive, deterministic work of the pipeline within one process.

Building a zoo model (seeded init plus BN warm-up), exporting + simplifying it, converting it to
FP16 or calibrating it for INT8 and running the PyTorch reference cost seconds to minutes, and a
verification run asks for the same model, graphs and reference once per precision and backend.
Each is a pure function of its key (model source and recipe, weights file contents, shapes, export
and calibration settings), so results are kept and handed out again when the key repeats.

Only the current model's results are kept, at most two of each kind (a detector's end-to-end
cells alternate between the ONNX NonMaxSuppression graph and TensorRT-RTX's Loop NMS graph): a
VGG and its graph are over 1 GB. Graphs are kept serialized (later stages edit the proto in
place); models are kept after their deploy-time reparameterisation, and the pipeline only runs
them in eval mode without gradients; reference outputs are read-only arrays.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Hashable


class Kept:
    """Recent results of one model, by key."""

    def __init__(self, capacity: int = 2):
        self._capacity = capacity
        self._model: Hashable | None = None
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Any], model: Hashable = None) -> tuple[Any, bool]:
        """(value, reused): the kept value when `key` was seen for the same `model`, else a new one
        from `make()` (which drops another model's results). A key of None means "do not reuse": the
        value is made and not kept."""
        if key is None:
            return make(), False
        with self._lock:
            if model != self._model:
                self._entries.clear()
                self._model = model
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key], True
        value = make()
        with self._lock:
            if model == self._model:
                self._entries[key] = value
                while len(self._entries) > self._capacity:
                    self._entries.popitem(last=False)
        return value, False

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._model = None


MODELS = Kept(capacity=1)
GRAPHS = Kept()  # the FP32 graph, exported and simplified
PRECISION_GRAPHS = Kept()  # its FP16 or INT8 conversion
REFERENCES = Kept()  # PyTorch's outputs on the verification inputs
END2END = Kept()  # a detector wrapped with decode + NMS, its score threshold searched


def path_identity(path) -> tuple | None:
    """A file is the same while its path, size and modification time are; a folder while its files are."""
    if path is None:
        return None
    path = Path(path).resolve()
    if path.is_dir():
        return (str(path), tuple((str(p.relative_to(path)), *_stat(p)) for p in sorted(path.rglob("*")) if p.is_file()))
    if not path.is_file():
        return (str(path), None)  # reading it reports the problem
    return (str(path), *_stat(path))


def _stat(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns



def clear() -> None:
    for kept in (MODELS, GRAPHS, PRECISION_GRAPHS, REFERENCES, END2END):
        kept.clear()
