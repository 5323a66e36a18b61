"""The ONNX Runtime runner computes INT8 layers exactly on every x86 CPU.

A Q/DQ convolution whose int8 products need more than 16 bits per pair: ONNX Runtime fuses it into
an int8 kernel, which on CPUs without VNNI (AMD Zen 3, for one) saturates such pairs unless the
runner asks for exact accumulation. That saturation is what broke every INT8 cell on those CPUs.
"""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from netexport.backends.onnxruntime import OnnxRuntimeRunner

CHANNELS = 64
X_SCALE = W_SCALE = 0.01  # input and weights at int8 127: every product is 127 x 127 (x 128-shifted by ORT)
Y_SCALE = 1.0


def _qdq_conv(convolutions: int = 1) -> bytes:
    """Q/DQ input -> `convolutions` Q/DQ convolutions sharing one int8 weight -> their sum."""
    scalar = lambda value, dtype, name: numpy_helper.from_array(np.array(value, dtype), name)  # noqa: E731
    initializers = [
        numpy_helper.from_array(np.full((1, CHANNELS, 1, 1), 127, np.int8), "w_q"),
        scalar(X_SCALE, np.float32, "x_scale"), scalar(W_SCALE, np.float32, "w_scale"),
        scalar(Y_SCALE, np.float32, "y_scale"), scalar(0, np.int8, "zero"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "zero"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "zero"], ["x_dq"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "zero"], ["w_dq"]),
    ]
    for i in range(convolutions):
        nodes += [
            helper.make_node("Conv", ["x_dq", "w_dq"], [f"conv{i}"]),
            helper.make_node("QuantizeLinear", [f"conv{i}", "y_scale", "zero"], [f"y{i}_q"]),
            helper.make_node("DequantizeLinear", [f"y{i}_q", "y_scale", "zero"], [f"y{i}"]),
        ]
    nodes.append(helper.make_node("Sum", [f"y{i}" for i in range(convolutions)], ["y"]))
    graph = helper.make_graph(
        nodes, "qdq_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])], initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize("convolutions", [1, 2], ids=["one-weight", "shared-weight"])
def test_int8_convolution_accumulates_exactly(convolutions):
    """Two convolutions reading one weight is the graph ONNX Runtime's exact-accumulation rewrite
    rejects (shared detection heads); the runner must still open and compute it exactly."""
    x = np.full((1, CHANNELS, 4, 4), 127 * X_SCALE, np.float32)
    exact = np.round(CHANNELS * 127 * 127 * X_SCALE * W_SCALE / Y_SCALE) * Y_SCALE  # 103.0 per convolution
    with OnnxRuntimeRunner(_qdq_conv(convolutions)) as runner:
        y = runner.infer({"x": x})["y"]
    np.testing.assert_array_equal(y, np.full_like(y, convolutions * exact))
