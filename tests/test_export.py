"""Every registered model exports to ONNX (reduced input size where the recipe allows) and matches
PyTorch on ONNX Runtime under the verification policy."""

import onnx
import pytest

from netexport.pipeline import provenance
from netexport.pipeline.export import saved_opset
from netexport.pipeline.to_onnx import OnnxRequest, run_onnx
from netexport.recipes import get_recipe
from zoo_params import per_model



@pytest.mark.parametrize("name", per_model())
def test_export_simplify_and_parity(name, tmp_path, record_figures):
    recipe = get_recipe(name)
    out = tmp_path / f"{name}.onnx"
    result = run_onnx(OnnxRequest(name, output=out, reduced_size=True))
    record_figures(result, "fp32")
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


def test_a_repeated_export_reuses_the_model_and_graph_and_gives_the_same_result(tmp_path):
    from netexport.pipeline import reuse

    reuse.clear()
    stages = []
    first = run_onnx(OnnxRequest("lenet5", output=tmp_path / "a.onnx", reduced_size=True))
    second = run_onnx(OnnxRequest("lenet5", output=tmp_path / "b.onnx", reduced_size=True, precision="fp16"),
                      progress=lambda stage, seconds, detail: stages.append((stage, detail)))
    assert ("load", "weights random init (seeded) (reused)") in stages
    assert any(stage == "export" and "reused" in detail for stage, detail in stages)
    assert not any(stage in ("check", "simplify") for stage, _ in stages)
    assert second.nodes == first.nodes and second.passed
    third = run_onnx(OnnxRequest("lenet5", output=tmp_path / "c.onnx", reduced_size=True))
    assert (tmp_path / "c.onnx").read_bytes() == (tmp_path / "a.onnx").read_bytes()
    other_size = run_onnx(OnnxRequest("lenet5", output=tmp_path / "d.onnx", batch=2, reduced_size=True),
                          progress=lambda stage, seconds, detail: stages.append((stage, detail)))
    assert other_size.passed and "simplify" in [s for s, _ in stages[-4:]]  # a new shape: exported again
    assert third.passed


def test_a_repeated_precision_request_reuses_its_graph_and_reference_with_identical_results(tmp_path, monkeypatch):
    from netexport.pipeline import reference, reuse

    reuse.clear()
    calls = []
    counted = reference.reference_outputs
    monkeypatch.setattr(reference, "reference_outputs", lambda *a: calls.append(1) or counted(*a))

    def run(name, **options):
        stages = []
        result = run_onnx(OnnxRequest("lenet5", output=tmp_path / name, reduced_size=True, **options),
                          progress=lambda stage, seconds, detail: stages.append((stage, detail)))
        return result, stages

    first, stages = run("a.onnx", precision="int8", calib_samples=4)
    assert [s for s, _ in stages].count("calibrate") == 1 and len(calls) == 1
    again, stages = run("b.onnx", precision="int8", calib_samples=4)  # e.g. the engine cell after the onnxruntime one
    assert "calibrate" not in [s for s, _ in stages] and ("int8", "reused the int8 graph converted from the same "
                                                         "FP32 graph") in stages
    assert len(calls) == 1, "the PyTorch reference ran again"
    assert (tmp_path / "b.onnx").read_bytes() == (tmp_path / "a.onnx").read_bytes()
    assert [v.to_dict() for v in again.verifications] == [v.to_dict() for v in first.verifications]
    _, stages = run("c.onnx", precision="int8", calib_samples=5)  # other ranges: calibrated again
    assert "calibrate" in [s for s, _ in stages]
    fp16, stages = run("d.onnx", precision="fp16")
    assert "fp16" in [s for s, _ in stages] and len(calls) == 1 and fp16.passed
