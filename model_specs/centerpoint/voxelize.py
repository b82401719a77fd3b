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
    Each sweep is uploaded to ``device`` as it came, into its rows of one buffer, and moved there
    (what Autoware's densification does on its GPU): no host-side concatenation, no per-point host work.
    """
    current = sweeps[0]
    used = sweeps[: cfg.past_sweeps + 1]
    to_current = np.linalg.inv(current.pose)
    with_lag = "time_lag" in cfg.point_feature_names
    out = torch.empty((sum(len(s.points) for s in used), 4 + with_lag), dtype=torch.float32, device=device)
    row = 0
    for sweep in used:
        rows = out[row : row + len(sweep.points)]
        row += len(sweep.points)
        rows[:, :4].copy_(torch.from_numpy(np.ascontiguousarray(sweep.points[:, :4], dtype=np.float32)))
        if sweep is not current:
            transform = torch.from_numpy((to_current @ sweep.pose).astype(np.float32)).to(device)
            rows[:, :3] = torch.addmm(transform[:3, 3], rows[:, :3], transform[:3, :3].T)
        if with_lag:
            rows[:, 4].fill_(float(current.time_s - sweep.time_s))
    return out


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

    Written for the GPU as much as the CPU: two stable sorts and scatters over fixed-size buffers, no
    boolean compaction; the one host synchronization is the voxel count the outputs' shapes need
    (Autoware reads it back too, to size its encoder's input).
    """
    device = points.device
    n = points.shape[0]
    nx, ny, nz = cfg.grid_size
    outside = nx * ny * nz  # the key of every dropped point: sorts after every cell
    # Divided by a tensor, not a Python float: CUDA turns division by a host scalar into multiplication
    # by its reciprocal, which rounds differently and moves boundary points to the next cell.
    low, size, grid = points.new_tensor([cfg.point_cloud_range[:3], cfg.voxel_size, cfg.grid_size]).unbind(0)  # one upload
    cell = torch.floor((points[:, :3] - low) / size)
    inside = ((cell >= 0) & (cell < grid)).all(dim=1)  # NaN and inf compare false: dropped as well
    cell = cell.long()  # outside points' cells are garbage; the key below and the spare row never read them
    key = torch.where(inside, (cell[:, 2] * ny + cell[:, 1]) * nx + cell[:, 0], outside)
    # Points grouped by cell, in point order within each cell (stable).
    sorted_key, by_cell = torch.sort(key, stable=True)
    position = torch.arange(n, device=device)
    opens = torch.ones(n, dtype=torch.bool, device=device)
    opens[1:] = sorted_key[1:] != sorted_key[:-1]
    group = torch.cumsum(opens, 0) - 1  # the cell group of each sorted point
    slot = position - torch.searchsorted(sorted_key, sorted_key)  # its place within the group (a binary search: CUDA's cummax is slow)
    # Groups ranked by their first point, the order mmcv numbers voxels in; the dropped points' group last.
    first = torch.full((n,), n, dtype=torch.long, device=device)
    first.scatter_reduce_(0, group, torch.where(sorted_key == outside, n, by_cell), reduce="amin")
    rank = torch.empty_like(first)
    rank[torch.argsort(first, stable=True)] = position
    voxel = rank[group]
    num_voxels = min(int((opens & (sorted_key != outside)).sum()), cfg.max_voxels)  # the one synchronization
    taken = (voxel < num_voxels) & (slot < cfg.max_points_per_voxel) & (sorted_key != outside)
    row = torch.where(taken, voxel, num_voxels)  # everything not taken lands in a spare row, cut off below
    features = points.new_zeros((num_voxels + 1, cfg.max_points_per_voxel, points.shape[1]))
    features[row, torch.where(taken, slot, 0)] = points[by_cell]
    counts = torch.zeros(num_voxels + 1, dtype=torch.long, device=device).scatter_add_(0, row, taken.long())
    coors = torch.zeros((num_voxels + 1, 3), dtype=torch.long, device=device)
    coors[row] = cell[by_cell].flip(1)  # every point of a voxel has its cell: duplicate writes agree
    return Voxels(features[:num_voxels], counts[:num_voxels], coors[:num_voxels])


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
    # Masked before the concatenation (the raw features' padding is zero already): one pass less over
    # the largest tensor of the pre-processing, same values.
    mask = (torch.arange(features.shape[1], device=features.device).view(1, -1) < counts.view(-1, 1)).unsqueeze(-1).to(dtype)
    return torch.cat([features, f_cluster * mask, (xyz - centre) * mask], dim=-1)


def scatter(pillar_features: torch.Tensor, coors: torch.Tensor, cfg: CenterPointConfig) -> torch.Tensor:
    """PointPillarsScatter: [M, 1, C] pillar features → canvas [1, C, ny, nx]."""
    nx, ny, _ = cfg.grid_size
    features = pillar_features.reshape(pillar_features.shape[0], -1)
    canvas = features.new_zeros((features.shape[1], ny * nx))
    canvas[:, coors[:, 1] * nx + coors[:, 2]] = features.t()
    return canvas.view(1, features.shape[1], ny, nx)
