"""Provenance written into every artifact: ONNX metadata_props (DESIGN.md §3)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..recipes import Recipe


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def provenance(recipe: Recipe, precision: str, opset: int, exporter: str, simplifier: str | None,
               weights: str | Path | None) -> dict[str, str]:
    import torch

    from .. import __version__

    return {
        "netexport.model": recipe.name,
        "netexport.recipe_hash": recipe.hash,
        "netexport.precision": precision,
        "netexport.opset": str(opset),
        "netexport.exporter": f"{exporter} (torch {torch.__version__})",
        "netexport.simplifier": simplifier or "none",
        "netexport.version": __version__,
        "netexport.weights": f"sha256:{file_sha256(weights)}" if weights else "random-init",
        "netexport.normalization": json.dumps({k: list(v) for k, v in recipe.normalization.items()}),
        "netexport.input_layout": json.dumps({s.name: "NCHW" for s in recipe.inputs}),
    }


def attach(proto, props: dict[str, str]) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in props.items():
        entry = existing.get(key) or proto.metadata_props.add()
        entry.key, entry.value = key, value


def read(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}
