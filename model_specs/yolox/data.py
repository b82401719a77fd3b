"""YOLOX samples: synthetic multi-camera frames and the letterbox that turns a frame into the network input.

A sample is one synthetic scene seen by ``batch`` cameras spread around the vehicle (Autoware runs one
static-batch engine over its cameras), each a BGR uint8 frame of ``camera_size``. The letterbox is
AWML's test pipeline (mmdet's keep-ratio Resize, then Pad to square with 114) and Autoware's
preprocess: scale = min(input / frame) per side, resize, pad bottom and right with 114, BGR 0-255 as
float. The synthetic frames are drawn at half resolution and repeated 2 x 2, and ``camera_size`` is
exactly twice the letterboxed content, so the resize is exact in any resizer (the recorded mmdet
pipeline output equals this one bit for bit); other sizes resize bilinearly (Autoware's GPU path),
which may differ from OpenCV's fixed-point resize by an 8-bit level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from model_specs.camera import Camera, render
from model_specs.centerpoint.scene import SceneConfig, make_scene
from model_specs.yolox.config import YoloxConfig

FRAME_BLOCK = 2  # frames repeat every pixel 2 x 2: a 1/2 resize is exact (see the module docstring)
# the scene the cameras look at: a city block, objects within the cameras' useful range
SCENE = SceneConfig(max_range=60.0, rings=16, azimuth_steps=256, objects=40, min_object_distance=5.0, past_sweeps=0)
CAMERA_FOV_DEG = 90.0


@dataclass(frozen=True)
class CameraFrames:
    """One sample: ``frames`` [B, H, W, 3] BGR uint8, one per camera, and the scene's seed."""

    frames: np.ndarray
    seed: int


def camera_frames(seed: int, cfg: YoloxConfig, batch: int) -> CameraFrames:
    """``batch`` cameras at yaws 360 / batch apart (the first looks forward) of one seeded scene."""
    scene = make_scene(seed, SCENE)
    h, w = cfg.camera_size
    frames = [render(scene, Camera(h, w, CAMERA_FOV_DEG, yaw_deg=360.0 * i / batch), seed * 100 + i, block=FRAME_BLOCK)
              for i in range(batch)]
    return CameraFrames(np.stack(frames), seed)


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
