"""Synthetic traffic-light frames and AWML's pre-processing of their boxes.

A frame is a camera image (BGR, as OpenCV loads it and AWML's ``LoadImageFromFile`` keeps it) with traffic
lights drawn in it, each with its box and class, seeded. A lamp's colour and arrows follow the class name
(``red``, ``left,red,straight``, ``crosswalk_green``…): the classes are told apart by what a camera shows,
so a trained classifier could learn them and a seeded one at least spreads its answers.

``crops`` is AWML's evaluation pipeline on each box: ``CropROI`` (the box's integer pixels, clipped to the
image), mmcv's ``Resize(scale=S, keep_ratio=True, backend="pillow")`` (long side to S, sizes rounded half up,
Pillow's bilinear), ``Pad(pad_to_square=True)`` (zeros at the bottom and right), then mmpretrain's
``ClsDataPreprocessor`` (BGR to RGB, ``(x - mean) / std`` in float32). ``tests/test_upstream_recorded.py``
holds it to the upstream transforms' own output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from model_specs.mobilenetv2.config import ClassifierConfig

FRAME = (360, 640)  # (height, width) of a traffic-light camera crop region, as AWML's CAM_TRAFFIC_LIGHT_NEAR frames scaled
LIGHTS_PER_FRAME = 6  # the deployed batch: a frame's boxes fill one batch-6 call
BOX_HEIGHT = (24, 72)  # pixels of a car light's housing (its width is three lamps)
COLOURS = {"red": (40, 40, 235), "yellow": (30, 200, 240), "green": (120, 220, 60), "unknown": (90, 90, 90)}  # BGR
ARROWS = ("left", "straight", "right", "up_left", "up_right")


@dataclass(frozen=True)
class TrafficLightFrame:
    image: np.ndarray  # [H, W, 3] uint8 BGR
    boxes: np.ndarray  # [N, 4] float32 x1, y1, x2, y2 in pixels
    labels: np.ndarray  # [N] int64: index into the config's classes
    seed: int


def _lamp_colour(name: str) -> tuple[int, int, int]:
    for colour in ("red", "yellow", "green"):
        if colour in name:
            return COLOURS[colour]
    return COLOURS["unknown"]


def _draw(image: np.ndarray, box: tuple[int, int, int, int], name: str, rng: np.random.Generator) -> None:
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = rng.integers(15, 40)  # the housing
    parts = name.split(",")
    walking = name.startswith("crosswalk_")
    lamps = 2 if walking else 3
    along = y2 - y1 if walking else x2 - x1
    step = along // lamps
    colour = np.array(_lamp_colour(name), np.uint8)
    lit = {"red": 0, "yellow": 1, "green": lamps - 1}.get(next((c for c in ("red", "yellow", "green") if c in name), ""), -1)
    for i in range(lamps):
        c0 = (x1 + i * step, y1) if not walking else (x1, y1 + i * step)
        size = step if not walking else x2 - x1
        pad = max(1, size // 6)
        ys = slice(c0[1] + pad, c0[1] + (size if not walking else step) - pad)
        xs = slice(c0[0] + pad, c0[0] + (step if not walking else size) - pad)
        image[ys, xs] = colour if i == lit else np.array((50, 50, 50), np.uint8)
    arrows = [a for a in parts if a in ARROWS]
    for j, arrow in enumerate(arrows):  # a green arrow lamp per arrow, under the housing, its bright half pointing the way
        ay1, ax1 = y2 + 1, x1 + j * (step + 1)
        ay2, ax2 = min(image.shape[0], ay1 + step), min(image.shape[1], ax1 + step)
        image[ay1:ay2, ax1:ax2] = 30
        half = max(1, step // 2)
        region = {"left": (slice(ay1, ay2), slice(ax1, ax1 + half)), "right": (slice(ay1, ay2), slice(ax1 + half, ax2)),
                  "straight": (slice(ay1, ay1 + half), slice(ax1, ax2)), "up_left": (slice(ay1, ay1 + half), slice(ax1, ax1 + half)),
                  "up_right": (slice(ay1, ay1 + half), slice(ax1 + half, ax2))}[arrow]
        image[region] = COLOURS["green"]


def traffic_light_frame(seed: int, classes: tuple[str, ...], lights: int = LIGHTS_PER_FRAME) -> TrafficLightFrame:
    """A sky-and-street frame with ``lights`` traffic lights at seeded places, sizes and classes."""
    rng = np.random.default_rng(seed)
    height, width = FRAME
    rows = np.linspace(170, 110, height)[:, None, None] + rng.normal(0, 6, (height, width, 1))
    image = np.clip(np.broadcast_to(rows, (height, width, 3)) * np.array([1.1, 1.0, 0.9]), 0, 255).astype(np.uint8)
    boxes, labels = [], []
    walking = classes[0].startswith("crosswalk_")
    columns = np.array_split(np.arange(width), lights)
    for i in range(lights):
        label = int(rng.integers(len(classes)))
        h = min(int(rng.integers(*BOX_HEIGHT)), (len(columns[i]) - 2) // (1 if walking else 3))  # one light per column
        w, hh = (h, 2 * h) if walking else (3 * h, h)
        left = int(rng.integers(columns[i][0], columns[i][-1] - w))
        top = int(rng.integers(0, height - 2 * hh))
        _draw(image, (left, top, left + w, top + hh), classes[label], rng)
        # an annotator's box: the housing, a pixel or two loose, at sub-pixel precision
        jitter = rng.uniform(-1.5, 1.5, 4)
        boxes.append([left + jitter[0], top + jitter[1], left + w + jitter[2], top + hh + jitter[3]])
        labels.append(label)
    return TrafficLightFrame(image, np.asarray(boxes, np.float32), np.asarray(labels, np.int64), seed)


def crop_roi(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """AWML's ``CropROI`` without offset: the box's integer corners (truncated), clipped to the image."""
    h, w = image.shape[:2]
    y1, x1 = max(0, int(box[1])), max(0, int(box[0]))
    y2, x2 = min(h, int(box[3])), min(w, int(box[2]))
    return image[y1:y2, x1:x2]


def resize_pad(crop: np.ndarray, size: int) -> np.ndarray:
    """mmcv's keep-ratio ``Resize`` with the Pillow backend, then ``Pad(pad_to_square=True)``: [size, size, 3] uint8.

    Pillow is used, not OpenCV, because AWML's config asks mmcv for ``backend="pillow"`` (their bilinear filters
    differ); the sizes follow mmcv's ``rescale_size`` (factor = size / long side, each side rounded half up)."""
    h, w = crop.shape[:2]
    factor = min(size / max(h, w), size / min(h, w))
    new_w, new_h = int(w * factor + 0.5), int(h * factor + 0.5)
    resized = np.asarray(Image.fromarray(crop).resize((new_w, new_h), Image.Resampling.BILINEAR))
    side = max(new_h, new_w)
    padded = np.zeros((side, side, 3), np.uint8)
    padded[:new_h, :new_w] = resized
    return padded


def normalise(images: np.ndarray, cfg: ClassifierConfig) -> torch.Tensor:
    """mmpretrain's ``ClsDataPreprocessor``: [N, H, W, 3] uint8 BGR → [N, 3, H, W] float32, RGB when ``to_rgb``."""
    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if cfg.to_rgb:
        batch = batch[:, [2, 1, 0]]
    mean = torch.tensor(cfg.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(cfg.std, dtype=torch.float32).view(-1, 1, 1)
    return ((batch.float() - mean) / std).contiguous()


def crops(frame: TrafficLightFrame, cfg: ClassifierConfig) -> torch.Tensor:
    """Every box of the frame as the network's input: [N, 3, S, S] float32."""
    return normalise(np.stack([resize_pad(crop_roi(frame.image, box), cfg.image_size) for box in frame.boxes]), cfg)
