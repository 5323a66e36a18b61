"""The comparison logic on its own, with fake runner outputs (no model, no runtime)."""

import numpy as np
import pytest

from netexport.pipeline.verify import check_output, compare, cosine
from netexport.recipes import Tolerance, get_recipe

FP32 = Tolerance(atol=1e-4, rtol=1e-3)
RNG = np.random.default_rng(0)


def test_fp32_tolerance_scales_with_the_output_magnitude():
    ref = np.array([100.0, -50.0, 0.5], dtype=np.float32)
    # allowed per element: 1e-4 * 100 + 1e-3 * |ref|
    inside = ref + np.array([0.1, 0.05, 0.0105], dtype=np.float32) * 0.99
    outside = ref + np.array([0.0, 0.0, 0.0125], dtype=np.float32)
    assert check_output("y", ref, inside, FP32).passed
    result = check_output("y", ref, outside, FP32)
    assert not result.passed and result.error_ratio > 1
    assert result.tolerance["atol"] == pytest.approx(1e-2)


def test_small_outputs_use_the_unscaled_atol():
    ref = np.full(4, 0.01, dtype=np.float32)
    assert check_output("y", ref, ref + 1.05e-4, FP32).passed
    assert not check_output("y", ref, ref + 1.2e-4, FP32).passed


@pytest.mark.parametrize(
    "got, problem",
    [
        (None, "missing"),
        (np.zeros((2, 3)), "shape (2, 3) differs"),
        (np.array([np.nan, 0.0, 0.0, 0.0]), "non-finite"),
    ],
)
def test_structural_problems_fail_with_a_reason(got, problem):
    result = check_output("y", np.zeros(4, dtype=np.float32), got, FP32)
    assert not result.passed and problem in result.problem


def test_cosine_tolerance():
    ref = RNG.normal(size=1000)
    noisy = ref + 0.01 * RNG.normal(size=1000)
    assert cosine(ref, ref) == pytest.approx(1.0)
    assert cosine(ref, -ref) == pytest.approx(-1.0)
    assert check_output("y", ref, noisy, Tolerance(cosine=0.999)).passed
    assert not check_output("y", ref, ref + 0.1 * RNG.normal(size=1000), Tolerance(cosine=0.999)).passed


def _logits(rows):
    return {"logits": np.asarray(rows, dtype=np.float32)}


def test_compare_reports_the_worst_sample_and_top1():
    recipe = get_recipe("resnet18")
    refs = [_logits([[1.0, 5.0, 2.0]]), _logits([[3.0, 0.0, 1.0]])]
    gots = [_logits([[1.0, 5.0, 2.0]]), _logits([[3.0, 0.0, 1.02]])]
    result = compare(recipe, "fp32", "fake", refs, gots)
    assert not result.passed
    assert result.outputs[0].max_abs_err == pytest.approx(0.02, rel=1e-3)
    assert result.task.passed  # the class did not change
    assert "logits: max |Δ| 0.02" in result.failures()[0]


def test_top1_disagreement_fails_but_a_tie_within_tolerance_does_not():
    recipe = get_recipe("resnet18")
    flipped = compare(recipe, "fp32", "fake", [_logits([[1.0, 2.0, 0.0]])], [_logits([[2.0, 1.0, 0.0]])])
    assert not flipped.task.passed and flipped.task.detail == "top-1 agreement 0/1"
    tie = compare(recipe, "fp32", "fake", [_logits([[1.0, 1.00001, 0.0]])], [_logits([[1.00001, 1.0, 0.0]])])
    assert tie.task.passed and tie.passed


def _segmenter(min_agreement):
    from netexport.recipes import build_recipe, raw_recipe

    raw = raw_recipe("resnet18")
    raw.update(task="semantic-segmentation", task_check="pixel-argmax", outputs=["out"],
               task_min_agreement=min_agreement)
    return build_recipe(raw)


def test_pixel_argmax_counts_flipped_pixels_against_the_recipe_rate():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(1, 3, 10, 10))
    scores[:, 0] += 5.0  # class 0 wins everywhere by a wide margin
    flipped = scores.copy()
    flipped[0, 1, 0, :3] += 20.0  # 3 of 100 pixels change class
    strict, lenient = _segmenter({"int8": 1.0}), _segmenter({"int8": 0.97})
    for recipe, passes in ((strict, False), (lenient, True)):
        result = compare(recipe, "int8", "fake", [{"out": scores}], [{"out": flipped}])
        assert result.task.value == pytest.approx(0.97) and result.task.passed is passes


def test_pixel_argmax_ignores_near_ties_within_the_tolerance():
    scores = np.zeros((1, 2, 4, 4))
    scores[0, 0] = 1.0
    scores[0, 1] = 1.0 + 1e-6  # PyTorch itself barely prefers class 1
    swapped = scores[:, ::-1].copy()
    result = compare(_segmenter({"fp32": 1.0}), "fp32", "fake", [{"out": scores}], [{"out": swapped}])
    assert result.task.value == 1.0 and result.task.passed
