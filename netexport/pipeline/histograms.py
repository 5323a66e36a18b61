"""Activation histograms for the entropy and percentile calibrators, in bounded memory.

ONNX Runtime's HistogramCalibrater keeps every activation of every calibration sample until it
builds the histograms (a retinanet at 256x256 reached 6 GB for 32 samples), and when fed in
several passes it re-bins the merged histograms, which moves the ranges. Here the graph runs one
sample at a time: a first sweep finds each tensor's extremes, a second adds each sample's histogram
over the final bin edges. Histograms over fixed edges add exactly, so the result is the histogram
ONNX Runtime computes when it holds all samples at once, to the count, at the memory of one
sample. While the samples' activations fit in `memory_budget` bytes they are kept from the first
sweep, so the graph runs once per sample; otherwise it runs twice.

The collector's own threshold search (entropy's KL divergence, the percentile) then runs
unchanged on these histograms.
"""

from __future__ import annotations

import copy
from typing import Mapping, Sequence

import numpy as np


def collect(calibrator, samples: Sequence[Mapping[str, np.ndarray]], memory_budget: int):
    """A HistogramCollector of `calibrator` (an ONNX Runtime Entropy/PercentileCalibrater, whose
    session outputs every tensor to calibrate) holding the histograms of all `samples`."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    session = calibrator.infer_session
    names = [o.name for o in session.get_outputs()]
    inputs = {i.name for i in session.get_inputs()}
    wanted = [(i, name) for i, name in enumerate(names) if name in calibrator.tensors_to_calibrate]

    def run(sample):
        outputs = session.run(None, dict(sample))
        # a graph input returned as an output may share the input's buffer
        return [copy.copy(outputs[i]) if name in inputs else outputs[i] for i, name in wanted]

    signed = calibrator.method == "entropy" or not calibrator.symmetric  # as ORT's collect_value
    extremes: list[list] = [[None, None, None, None] for _ in wanted]  # min, max, min |x|, max |x|
    dtypes: list = []
    kept: list | None = []
    kept_bytes = 0
    for sample in samples:
        values = run(sample)
        dtypes = dtypes or [v.dtype for v in values]
        for entry, value in zip(extremes, values):
            _widen(entry, value)
        if kept is not None:
            kept_bytes += sum(v.nbytes for v in values)
            if kept_bytes <= memory_budget:
                kept.append(values)
            else:
                kept = None  # the second sweep runs the graph again

    ranges = []  # per tensor: the bin range ORT would derive from all samples at once, and its dict fields
    for (low, high, abs_low, abs_high), dtype in zip(extremes, dtypes):
        low = np.array(0, dtype=dtype)[()] if low is None else low
        high = np.array(0, dtype=dtype)[()] if high is None else high
        if signed:
            threshold = np.array(max(abs(low), abs(high)), dtype=dtype)
            ranges.append(((-threshold, threshold), (low, high, threshold)))
        else:  # |x| over its own extent, as np.histogram's default range
            ranges.append(((abs_low, abs_high) if abs_low is not None else None, (low, high)))

    totals: list = [None] * len(wanted)
    for values in kept if kept is not None else (run(s) for s in samples):
        for k, value in enumerate(values):
            data = value.ravel() if signed else np.absolute(value.ravel())
            hist, bin_edges = np.histogram(data, bins=calibrator.num_bins, range=ranges[k][0])
            totals[k] = (hist, bin_edges) if totals[k] is None else (totals[k][0] + hist, bin_edges)
    dicts = {name: (*totals[k], *ranges[k][1]) for k, (_, name) in enumerate(wanted)}

    collector = HistogramCollector(method=calibrator.method, symmetric=calibrator.symmetric,
                                   num_bins=calibrator.num_bins, num_quantized_bins=calibrator.num_quantized_bins,
                                   percentile=calibrator.percentile, scenario=calibrator.scenario)
    collector.histogram_dict = dicts
    return collector


def _widen(entry: list, value: np.ndarray) -> None:
    """Fold one sample's extremes into [min, max, min |x|, max |x|] (NaN-aware for the signed pair,
    as ONNX Runtime's collector)."""
    if value.size == 0:
        return
    magnitude = np.absolute(value)
    found = (np.nanmin(value), np.nanmax(value), magnitude.min(), magnitude.max())
    for k, (current, new) in enumerate(zip(entry, found)):
        entry[k] = new if current is None else (min(current, new) if k % 2 == 0 else max(current, new))
