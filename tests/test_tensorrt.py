"""TensorRT-RTX builds (no GPU needed): every registered model in FP32, FP16 and INT8, the sidecar,
profiles, inspection and the error paths. Engines are never executed here (no machine has a GPU)."""

import importlib
import json

import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from netexport import cli
from netexport.errors import EXIT_BACKEND_UNAVAILABLE, EXIT_USAGE, EXIT_VERIFICATION_FAILED
from netexport.pipeline.to_trt import TrtRequest, run_trt
from netexport.recipes import get_recipe
from zoo_params import per_model

FAST = {"reduced_size": True, "verify": False}  # ONNX parity is covered by test_export / test_precision


def _build(name, tmp_path, precision, **kwargs):
    onnx_options = dict(FAST, **({"calib_samples": 4} if precision == "int8" else {}))
    request = TrtRequest(model=name, output=tmp_path / f"{name}.{precision}.engine", backend="tensorrt-rtx",
                         precision=precision, onnx=onnx_options, **kwargs)
    return run_trt(request)


@pytest.mark.parametrize("name", per_model(full_matrix_only=True))
def test_engines_compile_in_every_precision_and_shrink_with_it(name, tmp_path):
    sizes = {}
    for precision in ("fp32", "fp16", "int8"):
        result = _build(name, tmp_path, precision, batch=1)  # the static graph the ONNX tests exported: reused
        assert result.engine.stat().st_size == result.sidecar["engine_bytes"]
        assert result.executed is False and result.reason
        sizes[precision] = result.sidecar["engine_bytes"]
        for artifact in tmp_path.iterdir():  # VGG's three engines and graphs alone are ~2.5 GB
            artifact.unlink()
        layers = result.sidecar["layer_precisions"]
        if precision == "fp16":
            assert layers.get("half", 0) > layers.get("float", 0)
        if precision == "int8":
            assert layers.get("int8", 0) > 0
    ordered = sizes["int8"] < sizes["fp16"] < sizes["fp32"] and sizes["fp16"] <= 0.6 * sizes["fp32"]
    limitation = get_recipe(name).limitation("int8", "tensorrt-rtx", check="engine-size", size="test")
    if limitation is not None:
        assert not ordered, f"stale limitation (sizes are ordered now: {sizes}): {limitation.reason}"
        pytest.xfail(limitation.reason)
    assert ordered, sizes


def test_sidecar_records_provenance_and_the_plan_is_untouched(tmp_path):
    result = _build("resnet18", tmp_path, "fp16", compute_capabilities=("8.6", "SM89"))
    sidecar = json.loads((tmp_path / "resnet18.fp16.engine.json").read_text())
    assert sidecar == json.loads(json.dumps(result.sidecar))
    assert sidecar["model"] == "resnet18" and sidecar["recipe_hash"] == get_recipe("resnet18").hash
    assert sidecar["precision"] == "fp16" and sidecar["backend"] == "tensorrt-rtx"
    assert sidecar["compute_capabilities"] == ["SM86", "SM89"]
    axis = get_recipe("resnet18").dynamic_axes["batch"]  # profiles default to the recipe's batch range
    assert sidecar["profiles"] == [{"input": {"min": [axis.min, 3, 64, 64], "opt": [axis.opt, 3, 64, 64],
                                              "max": [axis.max, 3, 64, 64]}}]
    assert sidecar["inputs"] == [{"name": "input", "dtype": "float", "shape": [-1, 3, 64, 64]}]
    assert sidecar["outputs"][0]["name"] == "logits" and len(sidecar["onnx_sha256"]) == 64
    assert sidecar["build_seconds"] > 0 and sidecar["tf32"] is False
    plan = (tmp_path / "resnet18.fp16.engine").read_bytes()
    assert not plan.startswith(b"{")  # a plain plan: no header of ours in front of the builder's bytes


def test_dynamic_batch_profile_from_options(tmp_path):
    result = _build("resnet18", tmp_path, "fp32", min_batch=1, opt_batch=4, max_batch=8)
    assert result.sidecar["profiles"] == [{"input": {"min": [1, 3, 64, 64], "opt": [4, 3, 64, 64], "max": [8, 3, 64, 64]}}]
    assert result.sidecar["inputs"][0]["shape"] == [-1, 3, 64, 64]


