"""LeNet-5 on scikit-learn's handwritten digits: held-out accuracy of PyTorch FP32 vs ONNX FP32/FP16/INT8.

The data ships inside scikit-learn (no download): 1,797 8x8 digits with values 0..16 (UCI optdigits
test set). Each image is scaled to [0, 1], upsampled bilinearly to 28x28 and centred in a 32x32 field
of background, as LeCun et al. (1998) centre 28x28 MNIST digits in LeNet-5's 32x32 input, then
normalised with the lenet recipe's own normalisation. A seeded stratified split keeps 20% held out.

`train_lenet5` trains the zoo's LeNet-5 with cross-entropy, deterministically for a given seed and
thread count. `evaluate` saves the weights, exports them through the real pipeline (`run_onnx`, with
its verification) at each precision — INT8 calibrated on the training split, once per calibration
method — and measures every artifact's accuracy on the held-out split with ONNX Runtime.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

MODEL = "lenet5"
DIGIT_SIZE = 28  # the digit's box inside the 32x32 field (paper: 28x28 MNIST digits in 32x32)
TEST_FRACTION = 0.2
EPOCHS = 12
BATCH_SIZE = 32
LEARNING_RATE = 2e-3
CALIB_SAMPLES = 256
SHIFT = 2  # augmentation: random translation by up to this many pixels


def digits_pixels() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as float32 [N, 1, 32, 32] pixels in [0, 1] (ink 1, background 0), and labels."""
    import torch
    from sklearn.datasets import load_digits

    from ..recipes import get_recipe

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]  # [N, 1, 8, 8], 0..16 → 0..1
    up = torch.nn.functional.interpolate(images, size=(DIGIT_SIZE, DIGIT_SIZE), mode="bilinear", align_corners=False)
    size = get_recipe(MODEL).primary_input.shape[-1]  # 32
    pad = (size - DIGIT_SIZE) // 2
    field = torch.nn.functional.pad(up, (pad, size - DIGIT_SIZE - pad, pad, size - DIGIT_SIZE - pad))
    return field.clamp_(0.0, 1.0).numpy(), digits.target.astype(np.int64)


def load_digits_32(seed: int = 0, test_fraction: float = TEST_FRACTION):
    """(x_train, y_train, x_test, y_test): normalised float32 [N, 1, 32, 32] inputs and int64 labels,
    split stratified by class with a seeded shuffle."""
    from sklearn.model_selection import train_test_split

    from ..data import normalize
    from ..recipes import get_recipe

    pixels, labels = digits_pixels()
    x = normalize(pixels, get_recipe(MODEL).normalization)
    x_train, x_test, y_train, y_test = train_test_split(
        x, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    return (np.ascontiguousarray(x_train), y_train, np.ascontiguousarray(x_test), y_test)


def _shifted(x, shift: int, gen):
    """Each image translated by its own random (dy, dx) in [-shift, shift], background filling in."""
    import torch

    if shift <= 0:
        return x
    n, _, h, w = x.shape
    background = float(x[0, 0, 0, 0])  # the field's corner is always background
    padded = torch.nn.functional.pad(x, (shift, shift, shift, shift), value=background)
    offsets = torch.randint(0, 2 * shift + 1, (n, 2), generator=gen).tolist()
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


def train_lenet5(x_train, y_train, epochs: int = EPOCHS, seed: int = 0, batch_size: int = BATCH_SIZE,
                 lr: float = LEARNING_RATE, shift: int = SHIFT, threads: int | None = None):
    """The zoo's LeNet-5 trained with Adam + cross-entropy on the logits, cosine-decayed learning rate,
    each image shifted by up to `shift` pixels (without it: 100% train, ~96.5% held out; with 2: ~98.8%).

    Deterministic for a given seed and thread count: the model's init and the shuffling use seeded
    generators. `threads` sets torch's intra-op threads for the duration (None: leave as is).
    Returns the model in eval mode.
    """
    import torch

    from ..numerics import torch_threads
    from ..zoo import create_model

    with torch_threads(threads):
        model = create_model(MODEL, seed=seed)
        x = torch.from_numpy(np.asarray(x_train, dtype=np.float32))
        y = torch.from_numpy(np.asarray(y_train, dtype=np.int64))
        gen = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        steps = epochs * ((len(x) + batch_size - 1) // batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        loss_fn = torch.nn.CrossEntropyLoss()
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), batch_size):
                idx = order[start:start + batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(_shifted(x[idx], shift, gen)), y[idx])
                loss.backward()
                optimizer.step()
                schedule.step()
    return model.eval()


