"""YOLOX decoding and NMS in torch (no torchvision, no mmcv), and detection-level parity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from model_specs.yolox.model import YoloxConfig
from pytest_awml.device import Precision
from pytest_awml.pipeline import Check


@dataclass(frozen=True)
class Detections2D:
    boxes: np.ndarray  # [K, 4] x1, y1, x2, y2 in pixels
    scores: np.ndarray  # [K]
    labels: np.ndarray  # [K]
    candidate_scores: np.ndarray  # [A] best class score x objectness per anchor point (before the threshold)


def _grid(cfg: YoloxConfig, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    points, strides = [], []
    for s in cfg.strides:
        ys, xs = torch.meshgrid(torch.arange(height // s), torch.arange(width // s), indexing="ij")
        points.append(torch.stack([xs, ys], -1).reshape(-1, 2))
        strides.append(torch.full((points[-1].shape[0], 1), float(s)))
    return torch.cat(points).float(), torch.cat(strides)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt, rb = torch.maximum(a[:, None, :2], b[None, :, :2]), torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).clamp(min=0).prod(-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter).clamp(min=1e-9)


def nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou: float, keep_max: int) -> torch.Tensor:
    """Class-aware greedy NMS (boxes of different classes never suppress each other)."""
    order = torch.argsort(scores, descending=True, stable=True)
    offset = labels[order].float()[:, None] * (boxes.max() + 1)
    b = boxes[order] + offset
    overlap = box_iou(b, b) > iou
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) == keep_max:
            break
        suppressed |= overlap[i]
    return order[torch.tensor(keep, dtype=torch.long)]


def decode(output: np.ndarray, cfg: YoloxConfig, image_hw: tuple[int, int]) -> Detections2D:
    """``output`` [1, N, 5 + C] → boxes after the score threshold and NMS (IoU 0.65)."""
    out = torch.from_numpy(np.asarray(output, np.float32))[0]
    points, strides = _grid(cfg, *image_hw)
    centre = (out[:, :2] + points) * strides
    size = torch.exp(out[:, 2:4]) * strides
    boxes = torch.cat([centre - size / 2, centre + size / 2], 1)
    cls_score, label = out[:, 5:].max(1)
    score = out[:, 4] * cls_score
    top = torch.topk(score, min(cfg.max_pre_nms, len(score))).indices
    top = top[score[top] >= cfg.score_threshold]
    kept = top[nms(boxes[top], score[top], label[top], cfg.nms_iou, cfg.max_detections)] if len(top) else top
    return Detections2D(boxes[kept].numpy(), score[kept].numpy(), label[kept].numpy(), score.numpy())


# flips are counted among each side's best anchors, those that can become boxes (as NMS sees them)
MAX_FLIP_CANDIDATES = 1000


@dataclass(frozen=True)
class Limits2D:
    iou: float = 0.99  # a matched pair must overlap at least this much
    score: float = 0.01
    unmatched_score: float = 0.3
    threshold_flips: int = 0


def compare(refs: Sequence[Detections2D], tests: Sequence[Detections2D], limits: Limits2D, threshold: float) -> list[Check]:
    worst_iou_gap, worst_score, worst_unmatched, flips, matched, total = 0.0, 0.0, 0.0, 0, 0, 0
    for ref, test in zip(refs, tests):
        total += max(len(ref.scores), len(test.scores))
        used: set[int] = set()
        lonely_ref = []
        ious = box_iou(torch.from_numpy(ref.boxes), torch.from_numpy(test.boxes)).numpy() if len(ref.scores) and len(test.scores) else None
        for i in np.argsort(-ref.scores, kind="stable"):
            same = [j for j in range(len(test.scores)) if j not in used and test.labels[j] == ref.labels[i]]
            j = max(same, key=lambda j: ious[i, j]) if same and ious is not None else None
            if j is None or ious[i, j] < 0.5:
                lonely_ref.append(ref.scores[i])
                continue
            used.add(j)
            matched += 1
            worst_iou_gap = max(worst_iou_gap, 1.0 - float(ious[i, j]))
            worst_score = max(worst_score, abs(float(ref.scores[i] - test.scores[j])))
        lonely_test = [test.scores[j] for j in range(len(test.scores)) if j not in used]
        worst_unmatched = max([worst_unmatched, *map(float, lonely_ref), *map(float, lonely_test)])
        k = min(len(ref.candidate_scores), MAX_FLIP_CANDIDATES)
        cells = np.union1d(np.argsort(-ref.candidate_scores)[:k], np.argsort(-test.candidate_scores)[:k])
        flips += int(((ref.candidate_scores[cells] >= threshold) != (test.candidate_scores[cells] >= threshold)).sum())
    return [
        Check("boxes.1_minus_iou", worst_iou_gap, 1.0 - limits.iou, f"{matched} matched of {total}"),
        Check("boxes.score", worst_score, limits.score),
        Check("boxes.unmatched_max_score", worst_unmatched, limits.unmatched_score),
        Check("boxes.threshold_flips", float(flips), float(limits.threshold_flips), f"score threshold {threshold}"),
    ]


def comparator(cfg: YoloxConfig, limits: Mapping[str, Limits2D]):
    def compare_detections(refs, tests, precision: Precision) -> list[Check]:
        return compare(refs, tests, limits[precision.value], cfg.score_threshold)

    return compare_detections
