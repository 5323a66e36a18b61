"""Cached verification results, keyed by everything that can change a cell's outcome.

The key is a SHA-256 over: the source files that define the model, its merged recipe, the weights
file's bytes, the cell (precision, backend) and run settings, the versions of every tool in the
pipeline, and netexport's own pipeline code. Change any of them and the cell runs again; change one
model's recipe and only that model's cells do. Errors (crashes) are never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from . import atomic

TOOLCHAIN = ("torch", "torchvision", "onnx", "onnxruntime", "onnxslim", "onnxsim", "onnxconverter-common",
             "numpy", "tensorrt-rtx", "tensorrt")
# netexport's own code that produces a cell's result (reports and the CLI do not change results).
_PIPELINE_CODE = ("pipeline", "backends", "data.py", "numerics.py", "recipes.py", "sources.py", "weights.py", "gate.py")
CACHEABLE = ("pass", "fail", "xfail", "built", "skip")


def cache_home() -> Path:
    """netexport's folder under the user's cache directory (XDG_CACHE_HOME or ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "netexport"


def default_dir() -> Path:
    if os.environ.get("NETEXPORT_CACHE_DIR"):
        return Path(os.environ["NETEXPORT_CACHE_DIR"])
    return cache_home() / "verify"


@lru_cache(maxsize=None)
def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@lru_cache(maxsize=1)
def toolchain_versions() -> dict[str, str]:
    versions = {}
    for dist in TOOLCHAIN:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return versions


@lru_cache(maxsize=None)
def code_digest(entries: tuple[str, ...]) -> str:
    """SHA-256 over netexport's own source files named by `entries` (folders or files)."""
    root = Path(__file__).resolve().parent
    files = []
    for entry in entries:
        path = root / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + _file_digest(path).encode())
    return digest.hexdigest()


def pipeline_digest() -> str:
    return code_digest(_PIPELINE_CODE)


def cell_key(source, cell, settings: dict, weights: Path | None = None) -> str:
    """`source` is a ModelSource, `cell` a matrix.Cell, `settings` the run options that shape results."""
    payload = {
        "model_files": [_file_digest(p) for p in source.files],  # in order: names repeat (__init__.py)
        "recipe": source.recipe.raw,
        "weights": _file_digest(Path(weights).resolve()) if weights else None,
        "cell": [cell.model, cell.precision, cell.backend, cell.form],
        "settings": settings,
        "toolchain": toolchain_versions(),
        "netexport": pipeline_digest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class ResultCache:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):  # absent, or a damaged entry: run the cell again
            return None

    def put(self, key: str, cell: dict) -> None:
        if cell.get("status") in CACHEABLE:
            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_bytes(path, json.dumps(cell, default=str).encode())
