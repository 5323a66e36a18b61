"""`netexport verify`: the matrix, its backends, caching, sharding, workers and the exit code."""

import copy
import json
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from netexport import cli, matrix, recipes
from netexport.errors import EXIT_BACKEND_UNAVAILABLE, EXIT_USAGE, EXIT_VERIFICATION_FAILED


def _cli(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def _cells(result):
    return json.loads(result.stdout)["cells"]


def _figures(cells):
    """What a cell found, without timings: statuses, every compared number, engine facts."""
    return {
        (c["model"], c["precision"], c["backend"]): (
            c["status"],
            [[(o["max_abs_err"], o["cosine"]) for o in v["outputs"]] for v in c.get("verification", [])],
            (c.get("engine") or {}).get("bytes"),
        )
        for c in cells
    }


def _with_recipe(monkeypatch, name, change):
    """Patch the merged recipe of one zoo model for the rest of the test."""
    raws = copy.deepcopy(recipes._raw_recipes())
    change(raws[name])
    monkeypatch.setattr(recipes, "_raw_recipes", lambda: raws)


@pytest.mark.xdist_group("verify-matrix")
def test_verify_runs_onnxruntime_and_engine_cells_and_writes_every_report(tmp_path):
    result = _cli("verify", "lenet5", "resnet18", "--precision", "fp32,int8", "--backend", "onnxruntime,tensorrt-rtx",
                  "--reduced-size", "--report", tmp_path, "--json", "--no-cache")
    assert result.exit_code == 0, result.output
    cells = _cells(result)
    assert [(c["model"], c["precision"], c["backend"]) for c in cells] == [
        (m, p, b) for m in ("lenet5", "resnet18") for p in ("fp32", "int8") for b in ("onnxruntime", "tensorrt-rtx")]
    for cell in cells:
        if cell["backend"] == "onnxruntime":
            assert cell["status"] == "pass" and cell["verification"] and cell["latency_ms"] > 0
        else:  # no GPU here: compiled, not run, and said so
            assert cell["status"] == "built" and cell["reason"].startswith("built, not executed: ")
            assert cell["engine"]["bytes"] > 0 and cell["engine"]["executed"] is False
    assert json.loads((tmp_path / "report.json").read_text())["meta"]["passed"] is True
    suite = ElementTree.parse(tmp_path / "junit.xml").getroot()
    assert len(suite.findall(".//testcase")) == len(cells) and not suite.findall(".//failure")
    models_table = (tmp_path / "report.md").read_text().split("\n## ")[0]  # sections (notes, costs) follow it
    table = [line for line in models_table.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in table[1:]] == ["| lenet5", "| resnet18"]
    assert "<svg" in (tmp_path / "report.html").read_text()
    assert "[8/8]" in result.stderr


@pytest.mark.xdist_group("verify-matrix")
def test_workers_give_the_same_results_as_one_process():
    args = ["verify", "lenet5", "resnet18", "--precision", "fp32,fp16,int8", "--reduced-size", "--json", "--no-cache"]
    one, two, auto = _cli(*args), _cli(*args, "-j", "2"), _cli(*args, "-j", "auto")
    assert one.exit_code == two.exit_code == auto.exit_code == 0, auto.output
    assert _figures(_cells(one)) == _figures(_cells(two)) == _figures(_cells(auto))
    assert all(c["memory_estimate_mb"] > 0 for c in _cells(auto))  # what each job was admitted with


def test_cache_hits_when_unchanged_and_reruns_only_the_changed_model(tmp_path, monkeypatch):
    args = ["verify", "lenet5", "resnet18", "--precision", "fp32", "--reduced-size", "--json", "--cache-dir", tmp_path]
    first = _cli(*args)
    assert [c["cached"] for c in _cells(first)] == [False, False]
    again = _cli(*args)
    assert [c["cached"] for c in _cells(again)] == [True, True]
    assert _figures(_cells(again)) == _figures(_cells(first))
    assert json.loads(again.stdout)["meta"]["cache_hits"] == 2
    _with_recipe(monkeypatch, "lenet5", lambda raw: raw.update(verify_samples=3))
    changed = _cli(*args)
    assert {c["model"]: c["cached"] for c in _cells(changed)} == {"lenet5": False, "resnet18": True}
    forced = _cli(*args, "--no-cache")
    assert [c["cached"] for c in _cells(forced)] == [False, False]


def test_shards_cover_every_cell_exactly_once():
    cells = matrix.build(["a", "b", "c"], ["int8", "fp32", "fp16"], ["tensorrt-rtx", "onnxruntime"])
    assert len(cells) == 18 and len(set(cells)) == 18
    assert [c.precision for c in cells[:6:2]] == ["fp32", "fp16", "int8"]  # policy order, not as given
    for count in (1, 2, 4, 7, 18, 25):
        shards = [matrix.shard(cells, i, count) for i in range(1, count + 1)]
        flat = [c for s in shards for c in s]
        assert sorted(flat, key=lambda c: c.key) == sorted(cells, key=lambda c: c.key)
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_sharded_runs_merge_into_the_full_report(tmp_path):
    base = ["verify", "lenet5", "--precision", "fp32,fp16,int8", "--reduced-size", "--no-cache"]
    full = _cli(*base, "--report", tmp_path / "full")
    parts = [_cli(*base, "--shard", f"{i}/2", "--report", tmp_path / f"s{i}") for i in (1, 2)]
    assert full.exit_code == 0 and all(p.exit_code == 0 for p in parts)
    merged = _cli("report", "merge", tmp_path / "s1", tmp_path / "s2", "-o", tmp_path / "merged", "--json")
    assert merged.exit_code == 0, merged.output
    expected = json.loads((tmp_path / "full" / "report.json").read_text())["cells"]
    assert _figures(json.loads(merged.stdout)["cells"]) == _figures(expected)


def test_a_failing_cell_exits_1_and_a_limitation_turns_it_into_xfail(tmp_path, monkeypatch):
    impossible = {"fp32": {"atol": 1e-30, "rtol": 0.0}}
    _with_recipe(monkeypatch, "lenet5", lambda raw: raw["tolerances"].update(impossible))
    args = ["verify", "lenet5", "--precision", "fp32", "--reduced-size", "--report", tmp_path, "--no-cache"]
    result = _cli(*args)
    assert result.exit_code == EXIT_VERIFICATION_FAILED
    assert json.loads((tmp_path / "report.json").read_text())["cells"][0]["status"] == "fail"
    limitation = {"precision": "fp32", "backend": "onnxruntime", "reason": "a documented test limitation"}
    _with_recipe(monkeypatch, "lenet5", lambda raw: raw.update(tolerances={**raw["tolerances"], **impossible},
                                                               limitations=[limitation]))
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    assert "a documented test limitation" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["cells"][0]["status"] == "xfail"
    at_canonical_size = {**limitation, "size": "canonical"}  # holds where it was measured, not at test size
    _with_recipe(monkeypatch, "lenet5", lambda raw: raw.update(tolerances={**raw["tolerances"], **impossible},
                                                               limitations=[at_canonical_size]))
    result = _cli(*args)
    assert result.exit_code == EXIT_VERIFICATION_FAILED
    assert json.loads((tmp_path / "report.json").read_text())["cells"][0]["status"] == "fail"


def test_user_model_through_verify_with_a_recipe_file(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("task: classification\ninputs:\n  - {name: image, shape: [1, 3, 64, 64]}\n")
    result = _cli("verify", "torchvision.models:resnet18", "--recipe", recipe, "--precision", "fp32,fp16",
                  "--json", "--no-cache")
    assert result.exit_code == 0, result.output
    cells = _cells(result)
    assert [c["status"] for c in cells] == ["pass", "pass"]
    assert cells[0]["input_shapes"] == {"image": [1, 3, 64, 64]}


def test_verify_usage_errors(tmp_path):
    bad_recipe = tmp_path / "bad.yaml"
    bad_recipe.write_text("inputs: 3\n")
    for args, fragment in [
        (["verify", "resnet5"], "unknown model"),
        (["verify"], "no models selected"),
        (["verify", "--all", "resnet18"], "not both"),
        (["verify", "resnet18", "--precision", "fp8"], "unknown precision"),
        (["verify", "resnet18", "--backend", "tensorflow"], "unknown backend"),
        (["verify", "resnet18", "--shard", "3/2"], "--shard"),
        (["verify", "resnet18", "--shard", "x"], "--shard"),
        (["verify", "resnet18", "-j", "0"], "--jobs"),
        (["verify", "resnet18", "-j", "many"], "--jobs"),
        (["verify", "resnet18", "--input-shape", "1,3,64,64"], "package.module:callable"),
        (["verify", "torchvision.models:nothing_here", "--input-shape", "1,3,64,64"], "has no attribute"),
        (["verify", "os:getcwd", "--input-shape", "1,3,64,64"], "not a torch.nn.Module"),
        (["verify", "torchvision.models:resnet18", "--recipe", bad_recipe], "inputs"),
        (["report", "merge", tmp_path / "nothing", "-o", tmp_path / "out"], "report.json"),
    ]:
        result = _cli(*args)
        assert result.exit_code == EXIT_USAGE, (args, result.output)
        assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)


def test_a_missing_backend_exits_3(monkeypatch):
    import importlib

    real_import = importlib.import_module

    def without_tensorrt(name, *args, **kwargs):
        if name == "tensorrt":
            raise ImportError("No module named 'tensorrt'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", without_tensorrt)
    result = _cli("verify", "lenet5", "--backend", "onnxruntime,tensorrt")
    assert result.exit_code == EXIT_BACKEND_UNAVAILABLE and "pip install" in result.stderr


@pytest.mark.parametrize("model, checks_onnx", [("faceboxes", True), ("lpn-50", False)])
def test_an_end2end_engine_cell_checks_only_a_graph_no_onnxruntime_cell_checks(monkeypatch, model, checks_onnx):
    """TensorRT-RTX gets a detector's Loop NMS graph (its own, so its cell checks it) but the same
    pose graph as the onnxruntime cell, whose result must not be counted a second time."""
    from netexport import gate
    from netexport.pipeline import to_trt

    requests = []

    def no_build(request):
        requests.append(request)
        raise RuntimeError("stopped before the build")

    monkeypatch.setattr(to_trt, "run_trt", no_build)
    cell = matrix.Cell(model, "int8", "tensorrt-rtx", "end2end")
    result = gate.run_cell(cell, gate.RunSettings(reduced_size=True))
    assert result["status"] == "error" and "stopped before the build" in result["failures"][0]
    assert requests[0].onnx["end2end"] is True
    assert requests[0].onnx["verify"] is checks_onnx
