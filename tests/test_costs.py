"""The cost table and the run's floor (netexport.costs), on hand-built cells whose expected sums are
worked out by hand below; and the reference's FLOP count on a layer whose FLOPs are known."""

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from netexport import costs, report
from netexport.pipeline.reference import reference_outputs, torch_outputs


def _verification(samples, gflops):
    return {"samples": samples, "reference_gflops": gflops, "outputs": []}


def _cell(precision, backend="onnxruntime", model="net", seconds=10.0, timings=None, verification=None, **extra):
    return {"model": model, "task": "classification", "precision": precision, "backend": backend, "status": "pass",
            "seconds": seconds, "cached": False, "timings": timings or {}, "verification": verification or [], **extra}


@pytest.fixture
def cells():
    two_sets = [_verification(2, 1.5), _verification(2, 0.5)]  # a dynamic model: two input sets
    return [
        _cell("fp32", timings={"load": 3.0, "export": 1.0, "check": 0.5, "reference": 2.0, "onnxruntime": 1.0},
              seconds=8.0, verification=two_sets, latency_ms=1.0),
        _cell("fp16", timings={"fp16": 4.0, "reference": 2.0, "onnxruntime": 1.0, "latency": 0.5},
              seconds=7.5, verification=two_sets, latency_ms=1.0),
        _cell("int8", timings={"calibrate": 20.0, "quantize": 2.0, "reference": 2.0, "onnxruntime": 1.0},
              seconds=25.0, verification=two_sets, calibration={"samples": 8}, peak_rss_mb=900),
        _cell("int8", "tensorrt-rtx", timings={"onnx.calibrate": 20.0, "onnx.load": 3.0, "build": 5.0}, seconds=28.0,
              calibration=None, peak_rss_mb=1500),
        _cell("fp32", model="cached-model", seconds=99.0, timings={"load": 99.0}, cached=True,
              verification=[_verification(2, 100.0)], latency_ms=1.0),
    ]


def test_stage_seconds_map_timings_to_stages_and_keep_the_untimed_rest(cells):
    assert costs.stage_seconds(cells[0]) == {"load/init": 3.0, "export": 1.5, "PyTorch reference": 2.0,
                                             "ORT run": 1.0, "other": 0.5}
    # an engine cell's ONNX stages count as the same stages as an onnxruntime cell's
    assert costs.stage_seconds(cells[3]) == {"calibration": 20.0, "load/init": 3.0, "engine build": 5.0}


def test_floor_counts_shared_passes_once(cells):
    # Per input set, 2 samples: 2*1.5 + 2*0.5 = 4 GFLOPs.
    # reference once for the three cells that share it: 4; ORT in three cells: 3*4 = 12;
    # latency (6 passes of the first set) in the two cells that timed it: 2*6*1.5 = 18;
    # the FP16 probe once: 2*1.5 = 3; calibration once: 8*1.5 = 12. The cached cell costs nothing.
    assert costs.floor_gflops(cells) == pytest.approx(4 + 12 + 18 + 3 + 12)


def test_cost_table_totals_top_cells_and_ratio(cells):
    table = costs.cost_table(cells, {"seconds": 98.0, "machine": {"fp32_matmul_gflops": 10.0}})
    assert table["computed_cells"] == 4 and table["cached_cells"] == 1
    assert table["cell_seconds"] == pytest.approx(8.0 + 7.5 + 25.0 + 28.0)
    by_stage = {s["stage"]: s["seconds"] for s in table["stages"]}
    assert by_stage["calibration"] == 40.0 and by_stage["load/init"] == 6.0 and by_stage["PyTorch reference"] == 6.0
    assert sum(s["share"] for s in table["stages"]) == pytest.approx(1.0, abs=1e-3)
    assert [t["seconds"] for t in table["top_cells"]] == [28.0, 25.0, 8.0, 7.5]
    assert table["top_cells"][0]["cell"] == "net int8/tensorrt-rtx" and table["top_cells"][0]["peak_rss_mb"] == 1500
    assert table["largest_cell_peak_rss_mb"] == 1500
    assert table["floor"]["seconds"] == pytest.approx(4.9)  # 49 GFLOPs at 10 GFLOP/s
    assert table["floor"]["ratio"] == pytest.approx(20.0)  # 98 s / 4.9 s


