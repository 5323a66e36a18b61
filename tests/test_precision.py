"""FP16 and INT8 graphs: every registered model converts and verifies (or is a documented recipe
limitation); the graphs have the structure TensorRT needs; every calibration source and error path."""

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from netexport import cli
from netexport.errors import EXIT_USAGE, InputError
from netexport.pipeline.precision import (
    calibrate,
    footprint,
    overflowing_nodes,
)
from netexport.pipeline.to_onnx import OnnxRequest, run_onnx
from netexport.recipes import get_recipe
from zoo_params import per_model

CALIB = 8  # calibration batches in the suite (recipes default to more)


def _run(name, tmp_path, precision, **kwargs):
    out = kwargs.pop("output", tmp_path / f"{name}.{precision}.onnx")
    if precision == "int8":
        kwargs.setdefault("calib_samples", CALIB)
    return run_onnx(OnnxRequest(name, output=out, reduced_size=True, precision=precision, **kwargs)), out


def _expect(recipe, precision, result):
    limitation = recipe.limitation(precision, "onnxruntime", size="test")
    if limitation is not None:
        assert not result.passed, f"stale limitation (it passes now): {limitation.reason}"
        pytest.xfail(limitation.reason)
    assert result.passed, result.failures()


@pytest.mark.parametrize("name", per_model(full_matrix_only=True))
def test_fp16_conversion_verifies(name, tmp_path, record_figures):
    recipe = get_recipe(name)
    result, out = _run(name, tmp_path, "fp16")
    record_figures(result, "fp16")
    _expect(recipe, "fp16", result)
    proto = onnx.load(str(out))
    kept = set(result.to_dict()["fp32_kept_nodes"])  # the recipe's and the overflow finder's
    kept_inputs = {i for node in proto.graph.node if node.name in kept for i in node.input}
    weights = [i for i in proto.graph.initializer if len(i.dims) == 4 and i.name not in kept_inputs]
    assert weights and all(w.data_type == TensorProto.FLOAT16 for w in weights)
    assert all(i.type.tensor_type.elem_type == TensorProto.FLOAT for i in proto.graph.input)
    assert all(o.type.tensor_type.elem_type == TensorProto.FLOAT for o in proto.graph.output)
    assert result.to_dict()["fp16_nodes"] > 0
    for v in result.verifications:
        assert all(o.cosine >= recipe.tolerance("fp16", o.name).cosine for o in v.outputs)


def _initializers(proto):
    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}


@pytest.mark.parametrize("name", per_model(full_matrix_only=True))
def test_int8_quantization_verifies_with_tensorrt_style_qdq(name, tmp_path, record_figures):
    recipe = get_recipe(name)
    result, out = _run(name, tmp_path, "int8")
    record_figures(result, "int8")
    _expect(recipe, "int8", result)
    proto = onnx.load(str(out))
    inits = _initializers(proto)
    qdq = [n for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq and result.to_dict()["qdq_nodes"] == len(qdq)
    for node in qdq:
        zero_point = inits[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), node.name  # symmetric
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            assert inits[node.input[0]].dtype == np.int8, f"{node.name}: non-int8 (bias?) dequantization"
    producers = {o: n for n in proto.graph.node for o in n.output}
    excluded = set(recipe.int8_exclude_nodes)  # the recipe keeps these in FP32 on purpose
    convs = [n for n in proto.graph.node if n.op_type == "Conv" and n.name not in excluded]
    for conv in convs:
        weight_dq = producers[conv.input[1]]
        assert weight_dq.op_type == "DequantizeLinear", conv.name
        scale = inits[weight_dq.input[1]]
        assert scale.size == inits[weight_dq.input[0]].shape[0] > 1 or scale.size == 1 == inits[weight_dq.input[0]].shape[0]
        assert producers[conv.input[0]].op_type == "DequantizeLinear", f"{conv.name} activation not quantized"
        if len(conv.input) > 2:
            assert conv.input[2] in inits and inits[conv.input[2]].dtype == np.float32  # bias stays FP32
    for v in result.verifications:
        assert all(o.cosine >= 0.99 for o in v.outputs)


def test_fp16_io_keeps_fp16_at_the_boundary(tmp_path):
    result, out = _run("resnet18", tmp_path, "fp16", fp16_io=True)
    assert result.passed
    proto = onnx.load(str(out))
    assert proto.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    assert proto.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT16


def test_nodes_that_overflow_fp16_are_found_and_kept_in_fp32():
    scale = numpy_helper.from_array(np.array(1e5, dtype=np.float32), "scale")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "scale"], ["big"], name="amplify"),
         helper.make_node("Relu", ["big"], ["y"], name="relu")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [scale],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    small = {"x": np.full((1, 4), 1e-3, dtype=np.float32)}
    large = {"x": np.ones((1, 4), dtype=np.float32)}
    assert overflowing_nodes(proto, [small]) == []
    assert overflowing_nodes(proto, [small, large]) == ["amplify", "relu"]


