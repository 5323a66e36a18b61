"""Precision stage: the fp32 ONNX graph → an FP16 graph or an INT8 graph with explicit Q/DQ.

TensorRT 10.12+/11 and TensorRT-RTX are strongly typed: they build exactly what the graph declares.
So precision is decided here, on the ONNX graph, and checked on CPU before any GPU sees it.

FP16: onnxconverter-common's converter, FP32 at the boundary unless asked otherwise, with
numerically sensitive ops kept in FP32 — a fixed list (Resize, NMS, TopK, ...), every node whose
output overflows FP16 on the recipe's own inputs (found by running the fp32 graph), and whatever the
recipe names.

INT8: ONNX Runtime's static quantizer in QDQ form, configured for TensorRT: int8 symmetric
activations and weights (all zero points 0), per-channel weight scales, biases left in FP32, and
Q/DQ only on the ops TensorRT fuses them into. The result is checked for exactly that.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .. import atomic
from ..errors import InputError, StageFailed, first_line
from ..recipes import Recipe

# Ops kept in FP32 whatever the recipe says: index/size arithmetic and selection ops whose results
# change meaning when rounded (DESIGN.md §1), on top of onnxconverter-common's own default list.
FP16_KEEP_FP32_OPS = (
    "Resize", "Upsample", "NonMaxSuppression", "TopK", "RoiAlign", "Range", "CumSum",
    "ReduceSumSquare", "ReduceL2", "LpNormalization",
)  # fmt: skip
FP16_OVERFLOW_LIMIT = 32768.0  # half of FP16's largest finite value: headroom for what follows

# Ops that receive Q/DQ on their inputs: the layers TensorRT runs in INT8 and fuses Q/DQ into.
INT8_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "MaxPool", "AveragePool", "GlobalAveragePool")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass
class PrecisionInfo:
    """What the stage did, for the result JSON and the provenance."""

    precision: str
    fp16_nodes: int = 0
    fp32_kept: list[str] = field(default_factory=list)  # nodes held in FP32 in an FP16 graph
    qdq_nodes: int = 0
    quantized_ops: dict[str, int] = field(default_factory=dict)
    calibration: dict | None = None


# ---- FP16 -------------------------------------------------------------------------------------


def _with_all_outputs(proto):
    """A copy of the graph that also outputs every float intermediate tensor."""
    import onnx

    model = onnx.shape_inference.infer_shapes(proto)
    existing = {o.name for o in model.graph.output}
    typed = {vi.name: vi for vi in model.graph.value_info}
    for node in model.graph.node:
        for name in node.output:
            vi = typed.get(name)
            if name and name not in existing and vi is not None and vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
                model.graph.output.append(vi)
                existing.add(name)
    return model


def overflowing_nodes(proto, samples: Iterable[Mapping[str, np.ndarray]], limit: float = FP16_OVERFLOW_LIMIT) -> list[str]:
    """Names of nodes whose fp32 output exceeds `limit` in magnitude on any sample."""
    from ..backends.onnxruntime import OnnxRuntimeRunner

    producer = {out: node.name for node in proto.graph.node for out in node.output}
    flagged: dict[str, None] = {}
    with OnnxRuntimeRunner(_with_all_outputs(proto).SerializeToString()) as runner:
        for sample in samples:
            for name, value in runner.infer(sample).items():
                if name in producer and value.size and float(np.abs(value).max()) > limit:
                    flagged[producer[name]] = None
    return [node.name for node in proto.graph.node if node.name in flagged]  # graph order


def to_fp16(proto, recipe: Recipe, samples: list[Mapping[str, np.ndarray]], fp16_io: bool = False):
    from onnxconverter_common import float16

    _ensure_node_names(proto)
    keep_nodes = overflowing_nodes(proto, samples) + list(recipe.fp16_keep_nodes)
    proto = copy.deepcopy(proto)
    # Stale value_info from the exporter makes the converter type blocked ops' casts wrongly
    # (seen on fpn-resnet50's Resize → Add); it re-infers types itself.
    del proto.graph.value_info[:]
    keep_ops = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(FP16_KEEP_FP32_OPS) | set(recipe.fp16_keep_ops))
    with _quiet():
        try:
            converted = float16.convert_float_to_float16(
                proto, keep_io_types=not fp16_io, op_block_list=keep_ops, node_block_list=keep_nodes,
            )
        except Exception as exc:
            raise StageFailed(f"FP16 conversion failed: {_first_line(exc)}") from None
    _align_cast_targets(converted)
    if not fp16_io:
        _restore_fp32_outputs(converted)
    sort_topologically(converted.graph)
    kept = [n.name for n in proto.graph.node if n.name in set(keep_nodes) or n.op_type in keep_ops]
    return converted, PrecisionInfo("fp16", fp16_nodes=count_fp16_nodes(converted), fp32_kept=kept)


def sort_topologically(graph) -> None:
    """Reorder nodes so each comes after what it reads, counting what a Loop/If body reads from the
    outer graph. The converters append the Casts they add and can leave a Loop ahead of a value its
    body uses (end-to-end graphs' NMS Loop); onnx.checker and the runtimes require the order."""
    produced_by = {out: i for i, node in enumerate(graph.node) for out in node.output}
    needs = [sorted({produced_by[name] for name in _reads(node) if name in produced_by} - {i})
             for i, node in enumerate(graph.node)]
    order, placed, visiting = [], set(), set()

    def place(i: int) -> None:
        stack = [(i, iter(needs[i]))]
        visiting.add(i)
        while stack:
            node, deps = stack[-1]
            dep = next(deps, None)
            if dep is None:
                stack.pop()
                visiting.discard(node)
                placed.add(node)
                order.append(node)
            elif dep not in placed and dep not in visiting:
                visiting.add(dep)
                stack.append((dep, iter(needs[dep])))

    for i in range(len(graph.node)):
        if i not in placed:
            place(i)
    if order != list(range(len(graph.node))):
        nodes = [graph.node[i] for i in order]
        del graph.node[:]
        graph.node.extend(nodes)


def _reads(node) -> set[str]:
    """Every value a node reads: its inputs, plus the outer values its subgraphs use."""
    names = {name for name in node.input if name}
    for attr in node.attribute:
        for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            inner = {o for n in sub.node for o in n.output} | {v.name for v in sub.input} | {t.name for t in sub.initializer}
            names |= {name for n in sub.node for name in _reads(n)} - inner
    return names


def _align_cast_targets(proto) -> None:
    """The converter retypes the outputs of Casts from integers to float (pose decoding's indices →
    coordinates) as FP16, for their FP16 consumers, but leaves `to=FLOAT`: onnx.checker rejects that
    graph. Such Casts now cast to FP16 directly."""
    import onnx

    fp16 = {vi.name for vi in proto.graph.value_info if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
    for node in proto.graph.node:
        if node.op_type == "Cast" and node.output[0] in fp16:
            for attr in node.attribute:
                if attr.name == "to" and attr.i == onnx.TensorProto.FLOAT:
                    attr.i = onnx.TensorProto.FLOAT16


def _restore_fp32_outputs(proto) -> None:
    """keep_io_types leaves an output FP16 when a blocked op (e.g. a final Resize) produces it: the
    converter casts the FP32 result to FP16 for it. Such an output is served by that FP32 value
    directly (a Cast back to FP32 would only round it); any other output gets a Cast to FP32."""
    import onnx
    from onnx import helper

    types = {v.name: v.type.tensor_type.elem_type for v in [*proto.graph.value_info, *proto.graph.input]}
    fixed = {i.name for i in proto.graph.initializer} | {i.name for i in proto.graph.input}
    fixed |= {name for n in proto.graph.node for name in _reads(n) - set(n.input)}  # read inside a Loop/If body
    fixed |= {o.name for o in proto.graph.output}
    for output in proto.graph.output:
        if output.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16:
            continue
        output.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
        producer = next((n for n in proto.graph.node if output.name in n.output), None)
        source = producer.input[0] if producer is not None and _casts_to(producer, onnx.TensorProto.FLOAT16) else None
        internal = f"{output.name}__fp16"
        if source is not None and types.get(source) == onnx.TensorProto.FLOAT and source not in fixed:
            if any(output.name in n.input for n in proto.graph.node):
                _rename_value(proto, output.name, internal)  # the FP16 copy stays for its other readers
            else:
                proto.graph.node.remove(producer)
            _rename_value(proto, source, output.name)
            continue
        _rename_value(proto, output.name, internal)
        proto.graph.node.append(helper.make_node("Cast", [internal], [output.name], to=onnx.TensorProto.FLOAT,
                                                 name=f"{output.name}__to_fp32"))


def _casts_to(node, elem_type: int) -> bool:
    return node.op_type == "Cast" and any(a.name == "to" and a.i == elem_type for a in node.attribute)


def _rename_value(proto, old: str, new: str) -> None:
    """Rename a value in the nodes that write and read it (the graph's input/output lists are untouched)."""
    for node in proto.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]
    for info in list(proto.graph.value_info):
        if info.name in (old, new):
            proto.graph.value_info.remove(info)


def count_fp16_nodes(proto) -> int:
    """Nodes (other than Casts) that compute in FP16: their first output is a float16 tensor."""
    import onnx

    model = onnx.shape_inference.infer_shapes(proto)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*model.graph.value_info, *model.graph.output]}
    return sum(
        1
        for node in model.graph.node
        if node.op_type != "Cast" and node.output and types.get(node.output[0]) == onnx.TensorProto.FLOAT16
    )


