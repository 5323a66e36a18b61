"""The README names the models that get the reduced CI matrix (tests/zoo_params.py): keep it true."""

import re
from pathlib import Path

from zoo_params import FULL_MATRIX_MAX_PARAMS, reduced_matrix_models


def test_readme_lists_the_models_with_the_reduced_ci_matrix():
    text = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text()
    line = re.search(r"Reduced CI matrix \(above ([\d,]+) parameters\): (.*)", text)
    assert line, "README's Tests and CI section must name the reduced-matrix models"
    assert int(line.group(1).replace(",", "")) == FULL_MATRIX_MAX_PARAMS
    listed = [] if line.group(2).strip(" .") == "none" else [n.strip(" `.") for n in line.group(2).split(",")]
    assert sorted(listed) == sorted(reduced_matrix_models())
