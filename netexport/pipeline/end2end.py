"""End-to-end detection graphs: raw heads → decode → NMS → fixed-size detections, in one ONNX graph.

A detector's `decode` (contract in netexport.zoo.detection.boxes) turns its raw outputs into per-candidate
boxes and class scores. `End2End` adds the suppression: while exporting it emits ONNX
NonMaxSuppression (which TensorRT parses into its NMS layer, no plugin), then ranks the kept boxes per
image and pads them to K, giving the layout TensorRT's EfficientNMS made standard:

    num_dets [B, 1] int32 · boxes [B, K, 4] · scores [B, K] · classes [B, K] int32 (+ extras [B, K, ...])

Before suppression the best `pre_nms_top_k` (box, class) pairs above the score threshold are kept,
as detectors' papers do at inference. Run eagerly, `End2End` is the PyTorch reference instead: the
same decode followed by torchvision's batched NMS, an independent implementation the exported graph
is verified against.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch
from torch import nn

from ..errors import InputError
from ..numerics import fixed_threads
from ..recipes import End2EndSpec as NmsSettings  # K (also the per-class NMS cap), score and IoU thresholds
from ..recipes import Recipe

OUTPUTS = ("num_dets", "boxes", "scores", "classes")
NMS_OPS = ("onnx", "loop")
TASKS = ("detection", "face-detection", "instance-segmentation")
# Random weights put no meaning in the recipe's score threshold: when it leaves PyTorch no detection
# (or K of them) on the verification input, the check moves it so this share of K survive instead.
RANDOM_INIT_TARGET = 0.5


def nms_for_backend(recipe: Recipe, backend: str) -> str | None:
    """Which suppression a detector's end-to-end graph uses for `backend`: "loop" for TensorRT-RTX,
    which has no NMS layer, "onnx" (NonMaxSuppression) elsewhere; None for a recipe without NMS."""
    if recipe.end2end is None:
        return None
    return "loop" if backend == "tensorrt-rtx" else "onnx"


def settings_for(recipe: Recipe, max_detections: int | None = None, score_threshold: float | None = None,
                 iou_threshold: float | None = None) -> NmsSettings:
    """The recipe's end2end settings with the caller's overrides, validated (usage errors are exit 2)."""
    if recipe.end2end is None:
        kind = "detector" if recipe.task in TASKS else f"{recipe.task} model"
        raise InputError(f"--end2end needs a detector with decode settings in its recipe; {recipe.name} is a {kind} without them")
    spec = recipe.end2end
    if max_detections is not None and max_detections < 1:
        raise InputError(f"--max-detections must be >= 1, got {max_detections}")
    if score_threshold is not None and not 0 <= score_threshold < 1:
        raise InputError(f"--score-threshold must be in [0, 1), got {score_threshold}")
    if iou_threshold is not None and not 0 < iou_threshold <= 1:
        raise InputError(f"--iou-threshold must be in (0, 1], got {iou_threshold}")
    k = spec.max_detections if max_detections is None else max_detections
    return dataclasses.replace(
        spec,
        max_detections=k,
        pre_nms_top_k=max(spec.pre_nms_top_k, k),
        score_threshold=spec.score_threshold if score_threshold is None else score_threshold,
        iou_threshold=spec.iou_threshold if iou_threshold is None else iou_threshold,
    )


def end2end_recipe(recipe: Recipe, settings: NmsSettings) -> Recipe:
    """The recipe of the end-to-end graph: its outputs are detections, checked as sets."""
    return dataclasses.replace(recipe, outputs=(*OUTPUTS, *settings.extras), task_check="detections",
                               end2end=settings, output_tolerances={})


def realistic_threshold(model: nn.Module, samples: list[torch.Tensor], settings: NmsSettings) -> tuple[float, str]:
    """A score threshold that leaves PyTorch some detections but fewer than K on every sample.

    Trained weights keep the recipe's threshold. Random weights may score every candidate below it
    (or hundreds above it); then the threshold becomes the score at which about RANDOM_INIT_TARGET·K
    candidates of the first sample survive, and the returned note says so."""
    counts = [int(reference_detections(model, x, settings)["num_dets"].min()) for x in samples]
    if all(0 < c < settings.max_detections for c in counts):
        return settings.score_threshold, ""
    with torch.no_grad(), fixed_threads():
        scores = model.decode(model(samples[0]), tuple(samples[0].shape[-2:]))["scores"][0]
    best = scores.max(dim=1).values.sort(descending=True).values
    rank = min(int(settings.max_detections * RANDOM_INIT_TARGET), best.numel() - 1)
    chosen = float(best[rank])
    note = (f"score threshold {chosen:.4g} instead of the recipe's {settings.score_threshold:g}, which left "
            f"PyTorch {counts} detections of K={settings.max_detections} on the verification inputs")
    return chosen, note


def reference_detections(model: nn.Module, x: torch.Tensor, settings: NmsSettings) -> dict[str, torch.Tensor]:
    """Decode + torchvision batched NMS per image, top-K by score, padded: the PyTorch reference."""
    with torch.no_grad(), fixed_threads():
        candidates = model.decode(model(x), tuple(x.shape[-2:]))
    return _select_eager(candidates, settings)


def _select_eager(candidates: dict[str, torch.Tensor], settings: NmsSettings) -> dict[str, torch.Tensor]:
    from torchvision.ops import batched_nms

    boxes, scores = candidates["boxes"], candidates["scores"]
    extras = {k: v for k, v in candidates.items() if k not in ("boxes", "scores")}
    k = settings.max_detections
    batch, _, num_classes = scores.shape
    out = {
        "num_dets": torch.zeros(batch, 1, dtype=torch.int32),
        "boxes": torch.zeros(batch, k, 4),
        "scores": torch.zeros(batch, k),
        "classes": torch.zeros(batch, k, dtype=torch.int32),
        **{name: torch.zeros(batch, k, *t.shape[2:], dtype=t.dtype) for name, t in extras.items()},
    }
    for b in range(batch):
        # the best pre_nms_top_k (candidate, class) pairs above the threshold compete
        cand, cls = torch.nonzero(scores[b] > settings.score_threshold, as_tuple=True)
        pair_scores = scores[b, cand, cls]
        best = pair_scores.argsort(descending=True)[: settings.pre_nms_top_k]
        cand, cls, pair_scores = cand[best], cls[best], pair_scores[best]
        keep = batched_nms(boxes[b, cand].float(), pair_scores.float(), cls, settings.iou_threshold)[:k]
        n = int(keep.numel())
        out["num_dets"][b, 0] = n
        out["boxes"][b, :n] = boxes[b, cand[keep]]
        out["scores"][b, :n] = pair_scores[keep]
        out["classes"][b, :n] = cls[keep].to(torch.int32)
        for name, t in extras.items():
            out[name][b, :n] = t[b, cand[keep]]
    return out


class _OnnxNms(torch.autograd.Function):
    """ONNX NonMaxSuppression over boxes [B, M, 4] and scores [B, C, M] → selected [S, 3] (batch, class, box).

    Only traced during export; the eager value (torchvision) just gives the tracer real tensors."""

    @staticmethod
    def forward(ctx, boxes, scores, cap: int, iou: float, score: float):
        from torchvision.ops import batched_nms

        rows = []
        for b in range(boxes.shape[0]):
            cls, cand = torch.nonzero(scores[b] > score, as_tuple=True)
            keep = batched_nms(boxes[b, cand], scores[b, cls, cand], cls, iou)
            rows.append(torch.stack((torch.full_like(keep, b), cls[keep], cand[keep]), dim=1))
        return torch.cat(rows)

    @staticmethod
    def symbolic(g, boxes, scores, cap: int, iou: float, score: float):
        const = lambda value, dtype: g.op("Constant", value_t=torch.tensor([value], dtype=dtype))  # noqa: E731
        return g.op("NonMaxSuppression", boxes, scores, const(cap, torch.int64),
                    const(iou, torch.float32), const(score, torch.float32), center_point_box_i=0)


def _greedy_keep_loop(suppresses: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Greedy NMS over score-sorted pairs: suppresses [B, M, M] (pair i would suppress pair j), keep [B, M]
    the pairs above the threshold. Pair i, once known to be kept, removes every later pair it suppresses.
    Scripted, so the export is one ONNX Loop of M steps (exact, whatever the overlaps)."""
    later = torch.arange(keep.shape[1])
    for i in range(keep.shape[1]):
        keep = keep & ~(suppresses[:, i, :] & keep[:, i].unsqueeze(1) & (later > i))
    return keep