# ---- INT8 -------------------------------------------------------------------------------------


@dataclass
class Calibration:
    """Calibration inputs plus where they came from (for the report)."""

    samples: list[dict[str, np.ndarray]]
    source: str  # "images:<folder>", "npz:<file>" or "synthetic"
    method: str = "minmax"
    cache: Path | None = None

    def describe(self) -> dict:
        return {"source": self.source, "samples": len(self.samples), "method": self.method,
                "cache": str(self.cache) if self.cache else None}


def graph_digest(serialized: bytes) -> str:
    """What a calibration cache is keyed on: the SHA-256 of the serialized fp32 graph."""
    import hashlib

    return hashlib.sha256(serialized).hexdigest()


def read_calibration_cache(path: Path, method: str) -> tuple[dict, dict]:
    """(metadata, tensor ranges) of a calibration cache file made with `method`."""
    try:
        data = json.loads(Path(path).read_text())
        meta, tensors = data["netexport"], data["tensors"]
        if not isinstance(meta, dict) or not isinstance(tensors, dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"calibration cache {path} is unreadable or not a netexport cache") from None
    if meta.get("method") != method:
        raise InputError(f"calibration cache {path} holds {meta.get('method')} ranges, not {method}")
    return meta, tensors


def _read_cache(path: Path, digest: str, method: str) -> dict | None:
    """The cached tensor ranges if `path` holds a cache made for this graph and method."""
    if not path.exists():
        return None
    meta, tensors = read_calibration_cache(path, method)
    if meta.get("graph_sha256") != digest:
        raise InputError(
            f"calibration cache {path} was computed for another graph ({meta.get('model')}, "
            f"opset {meta.get('opset')}); delete it or name a new cache file"
        )
    return tensors


