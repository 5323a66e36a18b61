"""`netexport bench`: one row per (backend, precision), the torch baseline, honest n/a and not-run rows,
one-line input errors. Latencies are only checked for sign and order: timings are not testable."""

import importlib.util
import json

import pytest
import torch
from click.testing import CliRunner

from netexport import bench, cli
from netexport.backends import tensorrt as trt_backend
from netexport.errors import EXIT_BACKEND_UNAVAILABLE, EXIT_USAGE

SMALL = "lenet5"
QUICK = ["--warmup", "1", "--iterations", "2"]


def invoke(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, code, fragment):
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output


def timed(rows):
    return [r for r in rows if r["status"] == "ok"]


def assert_consistent(data):
    """Every timed row is positive and ordered; speed-ups and throughputs follow from the row's own numbers."""
    baseline = next(r for r in data["rows"] if (r["backend"], r["precision"]) == ("torch", "fp32"))
    assert baseline["speedup"] == 1.0 and baseline["median_ms"] == data["baseline"]["median_ms"]
    for row in timed(data["rows"]):
        assert 0 < row["median_ms"] <= row["p90_ms"], row
        assert row["iterations"] >= 2
        assert row["speedup"] == pytest.approx(baseline["median_ms"] / row["median_ms"], abs=1e-3)
        assert row["throughput"] == pytest.approx(data["batch"] * 1000 / row["median_ms"], abs=0.01)


def test_json_has_a_row_per_backend_and_precision(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("bench", SMALL, "--backend", "torch,onnxruntime,tensorrt-rtx", "--precision", "fp32,fp16,int8",
                    "--batch", "2", "--threads", "1", *QUICK, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(r["backend"], r["precision"]) for r in data["rows"]] == [
        (b, p) for b in ("torch", "onnxruntime", "tensorrt-rtx") for p in ("fp32", "fp16", "int8")]
    assert data["input_shapes"] == {"input": [2, 1, 32, 32]}
    assert_consistent(data)
    rows = {(r["backend"], r["precision"]): r for r in data["rows"]}
    assert all(rows["onnxruntime", p]["status"] == "ok" for p in ("fp32", "fp16", "int8"))
    for precision in ("fp16", "int8"):  # torch is not silently timed in fp32 under another name
        assert rows["torch", precision]["status"] == "n/a" and rows["torch", precision]["median_ms"] is None
        assert "fp32 only" in rows["torch", precision]["reason"]
    for precision in ("fp32", "fp16", "int8"):  # no GPU on this machine
        row = rows["tensorrt-rtx", precision]
        assert row["status"] == "not run" and row["reason"] and row["median_ms"] is None
    machine = data["machine"]
    assert machine["threads"] == 1 and machine["cores"] >= 1 and machine["cpu"]
    assert machine["torch"] == torch.__version__ and machine["onnxruntime"]
    assert any("not parity-checked" in n for n in data["notes"])
    assert any("8 synthetic samples" in n for n in data["notes"])
    assert "not run: " in result.stderr and "speed-up" in result.stderr  # the table goes to stderr with --json
    assert list(tmp_path.iterdir()) == []  # graphs live in a temporary directory only


def test_table_on_stdout_without_json():
    result = invoke("bench", SMALL, "--backend", "torch", "--precision", "fp32,fp16", *QUICK)
    assert result.exit_code == 0, result.output
    assert "torch" in result.stdout and "1.00×" in result.stdout
    assert "torch fp16: n/a: torch eager runs fp32 only" in result.stdout


def test_user_model():
    result = invoke("bench", "torchvision.models:resnet18", "--input-shape", "1,3,64,64",
                    "--backend", "torch,onnxruntime", *QUICK, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "torchvision.models:resnet18" and data["input_shapes"] == {"input": [1, 3, 64, 64]}
    assert len(data["rows"]) == 6 and len(timed(data["rows"])) == 4  # torch fp32 + onnxruntime fp32/fp16/int8
    assert_consistent(data)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["resnet5"], "unknown model"),
        ([SMALL, "--precision", "fp32,fp64"], "unknown precision fp64"),
        ([SMALL, "--precision", ","], "unknown precision"),
        ([SMALL, "--backend", "torch,tvm"], "unknown backend tvm"),
        ([SMALL, "--batch", "0"], "--batch must be >= 1"),
        ([SMALL, "--iterations", "0"], "--iterations must be >= 1"),
        ([SMALL, "--threads", "0"], "--threads must be >= 1"),
        ([SMALL, "--warmup", "-1"], "--warmup must be >= 0"),
        ([SMALL, "--input-size", "64x64"], "fixed 32x32"),
        ([SMALL, "--input-size", "abc"], "malformed size"),
        ([SMALL, "--input-shape", "1,1,32,32"], "only for package.module:callable"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke("bench", *args), EXIT_USAGE, fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_a_named_missing_backend_exits_3():
    assert_one_line_error(invoke("bench", SMALL, "--backend", "torch,tensorrt"), EXIT_BACKEND_UNAVAILABLE,
                          "pip install")


def test_engine_rows_time_the_engine_runner_where_a_gpu_exists(monkeypatch):
    """The GPU path cannot run here: fake the GPU, the builder and the runner, and check the wiring."""
    built, feeds = [], []

    class FakeRunner:
        def __init__(self, spec, trt, plan):
            assert plan == b"plan"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def infer(self, feed):
            feeds.append(feed)

    def fake_build(spec, trt, onnx_bytes, options):
        built.append((spec.name, onnx_bytes))
        return type("Build", (), {"plan": b"plan"})()

    monkeypatch.setattr(trt_backend, "load_backend", lambda name: (trt_backend.SPECS[name], object()))
    monkeypatch.setattr(trt_backend, "gpu_runtime_reason", lambda trt: None)
    monkeypatch.setattr(trt_backend, "build_engine", fake_build)
    monkeypatch.setattr(trt_backend, "EngineRunner", FakeRunner)
    threads = torch.get_num_threads()
    request = bench.BenchRequest(SMALL, precisions=("fp32", "int8"), backends=("torch", "tensorrt"),
                                 threads=2, warmup=1, iterations=3, min_seconds=0)
    result = bench.run_bench(request)
    assert torch.get_num_threads() == threads  # the benchmark's thread count does not leak
    assert [name for name, _ in built] == ["tensorrt", "tensorrt"]  # one engine per precision's graph
    assert built[0][1] != built[1][1] and all(len(graph) > 1000 for _, graph in built)
    assert len(feeds) == 2 * (1 + 3) and set(feeds[0]) == {"input"}
    rows = [r.to_dict(result.batch) for r in result.rows]
    assert [(r["backend"], r["precision"], r["status"]) for r in rows] == [
        ("torch", "fp32", "ok"), ("torch", "int8", "n/a"), ("tensorrt", "fp32", "ok"), ("tensorrt", "int8", "ok")]
    assert result.machine["gpu"] == "CUDA GPU visible"
