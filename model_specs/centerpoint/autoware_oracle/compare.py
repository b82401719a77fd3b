"""The bundle pipeline's voxels, encoder features and boxes against Autoware's, quantity by quantity (NumPy only:
the recorded comparison runs in CI without CUDA).

Autoware's voxel order is decided by atomics (``generateBaseFeatures_kernel`` numbers pillars as threads reach
them) and so is the order of points within a voxel (``generateVoxels_random_kernel``), so both sides are put in a
canonical order first: voxels by cell, a voxel's points lexicographically by their columns. What differs on
purpose or by Autoware's construction is counted, never hidden:

* a cell with more than 32 points: the project keeps its first 32 in point order (mmcv's hard voxelization, what
  AWML trains with); Autoware's slot counter is ``atomicInc(&mask, 32)``, which wraps to 0 after 32, so the node
  keeps ``n mod 33`` points of such a cell (none at all when 33 divides ``n``), picked by the shuffle and the
  atomics. These cells are checked against that prediction and left out of the feature comparison.
* float order: a pillar's point mean is a warp-shuffle tree sum in slot order on the node, a sequential sum here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_POINTS = 32  # MAX_POINT_IN_VOXEL_SIZE
SLOT_WRAP = MAX_POINTS + 1  # atomicInc(&mask, 32) counts 0..32, then 0 again
POINT_COLUMNS = 5  # x, y, z, intensity, time lag: the encoder input's first columns are the points themselves


@dataclass(frozen=True)
class Voxels:
    """One side's voxels: coors (z, y, x) [V, 3], point counts [V] and encoder input [V, 32, F]."""

    coors: np.ndarray
    num_points: np.ndarray
    features: np.ndarray


@dataclass(frozen=True)
class VoxelDiff:
    """One frame's voxels and encoder input, the bundle pipeline against Autoware."""

    project: int  # voxels the bundle pipeline made
    autoware: int  # voxels the node made
    compared: int  # cells of at most 32 points on the project's side: compared point by point
    missing: int  # of those, cells the node has no voxel for
    extra: int  # node voxels in cells the project has none for
    count_mismatch: int  # compared cells whose point counts differ
    over_full: int  # cells of more than 32 points
    over_full_unpredicted: int  # of those, cells whose node count is not n mod 33 (or present when 33 divides n)
    points_max_abs: float  # the point columns (x, y, z, intensity, time lag) of compared voxels
    cluster_max_abs: float  # offsets to the pillar's point mean
    centre_max_abs: float  # offsets to the pillar's centre
    padding_max_abs: float  # slots past a voxel's count (zero on both sides)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def canonical(voxels: Voxels, nx: int) -> Voxels:
    """Voxels in cell order (y * nx + x), each voxel's filled slots sorted by their point columns."""
    order = np.argsort(voxels.coors[:, 1] * nx + voxels.coors[:, 2], kind="stable")
    features = voxels.features[order].copy()
    counts = voxels.num_points[order]
    for row, n in enumerate(counts):
        filled = features[row, :n]
        features[row, :n] = filled[np.lexsort(filled[:, :POINT_COLUMNS].T[::-1])]
    return Voxels(voxels.coors[order], counts, features)


