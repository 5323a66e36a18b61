"""TensorRT and TensorRT-RTX: one build path over two modules with the same Python API.

The differences sit in `BackendSpec`: the module name, the pip command that installs it, and
whether the builder targets compute capabilities (TensorRT-RTX compiles ahead of time for a list of
GPU architectures, with no GPU present). Both build strongly typed networks: the precision is the
ONNX graph's own (FP16 tensors, INT8 Q/DQ), never a builder flag.
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import BackendUnavailable, InputError, StageFailed


@dataclass(frozen=True)
class BackendSpec:
    name: str
    module: str
    install: str
    targets_compute_capability: bool


SPECS = {
    "tensorrt": BackendSpec("tensorrt", "tensorrt", "pip install 'netexport[tensorrt]'  (tensorrt>=10)", False),
    "tensorrt-rtx": BackendSpec("tensorrt-rtx", "tensorrt_rtx", "pip install 'netexport[rtx]'  (tensorrt-rtx)", True),
}
BACKEND_CHOICES = ("auto", *SPECS)


def load_backend(choice: str = "auto"):
    """(spec, module) for a backend; `auto` prefers tensorrt and falls back to tensorrt-rtx."""
    if choice not in BACKEND_CHOICES:
        raise InputError(f"unknown backend {choice!r}: choose {', '.join(BACKEND_CHOICES)}")
    candidates = list(SPECS.values()) if choice == "auto" else [SPECS[choice]]
    reasons = []
    for spec in candidates:
        try:
            return spec, importlib.import_module(spec.module)
        except Exception as exc:  # ImportError, or a broken install raising anything on import
            reasons.append(f"{spec.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    installs = " or ".join(spec.install for spec in candidates)
    raise BackendUnavailable(f"no TensorRT backend importable ({'; '.join(reasons)}); install with {installs}")


@dataclass(frozen=True)
class Profile:
    """One optimisation profile: per input name, (min, opt, max) shapes."""

    shapes: Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]

    def to_dict(self) -> dict:
        return {name: {"min": list(a), "opt": list(b), "max": list(c)} for name, (a, b, c) in self.shapes.items()}


@dataclass(frozen=True)
class BuildOptions:
    profile: Profile | None = None  # None: the graph's shapes are static
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    compute_capabilities: Sequence[str] = ()  # e.g. ("SM89",); TensorRT-RTX only
    tf32: bool = False  # FP32 engines are built with TF32 off so they verify under the fp32 policy


@dataclass
class Layer:
    name: str
    type: str
    precision: str  # the dtype of its first output (strong typing makes it the compute precision)


@dataclass
class Build:
    plan: bytes
    seconds: float
    backend: str
    version: str
    inputs: list[dict]
    outputs: list[dict]
    layers: list[Layer] = field(default_factory=list)
    timing_cache: bytes | None = None
    timing_cache_hit: bool = False
    compute_capabilities: list[str] = field(default_factory=list)

    def precision_summary(self) -> dict[str, int]:
        summary: dict[str, int] = {}
        for layer in self.layers:
            summary[layer.precision] = summary.get(layer.precision, 0) + 1
        return dict(sorted(summary.items()))


def _dtype_name(dtype) -> str:
    return str(dtype).split(".")[-1].lower()


def _parse(trt, builder, logger, onnx_bytes: bytes):
    flag = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flag)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            node = err.node_name() or f"node #{err.node()}"
            errors.append(f"node {node} ({err.node_operator() or 'unknown op'}): {err.desc()}")
        raise StageFailed(f"TensorRT ONNX parser rejected the graph: {errors[0] if errors else 'unknown error'}"
                          + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""))
    return network, parser


def compute_capability_names(spec: BackendSpec, trt, requested: Sequence[str]) -> list[str]:
    """'8.6' / 'sm86' → 'SM86', checked against the backend's list (InputError on an unknown one)."""
    if not spec.targets_compute_capability:
        raise InputError(f"--compute-capability applies to tensorrt-rtx; {spec.name} builds for the GPU it runs on")
    names = [c.upper() if c.upper().startswith("SM") else f"SM{c.replace('.', '')}" for c in requested]
    valid = {n for n in dir(trt.ComputeCapability) if n.startswith("SM")}
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise InputError(f"unknown compute capability {', '.join(unknown)}: choose from {', '.join(sorted(valid))}")
    return names


def _compute_capabilities(spec: BackendSpec, trt, config, requested: Sequence[str]) -> list[str]:
    names = compute_capability_names(spec, trt, requested)
    config.num_compute_capabilities = len(names)
    for i, name in enumerate(names):
        config.set_compute_capability(getattr(trt.ComputeCapability, name), i)
    return names


