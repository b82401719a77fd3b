"""Synthetic multi-camera sequences for StreamPETR: the ego vehicle drives through a seeded scene (objects moving
with their velocities), each frame seen by the config's cameras, and the frame's inputs built as AWML's test
pipeline builds them.

- Images: each camera's BGR frame rendered at ``final_dim`` (``model_specs.camera``: what
  ``ResizeCropFlipRotImage`` at test time gives a camera of that size: no crop, flip or rotation), normalised as
  ``NormalizeMultiviewImage`` does (``mmcv.imnormalize``: (BGR - mean) / std, ``to_rgb`` False), [1, N, 3, H, W].
- Camera matrices: ``intrinsics`` 4 x 4 (K padded), ``lidar2img = intrinsics @ lidar2cam``, ``img2lidar`` its inverse
  (what ``position_embeding`` reads); ``img_metas_pad`` the padded image's (height, width, 3).
- Ego motion: ``ego_pose`` (global ← ego) per frame from a constant speed and yaw rate, ``ego_pose_inv`` its inverse,
  ``timestamp`` in seconds (float64, as AWML exports it).
- Ground truth: the scene's boxes and classes in the frame's ego frame (``gt_boxes``, ``gt_labels``), for the metric.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from model_specs.camera import Camera, render
from model_specs.centerpoint.scene import Scene, SceneConfig, make_scene
from model_specs.streampetr.config import StreamPETRConfig

CAMERA_YAWS_DEG = (0.0, 55.0, 110.0, -55.0, -110.0)  # camera_order: FRONT, FRONT_LEFT, BACK_LEFT, FRONT_RIGHT, BACK_RIGHT
HORIZONTAL_FOV_DEG = 70.0
FRAME_INTERVAL_S = 0.1
EGO_SPEED_MPS = 8.0
EGO_YAW_RATE = 0.05  # rad/s: a gentle curve, so that the memory's alignment turns as well as moves
BOXES_ONLY = SceneConfig(rings=2, azimuth_steps=8, past_sweeps=0)  # the scene's objects; its lidar points are not used


@dataclass(frozen=True)
class Frame:
    """One frame of a sequence: what the three sections take, by input name."""

    img: np.ndarray  # [1, N, 3, H, W] float32, normalised
    img_metas_pad: np.ndarray  # [3] float32
    intrinsics: np.ndarray  # [1, N, 4, 4] float32
    img2lidar: np.ndarray  # [1, N, 4, 4] float32
    timestamp: np.ndarray  # [1] float64
    ego_pose: np.ndarray  # [1, 4, 4] float32, global <- ego
    ego_pose_inv: np.ndarray  # [1, 4, 4] float32
    # ground truth, in the ego frame of the frame (the head's box outputs' frame): x, y, z (centre), length, width, height,
    # yaw, vx, vy (velocity in the ego frame's axes)
    gt_boxes: np.ndarray  # [G, 9] float32
    gt_labels: np.ndarray  # [G] int64, indexes into cfg.classes


def cameras(cfg: StreamPETRConfig) -> list[Camera]:
    height, width = cfg.final_dim
    return [Camera(height, width, HORIZONTAL_FOV_DEG, (1.0, 0.0, 1.6), yaw) for yaw in CAMERA_YAWS_DEG[: cfg.num_cameras]]


def ego_pose(k: int) -> np.ndarray:
    """Global ← ego at frame ``k`` (float64): driving along a circle arc from the origin."""
    t = k * FRAME_INTERVAL_S
    yaw = EGO_YAW_RATE * t
    x, y = ((EGO_SPEED_MPS / EGO_YAW_RATE) * math.sin(yaw), (EGO_SPEED_MPS / EGO_YAW_RATE) * (1 - math.cos(yaw)))
    pose = np.eye(4)
    pose[:2, :2] = [[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]]
    pose[:2, 3] = (x, y)
    return pose


def scene_at(scene: Scene, k: int) -> Scene:
    """The scene's boxes in the ego frame of frame ``k``: objects moved by their velocities, seen from the ego's pose."""
    boxes = scene.boxes.astype(np.float64).copy()
    boxes[:, :2] += boxes[:, 7:9] * k * FRAME_INTERVAL_S
    inverse = np.linalg.inv(ego_pose(k))
    centres = np.c_[boxes[:, :3], np.ones(len(boxes))] @ inverse.T
    boxes[:, :3] = centres[:, :3]
    boxes[:, 6] -= EGO_YAW_RATE * k * FRAME_INTERVAL_S
    return dataclasses.replace(scene, boxes=boxes.astype(np.float32))


def ground_truth(scene: Scene, k: int, cfg: StreamPETRConfig) -> tuple[np.ndarray, np.ndarray]:
    """(gt_boxes, gt_labels) of frame ``k``: ``scene_at``'s boxes with their velocities turned into the ego frame's axes,
    labels mapped from the scene's class names to ``cfg.classes`` (a class the config lacks is left out)."""
    now = scene_at(scene, k)
    boxes = now.boxes.astype(np.float64).copy()
    yaw = EGO_YAW_RATE * k * FRAME_INTERVAL_S
    c, s = math.cos(yaw), math.sin(yaw)
    boxes[:, 7:9] = boxes[:, 7:9] @ np.array([[c, -s], [s, c]])  # R(yaw)^T applied to each row vector
    index = {name: i for i, name in enumerate(cfg.classes)}
    labels = np.array([index.get(now.class_names[label], -1) for label in now.labels], np.int64)
    keep = labels >= 0
    return boxes[keep].astype(np.float32), labels[keep]