# Range estimators. Entropy and percentile use 2048 histogram bins (TensorRT's entropy calibrator
# uses the same); ONNX Runtime's own entropy default of 128 bins for 128 quantized levels leaves the
# KL search a single candidate, the full range, which makes it identical to minmax.
_CALIBRATOR_OPTIONS = {
    "minmax": {},
    "entropy": {"num_bins": 2048, "num_quantized_bins": 128},
    "percentile": {"num_bins": 2048, "percentile": 99.999},
}


# The histogram calibrators keep the calibration samples' activations between their two sweeps
# (pipeline.histograms) while they fit in this many bytes, else they run the graph twice; the
# ranges are the same either way. Running twice was no slower (retinanet at 256x256, 32 samples:
# 51.6 s at 1.4 GB peak, against 58.5 s at 5.5 GB keeping them), so only small graphs keep them.
CALIBRATION_KEEP_BYTES = 256 << 20


@dataclass(frozen=True)
class Footprint:
    """A graph's memory at given input shapes, from shape inference (for scheduling and reports)."""

    weights_bytes: int  # float initializers
    activation_bytes: int  # every float value the nodes produce, at once (an upper bound on the live set)

    def to_dict(self) -> dict:
        return {"weights_mb": round(self.weights_bytes / 2**20, 1),
                "activations_mb": round(self.activation_bytes / 2**20, 1)}


def footprint(proto, input_shapes: Mapping[str, Sequence[int]]) -> Footprint:
    import onnx
    from onnx import helper

    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    weights = sum(int(np.prod(i.dims)) * helper.tensor_dtype_to_np_dtype(i.data_type).itemsize
                  for i in proto.graph.initializer if i.data_type in floats)
    return Footprint(weights, sum(_value_sizes(proto, input_shapes).values()))


