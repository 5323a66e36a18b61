"""Report files (report.json, report.md, junit.xml, report.html) and `netexport report merge`.

Cells are built by hand with the figures `netexport verify` records; nothing here runs a model.
"""

import json
import math
import re
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from netexport import cli, report
from netexport.errors import EXIT_OK, EXIT_USAGE, EXIT_VERIFICATION_FAILED

PRECISIONS = ("fp32", "fp16", "int8")
ODD_MODEL = "mobile<net>&v3"


def _output(error_ratio, max_abs_err, cosine, tolerance, passed=True, problem=None):
    return {"name": "logits", "shape": [1, 1000], "max_abs_err": max_abs_err, "max_abs_ref": 19.3,
            "cosine": cosine, "tolerance": tolerance, "error_ratio": error_ratio, "passed": passed,
            "problem": problem}


def _cell(model, precision, backend, status, task="classification", outputs=(), **extra):
    cell = {"model": model, "task": task, "precision": precision, "backend": backend, "status": status,
            "failures": [], "seconds": 12.3, "cached": False,
            "timings": {"load": 0.05, "export": 0.07, "simplify": 0.4, "verify": 0.02}}
    if outputs:
        cell["verification"] = [{"precision": precision, "backend": backend, "samples": 2, "outputs": list(outputs),
                                 "task": {"name": "top1", "passed": status == "pass", "value": 1.0,
                                          "detail": "top-1 agreement 2/2"}, "passed": status == "pass"}]
    cell.update(extra)
    return cell


ATOL = {"atol": 0.0193, "rtol": 0.001}
COSINE = {"cosine": 0.99}


@pytest.fixture
def cells():
    """A matrix whose first appearances are onnxruntime, tensorrt-rtx, tensorrt, with int8 listed before fp16."""
    return [
        _cell("resnet50", "fp32", "onnxruntime", "pass", outputs=[_output(0.0052, 3.8e-06, 0.9999999, ATOL)],
              latency_ms=4.2),
        _cell("resnet50", "int8", "onnxruntime", "fail", outputs=[_output(3.1, 1.3, 0.969, COSINE, passed=False)],
              failures=["logits: cosine 0.969000 < 0.99 (max |Δ| 1.3)", "task check top1: top-1 agreement 1/2"],
              seconds=20.5),
        _cell("resnet50", "fp16", "onnxruntime", "pass", outputs=[_output(0.031, 0.004, 0.9997, COSINE)],
              latency_ms=2.1),
        _cell("resnet50", "fp32", "tensorrt-rtx", "built", reason="no CUDA GPU: built ahead of time for SM86",
              engine={"bytes": 102_500_000, "build_seconds": 0.8, "executed": False, "reason": "no CUDA GPU",
                      "layer_precisions": {"float": 10, "int8": 20}}),
        _cell("yolov5s", "fp32", "onnxruntime", "pass", task="detection",
              outputs=[_output(0.21, 0.0041, 0.99999, ATOL)], latency_ms=18.0),
        _cell("yolov5s", "fp16", "tensorrt", "xfail", task="detection",
              outputs=[_output(math.inf, math.inf, 0.0, {}, passed=False, problem="non-finite values (NaN/Inf)")],
              failures=["logits: non-finite values (NaN/Inf)"], reason="FP16 overflow in the SiLU of the neck"),
        _cell("yolov5s", "int8", "onnxruntime", "error", task="detection",
              failures=["ExportError: opset 13 cannot express QuantizeLinear with a per-axis scale"]),
        _cell("yolov5s", "int8", "tensorrt-rtx", "built", task="detection",  # verify's wording of the reason
              reason="built, not executed: no CUDA GPU", engine={"bytes": 7_900_000, "reason": "no CUDA GPU"}),
        _cell(ODD_MODEL, "fp32", "onnxruntime", "skip", reason="needs pretrained weights <not downloaded>"),
        _cell(ODD_MODEL, "fp16", "onnxruntime", "pass", outputs=[_output(0.5, 0.01, 0.995, COSINE)]),
    ]


META = {"models": 3, "precisions": ["fp32", "fp16", "int8"], "seconds": 118.4, "reduced_size": False, "passed": False,
        "toolchain": {"torch": "2.14.1", "onnxruntime": "1.32.0", "tensorrt-rtx": "1.7.1.116"}}


def _plotted(cells):
    """Cells with a finite worst error ratio, read straight from their outputs."""
    def finite(cell):
        outputs = [o for v in cell.get("verification", []) for o in v["outputs"]]
        return bool(outputs) and all(o["problem"] is None and math.isfinite(o["error_ratio"]) for o in outputs)
    return [c for c in cells if finite(c)]