def test_batch_builds_a_static_engine(tmp_path):
    result = _build("resnet18", tmp_path, "fp32", batch=2)
    assert result.sidecar["profiles"] == []
    assert result.sidecar["inputs"][0]["shape"] == [2, 3, 64, 64]


def test_inspect_reports_layers_and_int8_really_runs_in_int8(tmp_path):
    result = _build("resnet18", tmp_path, "int8", inspect=True)
    convs = [layer for layer in result.layers if layer["type"] == "convolution"]
    assert convs and all(layer["precision"] == "int8" for layer in convs)
    assert result.sidecar["layer_precisions"]["int8"] >= len(convs)


def test_an_onnx_file_is_built_as_it_is(tmp_path):
    first = _build("lenet5", tmp_path, "int8")
    onnx_file = tmp_path / "lenet5.int8.onnx"
    assert onnx_file.exists()
    again = run_trt(TrtRequest(model=str(onnx_file), output=tmp_path / "again.engine", backend="tensorrt-rtx"))
    assert again.sidecar["precision"] == "int8" and again.sidecar["model"] == "lenet5"
    assert again.sidecar["onnx_sha256"] == first.sidecar["onnx_sha256"]


def _cli(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def _one_line(result, code, fragment):
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr
    assert "Traceback" not in result.output


def test_cli_json_says_built_not_executed_and_require_run_exits_3(tmp_path):
    out = tmp_path / "m.engine"
    result = _cli("trt", "lenet5", "--backend", "tensorrt-rtx", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["executed"] is False and data["reason"] and data["engine"] == str(out)
    assert "built, not executed:" in result.stderr
    result = _cli("trt", "lenet5", "--backend", "tensorrt-rtx", "-o", out, "--require-run")
    _one_line(result, EXIT_BACKEND_UNAVAILABLE, "not executed")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["resnet18", "--min-batch", "4", "--opt-batch", "2", "--max-batch", "8"], "impossible profile"),
        (["resnet18", "--shapes", "input:1x3x64x64:2x3x64x64"], "malformed --shapes"),
        (["resnet18", "--shapes", "image:1x3x224x224:1x3x224x224:2x3x224x224"], "model's inputs are ['input']"),
        (["resnet18", "--shapes", "input:1x3x224x224:1x3x320x320:2x3x224x224"], "axis 2 is static in this export"),
        (["resnet18", "--compute-capability", "SM99"], "unknown compute capability"),
        (["resnet18", "--workspace", "0"], "--workspace must be"),
        (["resnet18", "--fp16", "--int8"], "exclude each other"),
        (["resnet18", "--batch", "2", "--max-batch", "8"], "--batch builds a static engine"),
        (["missing.onnx"], "ONNX file not found"),
        (["resnt18"], "unknown model"),
    ],
)
def test_bad_input_is_exit_2_before_any_build(tmp_path, args, fragment):
    out = tmp_path / "m.engine"
    _one_line(_cli("trt", *args, "--backend", "tensorrt-rtx", "-o", out), EXIT_USAGE, fragment)
    assert list(tmp_path.iterdir()) == []  # neither the engine nor its .onnx


def test_parser_error_names_the_node_and_op_and_leaves_no_engine(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="first"),
         helper.make_node("FancyOp", ["r"], ["y"], name="mystery_node", domain="example.custom")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.custom", 1)])
    onnx.save(model, tmp_path / "custom.onnx")
    out = tmp_path / "custom.engine"
    result = _cli("trt", tmp_path / "custom.onnx", "--backend", "tensorrt-rtx", "-o", out)
    _one_line(result, EXIT_VERIFICATION_FAILED, "mystery_node")
    assert "FancyOp" in result.stderr
    assert not out.exists() and not (tmp_path / "custom.engine.json").exists()


def test_missing_backend_is_exit_3_with_the_install_command(monkeypatch, tmp_path):
    real_import = importlib.import_module

    def no_tensorrt(name, *args):
        if name in ("tensorrt", "tensorrt_rtx"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_tensorrt)
    for backend, hint in (("tensorrt", "netexport[tensorrt]"), ("tensorrt-rtx", "netexport[rtx]"), ("auto", "netexport[rtx]")):
        result = _cli("trt", "lenet5", "--backend", backend, "-o", tmp_path / "m.engine")
        _one_line(result, EXIT_BACKEND_UNAVAILABLE, hint)
    assert not (tmp_path / "m.engine").exists() and not (tmp_path / "m.onnx").exists()
