"""YOLOX samples: synthetic multi-camera frames and the letterbox that turns a frame into the network input.

A sample is one synthetic scene seen by ``batch`` cameras spread around the vehicle (Autoware runs one
static-batch engine over its cameras), each a BGR uint8 frame of ``camera_size``. The letterbox is
AWML's test pipeline (mmdet's keep-ratio Resize, then Pad to square with 114) and Autoware's
preprocess: scale = min(input / frame) per side, resize, pad bottom and right with 114, BGR 0-255 as
float. The synthetic frames are drawn at half resolution and repeated 2 x 2, and ``camera_size`` is
exactly twice the letterboxed content, so the resize is exact in any resizer (the recorded mmdet
pipeline output equals this one bit for bit); other sizes resize bilinearly (Autoware's GPU path),
which may differ from OpenCV's fixed-point resize by an 8-bit level.

Every frame carries its ground truth (:class:`FrameTruth`): the painted rectangle of each object the
frame shows (``model_specs.camera.visible_boxes``: projected 3D box, clipped to the frame, dropped when
not drawn, smaller than ``MIN_BOX_SIDE_PX`` or less than ``MIN_VISIBLE`` uncovered), labelled with the
spec's class of the scene's class (car, truck, bus, bicycle, pedestrian map to AWML's names).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from model_specs.camera import Camera, render, visible_boxes
from model_specs.centerpoint.scene import CLASSES as SCENE_CLASSES
from model_specs.centerpoint.scene import Scene, SceneConfig, make_scene
from model_specs.yolox.config import YoloxConfig

FRAME_BLOCK = 2  # frames repeat every pixel 2 x 2: a 1/2 resize is exact (see the module docstring)
# the scene the cameras look at: a city block, objects within the cameras' useful range
SCENE = SceneConfig(max_range=60.0, rings=16, azimuth_steps=256, objects=40, min_object_distance=5.0, past_sweeps=0)
CAMERA_FOV_DEG = 90.0
# Ground truth: an object counts when half its rectangle is in sight and both sides span 8 frame pixels
# (4 network pixels on the tiny spec's half-size letterbox, half its finest stride): less is not findable.
MIN_VISIBLE = 0.5
MIN_BOX_SIDE_PX = 8.0


@dataclass(frozen=True)
class FrameTruth:
    """One frame's ground truth: ``boxes`` [K, 4] float32 x1, y1, x2, y2 in frame pixels, ``labels`` [K]
    indices into the spec's classes."""

    boxes: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class CameraFrames:
    """One sample: ``frames`` [B, H, W, 3] BGR uint8, one per camera, the scene's seed and each frame's
    ground truth (empty for frames that come without labels)."""

    frames: np.ndarray
    seed: int
    truth: tuple[FrameTruth, ...] = field(default=(), compare=False)


def class_indices(cfg: YoloxConfig) -> np.ndarray:
    """The spec's class index of each scene class, by name (a spec without the name gets -1: no box)."""
    return np.array([cfg.classes.index(row[0]) if row[0] in cfg.classes else -1 for row in SCENE_CLASSES], np.int64)


def frame_truth(scene: Scene, camera: Camera, cfg: YoloxConfig) -> FrameTruth:
    found = visible_boxes(scene, camera, FRAME_BLOCK, MIN_VISIBLE, MIN_BOX_SIDE_PX)
    labels = class_indices(cfg)[found.labels]
    keep = labels >= 0
    return FrameTruth(found.boxes[keep], labels[keep])


def camera_frames(seed: int, cfg: YoloxConfig, batch: int) -> CameraFrames:
    """``batch`` cameras at yaws 360 / batch apart (the first looks forward) of one seeded scene."""
    scene = make_scene(seed, SCENE)
    h, w = cfg.camera_size
    cameras = [Camera(h, w, CAMERA_FOV_DEG, yaw_deg=360.0 * i / batch) for i in range(batch)]
    frames = [render(scene, camera, seed * 100 + i, block=FRAME_BLOCK) for i, camera in enumerate(cameras)]
    return CameraFrames(np.stack(frames), seed, tuple(frame_truth(scene, camera, cfg) for camera in cameras))


def letterbox_scale(frame_hw: tuple[int, int], input_size: tuple[int, int]) -> float:
    return min(input_size[0] / frame_hw[0], input_size[1] / frame_hw[1])


def letterbox(frame: np.ndarray, input_size: tuple[int, int], pad_value: float) -> np.ndarray:
    """A BGR uint8 frame [H, W, 3] → the network input [3, h, w] float32 (0-255, padded with ``pad_value``)."""
    scale = letterbox_scale(frame.shape[:2], input_size)
    rows, cols = int(frame.shape[0] * scale), int(frame.shape[1] * scale)  # Autoware truncates (cv::Size of floats)
    image = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).float()[None]
    if (rows, cols) != frame.shape[:2]:
        image = torch.nn.functional.interpolate(image, size=(rows, cols), mode="bilinear", align_corners=False, antialias=False)
    out = np.full((3, *input_size), pad_value, np.float32)
    out[:, :rows, :cols] = np.clip(np.rint(image[0].numpy()), 0, 255)  # an 8-bit image, as the resizers return
    return out


def network_input(sample: CameraFrames, cfg: YoloxConfig) -> np.ndarray:
    """[B, 3, h, w] float32: every frame letterboxed."""
    return np.stack([letterbox(frame, cfg.input_size, cfg.pad_value) for frame in sample.frames])
