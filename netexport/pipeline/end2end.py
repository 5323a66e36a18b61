"""End-to-end detection graphs: raw heads → decode → NMS → fixed-size detections, in one ONNX graph.

A detector's `decode` (contract in netexport.zoo.detection.boxes) turns its raw outputs into per-candidate
boxes and class scores. `End2End` adds the suppression: while exporting it emits ONNX
NonMaxSuppression (which TensorRT parses into its NMS layer, no plugin), then ranks the kept boxes per
image and pads them to K, giving the layout TensorRT's EfficientNMS made standard:

    num_dets [B, 1] int32 · boxes [B, K, 4] · scores [B, K] · classes [B, K] int32 (+ extras [B, K, ...])

Run eagerly, `End2End` is the PyTorch reference instead: the same decode followed by torchvision's
batched NMS, an independent implementation the exported graph is verified against.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import InputError
from ..recipes import End2EndSpec as NmsSettings  # K (also the per-class NMS cap), score and IoU thresholds
from ..recipes import Recipe

OUTPUTS = ("num_dets", "boxes", "scores", "classes")
TASKS = ("detection", "face-detection", "instance-segmentation")
# Random weights put no meaning in the recipe's score threshold: when it leaves PyTorch no detection
# (or K of them) on the verification input, the check moves it so this share of K survive instead.
RANDOM_INIT_TARGET = 0.5


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
    return dataclasses.replace(
        spec,
        max_detections=spec.max_detections if max_detections is None else max_detections,
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
    with torch.no_grad():
        scores = model.decode(model(samples[0]), tuple(samples[0].shape[-2:]))["scores"][0]
    best = scores.max(dim=1).values.sort(descending=True).values
    rank = min(int(settings.max_detections * RANDOM_INIT_TARGET), best.numel() - 1)
    chosen = float(best[rank])
    note = (f"score threshold {chosen:.4g} instead of the recipe's {settings.score_threshold:g}, which left "
            f"PyTorch {counts} detections of K={settings.max_detections} on the verification inputs")
    return chosen, note


def reference_detections(model: nn.Module, x: torch.Tensor, settings: NmsSettings) -> dict[str, torch.Tensor]:
    """Decode + torchvision batched NMS per image, top-K by score, padded: the PyTorch reference."""
    with torch.no_grad():
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
        # every (candidate, class) pair above the threshold competes, as in ONNX NonMaxSuppression
        cand, cls = torch.nonzero(scores[b] > settings.score_threshold, as_tuple=True)
        pair_scores = scores[b, cand, cls]
        keep = batched_nms(boxes[b, cand].float(), pair_scores.float(), cls, settings.iou_threshold)
        keep = _cap_per_class(keep, cls, k)[:k]  # keep is sorted by score, best first
        n = int(keep.numel())
        out["num_dets"][b, 0] = n
        out["boxes"][b, :n] = boxes[b, cand[keep]]
        out["scores"][b, :n] = pair_scores[keep]
        out["classes"][b, :n] = cls[keep].to(torch.int32)
        for name, t in extras.items():
            out[name][b, :n] = t[b, cand[keep]]
    return out


def _cap_per_class(keep: torch.Tensor, classes: torch.Tensor, cap: int) -> torch.Tensor:
    """ONNX NMS keeps at most `cap` boxes per class; apply the same cap to the ranked survivors."""
    seen: dict[int, int] = {}
    chosen = []
    for index in keep.tolist():
        c = int(classes[index])
        if seen.get(c, 0) < cap:
            seen[c] = seen.get(c, 0) + 1
            chosen.append(index)
    return torch.tensor(chosen, dtype=torch.long)


class _OnnxNms(torch.autograd.Function):
    """ONNX NonMaxSuppression over boxes [B, N, 4] and scores [B, C, N] → selected [M, 3] (batch, class, box).

    Only traced during export; the eager value (torchvision) just gives the tracer real tensors."""

    @staticmethod
    def forward(ctx, boxes, scores, max_per_class: int, iou: float, score: float):
        from torchvision.ops import batched_nms

        rows = []
        for b in range(boxes.shape[0]):
            cls, cand = torch.nonzero(scores[b] > score, as_tuple=True)
            keep = batched_nms(boxes[b, cand], scores[b, cls, cand], cls, iou)
            keep = _cap_per_class(keep, cls, max_per_class)
            rows.append(torch.stack((torch.full_like(keep, b), cls[keep], cand[keep]), dim=1))
        return torch.cat(rows) if rows else torch.zeros(0, 3, dtype=torch.long)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class: int, iou: float, score: float):
        const = lambda value, dtype: g.op("Constant", value_t=torch.tensor([value], dtype=dtype))  # noqa: E731
        return g.op("NonMaxSuppression", boxes, scores, const(max_per_class, torch.int64),
                    const(iou, torch.float32), const(score, torch.float32), center_point_box_i=0)


def _select_graph(candidates: dict[str, torch.Tensor], settings: NmsSettings) -> dict[str, torch.Tensor]:
    """NMS, then the K best kept (box, class) pairs per image, padded — in ops ONNX and TensorRT have."""
    boxes, scores = candidates["boxes"], candidates["scores"]
    extras = {k: v for k, v in candidates.items() if k not in ("boxes", "scores")}
    batch, num, num_classes = scores.shape
    k = settings.max_detections
    selected = _OnnxNms.apply(boxes, scores.transpose(1, 2).contiguous(), k,
                              settings.iou_threshold, settings.score_threshold)
    img, cls, cand = selected[:, 0], selected[:, 1], selected[:, 2]
    pair = (img * num + cand) * num_classes + cls
    kept_scores = scores.reshape(-1).gather(0, pair)
    # [B, M] score table with -1 where a selection belongs to another image, plus K padding columns so
    # TopK always has K candidates even when NMS kept fewer
    own = img.unsqueeze(0) == torch.arange(batch).unsqueeze(1)
    table = torch.where(own, kept_scores.unsqueeze(0), torch.full_like(kept_scores, -1.0).unsqueeze(0))
    table = torch.cat((table, torch.full((batch, k), -1.0)), dim=1)
    top_scores, column = table.topk(k, dim=1)
    valid = top_scores >= 0
    rows = torch.cat((img * num + cand, torch.zeros(k, dtype=torch.long)))  # row in the flattened [B*N]
    row = rows.gather(0, column.reshape(-1)).reshape(batch, k)
    chosen_cls = torch.cat((cls, torch.zeros(k, dtype=torch.long))).gather(0, column.reshape(-1)).reshape(batch, k)
    out = {
        "num_dets": valid.sum(dim=1, keepdim=True).to(torch.int32),
        "boxes": torch.where(valid.unsqueeze(-1), _gather_rows(boxes, row), torch.zeros_like(boxes[:1, :1])),
        "scores": torch.where(valid, top_scores, torch.zeros_like(top_scores)),
        "classes": torch.where(valid, chosen_cls, torch.zeros_like(chosen_cls)).to(torch.int32),
    }
    for name, t in extras.items():
        mask = valid.reshape(batch, k, *([1] * (t.dim() - 2)))
        out[name] = torch.where(mask, _gather_rows(t, row), torch.zeros_like(t[:1, :1]))
    return out


def _gather_rows(t: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """t [B, N, ...] flattened to [B*N, ...] and indexed by row [B, K] → [B, K, ...]."""
    flat = t.reshape(-1, *t.shape[2:])
    return flat.index_select(0, row.reshape(-1)).reshape(*row.shape, *t.shape[2:])


class End2End(nn.Module):
    """A detector whose outputs are final detections; `extras` names decode's extra outputs, in order."""

    def __init__(self, detector: nn.Module, settings: NmsSettings, extras: tuple[str, ...] = ()):
        super().__init__()
        self.detector = detector
        self.settings = settings
        self.extras = extras

    def forward(self, x: torch.Tensor):
        candidates = self.detector.decode(self.detector(x), tuple(x.shape[-2:]))
        if torch.onnx.is_in_onnx_export():
            out = _select_graph(candidates, self.settings)
        else:
            out = _select_eager(candidates, self.settings)
        return tuple(out[name] for name in (*OUTPUTS, *self.extras))
