"""CenterPoint decoding and circle NMS in plain PyTorch (no numba, no mmcv).

Follows mmdet3d's ``CenterPointBBoxCoder.decode`` and ``circle_nms`` (top-k over classes and cells,
scores strictly above the threshold, centre range filter, squared-distance circle NMS), so the boxes
are those mmdet3d's predict path gives; ``tests/data/mmdet3d`` holds its own boxes to prove it.
One difference on purpose: ``z`` is the box centre, as the head predicts it and as Autoware
publishes it; mmdet3d's ``predict_by_feat`` reports the bottom face (``z - height / 2``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
    # The decoded maps only verification reads: left where they were decoded (NumPy on the CPU, device
    # tensors on CUDA, where ~9 MB a scan would otherwise cross to the host inside the timed pipeline).
    probabilities: np.ndarray | torch.Tensor  # [classes, H, W] sigmoid(heatmap)
    sizes: np.ndarray | torch.Tensor  # [3, H, W] exp(dim)
    yaws: np.ndarray | torch.Tensor  # [H, W] atan2(rot)

    def host(self) -> "Detections":
        """These detections with every array on the host, for comparisons."""
        return replace(self, probabilities=on_host(self.probabilities), sizes=on_host(self.sizes), yaws=on_host(self.yaws))


def on_host(value: np.ndarray | torch.Tensor) -> np.ndarray:
    return value.cpu().numpy() if isinstance(value, torch.Tensor) else value


def where_decoded(value: torch.Tensor) -> np.ndarray | torch.Tensor:
    """A map as :class:`Detections` keeps it: NumPy when on the CPU (no copy), else the device tensor."""
    return value.numpy() if value.device.type == "cpu" else value


def undo_rot_y_axis_reference(dim: torch.Tensor, rot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Autoware's (w, l, h) and clockwise-from-y rotation back to mmdet3d's convention (an involution)."""
    return dim[:, [1, 0, 2]], torch.cat([-rot[:, 1:2], -rot[:, 0:1]], dim=1)


def circle_nms(centres: np.ndarray, scores: np.ndarray, min_radius: float, post_max_size: int) -> np.ndarray:
    """Indices kept by mmdet3d's circle NMS, highest score first.

    As in mmdet3d, ``min_radius`` is compared with the *squared* BEV centre distance
    (``dist <= thresh`` in its ``circle_nms``, summed squared differences in the boxes' float32);
    AWML's configs are tuned to that behaviour. Runs on the host over the few boxes above the score
    threshold, as mmdet3d's (numba) and Autoware's (after one copy of the boxes) do: the greedy pass is
    sequential, and on a GPU it would cost a synchronization per box.
    """
    centres, scores = np.asarray(centres, dtype=np.float32), np.asarray(scores, dtype=np.float32)
    order = np.argsort(-scores, kind="stable")
    centres = centres[order]
    near = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1) <= np.float32(min_radius)
    return order[greedy_keep(near, post_max_size)]


def greedy_keep(near: np.ndarray, limit: int) -> list[int]:
    """Rows of a score-sorted neighbour matrix kept by greedy suppression, at most ``limit``."""
    suppressed = np.zeros(len(near), dtype=bool)
    keep = []
    for i in range(len(near)):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) == limit:
            break
        suppressed |= near[i]
    return keep


def as_tensors(heads) -> dict[str, torch.Tensor]:
    """Head outputs as float32 tensors where they are: NumPy arrays become CPU tensors, device tensors stay."""
    return {name: value.float() if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value, dtype=np.float32))
            for name, value in heads.items()}


def decode(heads, cfg: CenterPointConfig, rot_y_axis_reference: bool = False) -> Detections:
    """Raw head tensors (batch 1; NumPy, or torch on any device) → boxes in metres, after the score
    threshold and circle NMS, returned on the host.

    The per-cell work (sigmoid, top-k, the gathers of the top-k cells' head values) runs where the heads
    are; those few hundred rows then come to the host in one copy (Autoware copies its boxes back once too),
    where the box geometry (a handful of float32 operations per row, the same on either side), the
    threshold, the range filter and NMS run. On a GPU this stage is bound by how many operations it launches.
    """
    t = as_tensors(heads)
    dim, rot = t["dim"], t["rot"]
    if rot_y_axis_reference:
        dim, rot = undo_rot_y_axis_reference(dim, rot)
    prob = torch.sigmoid(t["heatmap"][0])  # [C, H, W]
    classes, height, width = prob.shape
    k = min(cfg.max_detections_pre_nms, prob.numel())
    top_scores, top_index = torch.topk(prob.reshape(-1), k)
    cell = top_index % (height * width)
    sizes = torch.exp(dim[0])  # [3, H, W]
    yaws = torch.atan2(rot[0, 0], rot[0, 1])  # [H, W]
    flat = lambda value, channels: value.reshape(channels, -1)[:, cell]  # noqa: E731 - [channels, k] at the top-k cells
    # One float32 column per candidate: dx, dy, z, l, w, h, yaw, vx, vy, score, index (integers < 2**24: exact).
    columns = torch.cat([flat(t["reg"][0], 2), flat(t["height"][0], 1), flat(sizes, 3), flat(yaws, 1), flat(t["vel"][0], 2),
                         top_scores[None], top_index[None].float()]).cpu().numpy()
    index = columns[10].astype(np.int64)
    cls, ys, xs = index // (height * width), index % (height * width) // width, index % width
    stride = cfg.out_size_factor
    vx, vy, _ = cfg.voxel_size
    r = cfg.point_cloud_range
    # float32 throughout, operation by operation as torch computed it: (cell + offset) x stride x voxel + start
    x = (xs.astype(np.float32) + columns[0]) * np.float32(stride) * np.float32(vx) + np.float32(r[0])
    y = (ys.astype(np.float32) + columns[1]) * np.float32(stride) * np.float32(vy) + np.float32(r[1])
    boxes = np.stack([x, y, *columns[2:9]], axis=1)
    scores, cells = columns[9], np.stack([cls, ys, xs], axis=1)
    limit = np.asarray(cfg.post_center_range, dtype=np.float32)
    in_range = (scores > cfg.score_threshold) & (boxes[:, :3] >= limit[:3]).all(axis=1) & (boxes[:, :3] <= limit[3:]).all(axis=1)
    kept = np.flatnonzero(in_range)
    if kept.size:
        kept = kept[circle_nms(boxes[kept, :2], scores[kept], cfg.nms_min_radius, cfg.post_max_size)]
    return Detections(
        boxes=np.ascontiguousarray(boxes[kept]),
        scores=scores[kept],
        labels=cells[kept, 0],
        candidate_cells=cells,
        candidate_scores=scores,
        probabilities=where_decoded(prob),
        sizes=where_decoded(sizes),
        yaws=where_decoded(yaws),
    )
