"""Verify stage: compare a runner's outputs with the PyTorch reference under DESIGN.md §4.

Pure numpy: the reference outputs and the candidate outputs come in as dicts per sample, so the
comparison logic is tested on its own with fake runners.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import RecipeError
from ..recipes import Recipe, Tolerance

Outputs = Mapping[str, np.ndarray]


@dataclass
class OutputCheck:
    name: str
    shape: tuple[int, ...]
    max_abs_err: float
    max_abs_ref: float
    cosine: float
    tolerance: dict  # the limits applied: atol (already scaled), rtol, cosine
    error_ratio: float  # worst |Δ| / allowed (fp32) or (1 - cos) / (1 - limit): ≤ 1 passes
    passed: bool
    problem: str | None = None


@dataclass
class TaskCheck:
    name: str
    passed: bool
    value: float
    detail: str


@dataclass
class Verification:
    precision: str
    backend: str
    samples: int
    outputs: list[OutputCheck] = field(default_factory=list)
    task: TaskCheck | None = None
    reference_gflops: float | None = None  # one PyTorch forward pass on one of the inputs (for the run's floor)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs) and (self.task is None or self.task.passed)

    def failures(self) -> list[str]:
        lines = []
        for o in self.outputs:
            if o.passed:
                continue
            if o.problem:
                lines.append(f"{o.name}: {o.problem}")
            else:
                lines.append(f"{o.name}: {_describe(o)}")
        if self.task is not None and not self.task.passed:
            lines.append(f"task check {self.task.name}: {self.task.detail}")
        return lines

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        return data


def _describe(o: OutputCheck) -> str:
    if "atol" in o.tolerance:
        return (
            f"max |Δ| {o.max_abs_err:.3g} (max |ref| {o.max_abs_ref:.3g}), "
            f"{o.error_ratio:.2f}x the allowed atol {o.tolerance['atol']:.3g} + rtol {o.tolerance['rtol']:.3g}·|ref|"
        )
    return f"cosine {o.cosine:.6f} < {o.tolerance['cosine']} (max |Δ| {o.max_abs_err:.3g})"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def check_output(name: str, ref: np.ndarray, got: np.ndarray | None, tol: Tolerance) -> OutputCheck:
    if got is None:
        return OutputCheck(name, tuple(ref.shape), np.inf, 0.0, 0.0, {}, np.inf, False, "missing from the artifact's outputs")
    if tuple(got.shape) != tuple(ref.shape):
        return OutputCheck(
            name, tuple(ref.shape), np.inf, 0.0, 0.0, {}, np.inf, False,
            f"shape {tuple(got.shape)} differs from PyTorch's {tuple(ref.shape)}",
        )
    ref64 = ref.astype(np.float64)
    got64 = got.astype(np.float64)
    if not np.all(np.isfinite(got64)):
        return OutputCheck(name, tuple(ref.shape), np.inf, 0.0, 0.0, {}, np.inf, False, "non-finite values (NaN/Inf)")
    diff = np.abs(got64 - ref64)
    max_abs_ref = float(np.abs(ref64).max()) if ref64.size else 0.0
    max_abs_err = float(diff.max()) if diff.size else 0.0
    cos = cosine(ref64, got64)
    if tol.atol is not None:
        atol = tol.atol * max(1.0, max_abs_ref)
        rtol = tol.rtol or 0.0
        allowed = atol + rtol * np.abs(ref64)
        ratio = float((diff / allowed).max()) if diff.size else 0.0
        limits = {"atol": atol, "rtol": rtol}
        passed = ratio <= 1.0
    else:
        limit = tol.cosine
        ratio = (1 - cos) / max(1 - limit, 1e-12)
        limits = {"cosine": limit}
        passed = cos >= limit
    return OutputCheck(name, tuple(ref.shape), max_abs_err, max_abs_ref, cos, limits, ratio, passed)


def _presence(name: str, ref: np.ndarray | Outputs, got: Outputs) -> OutputCheck:
    """For set-valued outputs (detections): the artifact must have the output, at PyTorch's shape."""
    shape = tuple(ref[name].shape)
    problem = None
    if got.get(name) is None:
        problem = "missing from the artifact's outputs"
    elif tuple(got[name].shape) != shape:
        problem = f"shape {tuple(got[name].shape)} differs from PyTorch's {shape}"
    return OutputCheck(name, shape, 0.0, 0.0, 1.0, {}, 0.0 if problem is None else np.inf, problem is None, problem)


