"""Compare two verification reports cell by cell: what a toolchain upgrade (or any change) moved.

    python scripts/compare_reports.py reports-locked/ reports-newest/ [--closest 5]
    python scripts/compare_reports.py suite-locked.xml suite-newest.xml

Each side is a `netexport verify --report` directory or the JUnit XML of a test-suite run
(`pytest --junitxml`), whose parity tests record their worst output (tests/conftest.py).

For every cell in both reports: its status and its worst error ratio (the worst output's error as a
fraction of its tolerance, so 1.0 is the threshold; for a cosine tolerance, (1 - cosine) / (1 - min)).
Prints the cells whose status changed or whose worst ratio moved, largest move first, then the
passing cells of the first report closest to their thresholds (the fragile ones).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netexport.report import _where, cell_key, error_ratio as worst_ratio  # noqa: E402


def load(path: Path) -> dict[tuple, dict]:
    cells = _suite_cells(path) if path.is_file() else json.loads((path / "report.json").read_text())["cells"]
    return {cell_key(c): c for c in cells}


def _suite_cells(junit: Path) -> list[dict]:
    """The suite's parity tests as cells: model = the test's parameter, backend = the test."""
    cells = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "netexport.worst_output" not in props:
            continue
        match = re.fullmatch(r"(\w+)\[(.+)\]", case.get("name", ""))
        test, model = match.groups() if match else (case.get("name"), "")
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            status = "fail"
        elif skipped is not None:
            status = "xfail" if skipped.get("type") == "pytest.xfail" else "skip"
        else:
            status = "pass"
        worst = json.loads(props["netexport.worst_output"])
        cells.append({"model": model, "precision": props["netexport.precision"], "backend": test,
                      "status": status, "verification": [{"outputs": [worst]}]})
    return cells


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--closest", type=int, default=5, help="how many fragile cells to list")
    parser.add_argument("--min-move", type=float, default=1e-4, help="smallest ratio change to list")
    args = parser.parse_args(argv)

    first, second = load(args.first), load(args.second)
    common = sorted(first.keys() & second.keys())
    moves = []
    for key in common:
        a, b = first[key], second[key]
        ra, rb = worst_ratio(a), worst_ratio(b)
        delta = (rb - ra) if ra is not None and rb is not None else None
        if a["status"] != b["status"] or (delta is not None and abs(delta) >= args.min_move):
            moves.append((abs(delta) if delta is not None else math.inf, a, b, ra, rb))
    print(f"{len(common)} cells in both reports ({len(first.keys() - second.keys())} only in the first, "
          f"{len(second.keys() - first.keys())} only in the second); {len(moves)} moved")
    for _, a, b, ra, rb in sorted(moves, key=lambda m: -m[0]):
        print(f"  {_where(a)}: {a['status']} -> {b['status']}, worst ratio {_ratio(ra)} -> {_ratio(rb)}")

    passing = [(r, c) for c in first.values() if c["status"] == "pass" and (r := worst_ratio(c)) is not None]
    print(f"closest to their thresholds in {args.first} (worst error / tolerance):")
    for ratio, cell in sorted(passing, key=lambda p: -p[0])[: args.closest]:
        print(f"  {_where(cell)}: {ratio:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
