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


def _recipe_of_task(task, check, outputs, min_agreement=None):
    from netexport.recipes import build_recipe, raw_recipe

    raw = raw_recipe("resnet18")
    raw.update(task=task, task_check=check, outputs=outputs, task_min_agreement=min_agreement or {})
    return build_recipe(raw)


def _segmenter(min_agreement):
    return _recipe_of_task("semantic-segmentation", "pixel-argmax", ["out"], min_agreement)


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


def _raw_head_detector():
    from netexport.recipes import build_recipe, raw_recipe

    raw = raw_recipe("resnet18")
    raw.update(task="detection", task_check="raw-heads", outputs=["cls_p3"])
    return build_recipe(raw)


def test_raw_heads_measure_the_signal_on_top_of_a_constant_class_bias():
    rng = np.random.default_rng(0)
    signal = 0.05 * rng.normal(size=(1, 4, 8, 8))
    ref = -4.6 + signal  # focal-loss prior bias, as an untrained RetinaNet's class logits
    lost = -4.6 + 0.05 * rng.normal(size=ref.shape)  # same bias and spread, the signal replaced
    assert cosine(ref, lost) > 0.999  # the plain cosine cannot tell
    recipe = _raw_head_detector()
    broken = compare(recipe, "fp16", "fake", [{"cls_p3": ref}], [{"cls_p3": lost}])
    assert not broken.task.passed and broken.task.value < 0.2 and "(cls_p3)" in broken.task.detail
    noisy = ref + 1e-4 * rng.normal(size=ref.shape)  # 0.2% of the signal's spread
    kept = compare(recipe, "fp16", "fake", [{"cls_p3": ref}], [{"cls_p3": noisy}])
    assert kept.task.passed and kept.task.value > 0.999


def test_raw_heads_keep_the_channel_pattern_of_a_one_pixel_level():
    """P7 of a small input is 1x1: its signal is the pattern across channels, which centring by one
    mean per output keeps (one mean per channel would leave only the difference between samples)."""
    rng = np.random.default_rng(1)
    pattern = -4.6 + rng.normal(size=(1, 80, 1, 1))
    refs = [{"cls_p3": pattern + 1e-3 * rng.normal(size=pattern.shape)} for _ in range(2)]
    gots = [{"cls_p3": r["cls_p3"] + 1e-3 * rng.normal(size=pattern.shape)} for r in refs]
    result = compare(_raw_head_detector(), "fp16", "fake", refs, gots)
    assert result.task.passed and result.task.value > 0.9999


def test_raw_heads_do_not_centre_a_single_value():
    """A 1x1 one-channel map (FCOS/PolarMask center-ness on P7 of a small input) is one number per
    sample: centred on the samples' mean it is ±d, and a tiny error flips its sign."""
    refs = [{"cls_p3": np.full((1, 1, 1, 1), -0.30)}, {"cls_p3": np.full((1, 1, 1, 1), -0.31)}]
    gots = [{"cls_p3": np.full((1, 1, 1, 1), -0.306)}, {"cls_p3": np.full((1, 1, 1, 1), -0.304)}]
    result = compare(_raw_head_detector(), "int8", "fake", refs, gots)
    assert result.task.passed and result.task.value == pytest.approx(1.0)


def test_embedding_cosine_judges_each_sample_not_the_batch():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(8, 512))
    got = ref.copy()
    got[3] = rng.normal(size=512)  # one face's embedding replaced: 1 of 8 rows
    assert cosine(ref, got) > 0.8  # the batch as a whole still looks close
    recipe = _recipe_of_task("face-recognition", "embedding-cosine", ["embedding"])
    broken = compare(recipe, "fp16", "fake", [{"embedding": ref}], [{"embedding": got}])
    assert not broken.task.passed and broken.task.value < 0.3
    noisy = ref + 0.01 * rng.normal(size=ref.shape)  # cosine about 1 - 0.5e-4 per row
    kept = compare(recipe, "fp16", "fake", [{"embedding": ref}], [{"embedding": noisy}])
    assert kept.task.passed and 0.9999 < kept.task.value < 1.0


def _gaussian_heatmaps(peaks, height=16, width=12, sigma=2.0):
    """One sample's heatmaps with a sigma-2 Gaussian peaking at 1.0 at each (y, x), as pose targets."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([np.exp(-((ys - y) ** 2 + (xs - x) ** 2) / (2 * sigma**2)) for y, x in peaks])[None]


def test_heatmap_peaks_count_moved_keypoints_against_the_recipe_rate():
    peaks = [(2, 3), (8, 8), (12, 1), (5, 10)]
    ref = _gaussian_heatmaps(peaks)
    moved = _gaussian_heatmaps([(2, 3), (8, 8), (12, 1), (9, 4)])  # one of four keypoints elsewhere
    strict = _recipe_of_task("pose", "heatmap-peaks", ["heatmaps"], {"int8": 1.0})
    lenient = _recipe_of_task("pose", "heatmap-peaks", ["heatmaps"], {"int8": 0.75})
    for recipe, passes in ((strict, False), (lenient, True)):
        result = compare(recipe, "int8", "fake", [{"heatmaps": ref}], [{"heatmaps": moved}])
        assert result.task.value == pytest.approx(0.75) and result.task.passed is passes


def test_heatmap_peaks_accept_a_near_tie_but_not_a_one_pixel_shift_of_a_sharp_peak():
    ref = _gaussian_heatmaps([(6, 6)])
    tied = ref.copy()
    tied[0, 0, 6, 7] = 1.0 + 1e-7  # a neighbour within fp32 error of the maximum
    recipe = _recipe_of_task("pose", "heatmap-peaks", ["heatmaps"])
    assert compare(recipe, "fp32", "fake", [{"heatmaps": tied}], [{"heatmaps": ref}]).task.passed
    shifted = _gaussian_heatmaps([(6, 7)])  # the sigma-2 neighbour is 0.88 of the peak: a real move
    assert not compare(recipe, "fp32", "fake", [{"heatmaps": ref}], [{"heatmaps": shifted}]).task.passed
