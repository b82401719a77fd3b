"""Seeded synthetic lidar scenes: a spinning lidar ray-cast against a ground plane and boxes.

Rays leave the sensor ring by ring and stop at the first thing they hit, so density falls with
range and objects occlude what is behind them, as in a real scan; the pillar count is therefore
realistic, not that of uniform noise. A scene holds the current sweep and ``past_sweeps`` earlier
ones, taken while the ego vehicle and the objects moved, each in the sensor frame of its own
capture with its pose: what Autoware's densification and mmdet3d's LoadPointsFromMultiSweeps get.
Each scene also returns its ground-truth boxes at the current sweep's time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# name, (length, width, height) mean, relative size jitter, speed range m/s, share of objects
CLASSES = (
    ("car", (4.5, 1.9, 1.6), 0.10, 15.0, 0.45),
    ("truck", (8.0, 2.5, 3.2), 0.15, 12.0, 0.12),
    ("bus", (11.0, 2.9, 3.3), 0.10, 10.0, 0.08),
    ("bicycle", (1.8, 0.6, 1.5), 0.10, 6.0, 0.15),
    ("pedestrian", (0.7, 0.7, 1.75), 0.15, 1.8, 0.20),
)


@dataclass(frozen=True)
class SceneConfig:
    """The lidar and the world it sees."""

    max_range: float = 122.4
    sensor_height: float = 1.9
    rings: int = 128
    azimuth_steps: int = 1800
    elevation_deg: tuple[float, float] = (-25.0, 15.0)
    objects: int = 60
    min_object_distance: float = 4.0
    range_noise_m: float = 0.02
    dropout: float = 0.05
    ground_roughness_m: float = 0.03
    past_sweeps: int = 1
    sweep_interval_s: float = 0.1
    ego_speed_mps: float = 5.0  # along +x: past sweeps need a real transform into the current frame


@dataclass(frozen=True)
class Sweep:
    """One lidar revolution in the sensor frame at its capture time."""

    points: np.ndarray  # [N, 4] float32: x, y, z, intensity
    time_s: float
    pose: np.ndarray  # [4, 4] float64: world <- sensor at capture time, rigid (a rotation and a translation)


@dataclass(frozen=True)
class Scene:
    sweeps: tuple[Sweep, ...]  # newest first: sweeps[0] is the current one
    boxes: np.ndarray  # [K, 9] float32: x, y, z (centre), length, width, height, yaw, vx, vy
    labels: np.ndarray  # [K] int64 indices into CLASSES
    class_names: tuple[str, ...] = tuple(c[0] for c in CLASSES)

    @property
    def current(self) -> Sweep:
        return self.sweeps[0]


def translation(x: float, y: float = 0.0, z: float = 0.0) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, 3] = (x, y, z)
    return pose


def _place_objects(rng: np.random.Generator, cfg: SceneConfig) -> tuple[np.ndarray, np.ndarray]:
    shares = np.array([c[4] for c in CLASSES])
    boxes: list[list[float]] = []
    labels: list[int] = []
    attempts = 0
    while len(boxes) < cfg.objects and attempts < cfg.objects * 50:
        attempts += 1
        label = int(rng.choice(len(CLASSES), p=shares / shares.sum()))
        _, size, jitter, speed, _ = CLASSES[label]
        length, w, h = np.asarray(size) * (1.0 + jitter * rng.uniform(-1, 1, 3))
        # uniform in area up to the lidar's reach, at least min_object_distance away
        reach = cfg.max_range * 0.9
        x, y = rng.uniform(-reach, reach, 2)
        if np.hypot(x, y) < cfg.min_object_distance + max(length, w):
            continue
        radius = 0.5 * np.hypot(length, w)
        if any(np.hypot(x - b[0], y - b[1]) < radius + 0.5 * np.hypot(b[3], b[4]) + 0.5 for b in boxes):
            continue
        yaw = rng.uniform(-np.pi, np.pi)
        v = rng.uniform(0.0, speed)
        boxes.append([x, y, h / 2, length, w, h, yaw, v * np.cos(yaw), v * np.sin(yaw)])
        labels.append(label)
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 9), np.asarray(labels, dtype=np.int64)


def _ray_box_hits(origin: np.ndarray, dirs: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the nearest box along each ray (inf when none) and that box's index.

    Only rays passing within a box's bounding sphere (with a margin far above float64 rounding) are
    slab-tested against it: the same hits as testing every ray, at a fraction of the cost.
    """
    best = np.full(dirs.shape[0], np.inf)
    which = np.full(dirs.shape[0], -1)
    for k, (x, y, z, length, w, h, yaw, _, _) in enumerate(boxes):
        centre = np.array([x, y, z]) - origin
        along = dirs @ centre
        radius2 = (length * length + w * w + h * h) / 4
        near = np.flatnonzero((centre @ centre - along * along <= radius2 * (1 + 1e-6) + 1e-6) & (along > -np.sqrt(radius2) - 1e-3))
        if near.size == 0:
            continue
        c, s = np.cos(-yaw), np.sin(-yaw)
        ox, oy, oz = origin[0] - x, origin[1] - y, origin[2] - z
        lo = np.array([c * ox - s * oy, s * ox + c * oy, oz])
        d = dirs[near]
        ld = np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)
        half = np.array([length, w, h]) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-half - lo) / ld
            t2 = (half - lo) / ld
        t_near = np.fmax.reduce(np.minimum(t1, t2), axis=1)  # fmax/fmin skip NaN (0/0 on a slab's face) as nanmax/nanmin do
        t_far = np.fmin.reduce(np.maximum(t1, t2), axis=1)
        hit = (t_near <= t_far) & (t_near > 0) & (t_near < best[near])
        best[near[hit]] = t_near[hit]
        which[near[hit]] = k
    return best, which


