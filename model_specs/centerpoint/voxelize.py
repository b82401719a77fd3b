"""Pre-processing outside the exported graphs, as AWML keeps it: densify, voxelize, decorate, scatter.

Plain PyTorch, vectorized, deterministic: the same points always give the same pillars in the same
order, so two backends are fed bit-identical inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.scene import Sweep


def densify(sweeps: Sequence[Sweep], cfg: CenterPointConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """The current sweep and up to ``cfg.past_sweeps`` earlier ones as one cloud in the current
    sensor frame, newest first, with the time lag (current time - sweep time, 0 for the current
    sweep) as the last feature: Autoware's densification and mmdet3d's LoadPointsFromMultiSweeps.

    The transform is float32, as Autoware's ``Eigen::Affine3f``; the current sweep is taken as is.
    Each sweep is uploaded to ``device`` as it came and moved there (what Autoware's densification does on its GPU).
    """
    current = sweeps[0]
    to_current = np.linalg.inv(current.pose)
    parts = []
    for sweep in sweeps[: cfg.past_sweeps + 1]:
        points = torch.from_numpy(np.ascontiguousarray(sweep.points, dtype=np.float32)).to(device)
        if sweep is not current:
            transform = torch.from_numpy((to_current @ sweep.pose).astype(np.float32)).to(device)
            points = torch.cat([points[:, :3] @ transform[:3, :3].T + transform[:3, 3], points[:, 3:]], dim=1)
        columns = [points[:, :4]]
        if "time_lag" in cfg.point_feature_names:
            columns.append(torch.full((points.shape[0], 1), float(current.time_s - sweep.time_s), device=points.device))
        parts.append(torch.cat(columns, dim=1))
    return torch.cat(parts, dim=0)


@dataclass(frozen=True)
class Voxels:
    """mmcv's hard-voxelization result: ``coors`` are (z, y, x) per voxel."""

    features: torch.Tensor  # [M, max_points, point_features], zero padded
    num_points: torch.Tensor  # [M]
    coors: torch.Tensor  # [M, 3] int64: z, y, x


def voxelize(points: torch.Tensor, cfg: CenterPointConfig) -> Voxels:
    """Hard voxelization with mmcv's semantics.

    Points outside the range are dropped; voxels are numbered in the order their first point
    appears; each keeps its first ``max_points_per_voxel`` points in point order; voxels beyond
    ``max_voxels`` are dropped. No shuffling anywhere, so the result is deterministic.
    """
    r = torch.tensor(cfg.point_cloud_range, dtype=points.dtype, device=points.device)
    size = torch.tensor(cfg.voxel_size, dtype=points.dtype, device=points.device)
    nx, ny, nz = cfg.grid_size
    xyz = points[:, :3]
    cell = torch.floor((xyz - r[:3]) / size).long()
    inside = ((cell >= 0) & (cell < torch.tensor([nx, ny, nz], device=points.device))).all(dim=1)
    inside &= torch.isfinite(xyz).all(dim=1)
    kept = points[inside]
    cell = cell[inside]
    linear = (cell[:, 2] * ny + cell[:, 1]) * nx + cell[:, 0]
    n = linear.shape[0]
    if n == 0:
        empty = points.new_zeros((0, cfg.max_points_per_voxel, points.shape[1]))
        return Voxels(empty, torch.zeros(0, dtype=torch.long, device=points.device), torch.zeros((0, 3), dtype=torch.long, device=points.device))
    unique, inverse = torch.unique(linear, return_inverse=True)
    order = torch.arange(n, device=points.device)
    first = torch.full((unique.shape[0],), n, dtype=torch.long, device=points.device).scatter_reduce(0, inverse, order, reduce="amin")
    # rank of each voxel by first appearance
    by_first = torch.argsort(first, stable=True)
    voxel_rank = torch.empty_like(by_first)
    voxel_rank[by_first] = torch.arange(by_first.shape[0], device=points.device)
    point_voxel = voxel_rank[inverse]
    # position of each point within its voxel, in point order
    sort_idx = torch.argsort(point_voxel, stable=True)
    sorted_voxel = point_voxel[sort_idx]
    starts = torch.searchsorted(sorted_voxel, sorted_voxel, right=False)
    slot_sorted = torch.arange(n, device=points.device) - starts
    slot = torch.empty_like(slot_sorted)
    slot[sort_idx] = slot_sorted
    num_voxels = min(int(unique.shape[0]), cfg.max_voxels)
    take = (point_voxel < num_voxels) & (slot < cfg.max_points_per_voxel)
    features = points.new_zeros((num_voxels, cfg.max_points_per_voxel, points.shape[1]))
    features[point_voxel[take], slot[take]] = kept[take]
    counts = torch.zeros(num_voxels, dtype=torch.long, device=points.device).scatter_add_(0, point_voxel[take], torch.ones_like(point_voxel[take]))
    first_points = first[by_first[:num_voxels]]
    c = cell[first_points]
    coors = torch.stack([c[:, 2], c[:, 1], c[:, 0]], dim=1)
    return Voxels(features, counts, coors)


def decorate(voxels: Voxels, cfg: CenterPointConfig) -> torch.Tensor:
    """[M, P, 5] raw points → [M, P, 11]: raw, offset to the pillar's point mean, offset to its centre.

    mmdet3d's PillarFeatureNet with ``with_cluster_center`` and ``with_voxel_center`` (non-legacy:
    z offset included); padding slots are zeroed, as its mask does.
    """
    features, counts, coors = voxels.features, voxels.num_points, voxels.coors
    dtype = features.dtype
    xyz = features[:, :, :3]
    mean = xyz.sum(dim=1, keepdim=True) / counts.clamp(min=1).to(dtype).view(-1, 1, 1)
    f_cluster = xyz - mean
    vx, vy, vz = cfg.voxel_size
    r = cfg.point_cloud_range
    centre = torch.stack(
        [coors[:, 2].to(dtype) * vx + (vx / 2 + r[0]), coors[:, 1].to(dtype) * vy + (vy / 2 + r[1]), coors[:, 0].to(dtype) * vz + (vz / 2 + r[2])],
        dim=1,
    ).unsqueeze(1)
    f_center = xyz - centre
    decorated = torch.cat([features, f_cluster, f_center], dim=-1)
    mask = torch.arange(features.shape[1], device=features.device).view(1, -1) < counts.view(-1, 1)
    return decorated * mask.unsqueeze(-1).to(dtype)


def scatter(pillar_features: torch.Tensor, coors: torch.Tensor, cfg: CenterPointConfig) -> torch.Tensor:
    """PointPillarsScatter: [M, 1, C] pillar features → canvas [1, C, ny, nx]."""
    nx, ny, _ = cfg.grid_size
    features = pillar_features.reshape(pillar_features.shape[0], -1)
    canvas = features.new_zeros((features.shape[1], ny * nx))
    canvas[:, coors[:, 1] * nx + coors[:, 2]] = features.t()
    return canvas.view(1, features.shape[1], ny, nx)
