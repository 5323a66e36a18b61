"""Real accuracy: LeNet-5 trained on scikit-learn's digits, held-out accuracy per exported precision.

The bounds are the project's acceptance criteria (PyTorch FP32 at least 95%; ONNX FP32 equal to it;
FP16 within 0.2 points; INT8 within 1 point), not values measured from the code under test.
"""

from __future__ import annotations

import numpy as np

from netexport.data import normalize
from netexport.evaluation import digits
from netexport.pipeline.precision import CALIBRATION_METHODS
from netexport.recipes import get_recipe

N_DIGITS = 1797  # scikit-learn's load_digits: the UCI optdigits test set


def test_digits_are_32x32_normalised_and_split_stratified():
    x_train, y_train, x_test, y_test = digits.load_digits_32(seed=0)
    recipe = get_recipe("lenet5")
    assert x_train.dtype == x_test.dtype == np.float32
    assert x_train.shape[1:] == x_test.shape[1:] == tuple(recipe.primary_input.shape[1:])
    assert len(x_train) + len(x_test) == len(y_train) + len(y_test) == N_DIGITS
    assert 0.15 < len(x_test) / N_DIGITS < 0.25
    # every class in both splits, in the same proportions (stratified)
    train_share = np.bincount(y_train, minlength=10) / len(y_train)
    test_share = np.bincount(y_test, minlength=10) / len(y_test)
    assert np.abs(train_share - test_share).max() < 0.01
    # the recipe's normalisation was applied to pixels in [0, 1]: background 0, ink up to 1
    background = normalize(np.zeros((1, 1, 1, 1), np.float32), recipe.normalization).item()
    ink = normalize(np.ones((1, 1, 1, 1), np.float32), recipe.normalization).item()
    everything = np.concatenate([x_train, x_test])
    assert everything.min() >= background - 1e-5 and everything.max() <= ink + 1e-5
    assert everything.max() > background + 0.9 * (ink - background)
    # the digit sits inside the field: a border of pure background all round
    assert np.allclose(everything[..., :2, :], background) and np.allclose(everything[..., -2:, :], background)
    assert np.allclose(everything[..., :2], background) and np.allclose(everything[..., -2:], background)
    # the split is seeded
    again = digits.load_digits_32(seed=0)
    assert np.array_equal(again[0], x_train) and np.array_equal(again[3], y_test)


def test_training_is_deterministic():
    x_train, y_train, _, _ = digits.load_digits_32(seed=0)
    first = digits.train_lenet5(x_train[:128], y_train[:128], epochs=1, seed=3).state_dict()
    second = digits.train_lenet5(x_train[:128], y_train[:128], epochs=1, seed=3).state_dict()
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[k].numpy(), second[k].numpy()) for k in first)


def test_lenet5_digits_accuracy_per_precision(tmp_path):
    # One test, not a module fixture: under pytest-xdist a module fixture would train on every worker.
    data = digits.load_digits_32(seed=0)
    model = digits.train_lenet5(data[0], data[1], seed=0)
    result = digits.evaluate(model, tmp_path, data)
    points = {k: result[k] * 100 for k in ("pytorch-fp32", "onnx-fp32", "onnx-fp16", "onnx-int8")}
    by_method = {m: acc * 100 for m, acc in result["int8_by_method"].items()}
    summary = f"accuracy % {points}, INT8 by calibration method {by_method}"

    assert result["test_samples"] == len(data[3]) and result["train_samples"] == len(data[1]), summary
    assert set(by_method) == set(CALIBRATION_METHODS), summary
    assert result["calibration"]["source"].startswith("npz:"), result["calibration"]
    assert result["calibration"]["samples"] > 0, result["calibration"]
    fp32 = points["pytorch-fp32"]
    assert fp32 >= 95.0, summary
    assert abs(points["onnx-fp32"] - fp32) <= 0.1, summary
    assert abs(points["onnx-fp16"] - fp32) <= 0.2, summary
    assert abs(points["onnx-int8"] - fp32) <= 1.0, summary
    for method, acc in by_method.items():
        assert abs(acc - fp32) <= 1.0, f"INT8 {method}: {summary}"
    for precision in ("fp32", "fp16", "int8"):
        assert any(p.name.endswith(".onnx") and precision in p.name for p in tmp_path.iterdir())