def _value_sizes(proto, input_shapes: Mapping[str, Sequence[int]]) -> dict[str, int]:
    """Bytes of each float value the graph's nodes read or write (weights excluded) at `input_shapes`."""
    import onnx
    from onnx import helper, shape_inference

    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    # Shapes only, so the float weights (most of the model's bytes) are not copied: they become
    # typed inputs; integer initializers (Reshape targets...) stay, as shape inference reads them.
    source = proto.graph
    weights = {i.name for i in source.initializer}
    float_weights = [helper.make_tensor_value_info(i.name, i.data_type, i.dims)
                     for i in source.initializer if i.data_type in floats]
    graph = helper.make_graph(source.node, source.name, [*source.input, *float_weights], source.output,
                              [i for i in source.initializer if i.data_type not in floats])
    model = helper.make_model(graph, opset_imports=proto.opset_import)
    for graph_input in model.graph.input:
        if graph_input.name in input_shapes:
            for dim, size in zip(graph_input.type.tensor_type.shape.dim, input_shapes[graph_input.name]):
                dim.dim_value = int(size)
    inferred = shape_inference.infer_shapes(model).graph
    infos = {v.name: v.type.tensor_type for v in [*inferred.value_info, *inferred.input, *inferred.output]}
    values = {name for node in inferred.node for name in [*node.input, *node.output] if name and name not in weights}
    sizes = {}
    for name in values:
        info = infos.get(name)
        if info is None or info.elem_type not in floats:
            continue
        dims = [d.dim_value for d in info.shape.dim]
        if dims and all(d > 0 for d in dims):
            sizes[name] = int(np.prod(dims)) * helper.tensor_dtype_to_np_dtype(info.elem_type).itemsize
    return sizes


def calibrate(fp32_path: Path, samples: list[Mapping[str, np.ndarray]], method: str, workdir: Path,
              memory_budget: int = CALIBRATION_KEEP_BYTES):
    """Activation ranges (ONNX Runtime TensorsData) of the tensors INT8_OPS consume. Min/max reduces
    each tensor inside the graph (ONNX Runtime's calibrator, a few numbers per sample); the histogram
    methods stream their histograms (pipeline.histograms): the ranges ONNX Runtime computes from all
    samples at once, in the memory of one."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator

    from . import histograms

    class Reader(CalibrationDataReader):
        def __init__(self, chunk):
            self._it = iter(chunk)

        def get_next(self):
            return next(self._it, None)

    ort_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[method]
    calibrator = create_calibrator(
        fp32_path, list(INT8_OPS), augmented_model_path=str(workdir / "augmented.onnx"),
        calibrate_method=ort_method, extra_options={"symmetric": True, **_CALIBRATOR_OPTIONS[method]},
    )
    if method == "minmax":
        calibrator.collect_data(Reader(samples))
    else:
        calibrator.collector = histograms.collect(calibrator, samples, memory_budget)
    return calibrator.compute_data(), ort_method


def constant_adds(proto) -> list[str]:
    """Add nodes with a constant operand: not residual joins, and TensorRT refuses the quantized
    constant the quantizer would give them ("Quantized constant ... only allowed before DQ")."""
    constants = {i.name for i in proto.graph.initializer}
    constants |= {out for n in proto.graph.node if n.op_type == "Constant" for out in n.output}
    return [n.name for n in proto.graph.node if n.op_type == "Add" and constants.intersection(n.input)]


@dataclass
class Ranges:
    """Activation ranges for one graph: from calibration, or read from a calibration cache."""

    tensors: object  # onnxruntime.quantization.calibrate.TensorsData
    digest: str  # the fp32 graph they were collected on
    cache_hit: bool


def collect_ranges(proto, calibration: Calibration) -> Ranges:
    """The activation ranges to quantize `proto` with: the calibration cache's when it holds this
    graph's, else collected by running the calibration samples."""
    from onnxruntime.quantization.calibrate import TensorsData

    if calibration.method not in CALIBRATION_METHODS:
        raise InputError(f"unknown calibration method {calibration.method!r}: choose {', '.join(CALIBRATION_METHODS)}")
    _ensure_node_names(proto)
    data = proto.SerializeToString()
    digest = graph_digest(data)
    cached = _read_cache(calibration.cache, digest, calibration.method) if calibration.cache else None
    if cached is not None:
        return Ranges(TensorsData.from_dict(cached), digest, cache_hit=True)
    with tempfile.TemporaryDirectory(prefix="netexport-calib-") as tmp, _quiet():
        src = Path(tmp) / "fp32.onnx"
        src.write_bytes(data)
        try:
            tensors, _ = calibrate(src, calibration.samples, calibration.method, Path(tmp))
        except Exception as exc:
            raise StageFailed(f"INT8 calibration failed: {_first_line(exc)}") from None
    return Ranges(tensors, digest, cache_hit=False)