def normalise(image_bgr: np.ndarray, cfg: StreamPETRConfig) -> np.ndarray:
    """``mmcv.imnormalize`` as NormalizeMultiviewImage calls it, bit for bit: float32 (image - mean) times the float32 of
    1 / std (mmcv multiplies by the inverse, which rounds otherwise than dividing), channels first."""
    image = image_bgr[..., ::-1] if cfg.to_rgb else image_bgr
    mean = np.asarray(cfg.img_mean, np.float32)
    inverse = (1.0 / np.asarray(cfg.img_std, np.float32).astype(np.float64)).astype(np.float32)
    return ((image.astype(np.float32) - mean) * inverse).transpose(2, 0, 1)


def camera_matrices(cfg: StreamPETRConfig) -> tuple[np.ndarray, np.ndarray]:
    """(intrinsics [N, 4, 4], img2lidar [N, 4, 4]) in float64: K padded to 4 x 4, and the inverse of K @ lidar2cam."""
    intrinsics, img2lidar = [], []
    for camera in cameras(cfg):
        k = np.eye(4)
        k[:3, :3] = camera.intrinsics()
        intrinsics.append(k)
        img2lidar.append(np.linalg.inv(k @ camera.lidar_to_camera()))
    return np.stack(intrinsics), np.stack(img2lidar)


def sequence(cfg: StreamPETRConfig, frames: int, seed: int) -> list[Frame]:
    """``frames`` consecutive frames of one seeded scene."""
    scene = make_scene(seed, BOXES_ONLY)
    intrinsics, img2lidar = camera_matrices(cfg)
    height, width = cfg.final_dim
    made = []
    for k in range(frames):
        now = scene_at(scene, k)
        images = [normalise(render(now, camera, seed * 1000 + k * 10 + i), cfg) for i, camera in enumerate(cameras(cfg))]
        pose = ego_pose(k)
        truth = ground_truth(scene, k, cfg)
        made.append(Frame(img=np.stack(images)[None], img_metas_pad=np.array([height, width, 3], np.float32),
                          intrinsics=intrinsics[None].astype(np.float32), img2lidar=img2lidar[None].astype(np.float32),
                          timestamp=np.array([k * FRAME_INTERVAL_S], np.float64), ego_pose=pose[None].astype(np.float32),
                          ego_pose_inv=np.linalg.inv(pose)[None].astype(np.float32), gt_boxes=truth[0], gt_labels=truth[1]))
    return made
