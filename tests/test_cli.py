"""The CLI contract: JSON on stdout, one-line errors with the documented exit codes, no partial files."""

import json

import pytest
import torch
from click.testing import CliRunner

from netexport import cli
from netexport.errors import EXIT_USAGE, EXIT_VERIFICATION_FAILED
from netexport.recipes import get_recipe
from netexport.zoo import create_model

SMALL = "lenet5"


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args):
    return runner.invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, code, *fragments):
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_list_json(runner):
    result = invoke(runner, "list", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    row = next(r for r in rows if r["name"] == "resnet50")
    assert row == {"name": "resnet50", "task": "classification", "params": 25557032,
                   "input_shape": {"input": [1, 3, 224, 224]}}


def test_list_filters_by_task_and_table_output(runner):
    result = invoke(runner, "list", "--task", "feature-pyramid")
    assert result.exit_code == 0
    assert "fpn-resnet50" in result.stdout and "resnet18 " not in result.stdout
    assert_one_line_error(invoke(runner, "list", "--task", "nope"), EXIT_USAGE, "unknown task")


def test_info_json_reports_measured_figures(runner):
    result = invoke(runner, "info", "resnet18", "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["params"] == 11689512
    assert 1.7 < info["gmacs"] < 1.9  # ResNet-18 is 1.8 GMACs at 224x224 (He et al., Table 1)
    assert info["outputs"] == [{"name": "logits", "shape": [1, 1000]}]
    assert any(layer["name"] == "layer4" for layer in info["layers"])


def test_onnx_json_result(runner, tmp_path):
    from netexport.pipeline import reuse

    reuse.clear()  # a fresh export: every stage runs and is timed
    out = tmp_path / "lenet.onnx"
    result = invoke(runner, "onnx", SMALL, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["artifact"] == str(out) and out.exists()
    assert data["opset"] == 17 and data["passed"] is True
    assert set(data["nodes"]) == {"exported", "simplified"}
    output = data["verification"][0]["outputs"][0]
    assert output["name"] == "logits" and output["max_abs_err"] <= output["tolerance"]["atol"]
    assert {"load", "export", "simplify", "reference", "onnxruntime", "task", "write"} <= set(data["timings"])


def test_onnx_default_output_and_no_verify(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(runner, "onnx", SMALL, "--no-verify", "--no-simplify", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["verified"] is False and data["passed"] is None
    assert (tmp_path / "lenet5.onnx").exists()
    assert data["nodes"]["exported"] == data["nodes"]["simplified"]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["onnx", "resnet5"], ["unknown model", "resnet50"]),
        (["onnx", "vgg16bn"], ["unknown model", "vgg16-bn"]),
        (["onnx", SMALL, "--opset", "seventeen"], ["--opset", "not a valid integer"]),
        (["onnx", SMALL, "--opset", "12"], ["opset 12 is not supported"]),
        (["onnx", SMALL, "--opset", "99"], ["opset 99 is not supported"]),
        (["onnx", SMALL, "--opset", "17", "--exporter", "dynamo"], ["dynamo exporter emits opset >= 18"]),
        (["onnx", "resnet18", "--input-size", "abc"], ["malformed size"]),
        (["onnx", "resnet18", "--input-size", "0x64"], ["malformed size"]),
        (["onnx", "resnet18", "--input-size", "16x16"], ["at least 32x32"]),
        (["onnx", SMALL, "--input-size", "64x64"], ["fixed 32x32"]),
        (["onnx", SMALL, "--batch", "0"], ["batch must be >= 1"]),
        (["onnx", SMALL, "--weights", "/nonexistent/w.pt"], ["weights file not found"]),
    ],
)
def test_bad_input_is_one_line_exit_2(runner, tmp_path, args, fragments):
    out = tmp_path / "out.onnx"
    result = invoke(runner, *args, "-o", out)
    assert_one_line_error(result, EXIT_USAGE, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_info_unknown_model(runner):
    assert_one_line_error(invoke(runner, "info", "vgg16bn"), EXIT_USAGE, "unknown model", "vgg16-bn")


def test_unwritable_output_path(runner, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = invoke(runner, "onnx", SMALL, "-o", blocker / "m.onnx")
    assert_one_line_error(result, EXIT_USAGE, "cannot write to")
    result = invoke(runner, "onnx", SMALL, "-o", tmp_path)
    assert_one_line_error(result, EXIT_USAGE, "is a directory")


def test_weights_state_dict_and_checkpoint_load(runner, tmp_path):
    model = create_model(SMALL, seed=7)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
               tmp_path / "ckpt.pt")
    for weights in ("sd.pt", "ckpt.pt"):
        out = tmp_path / f"{weights}.onnx"
        result = invoke(runner, "onnx", SMALL, "--weights", tmp_path / weights, "-o", out, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["metadata"]["netexport.weights"].startswith("sha256:")


def test_torchvision_checkpoint_loads_into_the_zoo_resnet(runner, tmp_path):
    import torchvision

    from netexport.pipeline.reference import torch_outputs
    from netexport.data import synthetic_inputs

    reference = torchvision.models.resnet18(weights=None).eval()
    torch.save(reference.state_dict(), tmp_path / "tv.pt")
    model = create_model("resnet18", weights=tmp_path / "tv.pt")
    recipe = get_recipe("resnet18")
    sample = synthetic_inputs({"input": (1, 3, 64, 64)}, recipe.normalization)
    ours = torch_outputs(model, recipe, sample)["logits"]
    with torch.no_grad():
        theirs = reference(torch.from_numpy(sample["input"])).numpy()
    assert abs(ours - theirs).max() == 0


def test_mismatched_and_corrupt_weights_are_clear_errors(runner, tmp_path):
    state = create_model("resnet18").state_dict()
    torch.save(state, tmp_path / "resnet18.pt")
    result = invoke(runner, "onnx", SMALL, "--weights", tmp_path / "resnet18.pt", "-o", tmp_path / "m.onnx")
    assert_one_line_error(result, EXIT_USAGE, "do not fit the model", "missing", "unexpected")
    lenet = create_model(SMALL).state_dict()
    key = next(iter(lenet))
    lenet[key] = torch.zeros(3, 3)
    torch.save(lenet, tmp_path / "shape.pt")
    result = invoke(runner, "onnx", SMALL, "--weights", tmp_path / "shape.pt", "-o", tmp_path / "m.onnx")
    assert_one_line_error(result, EXIT_USAGE, "wrong shape", key)
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint")
    result = invoke(runner, "onnx", SMALL, "--weights", tmp_path / "junk.pt", "-o", tmp_path / "m.onnx")
    assert_one_line_error(result, EXIT_USAGE, "cannot read weights")
    assert not (tmp_path / "m.onnx").exists()


def test_parity_failure_exits_1_names_the_output_and_writes_nothing(runner, tmp_path, monkeypatch):
    # An impossible (tighter-than-float) tolerance makes real fp32 rounding differences a failure.
    strict = get_recipe("resnet18", overrides={"tolerances": {"fp32": {"atol": 1e-30, "rtol": 0.0}}})
    monkeypatch.setattr("netexport.recipes.get_recipe", lambda name: strict)
    out = tmp_path / "m.onnx"
    result = invoke(runner, "onnx", "resnet18", "--input-size", "32x32", "-o", out, "--json")
    assert result.exit_code == EXIT_VERIFICATION_FAILED
    data = json.loads(result.stdout)
    assert data["passed"] is False and data["artifact"] is None
    assert "parity FAILED" in result.stderr and "logits: max |Δ|" in result.stderr
    assert list(tmp_path.iterdir()) == []
