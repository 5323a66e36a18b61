"""Users' own models (`package.module:callable`) through the same pipeline as the zoo."""

import json
import textwrap

import onnx
import pytest
from click.testing import CliRunner

from netexport import cli
from netexport.errors import EXIT_USAGE, InputError
from netexport.sources import UserOptions, parse_input_shape, resolve

TORCHVISION = "torchvision.models:resnet18"


def _cli(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module beside the user (the working directory), as `netexport` users would have one."""
    (tmp_path / "mynets.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class TwoHeads(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
                self.boxes = nn.Conv2d(8, 4, 1)
                self.scores = nn.Conv2d(8, 2, 1)

            def forward(self, x):
                y = self.body(x)
                return self.boxes(y), self.scores(y)

        def two_heads():
            return TwoHeads()

        def not_a_model():
            return {"weights": 1}
    """))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_torchvision_model_exports_and_verifies_with_an_input_shape(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _cli("onnx", TORCHVISION, "--input-shape", "1,3,64,64", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passed"] is True and data["input_shapes"] == {"input": [1, 3, 64, 64]}
    saved = onnx.load(str(tmp_path / "torchvision.models-resnet18.onnx"))  # ':' never reaches a file name
    meta = {p.key: p.value for p in saved.metadata_props}
    assert meta["netexport.model"] == TORCHVISION
    assert [o.name for o in saved.graph.output] == ["logits"]


def test_outputs_are_named_from_the_module_when_no_recipe_names_them(user_module):
    source = resolve("mynets:two_heads", UserOptions(input_shape=(1, 3, 32, 32), task="feature-pyramid"))
    assert source.recipe.outputs == ("output0", "output1")
    assert source.recipe.reference.params == sum(p.numel() for p in source.create().parameters())
    result = _cli("onnx", "mynets:two_heads", "--input-shape", "1,3,32,32", "--task", "feature-pyramid", "--int8", "--json")
    assert result.exit_code == 0, result.output
    assert [o["name"] for o in json.loads(result.stdout)["verification"][0]["outputs"]] == ["output0", "output1"]


def test_a_recipe_file_supplies_a_full_recipe(user_module):
    (user_module / "heads.yaml").write_text(textwrap.dedent("""
        task: feature-pyramid
        inputs:
          - {name: image, shape: [1, 3, 48, 48]}
        outputs: [boxes, scores]
        tolerances:
          fp16: {cosine: 0.9995}
    """))
    source = resolve("mynets:two_heads", UserOptions(recipe_file=user_module / "heads.yaml"))
    assert source.recipe.outputs == ("boxes", "scores") and source.recipe.task == "feature-pyramid"
    assert source.recipe.tolerances["fp16"].cosine == 0.9995
    assert source.recipe.primary_input.shape == (1, 3, 48, 48)
    result = _cli("onnx", "mynets:two_heads", "--recipe", "heads.yaml", "--fp16", "-o", "heads.onnx")
    assert result.exit_code == 0, result.output
    assert [o.name for o in onnx.load("heads.onnx").graph.output] == ["boxes", "scores"]


def test_user_model_builds_an_engine(tmp_path):
    result = _cli("trt", TORCHVISION, "--input-shape", "1,3,64,64", "--fp16", "-o", tmp_path / "r18.engine", "--json")
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "r18.engine.json").read_text())
    assert sidecar["model"] == TORCHVISION and sidecar["precision"] == "fp16" and sidecar["engine_bytes"] > 0


@pytest.mark.parametrize("args, fragment", [
    (["mynets:missing", "--input-shape", "1,3,32,32"], "has no attribute 'missing'"),
    (["nosuchpackage.nets:model", "--input-shape", "1,3,32,32"], "cannot import 'nosuchpackage.nets'"),
    (["mynets:not_a_model", "--input-shape", "1,3,32,32"], "returned dict, not a torch.nn.Module"),
    (["mynets:two_heads"], "give --input-shape"),
    (["mynets:two_heads", "--input-shape", "1,3,x,32"], "bad input shape"),
    (["mynets:two_heads", "--input-shape", "1,3,32,32", "--task", "painting"], "unknown task"),
    (["mynets:two_heads", "--input-shape", "1,3,32,32", "--recipe", "bad_check.yaml"], "unknown task_check 'banana'"),
    (["mynets:two_heads", "--recipe", "missing.yaml"], "recipe file not found"),
    (["mynets:two_heads", "--recipe", "broken.yaml"], "not valid YAML"),
    (["mynets:two_heads", "--recipe", "wrong_outputs.yaml"], "returns 2 outputs; its recipe names 1"),
    (["mynets:two_heads", "--input-shape", "1,3,32,32", "--recipe", "loose.yaml"], "looser than the policy"),
    (["resnet18", "--input-shape", "1,3,32,32"], "only for package.module:callable models"),
])
def test_bad_user_model_specs_exit_2_with_one_line_and_no_file(user_module, args, fragment):
    (user_module / "broken.yaml").write_text("inputs: [\n")
    (user_module / "wrong_outputs.yaml").write_text("inputs: [{name: x, shape: [1, 3, 32, 32]}]\noutputs: [y]\n")
    (user_module / "loose.yaml").write_text("tolerances: {fp32: {atol: 0.1}}\n")
    (user_module / "bad_check.yaml").write_text("task_check: banana\n")
    before = set(user_module.iterdir())
    result = _cli("onnx", *args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert set(user_module.iterdir()) - before <= {user_module / "__pycache__"}


def test_input_shape_parsing():
    assert parse_input_shape("1,3,224,224") == (1, 3, 224, 224)
    assert parse_input_shape("2x3x64x48") == (2, 3, 64, 48)
    for bad in ("", "1,3,0,4", "a,b", "7"):
        with pytest.raises(InputError):
            parse_input_shape(bad)
