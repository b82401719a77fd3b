"""Seeded synthetic camera frames of the synthetic lidar scenes, for the camera specs (YOLOX, calibration).

A pinhole camera (no distortion) is mounted on the ego vehicle at a yaw; the frame is drawn from the
scene's ground-truth boxes (sky, road, and every box in front of the camera as a shaded rectangle,
nearer boxes over farther ones) with sensor noise, so that a detector sees object-like regions where
the lidar sees objects and the calibration classifier gets a lidar projection that lines up with
the picture. Frames are BGR uint8 [H, W, 3], as OpenCV (and so AWML and Autoware) hold images.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from model_specs.centerpoint.scene import Scene

# B, G, R per scene class (car, truck, bus, bicycle, pedestrian): distinct, mid-range colours
CLASS_COLOURS = np.array([[60, 60, 200], [40, 160, 220], [200, 120, 40], [60, 200, 60], [200, 60, 200]], np.float64)
SKY, ROAD = (np.array([210.0, 170.0, 120.0]), np.array([150.0, 160.0, 200.0])), (np.array([90.0, 90.0, 95.0]), np.array([140.0, 140.0, 150.0]))
PIXEL_NOISE = 6.0  # std of the per-pixel sensor noise, in 8-bit levels
COLOUR_JITTER = 30.0  # per-object colour spread, in 8-bit levels
NEAREST_CORNER_M = 0.5  # a box is drawn only when all its corners are this far in front of the camera


@dataclass(frozen=True)
class Camera:
    """A level pinhole camera on the ego vehicle, in the lidar frame (x forward, y left, z up, z = 0 at
    the ground): ``position`` in metres, ``yaw_deg`` counter-clockwise from the vehicle's x axis."""

    height: int
    width: int
    horizontal_fov_deg: float = 90.0
    position: tuple[float, float, float] = (1.5, 0.0, 1.6)
    yaw_deg: float = 0.0

    def intrinsics(self) -> np.ndarray:
        """3 x 3 K (float64): square pixels, principal point at the image centre."""
        f = (self.width / 2.0) / math.tan(math.radians(self.horizontal_fov_deg) / 2.0)
        return np.array([[f, 0.0, self.width / 2.0], [0.0, f, self.height / 2.0], [0.0, 0.0, 1.0]])

    def lidar_to_camera(self) -> np.ndarray:
        """4 x 4 (float64) from the lidar frame to the camera frame (x right, y down, z forward)."""
        yaw = math.radians(self.yaw_deg)
        forward, right, down = (math.cos(yaw), math.sin(yaw), 0.0), (math.sin(yaw), -math.cos(yaw), 0.0), (0.0, 0.0, -1.0)
        rotation = np.array([right, down, forward])
        transform = np.eye(4)
        transform[:3, :3] = rotation
        transform[:3, 3] = -rotation @ np.asarray(self.position)
        return transform

    def coarser(self, block: int) -> Camera:
        """The same camera at 1/``block`` of the resolution (same field of view)."""
        return dataclasses.replace(self, height=self.height // block, width=self.width // block)


def _box_corners(box: np.ndarray) -> np.ndarray:
    """The 8 corners [8, 3] of a scene box (x, y, z centre, l, w, h, yaw, ...)."""
    x, y, z, length, w, h, yaw = box[:7]
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)
    local = signs * np.array([length, w, h]) / 2.0
    c, s = math.cos(yaw), math.sin(yaw)
    return local @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]) + np.array([x, y, z])


def _rectangles(scene: Scene, cam: Camera) -> list[tuple[float, int, int, int, int, int, int]]:
    """What ``render`` paints, far first: (mean depth, u0, v0, u1, v1, scene label, box index) per box in
    front of the camera whose projected corners' bounding rectangle, clipped to the frame, is not empty."""
    k, to_camera = cam.intrinsics(), cam.lidar_to_camera()
    drawn = []
    for index, (box, label) in enumerate(zip(np.asarray(scene.boxes, np.float64), scene.labels, strict=True)):
        corners = _box_corners(box) @ to_camera[:3, :3].T + to_camera[:3, 3]
        if corners[:, 2].min() < NEAREST_CORNER_M:
            continue
        uv = corners[:, :2] / corners[:, 2:] * k[[0, 1], [0, 1]] + k[:2, 2]
        u0, v0 = np.clip(np.floor(uv.min(0)), 0, [cam.width, cam.height]).astype(int)
        u1, v1 = np.clip(np.ceil(uv.max(0)), 0, [cam.width, cam.height]).astype(int)
        if u1 > u0 and v1 > v0:
            drawn.append((float(corners[:, 2].mean()), u0, v0, u1, v1, int(label), index))
    return sorted(drawn, reverse=True)  # nearer boxes are painted over farther ones