def compare_voxels(project: Voxels, autoware: Voxels, cell_points: np.ndarray, nx: int) -> VoxelDiff:
    """``cell_points`` [V] is each project voxel's point count before the 32-point cap (the frame's points in that
    cell), which predicts what the node keeps of an over-full cell."""
    ours = canonical(Voxels(project.coors, project.num_points, project.features), nx)
    order = np.argsort(project.coors[:, 1] * nx + project.coors[:, 2], kind="stable")
    full_counts = np.asarray(cell_points)[order]
    theirs = canonical(autoware, nx)
    key_ours = ours.coors[:, 1] * nx + ours.coors[:, 2]
    key_theirs = theirs.coors[:, 1] * nx + theirs.coors[:, 2]
    at = {int(k): i for i, k in enumerate(key_theirs)}
    over = full_counts > MAX_POINTS
    unpredicted, count_mismatch, missing, compared = 0, 0, 0, []
    for i, key in enumerate(key_ours):
        j = at.get(int(key))
        if over[i]:
            kept = int(full_counts[i]) % SLOT_WRAP
            unpredicted += int((j is None) != (kept == 0) or (j is not None and int(theirs.num_points[j]) != kept))
            continue
        if j is None:
            missing += 1
            continue
        if int(theirs.num_points[j]) != int(ours.num_points[i]):
            count_mismatch += 1
            continue
        compared.append((i, j))
    extra = len(set(at) - {int(k) for k in key_ours})
    worst = {"points": 0.0, "cluster": 0.0, "centre": 0.0, "padding": 0.0}
    width = ours.features.shape[2]
    for i, j in compared:
        n = int(ours.num_points[i])
        delta = np.abs(ours.features[i] - theirs.features[j])
        worst["points"] = max(worst["points"], float(delta[:n, :POINT_COLUMNS].max(initial=0.0)))
        worst["cluster"] = max(worst["cluster"], float(delta[:n, POINT_COLUMNS:POINT_COLUMNS + 3].max(initial=0.0)))
        worst["centre"] = max(worst["centre"], float(delta[:n, POINT_COLUMNS + 3:width].max(initial=0.0)))
        worst["padding"] = max(worst["padding"], float(delta[n:].max(initial=0.0)))
    return VoxelDiff(len(key_ours), len(key_theirs), int((~over).sum()), missing, extra, count_mismatch, int(over.sum()),
                     unpredicted, worst["points"], worst["cluster"], worst["centre"], worst["padding"])


@dataclass(frozen=True)
class BoxDiff:
    """One frame's decoded objects, the bundle's decoder against the node's kernels."""

    project: int
    autoware: int
    matched: int  # same label, centres within MATCH_M
    label_mismatch: int  # boxes of the node matched to none of the project's (same cell, other class, or absent)
    centre_max_m: float
    z_max_m: float
    size_max_rel: float
    yaw_max_rad: float
    score_max_abs: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


MATCH_M = 1e-3  # both sides place a box at its cell plus the head's offset: the same float32 arithmetic


def published_yaw(kernel_yaw: np.ndarray) -> np.ndarray:
    """ros_utils' yaw from the kernel's atan2(rot0, rot1) of the y-axis head: -yaw - pi/2, wrapped to (-pi, pi]."""
    yaw = -kernel_yaw.astype(np.float64) - math.pi / 2
    return np.arctan2(np.sin(yaw), np.cos(yaw))


def compare_boxes(labels: np.ndarray, scores: np.ndarray, boxes: np.ndarray, autoware_rows: np.ndarray) -> BoxDiff:
    """``labels``/``scores``/``boxes`` (x, y, z, l, w, h, yaw, ...) are the bundle decoder's; ``autoware_rows`` are
    the oracle's rows (label, score, x, y, z, length, width, height, yaw, vel_x, vel_y, entropy)."""
    theirs = autoware_rows
    used: set[int] = set()
    pairs = []
    for j in range(len(theirs)):
        same = [i for i in range(len(labels)) if i not in used and int(labels[i]) == int(theirs[j, 0])]
        if not same:
            continue
        d = np.hypot(boxes[same, 0] - theirs[j, 2], boxes[same, 1] - theirs[j, 3])
        best = int(np.argmin(d))
        if d[best] <= MATCH_M:
            pairs.append((same[best], j))
            used.add(same[best])
    if pairs:
        matched = np.array(pairs)
        a, b = matched[:, 0], matched[:, 1]  # the project's rows, the node's rows
        centre = float(np.hypot(boxes[a, 0] - theirs[b, 2], boxes[a, 1] - theirs[b, 3]).max())
        z = float(np.abs(boxes[a, 2] - theirs[b, 4]).max())
        size = float((np.abs(boxes[a, 3:6] - theirs[b, 5:8]) / np.maximum(np.abs(theirs[b, 5:8]), 1e-6)).max())
        dyaw = boxes[a, 6] - published_yaw(theirs[b, 8])
        yaw = float(np.abs(np.arctan2(np.sin(dyaw), np.cos(dyaw))).max())
        score = float(np.abs(scores[a] - theirs[b, 1]).max())
    else:
        centre = z = size = yaw = score = 0.0
    return BoxDiff(len(labels), len(theirs), len(pairs), len(theirs) - len(pairs), centre, z, size, yaw, score)
