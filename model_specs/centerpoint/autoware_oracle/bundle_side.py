"""The bundle pipeline's side of the comparison: its voxels and encoder input for a frame (the pipeline's own
functions, on the node's configuration) and the y-axis head's outputs the two decoders are given."""

from __future__ import annotations

import numpy as np
import torch

from model_specs.centerpoint.autoware import node_config
from model_specs.centerpoint.autoware_oracle.compare import Voxels
from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.model import BackboneNeckHeadExport, CenterPoint
from model_specs.centerpoint.scene import Scene
from model_specs.centerpoint.voxelize import decorate, densify, grid_constants, scatter, voxelize


def bundle_voxels(scene: Scene, cfg: CenterPointConfig, device: torch.device | str = "cpu") -> tuple[Voxels, np.ndarray, torch.Tensor, torch.Tensor]:
    """The bundle pipeline's voxels for the frame (host arrays), each voxel's point count before the 32-point cap,
    and the encoder input and coors as tensors on ``device`` (for the heads)."""
    node = node_config(cfg)
    points = densify(scene.sweeps, node, device)
    voxels = voxelize(points, node)
    features = decorate(voxels, node)
    coors = voxels.coors.cpu().numpy()
    host = Voxels(coors, voxels.num_points.cpu().numpy(), features.cpu().numpy())
    return host, cell_points(points, coors, node), features, voxels.coors


def cell_points(points: torch.Tensor, coors: np.ndarray, cfg: CenterPointConfig) -> np.ndarray:
    """How many of the cloud's points fall in each voxel's cell (the voxelizer's own cell arithmetic), uncapped."""
    grid = grid_constants(cfg, points.device, points.dtype)
    cell = torch.floor((points[:, :3] - grid.low) / grid.size)
    inside = ((cell >= 0) & (cell < grid.cells)).all(dim=1)
    nx, ny, _ = cfg.grid_size
    cell = cell[inside].long().cpu().numpy()
    keys, counts = np.unique((cell[:, 2] * ny + cell[:, 1]) * nx + cell[:, 0], return_counts=True)
    wanted = (coors[:, 0] * ny + coors[:, 1]) * nx + coors[:, 2]
    return counts[np.searchsorted(keys, wanted)]


@torch.no_grad()
def y_axis_heads(model: CenterPoint, features: torch.Tensor, coors: torch.Tensor, cfg: CenterPointConfig) -> dict[str, torch.Tensor]:
    """The bundle graphs' outputs (encoder, scatter, the y-axis backbone/neck/head) for one frame, in float32."""
    pillars = model.pts_voxel_encoder(features)
    heads = BackboneNeckHeadExport(model, rot_y_axis_reference=True)(scatter(pillars, coors, cfg))
    return dict(zip(("heatmap", "reg", "height", "dim", "rot", "vel"), heads, strict=True))
