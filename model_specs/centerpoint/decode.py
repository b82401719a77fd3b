"""CenterPoint decoding and circle NMS in plain PyTorch (no numba, no mmcv).

Follows mmdet3d's ``CenterPointBBoxCoder.decode`` and ``circle_nms`` (top-k over classes and cells,
scores strictly above the threshold, centre range filter, squared-distance circle NMS), so the boxes
are those mmdet3d's predict path gives; ``tests/data/mmdet3d`` holds its own boxes to prove it.
One difference on purpose: ``z`` is the box centre, as the head predicts it and as Autoware
publishes it; mmdet3d's ``predict_by_feat`` reports the bottom face (``z - height / 2``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from model_specs.centerpoint.config import CenterPointConfig


@dataclass(frozen=True)
class Detections:
    """Boxes after NMS plus what parity needs from before it.

    ``boxes`` rows: x, y, z (centre), length, width, height, yaw, vx, vy. ``candidates`` are the top-k
    heatmap cells before the score threshold as (class, y, x) with their probabilities, so that a
    comparison can count threshold flips.
    """

    boxes: np.ndarray  # [K, 9] float32; z is the centre (mmdet3d reports z - height / 2)
    scores: np.ndarray  # [K]
    labels: np.ndarray  # [K] int64
    candidate_cells: np.ndarray  # [T, 3] int64: class, y, x
    candidate_scores: np.ndarray  # [T]
    probabilities: np.ndarray  # [classes, H, W] sigmoid(heatmap)
    sizes: np.ndarray  # [3, H, W] exp(dim)
    yaws: np.ndarray  # [H, W] atan2(rot)


def undo_rot_y_axis_reference(dim: torch.Tensor, rot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Autoware's (w, l, h) and clockwise-from-y rotation back to mmdet3d's convention (an involution)."""
    return dim[:, [1, 0, 2]], torch.cat([-rot[:, 1:2], -rot[:, 0:1]], dim=1)


def circle_nms(centres: torch.Tensor, scores: torch.Tensor, min_radius: float, post_max_size: int) -> torch.Tensor:
    """Indices kept by mmdet3d's circle NMS, highest score first.

    As in mmdet3d, ``min_radius`` is compared with the *squared* BEV centre distance
    (``dist <= thresh`` in its ``circle_nms``); AWML's configs are tuned to that behaviour.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    centres = centres[order]
    dist2 = torch.cdist(centres, centres).pow(2)
    suppressed = torch.zeros(order.shape[0], dtype=torch.bool)
    keep = []
    for i in range(order.shape[0]):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) == post_max_size:
            break
        suppressed |= dist2[i] <= min_radius
    return order[torch.tensor(keep, dtype=torch.long)]


def decode(heads: dict[str, np.ndarray], cfg: CenterPointConfig, rot_y_axis_reference: bool = False) -> Detections:
    """Raw head tensors (batch 1) → boxes in metres, after score threshold and circle NMS."""
    t = {name: torch.from_numpy(np.asarray(value, dtype=np.float32)) for name, value in heads.items()}
    dim, rot = t["dim"], t["rot"]
    if rot_y_axis_reference:
        dim, rot = undo_rot_y_axis_reference(dim, rot)
    prob = torch.sigmoid(t["heatmap"][0])  # [C, H, W]
    classes, height, width = prob.shape
    k = min(cfg.max_detections_pre_nms, prob.numel())
    top_scores, top_index = torch.topk(prob.reshape(-1), k)
    cls = torch.div(top_index, height * width, rounding_mode="floor")
    cell = top_index % (height * width)
    ys, xs = torch.div(cell, width, rounding_mode="floor"), cell % width
    sizes = torch.exp(dim[0])  # [3, H, W]
    yaws = torch.atan2(rot[0, 0], rot[0, 1])  # [H, W]
    reg = t["reg"][0][:, ys, xs]
    stride = cfg.out_size_factor
    vx, vy, _ = cfg.voxel_size
    r = cfg.point_cloud_range
    x = (xs.float() + reg[0]) * stride * vx + r[0]
    y = (ys.float() + reg[1]) * stride * vy + r[1]
    z = t["height"][0, 0, ys, xs]
    size = sizes[:, ys, xs]
    boxes = torch.stack([x, y, z, size[0], size[1], size[2], yaws[ys, xs], t["vel"][0, 0, ys, xs], t["vel"][0, 1, ys, xs]], dim=1)
    limit = torch.tensor(cfg.post_center_range)
    in_range = (top_scores > cfg.score_threshold) & (boxes[:, :3] >= limit[:3]).all(dim=1) & (boxes[:, :3] <= limit[3:]).all(dim=1)
    kept = torch.nonzero(in_range).flatten()
    if kept.numel():
        kept = kept[circle_nms(boxes[kept, :2], top_scores[kept], cfg.nms_min_radius, cfg.post_max_size)]
    return Detections(
        boxes=boxes[kept].numpy(),
        scores=top_scores[kept].numpy(),
        labels=cls[kept].numpy(),
        candidate_cells=torch.stack([cls, ys, xs], dim=1).numpy(),
        candidate_scores=top_scores.numpy(),
        probabilities=prob.numpy(),
        sizes=sizes.numpy(),
        yaws=yaws.numpy(),
    )
