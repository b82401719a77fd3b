"""A small T4dataset info file for StreamPETR's ``--awml-data`` reader, written as AWML's
``tools/detection3d/create_data_t4dataset.py`` writes one (mmdet3d's v2 info format, pickled by mmengine.dump as a
plain pickle): one scene of ``SAMPLES`` samples on the tiny spec's two cameras (and a third camera it does not use),
another scene beside it, the entries out of order, images as PNG files of two sizes (one cropped at the bottom, one at
the sides), and ground truth with what the reader must drop.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES = 3
SCENE, OTHER = "scene-a", "scene-b"
ORIGIN = np.array([1000.0, 2000.0, 5.0])  # the first sample's ego2global translation: taken off (reset_origin)
STEP_M, STEP_S = 1.0, 0.1  # the ego moves 1 m along x per sample, 0.1 s apart
LIDAR2EGO_T = np.array([0.5, 0.0, 1.8])
SIZES = {"CAM_FRONT": (80, 100), "CAM_FRONT_LEFT": (60, 120), "CAM_BACK": (80, 100)}  # (height, width)
K = np.array([[50.0, 0.0, 48.0], [0.0, 50.0, 36.0], [0.0, 0.0, 1.0]])
CLASSES = ["pedestrian", "car", "truck", "bus", "bicycle"]  # the spec's classes in another order: mapped by name
# lidar x forward → camera z forward, y left → camera -x, z up → camera -y (the front camera at the lidar's origin)
LIDAR2CAM = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


def rows_image(height: int, width: int) -> np.ndarray:
    """RGB whose grey value is 3 x the row index: where the crop took its rows shows in the pixels."""
    return np.repeat((np.arange(height, dtype=np.uint8) * 3)[:, None, None], width, axis=1).repeat(3, axis=2)


def _pose(translation) -> list[list[float]]:
    pose = np.eye(4)
    pose[:3, 3] = translation
    return pose.tolist()


def instances() -> list[dict]:
    """A car, a bus with a NaN velocity and a yaw past pi, and three the reader drops: label -1, no lidar point, out of range."""
    def box(x, y, label, points=10, velocity=(1.0, 0.5), yaw=0.3):
        return {"bbox_3d": [x, y, -1.0, 4.0, 2.0, 1.5, yaw], "bbox_label_3d": label, "bbox_label": label, "velocity": list(velocity),
                "num_lidar_pts": points, "bbox_3d_isvalid": points > 0}

    return [box(10.0, 2.0, CLASSES.index("car")), box(-20.0, 5.0, CLASSES.index("bus"), velocity=(math.nan, math.nan), yaw=4.0),
            box(5.0, 5.0, -1), box(8.0, -3.0, CLASSES.index("car"), points=0), box(60.0, 0.0, CLASSES.index("car"))]


def entry(scene: str, k: int, root: Path, cameras=tuple(SIZES)) -> dict:
    images = {}
    for camera in cameras:
        height, width = SIZES[camera]
        path = Path("t4") / scene / "data" / camera / f"{k:05d}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rows_image(height, width)).save(root / path)
        images[camera] = {"img_path": str(path), "cam2img": K.tolist(), "lidar2cam": LIDAR2CAM.astype(np.float32).tolist(),
                          "timestamp": 1.7e9 + k * STEP_S, "sample_data_token": f"{scene}-{camera}-{k}", "cam2ego": np.eye(4)}
    return {"sample_idx": k, "token": f"{scene}-{k}", "timestamp": 1.7e9 + k * STEP_S, "scene_token": scene, "scene_name": f"name-{scene}",
            "ego2global": np.asarray(_pose(ORIGIN + np.array([k * STEP_M, 0.0, 0.0]))),
            "lidar_points": {"num_pts_feats": 5, "lidar_path": f"t4/{scene}/lidar/{k}.bin", "lidar2ego": np.asarray(_pose(LIDAR2EGO_T))},
            "images": images, "instances": instances() if scene == SCENE else []}


def write(root: Path, mutate: Callable[[dict], None] | None = None, raw: bytes | None = None) -> Path:
    """The info file under ``root`` (its images beside it); ``mutate(info)`` changes it before it is written (the
    first entry of ``data_list`` is the first sample of the scene read), ``raw`` replaces the file's bytes."""
    root.mkdir(parents=True, exist_ok=True)
    data_list = [entry(SCENE, k, root) for k in range(SAMPLES)] + [entry(OTHER, k, root) for k in range(2)]
    order = [4, 2, 0, 3, 1]  # scenes interleaved, samples out of time order: the reader sorts as AWML does
    info = {"metainfo": {"classes": CLASSES, "version": "t4-test"}, "data_list": [data_list[i] for i in order]}
    info["data_list"].sort(key=lambda e: e["token"] != f"{SCENE}-0")
    if mutate is not None:
        mutate(info)
    path = root / "t4dataset_test_infos_test.pkl"
    path.write_bytes(pickle.dumps(info) if raw is None else raw)
    return path
