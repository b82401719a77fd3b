"""Calibration samples built the way AWML's CalibrationClassificationTransform builds them (test mode).

A sample is a synthetic camera frame, the lidar sweep of the same synthetic scene, the camera matrix and a
lidar-to-camera transform (the true one, or one AWML's way of miscalibrating would give). ``fuse``
turns it into the network input exactly as the transform does: points to the camera frame
(``(T @ [x, y, z, 1]^T)^T`` in float64), those with z > 0 projected through the camera matrix with no
distortion (OpenCV's projectPoints: x * (1 / z) * f + c), kept inside [0, size - 1] and at
0 < z < max_depth; each written into the (2 d + 1)^2 patch around its truncated pixel, depth as
255 z / max_depth and the raw intensity, farthest first so that the nearest point of a pixel wins;
then B, G, R, depth, intensity all divided by 255, channels first. The recorded AWML transform output
under ``tests/data/upstream/`` holds this to the bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model_specs.calibration.config import CalibrationConfig
from model_specs.camera import Camera, render
from model_specs.centerpoint.scene import SceneConfig, make_scene

# AWML's alter_calibration (CalibrationClassificationTransform._generate_label): a rotation of 1-10
# degrees about a random axis and a translation of 0.05-0.2 m in a random direction, each drawn from a
# normal centred on the minimum with scale (max - min) / 1.5, truncated to [min, max]
MISCALIBRATION_DEG, MISCALIBRATION_M, TRUNCNORM_SCALE = (1.0, 10.0), (0.05, 0.2), 1.5
# the lidar and world of a calibration frame: one sweep (AWML classifies a single frame)
SCENE = SceneConfig(max_range=80.0, rings=32, azimuth_steps=1024, objects=30, min_object_distance=5.0, past_sweeps=0)
CAMERA_FOV_DEG = 90.0
PIXEL_SCALE = 255.0  # the transform divides every channel by 255; depth is first mapped to 0-255


@dataclass(frozen=True)
class CalibrationFrame:
    image: np.ndarray  # [H, W, 3] uint8 BGR
    points: np.ndarray  # [N, 4] float32 x, y, z, intensity in the lidar frame
    camera_matrix: np.ndarray  # [3, 3] float64
    lidar_to_camera: np.ndarray  # [4, 4] float64: the true transform, or a miscalibrated one
    label: int  # what the frame was built as: 1 calibrated, 0 miscalibrated
    seed: int


def _truncated(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    while True:
        value = low + abs(rng.normal(0.0, (high - low) / TRUNCNORM_SCALE))
        if value <= high:
            return value


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def miscalibrate(lidar_to_camera: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``lidar_to_camera @ noise``: a random rotation and translation of AWML's magnitudes and signs."""
    angle = math.radians(_truncated(rng, MISCALIBRATION_DEG)) * rng.choice((-1.0, 1.0))
    axis = _unit(rng)
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    noise = np.eye(4)
    noise[:3, :3] = np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * k @ k  # Rodrigues
    noise[:3, 3] = _truncated(rng, MISCALIBRATION_M) * rng.choice((-1.0, 1.0)) * _unit(rng)
    return lidar_to_camera @ noise


def calibration_frame(seed: int, height: int, width: int, calibrated: bool) -> CalibrationFrame:
    scene = make_scene(seed, SCENE)
    camera = Camera(height, width, CAMERA_FOV_DEG)
    transform = camera.lidar_to_camera()
    if not calibrated:
        transform = miscalibrate(transform, np.random.default_rng(seed))
    return CalibrationFrame(render(scene, camera, seed), scene.current.points, camera.intrinsics(), transform, int(calibrated), seed)


def fuse(frame: CalibrationFrame, cfg: CalibrationConfig) -> np.ndarray:
    """The network input [5, H, W] float32 (see the module docstring)."""
    h, w = frame.image.shape[:2]
    xyz, intensity = frame.points[:, :3], frame.points[:, 3]
    homogeneous = np.concatenate([xyz, np.ones((len(xyz), 1), xyz.dtype)], axis=1)
    in_camera = (frame.lidar_to_camera @ homogeneous.T).T[:, :3]
    front = in_camera[:, 2] > 0.0
    in_camera, intensity = in_camera[front], intensity[front]
    k = frame.camera_matrix
    inverse_z = 1.0 / in_camera[:, 2]
    u = in_camera[:, 0] * inverse_z * k[0, 0] + k[0, 2]
    v = in_camera[:, 1] * inverse_z * k[1, 1] + k[1, 2]
    keep = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1) & (in_camera[:, 2] < cfg.max_depth)
    d = cfg.dilation_size
    dy, dx = (o.ravel() for o in np.mgrid[-d:d + 1, -d:d + 1])
    rows = v[keep].astype(np.int32)[:, None] + dy[None]
    cols = u[keep].astype(np.int32)[:, None] + dx[None]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    depth = np.broadcast_to((PIXEL_SCALE * in_camera[keep, 2] / cfg.max_depth)[:, None], rows.shape)[inside]
    value = np.broadcast_to(intensity[keep][:, None], rows.shape)[inside]
    rows, cols = rows[inside], cols[inside]
    farthest_first = np.argsort(depth)[::-1]  # later writes win: the nearest point of a pixel is written last
    depth_image, intensity_image = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    depth_image[rows[farthest_first], cols[farthest_first]] = depth[farthest_first]
    intensity_image[rows[farthest_first], cols[farthest_first]] = value[farthest_first]
    fused = np.concatenate([frame.image, depth_image[..., None], intensity_image[..., None]], axis=2, dtype=np.float32) / PIXEL_SCALE
    return np.ascontiguousarray(fused.transpose(2, 0, 1))
