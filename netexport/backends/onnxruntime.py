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
# That rewrite fails in ONNX Runtime 1.32 on a graph where one quantized weight feeds several
# convolutions (detection heads shared across pyramid levels: "Attempt to replace the existing
# tensor"). Such a graph runs with Q/DQ fusion off instead: Q/DQ computed as written, also exact.
_SHARED_WEIGHT_FAILURE = "Attempt to replace the existing tensor"
DISABLE_QDQ_FUSION = "session.disable_quant_qdq"


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
        try:
            self._session = self._open(ort, X64_QUANT_PRECISION)
        except Exception as exc:  # onnxruntime raises its own Fail type
            if _SHARED_WEIGHT_FAILURE not in str(exc):
                raise
            self._session = self._open(ort, DISABLE_QDQ_FUSION)
        return self

    def _open(self, ort, exact_int8_option: str):
        options = ort.SessionOptions()
        options.log_severity_level = 4  # the failed first attempt above is not worth a logged error
        options.add_session_config_entry(exact_int8_option, "1")
        if self._threads:
            options.intra_op_num_threads = self._threads
        return ort.InferenceSession(self._model, options, providers=["CPUExecutionProvider"])

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