def _conv_relu_conv():
    """x [1,3,H,W] -> Conv 3->4 -> Relu -> Conv 4->2: the Convs read x and r (3 + 4 channels) and
    write c1 and y (4 + 2 channels), all float32."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c1"], ["r"], name="relu"),
         helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w1, w2],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_graphs_footprint_counts_its_float_weights_and_every_value_at_the_given_shape():
    proto = _conv_relu_conv()
    found = footprint(proto, {"x": (2, 3, 16, 8)})
    weights = sum(int(np.prod(i.dims)) * 4 for i in proto.graph.initializer)
    assert found.weights_bytes == weights
    assert found.activation_bytes == 2 * (3 + 4 + 4 + 2) * 16 * 8 * 4  # x, c1, r, y at batch 2


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_streamed_histograms_give_onnxruntimes_all_at_once_ranges_exactly(tmp_path, method):
    """ONNX Runtime's own calibrator holding all six samples is the reference; ours keeps them
    (large budget) or runs the graph twice (a budget below one sample)."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator

    from netexport.pipeline.precision import _CALIBRATOR_OPTIONS, INT8_OPS

    path = tmp_path / "g.onnx"
    onnx.save(_conv_relu_conv(), path)
    rng = np.random.default_rng(1)
    samples = [{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32) * (1 + i)} for i in range(6)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(samples)

        def get_next(self):
            return next(self._it, None)

    reference = create_calibrator(path, list(INT8_OPS), augmented_model_path=str(tmp_path / "ref.onnx"),
                                  calibrate_method=getattr(CalibrationMethod, method.capitalize()),
                                  extra_options={"symmetric": True, **_CALIBRATOR_OPTIONS[method]})
    reference.collect_data(Reader())
    expected = reference.compute_data().data
    for budget in (1 << 30, 100):
        got = calibrate(path, samples, method, tmp_path, memory_budget=budget)[0].data
        assert got.keys() == expected.keys() and "y" in got
        for name in expected:
            assert np.array_equal(got[name].range_value, expected[name].range_value), (budget, name)
            assert np.array_equal(got[name].hist, expected[name].hist), (budget, name)


def test_calibration_from_an_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    result, _ = _run("resnet18", tmp_path, "int8", calib_data=folder)
    assert result.passed and not result.warnings
    assert result.to_dict()["calibration"]["source"] == f"images:{folder}"
    assert result.to_dict()["calibration"]["samples"] == 6


def test_calibration_from_npz_and_synthetic_warning(tmp_path):
    recipe = get_recipe("resnet18")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "calib.npz", input=rng.normal(size=(5, *recipe.inputs[0].test_shape[1:])).astype(np.float32))
    result, _ = _run("resnet18", tmp_path, "int8", calib_data=tmp_path / "calib.npz")
    assert result.passed and result.to_dict()["calibration"]["samples"] == 5
    synthetic, _ = _run("resnet18", tmp_path, "int8")
    assert synthetic.to_dict()["calibration"]["source"] == "synthetic"
    assert any("synthetic" in w for w in synthetic.warnings)


def test_calibration_cache_is_written_then_reused(tmp_path):
    cache = tmp_path / "ranges.json"
    first, out1 = _run("resnet18", tmp_path, "int8", calib_cache=cache, calib_method="percentile")
    assert first.passed and cache.exists() and not first.to_dict()["calibration"]["cache_hit"]
    assert json.loads(cache.read_text())["netexport"]["method"] == "percentile"
    second, out2 = _run("resnet18", tmp_path, "int8", calib_cache=cache, calib_method="percentile",
                        output=tmp_path / "again.onnx")
    assert second.to_dict()["calibration"]["cache_hit"] and second.to_dict()["calibration"]["samples"] == 0
    same_scales = _initializers(onnx.load(str(out1))), _initializers(onnx.load(str(out2)))
    for key, value in same_scales[0].items():
        if key.endswith("_scale"):
            np.testing.assert_array_equal(value, same_scales[1][key])
    with pytest.raises(InputError, match="holds percentile ranges, not minmax"):
        _run("resnet18", tmp_path, "int8", calib_cache=cache, calib_method="minmax", output=tmp_path / "x.onnx")
    with pytest.raises(InputError, match="computed for another graph"):
        _run("lenet5", tmp_path, "int8", calib_cache=cache, calib_method="percentile")