def _worst(checks: Sequence[OutputCheck]) -> OutputCheck:
    """Fold one output's checks over several samples into the worst case."""
    failed = [c for c in checks if c.problem]
    if failed:
        return failed[0]
    worst = max(checks, key=lambda c: c.error_ratio)
    worst.max_abs_err = max(c.max_abs_err for c in checks)
    worst.max_abs_ref = max(c.max_abs_ref for c in checks)
    worst.cosine = min(c.cosine for c in checks)
    return worst


# ---- task checks: each takes (recipe, precision, refs, gots) and returns a TaskCheck -------------


def _tie_margin(tol: Tolerance, ref: np.ndarray) -> float:
    """How far apart two of PyTorch's scores may be and still swap under the precision's admitted
    error: the fp32 atol, or for a cosine tolerance c the per-value RMS error that still gives cosine
    c (|ref|_rms · sqrt(2(1 - c))); both values may move by it."""
    if tol.atol is not None:
        return 2 * tol.atol * max(1.0, float(np.abs(ref).max()))
    return 2 * float(np.sqrt(np.mean(ref**2))) * np.sqrt(2 * (1 - tol.cosine))


def _top1(recipe: Recipe, precision: str, refs: list[Outputs], gots: list[Outputs]) -> TaskCheck:
    """Top-1 agreement. Where PyTorch's own top logits are closer than the error the precision's
    tolerance admits (_tie_margin), either class is an acceptable answer: such a tie says nothing
    about the artifact."""
    name = recipe.outputs[0]
    tol = recipe.tolerance(precision, name)
    agree = total = 0
    for ref, got in zip(refs, gots):
        r = ref[name].reshape(ref[name].shape[0], -1).astype(np.float64)
        g = got[name].reshape(got[name].shape[0], -1).astype(np.float64)
        for row_r, row_g in zip(r, g):
            margin = _tie_margin(tol, row_r)
            total += 1
            best, chosen = int(row_r.argmax()), int(row_g.argmax())
            agree += best == chosen or row_r[best] - row_r[chosen] <= margin
    rate = agree / max(total, 1)
    return TaskCheck("top1", rate == 1.0, rate, f"top-1 agreement {agree}/{total}")


def _cosine_per_level(recipe: Recipe, precision: str, refs: list[Outputs], gots: list[Outputs]) -> TaskCheck:
    limit = recipe.tolerance(precision, recipe.outputs[0]).cosine or 0.99999
    worst_name, worst = None, 1.0
    for name in recipe.outputs:
        for ref, got in zip(refs, gots):
            if name in got and got[name].shape == ref[name].shape:
                c = cosine(ref[name], got[name])
                if c < worst:
                    worst_name, worst = name, c
    detail = f"lowest level cosine {worst:.6f}" + (f" ({worst_name})" if worst_name else "")
    return TaskCheck("cosine-per-level", worst >= limit, worst, detail)


RAW_HEADS_MIN_VALUES = 16


