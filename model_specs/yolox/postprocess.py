"""YOLOX decoding as deployed and as evaluated, in torch (no torchvision, no mmcv), and detection parity.

Two decoders read the exported output [N, 4 + 1 + C] of one image:

- ``autoware`` (the boxes the car sees; autoware_tensorrt_yolox's ``decodeOutputs``): every class of
  every anchor point whose obj x cls is strictly above 0.3 is a proposal; its box is centre
  ``(dx + grid) * stride``, size ``exp(log w) * stride``, stored as int32 x, y, w, h (truncated);
  proposals sorted by score, then greedy class-agnostic NMS on those integer rectangles at IoU > 0.7;
  kept boxes scaled back to the frame. Reported here before Autoware clips them to the frame and
  truncates them to int32 (:func:`published`), so that parity measures the network, not a ±1 px
  rounding, and boxes in the letterbox padding keep an extent to match.
- ``mmdet`` (AWML's evaluation; mmdet's YOLOXHead.predict_by_feat): best class per anchor point,
  score obj x cls kept when >= 0.01, centre ``dx * stride + grid * stride``, class-aware greedy NMS at
  IoU > 0.65 (mmcv's batched_nms: boxes offset by label x (max coordinate + 1)), rescaled by the
  letterbox scale, no cap on the count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model_specs.yolox.config import YoloxConfig
from pytest_awml.device import Precision
from pytest_awml.pipeline import Check

DECODERS = ("autoware", "mmdet")


@dataclass(frozen=True)
class Detections2D:
    boxes: np.ndarray  # [K, 4] x1, y1, x2, y2 in frame pixels
    scores: np.ndarray  # [K]
    labels: np.ndarray  # [K]
    candidate_scores: np.ndarray  # what the score threshold sees, before it (flips are counted on these)
    threshold: float
    nms_iou: float = 1.0  # the decoder's NMS: a box overlapping a better one beyond this was suppressed
    nms_class_agnostic: bool = False


def grid(cfg: YoloxConfig, input_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor points (x, y) in grid cells and their strides, level by level, row-major (the output's order)."""
    points, strides = [], []
    for s in cfg.strides:
        ys, xs = torch.meshgrid(torch.arange(input_hw[0] // s), torch.arange(input_hw[1] // s), indexing="ij")
        points.append(torch.stack([xs, ys], -1).reshape(-1, 2))
        strides.append(torch.full((points[-1].shape[0], 1), float(s)))
    return torch.cat(points).float(), torch.cat(strides)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt, rb = torch.maximum(a[:, None, :2], b[None, :, :2]), torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).clamp(min=0).prod(-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter).clamp(min=1e-9)


def greedy_nms(boxes: torch.Tensor, iou: float, inclusive: bool = False, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Indices kept by greedy NMS over boxes already sorted by descending score (IoU > ``iou`` suppresses;
    IoU >= ``iou`` when ``inclusive``, as TensorRT's EfficientNMS does). With ``labels``, a box suppresses only
    boxes of its label, their IoU computed on the coordinates as they are. Each kept box is compared with the
    remaining ones only: memory O(N), not O(N^2)."""
    alive = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        keep.append(i)
        rest = torch.arange(i + 1, len(boxes), device=boxes.device)[alive[i + 1:]]
        if labels is not None:
            rest = rest[labels[rest] == labels[i]]
        if len(rest):
            overlap = box_iou(boxes[i:i + 1], boxes[rest])[0]
            alive[rest[overlap >= iou if inclusive else overlap > iou]] = False
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def _by_score(scores: torch.Tensor) -> torch.Tensor:
    return torch.argsort(scores, descending=True, stable=True)


def autoware_decode(output: np.ndarray, cfg: YoloxConfig, scale: float) -> Detections2D:
    """Autoware's decoder on one image's output [N, 5 + C] (see the module docstring)."""
    out = torch.from_numpy(np.asarray(output, np.float32))
    points, strides = grid(cfg, cfg.input_size)
    scores = out[:, 4:5] * out[:, 5:]  # [N, C]: every class of every anchor point
    anchor, label = torch.nonzero(scores > cfg.autoware_score_threshold, as_tuple=True)
    centre = (out[anchor, :2] + points[anchor]) * strides[anchor]
    size = torch.exp(out[anchor, 2:4]) * strides[anchor]
    corner = centre - size * 0.5
    rect = torch.cat([corner.trunc(), size.trunc()], 1)  # int32 x, y, w, h: C++ float -> int truncates
    score = scores[anchor, label]
    order = _by_score(score)
    kept = order[greedy_nms(torch.cat([rect[order, :2], rect[order, :2] + rect[order, 2:]], 1), cfg.autoware_nms_iou)] if len(order) else order
    boxes = torch.cat([corner[kept], corner[kept] + size[kept]], 1) / scale
    return Detections2D(boxes.numpy(), score[kept].numpy(), label[kept].numpy(), scores.flatten().numpy(), cfg.autoware_score_threshold,
                        cfg.autoware_nms_iou, nms_class_agnostic=True)


def published(detections: Detections2D, frame_hw: tuple[int, int]) -> np.ndarray:
    """The int32 x, y, width, height Autoware publishes: corners clipped to [0, size - 1], truncated.
    (Autoware scales its truncated network-space rectangle; this scales the box before truncation.)"""
    limit = np.array([frame_hw[1] - 1, frame_hw[0] - 1] * 2, np.float32)
    corners = np.minimum(np.maximum(detections.boxes, 0.0), limit)
    return np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], 1).astype(np.int32)


def mmdet_candidates(output: np.ndarray, cfg: YoloxConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """mmdet's predict_by_feat up to NMS (rescale=False): boxes [M, 4], scores, labels of the anchors
    whose obj x best class >= the threshold, in anchor order; and every anchor's obj x best class."""
    out = torch.from_numpy(np.asarray(output, np.float32))
    points, strides = grid(cfg, cfg.input_size)
    centre = out[:, :2] * strides + points * strides
    size = out[:, 2:4].exp() * strides
    best, label = torch.max(out[:, 5:], 1)
    score = out[:, 4] * best
    valid = score >= cfg.eval_score_threshold
    boxes = torch.cat([centre - size / 2, centre + size / 2], 1)
    return boxes[valid], score[valid], label[valid], score


def mmdet_decode(output: np.ndarray, cfg: YoloxConfig, scale: float) -> Detections2D:
    """mmdet's evaluation decoder on one image's output (see the module docstring)."""
    boxes, scores, labels, every = mmdet_candidates(output, cfg)
    order = _by_score(scores)
    if len(order):
        offset = labels[order].to(boxes.dtype)[:, None] * (boxes.max() + 1)  # mmcv's batched_nms trick
        order = order[greedy_nms(boxes[order] + offset, cfg.eval_nms_iou)]
    return Detections2D((boxes[order] / scale).numpy(), scores[order].numpy(), labels[order].numpy(), every.numpy(), cfg.eval_score_threshold,
                        cfg.eval_nms_iou)


def decode(decoder: str, output: np.ndarray, cfg: YoloxConfig, scale: float) -> Detections2D:
    return autoware_decode(output, cfg, scale) if decoder == "autoware" else mmdet_decode(output, cfg, scale)


# flips are counted among each side's best candidates, those that can become boxes (as NMS sees them)
MAX_FLIP_CANDIDATES = 1000
MATCH_IOU = 0.5  # two boxes of one label overlapping less than this are different detections


@dataclass(frozen=True)
class Limits2D:
    iou: float = 0.99  # a matched pair must overlap at least this much
    score: float = 0.01
    unmatched_margin: float = 0.05  # a box only one side has may score at most threshold + this (a near-threshold flip)
    threshold_flips: int = 0
    # a candidate crosses the threshold on one side only, and the reference is farther than this from it: at fp32
    # ~10x the largest output difference (Autoware's per-class candidates put many scores near 0.3)
    flip_margin: float = 1e-4
    # a box kept on one side only that overlaps a better box of its own side (of its label, for class-aware NMS)
    # within this of the NMS IoU: the suppression decision sat on the threshold and precision flipped it
    nms_margin: float = 1e-4
    nms_flips: int = 0


def _nms_flip(detections: Detections2D, i: int, margin: float) -> bool:
    """Box ``i`` overlaps a better-scoring box of its own side (one NMS compares it with) within ``margin`` of
    the NMS IoU: kept here, it would be suppressed by an IoU a hair larger."""
    rivals = detections.scores > detections.scores[i]
    if not detections.nms_class_agnostic:
        rivals &= detections.labels == detections.labels[i]
    if not rivals.any():
        return False
    overlap = box_iou(torch.from_numpy(detections.boxes[i:i + 1]), torch.from_numpy(detections.boxes[rivals])).numpy()[0]
    return bool((np.abs(overlap - detections.nms_iou) <= margin).any())


def compare(refs: Sequence[Detections2D], tests: Sequence[Detections2D], limits: Limits2D, prefix: str = "") -> list[Check]:
    """Boxes matched by label and IoU (greedy, best reference first); the worst gaps, unmatched scores and flips."""
    worst_iou_gap, worst_score, worst_unmatched, flips, nms_flips, matched, total = 0.0, 0.0, 0.0, 0, 0, 0, 0
    threshold = refs[0].threshold if refs else 0.0
    for ref, test in zip(refs, tests, strict=True):
        total += max(len(ref.scores), len(test.scores))
        used: set[int] = set()
        lonely = []  # (side, index) of boxes without a partner
        ious = (box_iou(torch.from_numpy(ref.boxes), torch.from_numpy(test.boxes)).numpy() if len(ref.scores) and len(test.scores)
                else np.zeros((len(ref.scores), len(test.scores))))  # a side without boxes: nothing to pair, no IoU is read
        for i in np.argsort(-ref.scores, kind="stable"):
            same = [j for j in range(len(test.scores)) if j not in used and test.labels[j] == ref.labels[i]]
            j = max(same, key=lambda j: ious[i, j]) if same else None
            if j is None or ious[i, j] < MATCH_IOU:
                lonely.append((ref, int(i)))
                continue
            used.add(j)
            matched += 1
            worst_iou_gap = max(worst_iou_gap, 1.0 - float(ious[i, j]))
            worst_score = max(worst_score, abs(float(ref.scores[i] - test.scores[j])))
        lonely += [(test, j) for j in range(len(test.scores)) if j not in used]
        flipped = [_nms_flip(side, i, limits.nms_margin) for side, i in lonely]
        nms_flips += sum(flipped)
        worst_unmatched = max([worst_unmatched, *(float(side.scores[i]) - threshold for (side, i), f in zip(lonely, flipped, strict=True) if not f)])
        k = min(len(ref.candidate_scores), MAX_FLIP_CANDIDATES)
        cells = np.union1d(np.argsort(-ref.candidate_scores)[:k], np.argsort(-test.candidate_scores)[:k])
        ref_scores, test_scores = ref.candidate_scores[cells], test.candidate_scores[cells]
        flips += int((((ref_scores > threshold) != (test_scores > threshold)) & (np.abs(ref_scores - threshold) > limits.flip_margin)).sum())
    return [
        # parity on no box at all would pass whatever the backend computed (seeded weights are calibrated to detect)
        Check(f"{prefix}boxes.reference_has_none", float(not sum(len(r.scores) for r in refs)), 0.0, "nothing to compare"),
        Check(f"{prefix}boxes.1_minus_iou", worst_iou_gap, 1.0 - limits.iou, f"{matched} matched of {total}"),
        Check(f"{prefix}boxes.score", worst_score, limits.score),
        Check(f"{prefix}boxes.unmatched_score_above_threshold", worst_unmatched, limits.unmatched_margin, f"threshold {threshold}"),
        Check(f"{prefix}boxes.threshold_flips", float(flips), float(limits.threshold_flips), f"score threshold {threshold} ± {limits.flip_margin}"),
        Check(f"{prefix}boxes.nms_flips", float(nms_flips), float(limits.nms_flips),
              f"kept on one side only, overlapping a better box at the NMS IoU ± {limits.nms_margin}"),
    ]


def comparator(limits: Mapping[str, Mapping[str, Limits2D]]) -> Callable:
    """Pipeline outputs are {decoder: [Detections2D per frame]}; every decoder is checked with its own limits."""

    def compare_detections(refs, tests, precision: Precision) -> list[Check]:
        checks = []
        for decoder in DECODERS:
            flat_refs = [d for r in refs for d in r[decoder]]
            flat_tests = [d for t in tests for d in t[decoder]]
            checks += compare(flat_refs, flat_tests, limits[decoder][precision.value], f"{decoder}.")
        return checks

    return compare_detections
