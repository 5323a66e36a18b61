"""Every opset from 13 to the newest the exporters support is met exactly, or refused (exit 2)."""

import onnx
import pytest

from netexport.errors import ExportError, InputError
from netexport.pipeline.export import MIN_OPSET, choose_exporter, max_opset, torchscript_max_opset
from netexport.pipeline.export import saved_opset
from netexport.pipeline.to_onnx import OnnxRequest, run_onnx

MODEL = "lenet5"  # smallest graph: the opset machinery is what is under test


@pytest.mark.parametrize("opset", range(MIN_OPSET, max_opset() + 1))
def test_saved_opset_is_exactly_the_requested_one(opset, tmp_path):
    out = tmp_path / "m.onnx"
    result = run_onnx(OnnxRequest(MODEL, output=out, opset=opset))
    assert result.passed, result.failures()
    assert saved_opset(onnx.load(str(out))) == opset
    assert result.exporter == ("torchscript" if opset <= torchscript_max_opset() else "dynamo")


@pytest.mark.parametrize("opset", [MIN_OPSET - 1, max_opset() + 1])
def test_opsets_outside_the_supported_range_are_input_errors(opset, tmp_path):
    with pytest.raises(InputError, match="not supported"):
        run_onnx(OnnxRequest(MODEL, output=tmp_path / "m.onnx", opset=opset))
    assert not (tmp_path / "m.onnx").exists()


def test_dynamo_exporter_is_refused_below_18_instead_of_silently_saving_18():
    with pytest.raises(ExportError, match="silently saves 18"):
        choose_exporter(17, "dynamo")


def test_torchscript_exporter_is_refused_above_its_maximum():
    with pytest.raises(ExportError, match="TorchScript"):
        choose_exporter(torchscript_max_opset() + 1, "torchscript")


def test_dynamo_exporter_on_request(tmp_path):
    out = tmp_path / "m.onnx"
    result = run_onnx(OnnxRequest("resnet18", output=out, opset=18, exporter="dynamo", reduced_size=True))
    assert result.passed and result.exporter == "dynamo"
    assert saved_opset(onnx.load(str(out))) == 18


def test_dynamic_batch_passes_parity_at_batch_1_and_4(tmp_path):
    out = tmp_path / "m.onnx"
    result = run_onnx(OnnxRequest("resnet18", output=out, dynamic_batch=True, reduced_size=True))
    assert result.passed, result.failures()
    batches = sorted({o.shape[0] for v in result.verifications for o in v.outputs})
    assert batches == [1, 4]
    dim = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "batch"


def test_static_batch_and_input_size_are_honoured(tmp_path):
    out = tmp_path / "m.onnx"
    result = run_onnx(OnnxRequest("resnet18", output=out, batch=2, input_size=(96, 64)))
    assert result.passed
    dims = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 96, 64]
