"""The frames the oracle and the bundle pipeline are compared on: the spec's seeded synthetic scenes and the two
real scans the project uses (mmdet3d's demo data: a KITTI velodyne scan, N x 4, and a nuScenes LIDAR_TOP sweep,
N x 5), each as the car's driver delivers it: intensity as an integer 0..255 (Autoware's ``InputPointType`` holds
a uint8; a fractional intensity would differ by its truncation, which says nothing about the pipelines)."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from model_specs.centerpoint import data
from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.scene import Scene

# name → (path in open-mmlab/mmdetection3d, columns of the .bin): the real scans (issue #18's checks ran on these)
REAL_SCANS = {
    "kitti-000008": ("demo/data/kitti/000008.bin", 4),
    "nuscenes-lidar-top": ("demo/data/nuscenes/n015-2018-07-24-11-22-45+0800__LIDAR_TOP__1532402927647951.pcd.bin", 5),
}
CROP_MARGIN_M = 1.0  # a stored real scan keeps this much beyond the grid, so that the range's edge is still tested


@dataclass(frozen=True)
class Frame:
    name: str
    scene: Scene
    real: bool


def as_node_input(scene: Scene) -> Scene:
    """The scene with every intensity truncated to an integer in 0..255, as a uint8 field carries it."""
    def cut(points: np.ndarray) -> np.ndarray:
        out = points.copy()
        out[:, 3] = np.clip(np.floor(out[:, 3]), 0, 255)
        return out

    return replace(scene, sweeps=tuple(replace(s, points=cut(s.points)) for s in scene.sweeps))


def synthetic(make_samples, count: int, seed: int) -> list[Frame]:
    """The spec's seeded samples (``make_samples(count, seed)``), as the node would receive them."""
    return [Frame(f"synthetic-{seed}-{i}", as_node_input(scene), False) for i, scene in enumerate(make_samples(count, seed))]


def real(name: str, points: np.ndarray, cfg: CenterPointConfig) -> Frame:
    """A real scan's [N, 4] points read as the spec reads a scan file (``data.load``: its past sweeps stood in for
    by the scan itself when the config pads empty sweeps), as the node would receive them."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.npy"
        np.save(path, points.astype(np.float32))
        (scene,) = data.load(path, {}, cfg)
    return Frame(name, as_node_input(scene), True)


def read_scan(path: Path, columns: int) -> np.ndarray:
    """A scan file's x, y, z, intensity ([N, 4] float32), as ``data.load`` reads it."""
    (scene,) = data.load(Path(path), {"point_features": str(columns)})
    return scene.sweeps[0].points


def crop(points: np.ndarray, cfg: CenterPointConfig, margin: float = CROP_MARGIN_M) -> np.ndarray:
    """The points within the grid's x/y range plus ``margin``: what a stored scan needs (the rest is dropped by both)."""
    r = cfg.point_cloud_range
    inside = (points[:, 0] >= r[0] - margin) & (points[:, 0] < r[3] + margin) & (points[:, 1] >= r[1] - margin) & (points[:, 1] < r[4] + margin)
    return points[inside]


def digest(scene: Scene) -> str:
    """The scene's points, poses and times, hashed: a regenerated synthetic frame must be the recorded one."""
    h = hashlib.sha256()
    for sweep in scene.sweeps:
        h.update(np.ascontiguousarray(sweep.points, np.float32).tobytes())
        h.update(np.asarray(sweep.pose, np.float64).tobytes())
        h.update(np.float64(sweep.time_s).tobytes())
    return h.hexdigest()
