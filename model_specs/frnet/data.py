"""Synthetic lidar scans with per-point labels, and AWML's FRNet pre-processing.

A scan is the current sweep of ``model_specs.centerpoint.scene`` (a spinning lidar ray-cast against a ground plane
and boxes) with the sensor's rings and field of view, in the sensor's frame; each point is labelled with the class of
the box it lies on (car, truck, bus, bicycle, pedestrian, as AWML's t4dataset classes) or ``drivable_surface``.

``interpolate`` is AWML's ``RangeInterpolation`` (test pipeline): the points projected into a ``lidar_h x range_w``
range image (the nearest point wins a pixel), and every empty pixel whose left and right neighbours hold a point
gets their mean as a new point, appended in row-major order. AWML walks the pixels one by one and marks each filled
pixel valid as it goes; a filled pixel's right neighbour was valid already, so no fill depends on another and the
walk is the vectorised test here (same points, same order). AWML's quirk is kept: a pixel holding point 0 counts
as empty (``proj_idx > 0``). ``group`` is AWML's ``FrustumRangePreprocessor``: each point's frustum cell (batch,
row, column of a ``lidar_h x frustum_w`` image), the unique cells and each point's cell index (``torch.unique``).
The network's four inputs are what ``group`` returns; the pipeline keeps the first ``num_points`` predictions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from model_specs.centerpoint.scene import SceneConfig, make_scene
from model_specs.frnet.config import FRNetConfig

# model_specs.centerpoint.scene's classes → AWML's t4dataset segmentation classes (class_mapping)
SCENE_CLASSES = {"car": 5, "truck": 9, "bus": 6, "bicycle": 16, "pedestrian": 17}
GROUND = 0  # drivable_surface
UNSCORED = -1  # a point's label where it has none (a real scan without labels, or AWML's ignore_index): the metric skips it
# azimuth steps of the specs' synthetic scans: 800 keep a full-size scan's frustum cells (~45 000) inside AWML's 60 000
# profile; 400 fit frnet-tiny's 4 000 cells
FULL_AZIMUTH_STEPS, TINY_AZIMUTH_STEPS = 800, 400
BOX_MARGIN_M = 0.15  # a return on a box's face lies within range noise of it


@dataclass(frozen=True)
class LidarScan:
    points: np.ndarray  # [N, 4] float32 x, y, z, intensity in the sensor frame
    labels: np.ndarray  # [N] int64 class indices, UNSCORED where the point is not scored
    seed: int


def scene_config(cfg: FRNetConfig, azimuth_steps: int) -> SceneConfig:
    return dataclasses.replace(SceneConfig(), rings=cfg.lidar_h, azimuth_steps=azimuth_steps, elevation_deg=(cfg.fov_down, cfg.fov_up),
                               past_sweeps=0)


def _labels(points: np.ndarray, boxes: np.ndarray, box_labels: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    labels = np.full(len(points), GROUND, np.int64)
    for box, label in zip(boxes, box_labels, strict=True):
        c, s = np.cos(-box[6]), np.sin(-box[6])
        local = points[:, :3] - box[:3]
        x, y = c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1]
        half = box[3:6] / 2 + BOX_MARGIN_M
        inside = (np.abs(x) <= half[0]) & (np.abs(y) <= half[1]) & (np.abs(local[:, 2]) <= half[2])
        labels[inside] = SCENE_CLASSES[names[label]]
    return labels


def lidar_scan(seed: int, cfg: FRNetConfig, azimuth_steps: int) -> LidarScan:
    scene_cfg = scene_config(cfg, azimuth_steps)
    scene = make_scene(seed, scene_cfg)
    points = scene.sweeps[0].points.copy()
    labels = _labels(points, scene.boxes, scene.labels, scene.class_names)
    points[:, 2] -= scene_cfg.sensor_height  # the scene's frame is on the ground under the sensor
    return LidarScan(points, labels, seed)


def _projection(points: np.ndarray, height: int, width: int, cfg: FRNetConfig) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of each point in a ``height x width`` image, as AWML's RangeInterpolation computes them (NumPy)."""
    fov_up, fov_down = cfg.fov_up / 180.0 * np.pi, cfg.fov_down / 180.0 * np.pi
    fov = abs(fov_down) + abs(fov_up)
    depth = np.linalg.norm(points[:, :3], 2, axis=1)
    yaw = -np.arctan2(points[:, 1], points[:, 0])
    pitch = np.arcsin(points[:, 2] / depth)
    x = np.maximum(0, np.minimum(width - 1, np.floor(0.5 * (yaw / np.pi + 1.0) * width))).astype(np.int64)
    y = np.maximum(0, np.minimum(height - 1, np.floor((1.0 - (pitch + abs(fov_down)) / fov) * height))).astype(np.int64)
    return y, x


def interpolate(points: np.ndarray, cfg: FRNetConfig) -> np.ndarray:
    """AWML's RangeInterpolation: the scan with the interpolated points appended ([N + K, 4] float32)."""
    y, x = _projection(points, cfg.lidar_h, cfg.range_w, cfg)
    image = np.full((cfg.lidar_h, cfg.range_w, points.shape[1]), -1, np.float32)
    index = np.full((cfg.lidar_h, cfg.range_w), -1, np.int64)
    order = np.argsort(np.linalg.norm(points[:, :3], 2, axis=1))[::-1]  # far to near: the nearest write stays
    index[y[order], x[order]] = order
    image[y[order], x[order]] = points[order]
    valid = index > 0
    fill = np.zeros_like(valid)
    fill[:, 1:-1] = ~valid[:, 1:-1] & valid[:, :-2] & valid[:, 2:]
    rows, cols = np.nonzero(fill)
    added = (image[rows, cols - 1] + image[rows, cols + 1]) / 2
    return np.concatenate([points, added.astype(np.float32)]) if len(added) else points


def group(points: np.ndarray, cfg: FRNetConfig) -> dict[str, torch.Tensor]:
    """AWML's FrustumRangePreprocessor on one scan (batch 0): the graph's four inputs."""
    tensor = torch.from_numpy(points)
    fov_up, fov_down = cfg.fov_up / 180 * np.pi, cfg.fov_down / 180 * np.pi
    fov = abs(fov_down) + abs(fov_up)
    depth = torch.linalg.norm(tensor[:, :3], 2, dim=1)
    yaw = -torch.atan2(tensor[:, 1], tensor[:, 0])
    pitch = torch.arcsin(tensor[:, 2] / depth)
    x = torch.clamp(torch.floor(0.5 * (yaw / np.pi + 1.0) * cfg.frustum_w), min=0, max=cfg.frustum_w - 1).type(torch.int64)
    y = torch.clamp(torch.floor((1.0 - (pitch + abs(fov_down)) / fov) * cfg.lidar_h), min=0, max=cfg.lidar_h - 1).type(torch.int64)
    coors = torch.nn.functional.pad(torch.stack([y, x], dim=1), (1, 0), mode="constant", value=0)
    voxel_coors, inverse_map = torch.unique(coors, return_inverse=True, dim=0)
    return {"points": tensor, "coors": coors, "voxel_coors": voxel_coors, "inverse_map": inverse_map}


def network_inputs(scan: LidarScan, cfg: FRNetConfig) -> dict[str, torch.Tensor]:
    return group(interpolate(scan.points, cfg), cfg)