def _expected_columns(cells):
    backends = list(dict.fromkeys(c["backend"] for c in cells))
    present = {(c["precision"], c["backend"]) for c in cells}
    return [f"{p} · {b}" for p in PRECISIONS for b in backends if (p, b) in present]


def _sorted(cells):
    return sorted(cells, key=lambda c: (c["model"], PRECISIONS.index(c["precision"]), c["backend"]))


def _merge(*args):
    return CliRunner().invoke(cli.main, ["report", "merge", *map(str, args)], catch_exceptions=False)


# ---- report.json ----------------------------------------------------------------------------------


def test_write_reports_writes_four_files_and_the_json_round_trips(tmp_path, cells):
    written = report.write_reports(tmp_path / "out", cells, META)
    assert sorted(p.name for p in written) == ["junit.xml", "report.html", "report.json", "report.md"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["meta"] == META and data["cells"] == cells and data["costs"]["computed_cells"] == len(cells)
    assert not list((tmp_path / "out").glob(".*.tmp")), "atomic writes leave no temp files"


def test_every_report_file_names_the_toolchain(tmp_path, cells):
    report.write_reports(tmp_path, cells, META)
    for name in ("report.md", "report.html"):
        text = (tmp_path / name).read_text()
        assert "torch 2.14.1" in text and "onnxruntime 1.32.0" in text and "tensorrt-rtx 1.7.1.116" in text, name
    properties = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite/properties")
    assert {p.get("name"): p.get("value") for p in properties} == {
        "toolchain.torch": "2.14.1", "toolchain.onnxruntime": "1.32.0", "toolchain.tensorrt-rtx": "1.7.1.116"}


def test_a_merged_report_names_each_version_its_shards_used(tmp_path, cells):
    other = {**META, "toolchain": {**META["toolchain"], "torch": "2.15.0"}}
    report.write_reports(tmp_path / "a", cells[:2], META)
    report.write_reports(tmp_path / "b", cells[2:], other)
    _merge(tmp_path / "a", tmp_path / "b", "-o", tmp_path / "merged")
    text = (tmp_path / "merged" / "report.md").read_text()
    assert "torch 2.14.1 / 2.15.0" in text and "onnxruntime 1.32.0," in text


def test_exit_code_fails_only_on_fail_or_error(cells):
    ok = [c for c in cells if c["status"] in ("pass", "xfail", "skip", "built")]
    assert {c["status"] for c in ok} == {"pass", "xfail", "skip", "built"}
    assert report.exit_code(ok) == EXIT_OK
    for bad in (c for c in cells if c["status"] in ("fail", "error")):
        assert report.exit_code([*ok, bad]) == EXIT_VERIFICATION_FAILED


# ---- junit.xml ------------------------------------------------------------------------------------


def test_junit_has_a_testcase_per_cell_with_the_right_outcome(tmp_path, cells):
    cells[1]["failures"][0] += " \x1b[31m(coloured)\x1b[0m"  # control characters must not break the XML
    report.write_reports(tmp_path, cells, META)
    suites = [s for s in ET.parse(tmp_path / "junit.xml").getroot().iter("testsuite")]
    assert [s.get("name") for s in suites] == ["netexport verify"]
    suite = suites[0]
    statuses = [c["status"] for c in cells]
    assert int(suite.get("tests")) == len(cells)
    assert int(suite.get("failures")) == statuses.count("fail")
    assert int(suite.get("errors")) == statuses.count("error")
    assert int(suite.get("skipped")) == statuses.count("xfail") + statuses.count("skip")
    assert float(suite.get("time")) == pytest.approx(META["seconds"])
    cases = {(t.get("classname"), t.get("name")): t for t in suite.iter("testcase")}
    assert len(cases) == len(cells) == len(list(suite.iter("testcase")))
    for cell in cells:
        case = cases[(f"netexport.{cell['task']}.{cell['model']}", f"{cell['precision']}-{cell['backend']}")]
        assert float(case.get("time")) == pytest.approx(cell["seconds"])
        outcome = {child.tag for child in case} - {"system-out"}
        expected = {"fail": {"failure"}, "error": {"error"}, "xfail": {"skipped"}, "skip": {"skipped"}}
        assert outcome == expected.get(cell["status"], set()), cell["status"]
        if cell["status"] in ("fail", "error"):
            element = case.find("failure" if cell["status"] == "fail" else "error")
            assert element.get("message").startswith(cell["failures"][0].split("\x1b")[0])
            assert all(line.split("\x1b")[0] in element.text for line in cell["failures"])
        elif cell["status"] in ("xfail", "skip"):
            assert case.find("skipped").get("message") == f"{cell['status']}: {cell['reason']}"
        elif cell["status"] == "built":
            text = case.find("system-out").text
            assert text.startswith("built, not executed: ") and text.count("built, not executed") == 1
            assert text.endswith(cell["reason"].removeprefix("built, not executed: "))
        else:
            worst = max(cell["verification"][0]["outputs"], key=lambda o: o["error_ratio"])
            shown = f"{worst['max_abs_err']:.2g}" if "atol" in worst["tolerance"] else f"{worst['cosine']:.5f}"
            assert shown in case.find("system-out").text


# ---- report.md ------------------------------------------------------------------------------------


def _markdown_table(text):
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    split = [[part.strip() for part in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]
    return split[0], split[1:]


def test_markdown_has_a_row_per_model_and_a_column_per_precision_and_backend(cells):
    text = report.markdown(cells)
    header, rows = _markdown_table(text)
    assert header == ["model", "task", *_expected_columns(cells)]
    assert header[2].startswith("fp32") and [h.split(" · ")[0] for h in header[2:]].index("int8") > 2
    assert [r[0] for r in rows] == sorted({c["model"] for c in cells})
    by_model = {r[0]: dict(zip(header, r)) for r in rows}
    for cell in cells:
        shown = by_model[cell["model"]][f"{cell['precision']} · {cell['backend']}"]
        assert shown.split(" ")[0] == cell["status"], shown
        assert by_model[cell["model"]]["task"] == cell["task"]
    for built in (c for c in cells if c["status"] == "built"):
        assert f"built ({built['engine']['bytes'] / 1e6:.1f} MB)" in text
    assert f"{len(cells)} cells:" in text.splitlines()[2]


def test_markdown_lists_every_reason_and_every_failure_message(cells):
    text = report.markdown(cells)
    for cell in cells:
        if cell.get("reason"):
            where = f"- {cell['model']} {cell['precision']}/{cell['backend']}: "
            line = next(line for line in text.splitlines() if line.startswith(where) and cell["reason"] in line)
            assert line.removeprefix(where).startswith(cell["status"])
        if cell["status"] in ("fail", "error"):
            assert all(line in text for line in cell["failures"])


# ---- report.html ----------------------------------------------------------------------------------


def _svgs(page):
    return [ET.fromstring(block) for block in re.findall(r"<svg\b.*?</svg>", page, re.S)]


def _marks(svg):
    return [e for e in svg.iter() if e.get("class") == "mark"]


def _centre_x(element):
    tag = element.tag.split("}")[-1]
    if tag == "circle":
        return float(element.get("cx"))
    if tag == "rect":
        return float(element.get("x")) + float(element.get("width")) / 2
    xs = [float(point.split(",")[0]) for point in element.get("points").split()]
    return sum(xs) / len(xs)


def test_html_plots_one_mark_per_cell_with_figures_on_the_right_side_of_tolerance(cells):
    page = report.html_report(cells, META)
    error_plot, latency_plot = _svgs(page)
    plotted = _plotted(cells)
    marks = _marks(error_plot)
    assert len(marks) == len(plotted)
    tolerance = [e for e in error_plot.iter() if e.get("stroke") == "#d62728"]
    assert len(tolerance) == 1
    line_x = float(tolerance[0].get("x1"))
    for cell in plotted:
        mark = next(m for m in marks if m.findtext("{*}title").startswith(
            f"{cell['model']} {cell['precision']}/{cell['backend']}:"))
        ratio = cell["verification"][0]["outputs"][0]["error_ratio"]
        assert (_centre_x(mark) > line_x) == (ratio > 1.0), cell
    assert len(_marks(latency_plot)) == sum("latency_ms" in c for c in cells)


def test_html_is_self_contained_and_escapes_text(cells):
    page = report.html_report(cells, META)
    assert "<svg" in page and "<table>" in page
    assert not re.search(r"<script|<link|\bsrc=|@import|url\(", page)
    assert ODD_MODEL not in page and "mobile&lt;net&gt;&amp;v3" in page
    assert "&lt;not downloaded&gt;" in page
    for status in {c["status"] for c in cells}:
        assert f'class="s-{status}"' in page


def test_html_without_latency_has_a_single_plot(cells):
    for cell in cells:
        cell.pop("latency_ms", None)
    assert len(_svgs(report.html_report(cells, META))) == 1


# ---- netexport report merge -----------------------------------------------------------------------


def _shards(tmp_path, cells):
    """Two disjoint shards, split by backend, each with its own verify meta."""
    first = [c for c in cells if c["backend"] == "onnxruntime"]
    second = [c for c in cells if c["backend"] != "onnxruntime"]
    metas = [{**META, "seconds": 80.25}, {**META, "seconds": 30.5}]
    for name, shard, meta in zip("ab", (first, second), metas):
        report.write_reports(tmp_path / name, shard, meta)
    return tmp_path / "a", tmp_path / "b", metas


def test_merge_of_disjoint_shards_equals_the_single_report(tmp_path, cells):
    a, b, metas = _shards(tmp_path, cells)
    report.write_reports(tmp_path / "single", cells, META)
    single = json.loads((tmp_path / "single" / "report.json").read_text())["cells"]
    result = _merge(a, b, "-o", tmp_path / "merged", "--json")
    merged = json.loads((tmp_path / "merged" / "report.json").read_text())
    assert merged["cells"] == _sorted(single)
    assert json.loads(result.stdout) == merged
    meta = merged["meta"]
    assert meta["shards"] == metas
    assert meta["seconds"] == pytest.approx(sum(m["seconds"] for m in metas))
    assert sorted(meta["models"]) == sorted({c["model"] for c in cells})
    assert set(meta["precisions"]) == {c["precision"] for c in cells}
    assert set(meta["backends"]) == {c["backend"] for c in cells}
    failed = any(c["status"] in ("fail", "error") for c in cells)
    assert meta["passed"] is (not failed)
    assert result.exit_code == (EXIT_VERIFICATION_FAILED if failed else EXIT_OK), result.output
    assert all((tmp_path / "merged" / name).is_file() for name in report.REPORT_FILES)
    summary = result.stderr.strip().splitlines()
    assert len(summary) == 1 and str(tmp_path / "merged") in summary[0]
    statuses = [c["status"] for c in cells]
    for status in set(statuses):
        assert f"{statuses.count(status)} {status}" in summary[0]


def test_merge_exits_1_when_a_shard_has_a_failure_and_0_otherwise(tmp_path, cells):
    good = [c for c in cells if c["status"] not in ("fail", "error")]
    failing = [c for c in cells if c["status"] == "fail"]
    report.write_reports(tmp_path / "good", good, META)
    report.write_reports(tmp_path / "failing", failing, META)
    assert _merge(tmp_path / "good", "-o", tmp_path / "out-good").exit_code == EXIT_OK
    result = _merge(tmp_path / "good", tmp_path / "failing", "-o", tmp_path / "out-bad")
    assert result.exit_code == EXIT_VERIFICATION_FAILED, result.output
    assert json.loads((tmp_path / "out-bad" / "report.json").read_text())["meta"]["passed"] is False


def test_overlapping_shards_exit_2_with_one_line(tmp_path, cells):
    report.write_reports(tmp_path / "a", cells[:4], META)
    report.write_reports(tmp_path / "b", cells[3:], META)  # cells[3] is in both
    result = _merge(tmp_path / "a", tmp_path / "b", "-o", tmp_path / "out")
    assert result.exit_code == EXIT_USAGE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "overlapping shards" in lines[0]
    duplicate = cells[3]
    assert f"{duplicate['model']} {duplicate['precision']}/{duplicate['backend']}" in lines[0]
    assert str(tmp_path / "a") in lines[0] and str(tmp_path / "b") in lines[0]
    assert not (tmp_path / "out" / "report.json").exists()


def test_merge_rejects_missing_and_foreign_reports_with_exit_2(tmp_path, cells):
    report.write_reports(tmp_path / "good", cells, META)
    (tmp_path / "empty").mkdir()
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "report.json").write_text("{not json")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "report.json").write_text(json.dumps({"results": [1, 2]}))
    for bad in ("empty", "garbled", "foreign"):
        result = _merge(tmp_path / "good", tmp_path / bad, "-o", tmp_path / "out")
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == EXIT_USAGE, (bad, result.output)
        assert len(lines) == 1 and str(tmp_path / bad / "report.json") in lines[0], lines


def test_merge_requires_a_directory_and_an_output(tmp_path, cells):
    report.write_reports(tmp_path / "a", cells, META)
    for args in ([tmp_path / "a"], ["-o", tmp_path / "out"]):
        result = _merge(*args)
        assert result.exit_code == EXIT_USAGE
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
