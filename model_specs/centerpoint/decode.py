"""CenterPoint decoding and circle NMS in plain PyTorch (no numba, no mmcv).

Follows mmdet3d's ``CenterPointBBoxCoder.decode`` and ``circle_nms`` (top-k over classes and cells,
scores strictly above the threshold, centre range filter, squared-distance circle NMS), so the boxes
are those mmdet3d's predict path gives; ``tests/data/mmdet3d`` holds its own boxes to prove it.
One difference on purpose: ``z`` is the box centre, as the head predicts it and as Autoware
publishes it; mmdet3d's ``predict_by_feat`` reports the bottom face (``z - height / 2``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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

    def host(self) -> Detections:
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
    x, y = centres[order].T
    dx, dy = x[:, None] - x[None, :], y[:, None] - y[None, :]
    # dx² + dy², as mmdet3d sums them; written out: NumPy's sum over a last axis of two is ~40x slower (200 boxes: 1 ms)
    near = dx * dx + dy * dy <= np.float32(min_radius)
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


def in_place(heads) -> dict[str, torch.Tensor]:
    """Head outputs as tensors where they are and in their own dtype: NumPy arrays become CPU tensors (no copy)."""
    return {name: value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value)) for name, value in heads.items()}


def as_tensors(heads) -> dict[str, torch.Tensor]:
    """Head outputs as float32 tensors where they are (:func:`in_place`, then cast where not float32 already)."""
    return {name: value.float() for name, value in in_place(heads).items()}


def decode(heads, cfg: CenterPointConfig, rot_y_axis_reference: bool = False) -> Detections:
    """Raw head tensors (batch 1; NumPy, or torch on any device and dtype) → boxes in metres, after the score
    threshold and circle NMS, returned on the host.

    The per-cell work runs where the heads are, on the few hundred top-k cells only: the top-k of the heatmap's
    logits (sigmoid is increasing, so they are the top-k probabilities; which of two equal values is taken is
    unspecified either way), then each head's values at those cells, in float32 (a half head is cast after the
    gather: exact), their sigmoid, exp and atan2, the box centres, the cells' class, y and x, and which candidates
    pass the score threshold and the centre range. Those rows come to the host in one copy (Autoware copies its
    boxes back once too), where only NMS runs, with a handful of NumPy steps around it: on a GPU the host's steps
    after the copy are on the critical path (~5-10 us each on the GPU machine's host), the device's launches are
    not (they are queued while the backbone still runs). The full decoded maps that only verification reads
    (sigmoid, exp, atan2 of every cell) are computed after that copy is queued: on a GPU they run while the host
    suppresses boxes.
    """
    t = in_place(heads)
    dim, rot = t["dim"], t["rot"]
    if rot_y_axis_reference:
        dim, rot = undo_rot_y_axis_reference(dim, rot)
    logits = t["heatmap"][0]  # [C, H, W]
    _, height, width = logits.shape
    k = min(cfg.max_detections_pre_nms, logits.numel())
    top_logits, top_index = torch.topk(logits.reshape(-1), k)
    cell = top_index % (height * width)
    at = lambda value, channels: value.reshape(channels, -1)[:, cell].float()  # noqa: E731 - [channels, k] at the top-k cells
    rots = at(rot[0], 2)
    xs, ys = (cell % width).float(), (cell // width).float()
    stride = float(cfg.out_size_factor)  # an integer: exact in float32
    vx, vy, _ = (float(np.float32(v)) for v in cfg.voxel_size)
    r = [float(np.float32(v)) for v in cfg.point_cloud_range]
    offset = at(t["reg"][0], 2)
    # float32 throughout, operation by operation: (cell + offset) x stride x voxel + start (every value an exact float32)
    centre = torch.stack([(xs + offset[0]) * stride * vx + r[0], (ys + offset[1]) * stride * vy + r[1]])
    xyz, scores = torch.cat([centre, at(t["height"][0], 1)]), torch.sigmoid(top_logits.float())
    low, high = _centre_range(cfg, logits.device)
    wanted = (scores > cfg.score_threshold) & ((xyz >= low) & (xyz <= high)).all(dim=0)  # float32 comparisons, as mmdet3d's
    # One float32 row per value, one column per candidate: x, y, z, l, w, h, yaw, vx, vy, score, class, cell y, cell x,
    # wanted (integers < 2**24: exact). What the host does with them is the few steps that need it: pick, suppress.
    columns = torch.cat([xyz, torch.exp(at(dim[0], 3)), torch.atan2(rots[0:1], rots[1:2]), at(t["vel"][0], 2), scores[None],
                         (top_index // (height * width))[None].float(), ys[None], xs[None], wanted[None].float()])
    columns, maps = to_host(columns, lambda: _maps(logits, dim[0], rot[0]))
    if cfg.y_axis_reference:  # AWML's coder option: its boxes as (w, l) with the yaw clockwise from the y axis
        columns[[3, 4]] = columns[[4, 3]]
        columns[6] = -columns[6] - np.float32(np.pi / 2)
    boxes, scores, cells = columns[:9].T, columns[9], columns[10:13].T.astype(np.int64, order="C")
    kept = np.flatnonzero(columns[13])
    if kept.size:
        kept = kept[circle_nms(boxes[kept, :2], scores[kept], cfg.nms_min_radius, cfg.post_max_size)]
    return Detections(
        boxes=boxes[kept],
        scores=scores[kept],
        labels=cells[kept, 0],
        candidate_cells=cells,
        candidate_scores=scores,
        probabilities=where_decoded(maps[0]),
        sizes=where_decoded(maps[1]),
        yaws=where_decoded(maps[2]),
    )


@functools.lru_cache(maxsize=16)
def _centre_range(cfg: CenterPointConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``post_center_range``'s low and high corners as float32 [3, 1] tensors on ``device``, made once."""
    corners = torch.tensor(cfg.post_center_range, dtype=torch.float32, device=device).view(2, 3, 1)
    return corners[0], corners[1]


def _maps(logits: torch.Tensor, dim: torch.Tensor, rot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The decoded maps verification reads, in float32: sigmoid(heatmap) [C, H, W], exp(dim) [3, H, W], atan2(rot) [H, W]."""
    rot = rot.float()
    return torch.sigmoid(logits.float()), torch.exp(dim.float()), torch.atan2(rot[0], rot[1])


def to_host(values: torch.Tensor, then: Callable[[], tuple[torch.Tensor, ...]]) -> tuple[np.ndarray, tuple[torch.Tensor, ...]]:
    """``values`` on the host, and ``then()``'s tensors. On CUDA ``then``'s work is queued behind the copy and runs
    while the host goes on: only the copy is waited for (into page-locked memory, marked by an event)."""
    if values.device.type != "cuda":
        return values.cpu().numpy(), then()
    staged = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
    staged.copy_(values, non_blocking=True)
    copied = torch.cuda.Event()
    copied.record(torch.cuda.current_stream(values.device))
    later = then()
    copied.synchronize()
    return staged.numpy().copy(), later  # a copy: page-locked memory goes back to torch's cache for the next upload