def render(scene: Scene, camera: Camera, seed: int, block: int = 1) -> np.ndarray:
    """The camera's BGR uint8 frame [H, W, 3] of ``scene``.

    ``block`` > 1 draws at 1/block of the resolution and repeats every pixel block x block times: a
    frame that a resize by exactly 1/block maps to the same values in every resizer (OpenCV's
    fixed-point bilinear, torch's float one), so letterboxed inputs can be compared bit for bit.
    """
    cam = camera.coarser(block)
    rng = np.random.default_rng(seed)
    h, w = cam.height, cam.width
    rows = np.linspace(0.0, 1.0, h)[:, None]
    horizon = cam.intrinsics()[1, 2]
    sky = SKY[0] + (SKY[1] - SKY[0]) * rows
    road = ROAD[0] + (ROAD[1] - ROAD[0]) * rows
    image = np.where((np.arange(h) < horizon)[:, None], sky, road)[:, None, :].repeat(w, axis=1)
    for _, u0, v0, u1, v1, label, _ in _rectangles(scene, cam):  # far first: nearer boxes cover them
        colour = CLASS_COLOURS[label % len(CLASS_COLOURS)] + rng.uniform(-COLOUR_JITTER, COLOUR_JITTER, 3)
        shade = np.linspace(1.1, 0.8, v1 - v0)[:, None, None]  # lit from above
        image[v0:v1, u0:u1] = colour * shade
    image = image + rng.normal(0.0, PIXEL_NOISE, image.shape)
    frame = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return np.repeat(np.repeat(frame, block, axis=0), block, axis=1) if block > 1 else frame


@dataclass(frozen=True)
class Boxes2D:
    """Ground truth of one frame: ``boxes`` [K, 4] float32 x1, y1, x2, y2 in frame pixels (x2, y2 exclusive:
    the painted rectangle), ``labels`` [K] scene class indices, ``visible`` [K] the share of each
    rectangle's pixels left uncovered by nearer objects."""

    boxes: np.ndarray
    labels: np.ndarray
    visible: np.ndarray


def visible_boxes(scene: Scene, camera: Camera, block: int, min_visible: float, min_side_px: float) -> Boxes2D:
    """The 2D boxes of the objects ``render`` shows: each object's painted rectangle (its 3D corners
    projected, bounding rectangle clipped to the frame, scaled to the full frame), kept when at least
    ``min_visible`` of its pixels are not painted over by nearer objects and both sides are at least
    ``min_side_px`` frame pixels. Objects with a corner closer than ``NEAREST_CORNER_M`` in front of the
    camera (behind it, or straddling it) are not drawn and so have no box. The box is the whole
    rectangle, occluded part included (as a labeller marks an object partly hidden)."""
    cam = camera.coarser(block)
    rects = _rectangles(scene, cam)
    owner = np.full((cam.height, cam.width), -1)
    for slot, (_, u0, v0, u1, v1, _, _) in enumerate(rects):  # painted far first, as render does
        owner[v0:v1, u0:u1] = slot
    seen = np.bincount(owner[owner >= 0], minlength=len(rects))
    boxes, labels, visible = [], [], []
    for slot, (_, u0, v0, u1, v1, label, _) in enumerate(rects):
        share = seen[slot] / ((u1 - u0) * (v1 - v0))
        if share >= min_visible and min(u1 - u0, v1 - v0) * block >= min_side_px:
            boxes.append([u0 * block, v0 * block, u1 * block, v1 * block])
            labels.append(label)
            visible.append(share)
    return Boxes2D(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64), np.asarray(visible, np.float64))