def _revolution(rng: np.random.Generator, cfg: SceneConfig, sensor_x: float, boxes: np.ndarray) -> np.ndarray:
    """One sweep from a sensor at ``(sensor_x, 0)``, returned in that sensor's own frame."""
    elevation = np.deg2rad(np.linspace(*cfg.elevation_deg, cfg.rings))
    azimuth = np.linspace(-np.pi, np.pi, cfg.azimuth_steps, endpoint=False) + rng.uniform(0, 2 * np.pi / cfg.azimuth_steps)
    el, az = np.meshgrid(elevation, azimuth, indexing="ij")
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1).reshape(-1, 3)
    origin = np.array([sensor_x, 0.0, cfg.sensor_height])
    with np.errstate(divide="ignore"):
        t_ground = np.where(dirs[:, 2] < 0, cfg.sensor_height / -dirs[:, 2], np.inf)
    t_box, _ = _ray_box_hits(origin, dirs, boxes)
    t = np.minimum(t_ground, t_box)
    on_box = t_box < t_ground
    keep = (t < cfg.max_range) & (rng.random(t.shape[0]) >= cfg.dropout)
    t = t[keep] + rng.normal(0.0, cfg.range_noise_m, keep.sum())
    xyz = dirs[keep] * t[:, None] + np.array([0.0, 0.0, cfg.sensor_height])
    on_box = on_box[keep]
    xyz[~on_box, 2] += rng.normal(0.0, cfg.ground_roughness_m, (~on_box).sum())
    intensity = np.where(on_box, rng.uniform(20, 200, on_box.shape[0]), rng.uniform(0, 40, on_box.shape[0]))
    return np.column_stack([xyz, intensity]).astype(np.float32)


def make_scene(seed: int, cfg: SceneConfig = SceneConfig()) -> Scene:
    """The current sweep and ``cfg.past_sweeps`` earlier ones; the world frame is the current
    sensor frame, so the current pose is the identity and a past one is the ego's way back."""
    rng = np.random.default_rng(seed)
    boxes, labels = _place_objects(rng, cfg)
    sweeps = []
    for k in range(cfg.past_sweeps + 1):
        lag = k * cfg.sweep_interval_s
        then = boxes.copy()
        then[:, :2] -= boxes[:, 7:9] * lag  # objects were where their velocity says
        sensor_x = -cfg.ego_speed_mps * lag
        sweeps.append(Sweep(_revolution(rng, cfg, sensor_x, then), -lag, translation(sensor_x)))
    return Scene(tuple(sweeps), boxes.astype(np.float32), labels)
