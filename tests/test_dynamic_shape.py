"""`--dynamic-shape`: segmentation models that accept any input size export with dynamic height and
width, match PyTorch at two sizes, and their TensorRT profile spans the recipe's min/opt/max sizes."""

import json

import onnx
import pytest
from click.testing import CliRunner

import netexport
from netexport.cli import main
from netexport.errors import EXIT_USAGE
from netexport.pipeline.to_onnx import OnnxRequest, run_onnx, second_size
from netexport.pipeline.to_trt import TrtRequest, resolve_profile
from netexport.recipes import InputSpec, get_recipe
from zoo_params import per_model

DYNAMIC = [n for n in netexport.list_models() if all(spec.dynamic_size for spec in get_recipe(n).inputs)]


def test_every_segmentation_model_that_takes_any_size_is_dynamic():
    segmentation = [n for n in netexport.list_models()
                    if get_recipe(n).task in ("semantic-segmentation", "portrait-segmentation")]
    fixed = {n for n in segmentation if n not in DYNAMIC}
    assert fixed == set(), f"segmentation recipes without a dynamic size range: {sorted(fixed)}"


@pytest.mark.parametrize("name", per_model(DYNAMIC))
def test_dynamic_shape_export_matches_pytorch_at_two_sizes(name, tmp_path):
    out = tmp_path / f"{name}.onnx"
    result = run_onnx(OnnxRequest(name, output=out, reduced_size=True, dynamic_shape=True))
    assert result.passed, result.failures()
    sizes = [v.outputs[0].shape for v in result.verifications]
    assert len(sizes) == 2 and sizes[0] != sizes[1]
    for value in onnx.load(str(out)).graph.input:
        dims = value.type.tensor_type.shape.dim
        assert dims[2].dim_param and dims[3].dim_param and dims[1].dim_value


def _spec(**kw):
    base = dict(name="input", shape=(1, 3, 512, 1024), min_shape=(1, 3, 50, 50), test_shape=(1, 3, 128, 128),
                divisor=32, max_shape=(1, 3, 1024, 2048))
    return InputSpec(**{**base, **kw})


def test_size_range_rounds_the_minimum_up_to_the_divisor():
    assert _spec().size_range() == ((64, 64), (512, 1024), (1024, 2048))
    assert _spec(divisor=1).size_range() == ((50, 50), (512, 1024), (1024, 2048))


def test_second_size_changes_both_sides_within_the_range():
    assert second_size(_spec(), (1, 3, 128, 128)) == (1, 3, 96, 160)  # a step of 32: smaller h, wider w
    assert second_size(_spec(), (1, 3, 64, 2048)) == (1, 3, 96, 2016)  # at the edges: the other way
    assert second_size(_spec(divisor=1), (2, 3, 60, 60)) == (2, 3, 52, 68)  # step 8 without a divisor


def test_trt_profile_spans_the_recipe_range_and_keeps_static_axes():
    recipe = get_recipe("lednet")
    (low_h, low_w), (opt_h, opt_w), (high_h, high_w) = recipe.inputs[0].size_range()
    static_batch = resolve_profile(TrtRequest("lednet"), recipe, {"input": (2, 3, 64, 64)}, {"input": {2, 3}})
    assert static_batch.shapes["input"] == ((2, 3, low_h, low_w), (2, 3, opt_h, opt_w), (2, 3, high_h, high_w))
    axis = recipe.dynamic_axes["batch"]
    both = resolve_profile(TrtRequest("lednet"), recipe, {"input": (1, 3, 64, 64)}, {"input": {0, 2, 3}})
    assert [s[0] for s in both.shapes["input"]] == [axis.min, axis.opt, axis.max]
    assert resolve_profile(TrtRequest("lednet"), recipe, {"input": (1, 3, 64, 64)}, {"input": set()}) is None


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("args, fragment", [
    (["onnx", "resnet18", "--dynamic-shape"], "no dynamic size range"),
    (["onnx", "lednet", "--dynamic-shape", "--input-size", "4096x4096"], "outside the recipe's dynamic range"),
    (["onnx", "lednet", "--dynamic-shape", "--end2end"], "--dynamic-shape applies to the raw outputs"),
    (["trt", "lednet", "--dynamic-shape", "--backend", "tensorrt-rtx",
      "--shapes", "input:1x3x64x64:1x3x512x1024:1x3x256x256"], "impossible profile"),
])
def test_bad_dynamic_shape_requests_exit_2(tmp_path, args, fragment):
    result = _cli(*args, "-o", tmp_path / "out")
    assert result.exit_code == EXIT_USAGE, result.output
    assert fragment in result.stderr and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_dynamic_shape_engine_records_the_recipe_profile(tmp_path):
    engine = tmp_path / "lednet.engine"
    result = _cli("trt", "lednet", "--dynamic-shape", "--input-size", "128x128", "--backend", "tensorrt-rtx",
                  "-o", engine, "--json")
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "lednet.engine.json").read_text())
    spec = get_recipe("lednet").inputs[0]
    (low_h, low_w), (opt_h, opt_w), (high_h, high_w) = spec.size_range()
    profile = sidecar["profiles"][0]["input"]
    assert profile["min"][2:] == [low_h, low_w] and profile["opt"][2:] == [opt_h, opt_w]
    assert profile["max"][2:] == [high_h, high_w]
    assert sidecar["inputs"][0]["shape"][2:] == [-1, -1] and sidecar["engine_bytes"] > 0
