"""netexport: PyTorch CNNs → ONNX → TensorRT, verified against PyTorch at every step.

Public API (imports stay lazy so `import netexport` and the CLI start fast):
    list_models(task=None) -> list[str]
    create_model(name, weights=None, **kwargs) -> nn.Module
    get_recipe(name) -> Recipe
    export_onnx(name, output=None, **options) -> OnnxResult
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "export_onnx", "get_recipe", "list_models"]


def list_models(task: str | None = None) -> list[str]:
    from .zoo import list_models as _list_models

    return _list_models(task)


def create_model(name: str, weights=None, **kwargs):
    from .zoo import create_model as _create_model

    return _create_model(name, weights=weights, **kwargs)


def get_recipe(name: str):
    from .recipes import get_recipe as _get_recipe

    return _get_recipe(name)


def export_onnx(name: str, output=None, **options):
    """Export, check, simplify and verify one zoo model; returns an OnnxResult (see its to_dict())."""
    from .pipeline.to_onnx import OnnxRequest, run_onnx

    return run_onnx(OnnxRequest(model=name, output=output, **options))