def _cli(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def _assert_usage_error(result, fragment):
    assert result.exit_code == EXIT_USAGE, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_precision_json_fields(tmp_path):
    result = _cli("onnx", "lenet5", "--int8", "--calib-samples", "4", "-o", tmp_path / "m.onnx", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["precision"] == "int8" and data["qdq_nodes"] > 0
    assert data["calibration"] == {"source": "synthetic", "samples": 4, "method": "minmax", "cache": None,
                                   "cache_hit": False}
    assert data["verification"][0]["outputs"][0]["cosine"] >= 0.99
    assert "top-1 agreement" in data["verification"][0]["task"]["detail"]
    assert "warning: calibrating on synthetic images" in result.stderr
    result = _cli("onnx", "lenet5", "--fp16", "-o", tmp_path / "h.onnx", "--json")
    data = json.loads(result.stdout)
    assert data["precision"] == "fp16" and data["fp16_nodes"] > 0
    assert data["metadata"]["netexport.precision"] == "fp16"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--fp16", "--int8"], "exclude each other"),
        (["--fp16-io"], "--fp16-io applies to --fp16 only"),
        (["--calib-samples", "4"], "--calib-samples applies to --int8 only"),
        (["--fp16", "--calib-cache", "c.json"], "--calib-cache applies to --int8 only"),
        (["--int8", "--calib-samples", "0"], "at least one sample"),
        (["--int8", "--calib-data", "missing-dir"], "calibration data not found"),
        (["--int8", "--calib-method", "kl"], "Invalid value for '--calib-method'"),
    ],
)
def test_precision_usage_errors(tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    _assert_usage_error(_cli("onnx", "lenet5", *args, "-o", tmp_path / "m.onnx"), fragment)
    assert not (tmp_path / "m.onnx").exists()


def test_bad_calibration_sources_are_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    _assert_usage_error(_cli("onnx", "lenet5", "--int8", "--calib-data", tmp_path / "empty"), "no images")
    np.savez(tmp_path / "keys.npz", image=np.zeros((2, 1, 32, 32), np.float32))
    _assert_usage_error(_cli("onnx", "lenet5", "--int8", "--calib-data", tmp_path / "keys.npz"), "model's inputs are ['input']")
    np.savez(tmp_path / "shape.npz", input=np.zeros((2, 3, 32, 32), np.float32))
    _assert_usage_error(_cli("onnx", "lenet5", "--int8", "--calib-data", tmp_path / "shape.npz"), "expected [N, 1, 32, 32]")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    _assert_usage_error(_cli("onnx", "lenet5", "--int8", "--calib-data", tmp_path / "broken.npz"), "cannot read calibration data")
    (tmp_path / "notes.txt").write_text("x")
    _assert_usage_error(_cli("onnx", "lenet5", "--int8", "--calib-data", tmp_path / "notes.txt"), "image folder or an .npz")
    (tmp_path / "bad-cache.json").write_text("{")
    _assert_usage_error(_cli("onnx", "lenet5", "--int8", "--calib-cache", tmp_path / "bad-cache.json",
                             "-o", tmp_path / "m.onnx"), "not a netexport cache")
    assert not (tmp_path / "m.onnx").exists()


def _conv_then_resize(fan_out: bool):
    """x -> Conv -> Resize (kept in FP32 by the FP16 converter) -> output `y`; with fan_out, `y` also
    feeds a Conv (FP16) whose result is a second output `z`."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32), "w2")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Resize", ["c", "", "scales"], ["y"], name="resize", mode="linear")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])]
    if fan_out:
        nodes.append(helper.make_node("Conv", ["y", "w2"], ["z"], name="conv2"))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 16, 16]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              outputs, [w, w2, scales] if fan_out else [w, scales])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("fan_out", [False, True])
def test_an_output_made_by_a_kept_fp32_op_is_not_rounded_to_fp16(fan_out):
    import onnxruntime as ort

    from netexport.pipeline.precision import to_fp16

    proto = _conv_then_resize(fan_out)
    x = {"x": np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    converted, _ = to_fp16(proto, get_recipe("resnet18"), [x])
    onnx.checker.check_model(converted, full_check=True)
    producers = {o: n for n in converted.graph.node for o in n.output}
    assert producers["y"].op_type == "Resize"  # no Cast to FP16 and back in between
    assert all(o.type.tensor_type.elem_type == TensorProto.FLOAT for o in converted.graph.output)
    if fan_out:  # the FP16 Conv still reads an FP16 copy of y
        conv2 = next(n for n in converted.graph.node if n.name == "conv2")
        assert producers[conv2.input[0]].op_type == "Cast"
    # bilinear weights applied in FP32 give values FP16 cannot hold; a Cast to FP16 and back would round them
    session = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"])
    y = session.run(["y"], x)[0]
    assert y.dtype == np.float32 and not np.array_equal(y, y.astype(np.float16).astype(np.float32))
    reference = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(["y"], x)[0]
    assert np.allclose(y, reference, rtol=1e-2, atol=1e-2)