def to_int8(proto, recipe: Recipe, calibration: Calibration, opset: int, ranges: Ranges | None = None):
    """The INT8 Q/DQ graph of `proto`, quantized with `ranges` (collected here when not given)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data

    if ranges is None:
        ranges = collect_ranges(proto, calibration)
    _ensure_node_names(proto)
    exclude = [n.name for n in proto.graph.node if n.name in set(recipe.int8_exclude_nodes)]
    exclude += constant_adds(proto)
    with tempfile.TemporaryDirectory(prefix="netexport-int8-") as tmp, _quiet():
        src, dst, saved = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx", Path(tmp) / "ranges.json"
        src.write_bytes(proto.SerializeToString())
        try:
            save_tensors_data(ranges.tensors, saved)
            # The quantizer reads the ranges back from that file: calibration is always ours.
            quantize_static(
                str(src), str(dst),
                calibration_data_reader=None,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(INT8_OPS),
                nodes_to_exclude=exclude,
                calibrate_method=ranges.tensors.calibration_method,
                calibration_cache_path=str(saved),
                extra_options={
                    "ActivationSymmetric": True,
                    "WeightSymmetric": True,
                    "QuantizeBias": False,  # TensorRT rejects int32 bias Q/DQ
                },
            )
        except InputError:
            raise
        except Exception as exc:
            raise StageFailed(f"INT8 quantization failed: {_first_line(exc)}") from None
        import onnx

        quantized = onnx.load(str(dst))
        sort_topologically(quantized.graph)
        if calibration.cache and not ranges.cache_hit:
            meta = {"model": recipe.name, "opset": opset, "graph_sha256": ranges.digest, "method": calibration.method,
                    "source": calibration.source, "samples": len(calibration.samples)}
            payload = {"netexport": meta, "tensors": json.loads(saved.read_text())}
            atomic.write_bytes(calibration.cache, json.dumps(payload).encode())
    info = PrecisionInfo("int8", calibration={**calibration.describe(), "cache_hit": ranges.cache_hit})
    info.qdq_nodes, info.quantized_ops = check_qdq(quantized)
    return quantized, info


def check_qdq(proto) -> tuple[int, dict[str, int]]:
    """Enforce what TensorRT accepts: int8 Q/DQ with zero points 0 and no int32 (bias) dequantization.
    Returns the Q/DQ node count and how many nodes of each op type consume dequantized inputs."""
    import onnx
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    qdq = [n for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if not qdq:
        raise StageFailed("INT8 quantization produced no Q/DQ nodes")
    for node in qdq:
        if len(node.input) > 2 and node.input[2] in inits:
            zero_point = numpy_helper.to_array(inits[node.input[2]])
            if zero_point.dtype != np.int8 or np.any(zero_point != 0):
                raise StageFailed(f"{node.name}: zero point is not int8 0 (TensorRT needs symmetric Q/DQ)")
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            if inits[node.input[0]].data_type == onnx.TensorProto.INT32:
                raise StageFailed(f"{node.name}: int32 dequantization (bias quantization) is not accepted by TensorRT")
    dequantized = {n.output[0] for n in qdq if n.op_type == "DequantizeLinear"}
    consumers: dict[str, int] = {}
    for node in proto.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") and dequantized.intersection(node.input):
            consumers[node.op_type] = consumers.get(node.op_type, 0) + 1
    return len(qdq), dict(sorted(consumers.items()))


# ---- helpers ----------------------------------------------------------------------------------


def _ensure_node_names(proto) -> None:
    """Both converters address nodes by name; exporters may leave some unnamed."""
    seen: set[str] = set()
    for i, node in enumerate(proto.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


@contextlib.contextmanager
def _quiet():
    """The converters print and log freely; keep stdout clean for --json."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _first_line(exc: Exception) -> str:
    return first_line(exc) or type(exc).__name__