with warnings.catch_warnings():  # torch.jit.script is deprecated, but it is what makes the export a Loop
    warnings.simplefilter("ignore", FutureWarning)
    _greedy_keep = torch.jit.script(_greedy_keep_loop)


def _pairwise_iou(boxes: torch.Tensor) -> torch.Tensor:
    """[B, M, 4] → [B, M, M]."""
    area = (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    top_left = torch.maximum(boxes[:, :, None, :2], boxes[:, None, :, :2])
    bottom_right = torch.minimum(boxes[:, :, None, 2:], boxes[:, None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area[:, :, None] + area[:, None, :] - inter
    return inter / union.clamp(min=1e-9)


def _select_graph(candidates: dict[str, torch.Tensor], settings: NmsSettings, nms: str) -> dict[str, torch.Tensor]:
    """Pre-select the best pairs, suppress (ONNX NonMaxSuppression or a Loop), keep the K best per
    image, padded — in ops ONNX Runtime and TensorRT both have."""
    boxes, scores = candidates["boxes"], candidates["scores"]
    extras = {k: v for k, v in candidates.items() if k not in ("boxes", "scores")}
    batch, num, num_classes = scores.shape
    k = settings.max_detections
    m = min(settings.pre_nms_top_k, int(num) * int(num_classes))  # ints: traced shapes are tensors
    top_scores, pair = scores.reshape(batch, -1).topk(m, dim=1)  # [B, M], best first
    cand, cls = pair // num_classes, pair % num_classes
    rows = cand + (torch.arange(batch) * num).unsqueeze(1)  # row in the flattened [B*N]
    pair_boxes = _gather_rows(boxes, rows)
    above = top_scores > settings.score_threshold
    if nms == "loop":
        same_class = cls.unsqueeze(2) == cls.unsqueeze(1)
        keep = _greedy_keep((_pairwise_iou(pair_boxes) > settings.iou_threshold) & same_class, above)
    else:
        # one NMS class per pair's class: every other class sees the pair at score -1 (never selected)
        mine = cls.unsqueeze(1) == torch.arange(num_classes).reshape(1, -1, 1)  # [B, C, M]
        class_scores = torch.where(mine, top_scores.unsqueeze(1), torch.full_like(top_scores, -1.0).unsqueeze(1))
        selected = _OnnxNms.apply(pair_boxes, class_scores, m, settings.iou_threshold, settings.score_threshold)
        flat = selected[:, 0] * m + selected[:, 2]
        picked = (flat.unsqueeze(0) == torch.arange(batch * m).unsqueeze(1)).any(dim=1)
        keep = picked.reshape(batch, m) & above
    # pairs are sorted by score, so the K best kept ones are the first K kept; K padding columns make
    # TopK well-defined when fewer than K were kept, or when there are fewer than K pairs at all (M < K):
    # everything from here on is [B, K], whatever M is
    table = torch.cat((torch.where(keep, top_scores, torch.full_like(top_scores, -1.0)),
                       torch.full((batch, k), -1.0)), dim=1)
    best_scores, column = table.topk(k, dim=1)
    valid = best_scores >= 0
    column = torch.where(valid, column, torch.zeros_like(column))
    chosen_rows = rows.gather(1, column)
    out = {
        "num_dets": valid.sum(dim=1, keepdim=True).to(torch.int32),
        "boxes": torch.where(valid.unsqueeze(-1), _gather_rows(boxes, chosen_rows), torch.zeros_like(boxes[:1, :1])),
        "scores": torch.where(valid, best_scores, torch.zeros_like(best_scores)),
        "classes": torch.where(valid, cls.gather(1, column), torch.zeros_like(column)).to(torch.int32),
    }
    for name, t in extras.items():
        mask = valid.reshape(batch, k, *([1] * (t.dim() - 2)))
        out[name] = torch.where(mask, _gather_rows(t, chosen_rows), torch.zeros_like(t[:1, :1]))
    return out


def _gather_rows(t: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """t [B, N, ...] flattened to [B*N, ...] and indexed by row [B, K] → [B, K, ...]."""
    flat = t.reshape(-1, *t.shape[2:])
    return flat.index_select(0, row.reshape(-1)).reshape(*row.shape, *t.shape[2:])


class End2End(nn.Module):
    """A detector whose outputs are final detections; `extras` names decode's extra outputs, in order.

    `nms` is how the exported graph suppresses: "onnx" (NonMaxSuppression, which TensorRT builds as
    its NMS layer) or "loop" (an ONNX Loop over the pre-selected pairs, for TensorRT-RTX, whose
    builder has no NMS implementation). Both compute the same detections."""

    def __init__(self, detector: nn.Module, settings: NmsSettings, extras: tuple[str, ...] = (), nms: str = "onnx"):
        super().__init__()
        if nms not in NMS_OPS:
            raise InputError(f"unknown NMS implementation {nms!r}: choose {', '.join(NMS_OPS)}")
        self.detector = detector
        self.settings = settings
        self.extras = extras
        self.nms = nms

    def forward(self, x: torch.Tensor):
        candidates = self.detector.decode(self.detector(x), tuple(x.shape[-2:]))
        if torch.onnx.is_in_onnx_export():
            out = _select_graph(candidates, self.settings, self.nms)
        else:
            out = _select_eager(candidates, self.settings)
        return tuple(out[name] for name in (*OUTPUTS, *self.extras))