def torch_logits(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i:i + batch_size])).numpy()
                               for i in range(0, len(x), batch_size)])


def onnx_logits(artifact: Path, x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """The artifact's output for every sample, run one at a time (the exported graph has batch 1)."""
    from ..backends.onnxruntime import OnnxRuntimeRunner
    from ..recipes import get_recipe

    recipe = get_recipe(MODEL)
    input_name, output_name = recipe.primary_input.name, recipe.outputs[0]
    with OnnxRuntimeRunner(str(artifact), threads=threads) as runner:
        return np.concatenate([runner.infer({input_name: x[i:i + 1]})[output_name] for i in range(len(x))])


def accuracy_of(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


def _export(workdir: Path, weights: Path, precision: str, calib: dict | None = None, tag: str | None = None):
    from ..pipeline.to_onnx import OnnxRequest, run_onnx

    output = workdir / f"{MODEL}.{tag or precision}.onnx"
    result = run_onnx(OnnxRequest(MODEL, output=output, weights=weights, precision=precision, **(calib or {})))
    if not result.verified or not result.passed or result.artifact is None:
        raise RuntimeError(f"{MODEL} {tag or precision} export failed verification: " + "; ".join(result.failures()))
    return result


def evaluate(model, workdir, data, calib_samples: int = CALIB_SAMPLES, calib_method: str | None = None,
             methods: tuple[str, ...] | None = None, threads: int | None = None) -> dict:
    """Held-out accuracy of a trained LeNet-5 in PyTorch FP32 and as verified ONNX FP32/FP16/INT8.

    `data` is (x_train, y_train, x_test, y_test) from `load_digits_32`. The INT8 artifacts are
    calibrated on the first `calib_samples` of the training split; "onnx-int8" uses `calib_method`
    (default: the recipe's), and "int8_by_method" holds every method in `methods` (default: all).
    Accuracies are fractions in [0, 1]. Raises if any export fails its verification.
    """
    import torch

    from ..pipeline.precision import CALIBRATION_METHODS
    from ..recipes import get_recipe

    x_train, y_train, x_test, y_test = data
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    weights = workdir / f"{MODEL}-digits.pt"
    torch.save(model.state_dict(), weights)
    calib_npz = workdir / "digits-train.npz"
    np.savez(calib_npz, **{get_recipe(MODEL).primary_input.name: np.asarray(x_train, dtype=np.float32)})
    default_method = calib_method or get_recipe(MODEL).calib_method
    methods = tuple(methods or CALIBRATION_METHODS)
    if default_method not in methods:
        methods = (default_method, *methods)

    reference = torch_logits(model, x_test)
    accuracy = {"pytorch-fp32": accuracy_of(reference, y_test)}
    agreement, logit_error = {}, {}
    export_seconds, infer_seconds = {}, {}

    def measure(key: str, artifact: Path) -> float:
        start = time.perf_counter()
        logits = onnx_logits(artifact, x_test, threads=threads)
        infer_seconds[key] = time.perf_counter() - start
        agreement[key] = float((logits.argmax(1) == reference.argmax(1)).mean())
        logit_error[key] = float(np.abs(logits - reference).max())
        return accuracy_of(logits, y_test)

    for precision in ("fp32", "fp16"):
        start = time.perf_counter()
        result = _export(workdir, weights, precision)
        export_seconds[f"onnx-{precision}"] = time.perf_counter() - start
        accuracy[f"onnx-{precision}"] = measure(f"onnx-{precision}", result.artifact)

    by_method = {}
    calibration = None
    for method in methods:
        key = f"onnx-int8-{method}"
        start = time.perf_counter()
        result = _export(workdir, weights, "int8", tag=f"int8-{method}",
                         calib={"calib_data": calib_npz, "calib_samples": calib_samples, "calib_method": method})
        export_seconds[key] = time.perf_counter() - start
        by_method[method] = measure(key, result.artifact)
        if method == default_method:
            calibration = dict(result.precision_info.calibration)
    accuracy["onnx-int8"] = by_method[default_method]

    return {
        **accuracy,
        "int8_by_method": by_method,
        "calibration": calibration,
        "calib_method": default_method,
        "calib_samples": calibration["samples"] if calibration else calib_samples,
        "agreement_with_pytorch": agreement,  # fraction of test samples with PyTorch's top-1
        "max_logit_error": logit_error,  # max |ONNX - PyTorch| over all test logits
        "train_samples": int(len(x_train)),
        "test_samples": int(len(x_test)),
        "export_seconds": export_seconds,
        "inference_seconds": infer_seconds,
    }