def _raw_heads(recipe: Recipe, precision: str, refs: list[Outputs], gots: list[Outputs]) -> TaskCheck:
    """Cosine per head output after subtracting PyTorch's mean of that output from both sides. A head
    whose values sit on a constant bias (focal-loss class logits start at -4.6) has a plain cosine
    near 1 whatever happens to the signal on top of it; the centred cosine measures that signal.
    One mean per output, not per channel: a 1x1 level (P7 of a small input) would keep nothing of its
    signal but the difference between the samples. Outputs of fewer than RAW_HEADS_MIN_VALUES values
    per sample (a 1x1 one-channel map) have no signal to centre: their plain cosine is checked."""
    limit = recipe.tolerance(precision, recipe.outputs[0]).cosine or 0.99999
    worst_name, worst = None, 1.0
    for name in recipe.outputs:
        pairs = [(ref[name].astype(np.float64), got[name].astype(np.float64)) for ref, got in zip(refs, gots)
                 if name in got and got[name].shape == ref[name].shape]
        if not pairs:
            continue
        centre = pairs[0][0][0].size >= RAW_HEADS_MIN_VALUES
        mean = float(np.mean([r.mean() for r, _ in pairs])) if centre else 0.0
        for r, g in pairs:
            c = cosine(r - mean, g - mean)
            if c < worst:
                worst_name, worst = name, c
    detail = f"lowest centred cosine {worst:.6f}" + (f" ({worst_name})" if worst_name else "")
    return TaskCheck("raw-heads", worst >= limit, worst, detail)


def _pixel_argmax(recipe: Recipe, precision: str, refs: list[Outputs], gots: list[Outputs]) -> TaskCheck:
    """Per-pixel class agreement of the first output (N, classes, H, W). As for top-1, a pixel whose
    two best PyTorch scores are closer than the admitted error counts as agreeing; the rate must
    reach the recipe's `task_min_agreement` for the precision."""
    name = recipe.outputs[0]
    tol = recipe.tolerance(precision, name)
    agree = total = 0
    for ref, got in zip(refs, gots):
        r, g = ref[name].astype(np.float64), got[name].astype(np.float64)
        agreed, counted = _argmax_agreement(r, g, axis=1, margin=_tie_margin(tol, r))
        agree, total = agree + agreed, total + counted
    rate = agree / max(total, 1)
    needed = recipe.task_min_agreement.get(precision, 1.0)
    return TaskCheck("pixel-argmax", rate >= needed, rate,
                     f"pixel argmax agreement {rate:.4%} ({agree}/{total}; needs {needed:.2%})")


def _argmax_agreement(r: np.ndarray, g: np.ndarray, axis: int, margin: float) -> tuple[int, int]:
    """(agreeing, total) argmaxes along `axis`: the same index, or one whose PyTorch value is within
    `margin` of PyTorch's maximum (a tie)."""
    best, chosen = r.argmax(axis=axis), g.argmax(axis=axis)
    gap = (np.take_along_axis(r, np.expand_dims(best, axis), axis).squeeze(axis)
           - np.take_along_axis(r, np.expand_dims(chosen, axis), axis).squeeze(axis))
    return int(np.count_nonzero((best == chosen) | (gap <= margin))), best.size


def _embedding_cosine(recipe: Recipe, precision: str, refs: list[Outputs], gots: list[Outputs]) -> TaskCheck:
    """Face recognition compares faces by the angle between embeddings: every sample's embedding (a
    row of the first output) must keep the precision's cosine, not just the batch as a whole."""
    name = recipe.outputs[0]
    limit = recipe.tolerance(precision, name).cosine or 0.99999
    worst, count = 1.0, 0
    for ref, got in zip(refs, gots):
        r = ref[name].reshape(ref[name].shape[0], -1)
        g = got[name].reshape(got[name].shape[0], -1)
        for row_r, row_g in zip(r, g):
            worst, count = min(worst, cosine(row_r, row_g)), count + 1
    return TaskCheck("embedding-cosine", worst >= limit, worst,
                     f"lowest per-sample embedding cosine {worst:.6f} over {count} samples (needs {limit})")


