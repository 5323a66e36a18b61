"""Every registered model exports to ONNX (reduced input size where the recipe allows) and matches
PyTorch on ONNX Runtime under the verification policy."""

import onnx
import pytest

import netexport
from netexport.pipeline import provenance
from netexport.pipeline.export import saved_opset
from netexport.pipeline.to_onnx import OnnxRequest, run_onnx
from netexport.recipes import get_recipe

NAMES = netexport.list_models()


@pytest.mark.parametrize("name", NAMES)
def test_export_simplify_and_parity(name, tmp_path):
    recipe = get_recipe(name)
    out = tmp_path / f"{name}.onnx"
    result = run_onnx(OnnxRequest(name, output=out, reduced_size=True))
    assert result.passed, result.failures()
    worst = max(o.error_ratio for v in result.verifications for o in v.outputs)
    assert worst <= 1.0
    proto = onnx.load(str(out))
    assert saved_opset(proto) == recipe.default_opset
    assert [o.name for o in proto.graph.output] == list(recipe.outputs)  # no auxiliary heads
    assert [i.name for i in proto.graph.input] == [s.name for s in recipe.inputs]
    meta = provenance.read(proto)
    assert meta["netexport.model"] == name and meta["netexport.recipe_hash"] == recipe.hash
    assert result.nodes["simplified"] <= result.nodes["exported"]