def make_logger(trt):
    """A TensorRT logger that keeps stdout clean (--json) and remembers errors for the message."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(msg)

    return Logger()


def build_engine(spec: BackendSpec, trt, onnx_bytes: bytes, options: BuildOptions) -> Build:
    """Parse and build; parser and builder failures are one readable StageFailed."""
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, logger, onnx_bytes)
    config = builder.create_builder_config()
    if options.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if not options.tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    capabilities: list[str] = []
    if options.compute_capabilities:
        capabilities = _compute_capabilities(spec, trt, config, options.compute_capabilities)
    if options.profile is not None:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in options.profile.shapes.items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
    cache_hit = False
    if options.timing_cache is not None:
        blob = options.timing_cache.read_bytes() if options.timing_cache.exists() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)
        cache_hit = bool(blob)
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if plan is None:
        detail = logger.errors[-1] if logger.errors else "no error reported"
        raise StageFailed(f"{spec.name} builder failed: {detail}")
    timing_cache = None
    if options.timing_cache is not None:
        timing_cache = bytes(memoryview(config.get_timing_cache().serialize()))
    return Build(
        plan=bytes(memoryview(plan)),
        seconds=seconds,
        backend=spec.name,
        version=trt.__version__,
        inputs=[_tensor(network.get_input(i)) for i in range(network.num_inputs)],
        outputs=[_tensor(network.get_output(i)) for i in range(network.num_outputs)],
        layers=network_layers(network),
        timing_cache=timing_cache,
        timing_cache_hit=cache_hit,
        compute_capabilities=capabilities,
    )


def _tensor(tensor) -> dict:
    return {"name": tensor.name, "dtype": _dtype_name(tensor.dtype), "shape": list(tensor.shape)}


# Layers that TensorRT runs in INT8 when their activation input arrives through DequantizeLinear
# (the Q/DQ pairs are fused into them); their network-level output type stays float.
_QDQ_FUSED = {"convolution", "deconvolution", "matrix_multiply", "pooling", "elementwise", "reduce"}


def network_layers(network) -> list[Layer]:
    """Every non-constant layer with the precision it computes in under strong typing."""
    producer: dict[str, str] = {}
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    for layer in layers:
        for j in range(layer.num_outputs):
            producer[layer.get_output(j).name] = _dtype_name(layer.type)
    report = []
    for layer in layers:
        kind = _dtype_name(layer.type)
        if kind == "constant":
            continue
        precision = _dtype_name(layer.get_output_type(0)) if layer.num_outputs else "none"
        inputs = [layer.get_input(j) for j in range(layer.num_inputs)]
        if kind in _QDQ_FUSED and any(t is not None and producer.get(t.name) == "dequantize" for t in inputs[:1]):
            precision = "int8"
        report.append(Layer(layer.name, kind, precision))
    return report


def gpu_runtime_reason(trt) -> str | None:
    """None when an engine can run here; otherwise why not (the command still succeeds)."""
    try:
        import ctypes

        cudart = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        if cudart.cuInit(0) != 0 or cudart.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
            return "no CUDA GPU visible to the driver"
    except OSError:
        return "no CUDA driver (libcuda.so.1) on this machine"
    return None


class EngineRunner:
    """Runs a serialized engine on the GPU (open → infer → close), with torch CUDA tensors as buffers.
    Only usable where `gpu_runtime_reason` is None."""

    def __init__(self, spec: BackendSpec, trt, plan: bytes):
        self.name = spec.name
        self._trt, self._plan = trt, plan
        self._engine = self._context = None

    def __enter__(self) -> "EngineRunner":
        runtime = self._trt.Runtime(make_logger(self._trt))
        self._engine = runtime.deserialize_cuda_engine(self._plan)
        if self._engine is None:
            raise StageFailed(f"{self.name} runtime could not deserialize the engine on this GPU")
        self._context = self._engine.create_execution_context()
        return self

    def __exit__(self, *exc) -> None:
        self._context = self._engine = None

    def engine_layers(self) -> list[dict]:
        """TensorRT's own per-layer report of the built engine (fused layers, formats, tactics)."""
        inspector = self._engine.create_engine_inspector()
        info = json.loads(inspector.get_engine_information(self._trt.LayerInformationFormat.JSON))
        return info.get("Layers", [])

    def infer(self, feed):
        import numpy as np
        import torch

        trt = self._trt
        outputs, keep = {}, []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                dtype = torch.float16 if self._engine.get_tensor_dtype(name) == trt.DataType.HALF else torch.float32
                tensor = torch.from_numpy(np.ascontiguousarray(feed[name])).to("cuda", dtype)
                self._context.set_input_shape(name, tuple(tensor.shape))
                self._context.set_tensor_address(name, tensor.data_ptr())
                keep.append(tensor)
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                dtype = torch.float16 if self._engine.get_tensor_dtype(name) == trt.DataType.HALF else torch.float32
                tensor = torch.empty(tuple(self._context.get_tensor_shape(name)), dtype=dtype, device="cuda")
                self._context.set_tensor_address(name, tensor.data_ptr())
                outputs[name] = tensor
        stream = torch.cuda.current_stream()
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise StageFailed(f"{self.name} engine execution failed")
        stream.synchronize()
        return {name: t.float().cpu().numpy() for name, t in outputs.items()}
