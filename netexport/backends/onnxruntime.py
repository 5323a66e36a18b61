"""ONNX Runtime on CPU: the reference runtime for every ONNX artifact."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import BackendUnavailable

# On x86 CPUs without VNNI (AVX2, or AVX-512 without VNNI: e.g. AMD Zen 3), ONNX Runtime's fused
# INT8 kernels multiply u8 x s8 with VPMADDUBSW, which saturates pairs of products at 16 bits:
# resnet18's Q/DQ graph at 224x224 then gives logits cosine 0.934 to its fp32 graph on a Zen 3,
# against 0.9997 with exact accumulation. This session option makes ONNX Runtime use u8 x u8 kernels
# wherever a weight needs all 8 bits, so int32 accumulation is exact, as in TensorRT, on every CPU.
X64_QUANT_PRECISION = "session.x64quantprecision"


class OnnxRuntimeRunner:
    """Runs a serialized ONNX model (bytes or path) with the CPU execution provider."""

    name = "onnxruntime"

    def __init__(self, model: bytes | str, threads: int | None = None):
        self._model = model
        self._threads = threads
        self._session = None

    def __enter__(self) -> "OnnxRuntimeRunner":
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"onnxruntime is not importable ({exc}); pip install onnxruntime") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry(X64_QUANT_PRECISION, "1")
        if self._threads:
            options.intra_op_num_threads = self._threads
        self._session = ort.InferenceSession(self._model, options, providers=["CPUExecutionProvider"])
        return self

    def __exit__(self, *exc) -> None:
        self._session = None

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self._session.get_outputs()]

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; inputs are cast to the graph's input types (FP16 I/O graphs take fp32 data)."""
        types = {i.name: i.type for i in self._session.get_inputs()}
        cast = {
            name: value.astype(np.float16) if types.get(name) == "tensor(float16)" else value
            for name, value in feed.items()
        }
        outputs = self._session.run(None, cast)
        return dict(zip(self.output_names, outputs))