def test_the_table_compares_memory_estimates_with_peaks(cells):
    assert costs.cost_table(cells, {})["memory_estimates"] is None  # not a -j auto run
    cells[2]["memory_estimate_mb"], cells[3]["memory_estimate_mb"] = 1000, 1000  # peaks 900 and 1500
    check = costs.cost_table(cells, {})["memory_estimates"]
    assert check == {"cells": 2, "largest_peak_to_estimate": 1.5, "cell": "net int8/tensorrt-rtx",
                     "peak_rss_mb": 1500, "memory_estimate_mb": 1000}
    assert "peak at most 1.5x the estimate" in costs.markdown(costs.cost_table(cells, {"seconds": 1.0}))


def test_a_warm_run_has_no_cost_and_says_so(cells):
    warm = [{**c, "cached": True} for c in cells]
    table = costs.cost_table(warm, {"seconds": 1.0})
    assert table["computed_cells"] == 0 and table["floor"]["gflops"] == 0
    assert "Every cell came from the cache (5 cells)" in costs.markdown(table)


def test_every_report_carries_the_cost_table_and_floor(tmp_path, cells):
    meta = {"seconds": 98.0, "machine": {"cores": 2, "fp32_matmul_gflops": 10.0}}
    report.write_reports(tmp_path, cells, meta)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["costs"]["floor"]["ratio"] == pytest.approx(20.0)
    for name in ("report.md", "report.html"):
        text = (tmp_path / name).read_text()
        assert "49.0 GFLOPs" in text and "4.9 s" in text and "20x the floor" in text, name
        assert "net int8/tensorrt-rtx" in text and "calibration" in text, name


def test_a_merged_report_uses_the_slowest_shards_rate(tmp_path, cells):
    from click.testing import CliRunner

    from netexport import cli

    report.write_reports(tmp_path / "a", cells[:2], {"seconds": 10.0, "machine": {"fp32_matmul_gflops": 10.0}})
    report.write_reports(tmp_path / "b", cells[2:], {"seconds": 20.0, "machine": {"fp32_matmul_gflops": 40.0}})
    result = CliRunner().invoke(cli.main, ["report", "merge", str(tmp_path / "a"), str(tmp_path / "b"),
                                           "-o", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    merged = json.loads((tmp_path / "m" / "report.json").read_text())
    assert merged["meta"]["machine"]["fp32_matmul_gflops"] == 10.0
    assert merged["costs"]["floor"]["seconds"] == pytest.approx(4.9)


def test_the_reference_counts_one_pass_flops_and_its_outputs_are_unchanged():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False).eval()
    recipe = SimpleNamespace(name="conv", inputs=[SimpleNamespace(name="x")], outputs=["y"])
    samples = [{"x": np.random.default_rng(i).standard_normal((1, 3, 8, 8), dtype=np.float32)} for i in range(3)]
    outputs, gflops = reference_outputs(conv, recipe, samples)
    # a multiply-add per weight per output pixel: 2 * (4 * 8 * 8 outputs) * (3 * 3 * 3 weights)
    assert gflops == pytest.approx(2 * 4 * 8 * 8 * 27 / 1e9)
    for sample, got in zip(samples, outputs):
        np.testing.assert_array_equal(got["y"], torch_outputs(conv, recipe, sample)["y"])



def test_peak_rss_sees_memory_allocated_inside_the_block():
    from netexport.memory import PeakRss, rss_bytes

    before = rss_bytes()
    with PeakRss(interval=0.01) as memory:
        block = np.ones(256 * 2**20 // 8)  # 256 MB, every page written
        time.sleep(0.2)  # several sampling intervals, even when the sampler thread waits for a busy core
        del block
    assert memory.peak - before >= 200 * 2**20
