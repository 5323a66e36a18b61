"""`netexport verify`: the matrix, its reports and its exit code."""

import json

from click.testing import CliRunner

from netexport import cli
from netexport.errors import EXIT_USAGE, EXIT_VERIFICATION_FAILED
from netexport.recipes import get_recipe


def _cli(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def test_verify_runs_every_cell_and_writes_reports(tmp_path):
    result = _cli("verify", "lenet5", "resnet18", "--precision", "fp32,int8", "--reduced-size",
                  "--report", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    cells = json.loads(result.stdout)["cells"]
    assert sorted((c["model"], c["precision"]) for c in cells) == [
        ("lenet5", "fp32"), ("lenet5", "int8"), ("resnet18", "fp32"), ("resnet18", "int8")]
    assert all(c["status"] == "pass" for c in cells)
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["cells"]) == 4 and report["meta"]["passed"] is True
    table = (tmp_path / "report.md").read_text()
    assert "| resnet18 | classification | pass (max \\|Δ\\|" in table and "int8 · onnxruntime" in table
    assert "[4/4]" in result.stderr


def test_a_failing_cell_exits_1_and_a_limitation_shows_as_xfail(tmp_path, monkeypatch):
    strict = get_recipe("resnet18", overrides={"tolerances": {"fp32": {"atol": 1e-30, "rtol": 0.0}}})
    documented = get_recipe("resnet18", overrides={
        "tolerances": {"fp32": {"atol": 1e-30, "rtol": 0.0}},
        "limitations": [{"precision": "fp32", "backend": "onnxruntime", "reason": "a documented test limitation"}],
    })
    monkeypatch.setattr("netexport.gate.get_recipe", lambda name: strict)
    monkeypatch.setattr("netexport.pipeline.to_onnx.get_recipe", lambda name: strict)
    result = _cli("verify", "resnet18", "--precision", "fp32", "--reduced-size", "--report", tmp_path)
    assert result.exit_code == EXIT_VERIFICATION_FAILED
    assert "fail" in (tmp_path / "report.md").read_text()
    monkeypatch.setattr("netexport.gate.get_recipe", lambda name: documented)
    monkeypatch.setattr("netexport.pipeline.to_onnx.get_recipe", lambda name: documented)
    result = _cli("verify", "resnet18", "--precision", "fp32", "--reduced-size", "--report", tmp_path)
    assert result.exit_code == 0
    assert "xfail: a documented test limitation" in (tmp_path / "report.md").read_text()


def test_verify_usage_errors():
    for args, fragment in [
        (["verify", "resnet5"], "unknown model"),
        (["verify"], "no models selected"),
        (["verify", "--all", "resnet18"], "not both"),
        (["verify", "resnet18", "--precision", "fp8"], "unknown precision"),
    ]:
        result = _cli(*args)
        assert result.exit_code == EXIT_USAGE and fragment in result.stderr, (args, result.output)