def _heatmap_peaks(recipe: Recipe, precision: str, refs: list[Outputs], gots: list[Outputs]) -> TaskCheck:
    """Pose: the peak (argmax) of every keypoint's heatmap, per sample, must sit where PyTorch's does.
    As for top-1, a peak that moved to a location whose PyTorch value is within the admitted error of
    PyTorch's own maximum is a tie and agrees. The rate must reach `task_min_agreement`."""
    name = recipe.outputs[0]
    tol = recipe.tolerance(precision, name)
    agree = total = 0
    for ref, got in zip(refs, gots):
        r = ref[name].astype(np.float64).reshape(*ref[name].shape[:2], -1)
        g = got[name].astype(np.float64).reshape(*got[name].shape[:2], -1)
        agreed, counted = _argmax_agreement(r, g, axis=2, margin=_tie_margin(tol, r))
        agree, total = agree + agreed, total + counted
    rate = agree / max(total, 1)
    needed = recipe.task_min_agreement.get(precision, 1.0)
    return TaskCheck("heatmap-peaks", rate >= needed, rate,
                     f"heatmap peaks at PyTorch's location {agree}/{total} ({rate:.2%}; needs {needed:.0%})")


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _image_detections(out: Outputs, image: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = int(out["num_dets"][image].reshape(-1)[0])
    return out["boxes"][image, :n].astype(np.float64), out["scores"][image, :n], out["classes"][image, :n]


def _match(ref_boxes, ref_classes, got_boxes, got_classes, min_iou: float) -> list[tuple[int, int]]:
    """Greedy matching in the reference's (score) order: same class, best IoU, at least min_iou."""
    pairs, used = [], np.zeros(len(got_boxes), dtype=bool)
    for i, (box, cls) in enumerate(zip(ref_boxes, ref_classes)):
        if not len(got_boxes):
            break
        ious = np.where((got_classes == cls) & ~used, _iou(box, got_boxes), -1.0)
        j = int(ious.argmax())
        if ious[j] >= min_iou:
            used[j] = True
            pairs.append((i, j))
    return pairs


def _detections(recipe: Recipe, precision: str, refs: list[Outputs], gots: list[Outputs]) -> TaskCheck:
    """End-to-end detections against PyTorch's decode + torchvision NMS: boxes matched by class and IoU
    (>= 0.9 in fp32, >= 0.5 otherwise). A detection whose score lies within the precision's admitted
    error of the score threshold, or of the K-th kept score, may be present on one side only: which
    side of the line it falls on says nothing about the artifact. The matched share must reach the
    recipe's `task_min_agreement`; decode's extra outputs (e.g. contours) of matched detections must
    meet the precision's tolerance."""
    spec = recipe.end2end
    tol = recipe.tolerance(precision, "scores")
    min_iou = 0.9 if precision == "fp32" else 0.5
    matched = compared = ref_total = 0
    extra_refs: dict[str, list] = {name: [] for name in spec.extras}
    extra_gots: dict[str, list] = {name: [] for name in spec.extras}
    for ref, got in zip(refs, gots):
        for image in range(ref["num_dets"].shape[0]):
            rb, rs, rc = _image_detections(ref, image)
            gb, gs, gc = _image_detections(got, image)
            ref_total += len(rb)
            pairs = _match(rb, rc, gb, gc, min_iou)
            if tol.atol is not None:
                margin = tol.atol + (tol.rtol or 0.0)
            else:
                margin = float(np.sqrt(2 * (1 - tol.cosine)))  # a score in [0, 1] may move this far
            cutoff = float(rs[-1]) if len(rs) == spec.max_detections else None

            def borderline(score: float) -> bool:
                near_cut = cutoff is not None and abs(score - cutoff) <= margin
                return abs(score - spec.score_threshold) <= margin or near_cut

            loose_ref = {i for i in range(len(rb)) if borderline(float(rs[i]))} - {i for i, _ in pairs}
            loose_got = {j for j in range(len(gb)) if borderline(float(gs[j]))} - {j for _, j in pairs}
            matched += len(pairs)
            compared += max(len(rb) - len(loose_ref), len(gb) - len(loose_got), len(pairs))
            for name in spec.extras:
                extra_refs[name] += [ref[name][image, i] for i, _ in pairs]
                extra_gots[name] += [got[name][image, j] for _, j in pairs]
    if ref_total == 0:
        return TaskCheck("detections", False, 0.0, "PyTorch gave no detections on the samples: the check would be vacuous")
    rate = matched / max(compared, 1)
    needed = recipe.task_min_agreement.get(precision, 1.0)
    detail = f"{matched}/{compared} detections matched at IoU >= {min_iou} ({rate:.2%}; needs {needed:.0%})"
    passed = rate >= needed
    for name in spec.extras:
        if extra_refs[name]:
            check = check_output(name, np.stack(extra_refs[name]), np.stack(extra_gots[name]),
                                 recipe.tolerance(precision, name))
            detail += f"; {name} of matched detections: " + ("ok" if check.passed else _describe(check))
            passed = passed and check.passed
    return TaskCheck("detections", passed, rate, detail)


def _keypoints(recipe: Recipe, precision: str, refs: list[Outputs], gots: list[Outputs]) -> TaskCheck:
    """A pose --end2end graph: each keypoint must land within half a heatmap cell of PyTorch's (a
    peak in the same cell; the quarter-cell refinement may differ), at the recipe's rate; the scores
    of all keypoints keep the precision's tolerance."""
    cell = np.asarray(recipe.keypoint_cell, dtype=np.float64)
    agree = total = 0
    for ref, got in zip(refs, gots):
        moved = np.abs(got["keypoints"].astype(np.float64) - ref["keypoints"].astype(np.float64))
        agree += int(np.count_nonzero((moved <= cell / 2 + 1e-6 * cell).all(axis=-1)))
        total += moved.shape[0] * moved.shape[1]
    rate = agree / max(total, 1)
    needed = recipe.task_min_agreement.get(precision, 1.0)
    scores = check_output("scores", np.concatenate([r["scores"] for r in refs]),
                          np.concatenate([g["scores"] for g in gots]), recipe.tolerance(precision, "scores"))
    detail = (f"keypoints within half a heatmap cell {agree}/{total} ({rate:.2%}; needs {needed:.0%}); scores "
              + ("ok" if scores.passed else _describe(scores)))
    return TaskCheck("keypoints", rate >= needed and scores.passed, rate, detail)


TASK_CHECKS: dict[str, Callable[..., TaskCheck]] = {
    "top1": _top1,
    "cosine-per-level": _cosine_per_level,
    "raw-heads": _raw_heads,  # decode + NMS are checked on the --end2end graph (detections)
    "pixel-argmax": _pixel_argmax,
    "detections": _detections,
    "embedding-cosine": _embedding_cosine,
    "heatmap-peaks": _heatmap_peaks,
    "keypoints": _keypoints,  # pose --end2end graphs
}
# checks that judge the outputs themselves (detection sets, keypoint locations): the outputs are
# checked for presence and shape only
SET_CHECKS = {"detections", "keypoints"}


def compare(
    recipe: Recipe,
    precision: str,
    backend: str,
    references: Iterable[Outputs],
    candidates: Iterable[Outputs],
) -> Verification:
    refs, gots = list(references), list(candidates)
    result = Verification(precision=precision, backend=backend, samples=len(refs))
    for name in recipe.outputs:
        if recipe.task_check in SET_CHECKS:
            result.outputs.extend(_presence(name, ref, got) for ref, got in zip(refs[:1], gots[:1]))
            continue
        tol = recipe.tolerance(precision, name)
        checks = [check_output(name, ref[name], got.get(name), tol) for ref, got in zip(refs, gots)]
        result.outputs.append(_worst(checks))
    if recipe.task_check not in TASK_CHECKS:
        raise RecipeError(f"recipe {recipe.name!r}: task check {recipe.task_check!r} is not implemented")
    if all(o.problem is None for o in result.outputs):
        result.task = TASK_CHECKS[recipe.task_check](recipe, precision, refs, gots)
    return result
