"""Real multi-camera sequences for ``--awml-data`` on the StreamPETR specs: AWML's T4dataset info file and its images.

The path is the pickle AWML's ``tools/detection3d/create_data_t4dataset.py`` writes (``t4dataset_<version>_infos_<split>.pkl``:
mmdet3d's v2 info format, ``{"metainfo": {"classes": [...]}, "data_list": [...]}``), or a folder holding one. What is
read of a ``data_list`` entry is what AWML's ``StreamPETRDataset.get_annot_info`` and its test pipeline read:
``scene_token`` (and ``scene_name``), ``token``, ``ego2global``, ``lidar_points.lidar2ego``, and per camera of the
spec's ``camera_order`` ``images[CAM].img_path`` (relative to ``data_root``: AWML's config joins ``data_root`` and an
empty ``data_prefix``), ``cam2img`` (3 x 3), ``lidar2cam`` (4 x 4), ``timestamp`` (seconds); ``instances``
(``bbox_3d`` x, y, z, l, w, h, yaw in the lidar frame, ``velocity``, ``bbox_label_3d`` into ``metainfo.classes``,
``num_lidar_pts``) where present.

The sequence is AWML's: entries sorted by (``scene_token``, the anchor camera's timestamp), one scene's consecutive
samples; ``ego_pose`` is lidar → global with the translation of the scene's first ``ego2global`` taken off
(``reset_origin=True`` in every AWML StreamPETR config), ``timestamp`` the anchor camera's time since the scene's first
sample. Each image as ``LoadMultiViewImageFromFiles`` and test-time ``ResizeCropFlipRotImage`` give it: BGR, resized
by Pillow by ``max(H'/H, W'/W)`` to ``final_dim``'s cover, the bottom rows and the centre columns kept
(``bot_pct_lim`` (0, 0), no flip, no rotation), the intrinsics moved by the same resize and crop; normalised as
:func:`data.normalise`. Ground truth as ``T4Dataset``/``NuScenesDataset`` and ``ObjectRangeFilter`` give it: labels
-1 and boxes without lidar points dropped, NaN velocities zeroed, centres outside ``pc_range``'s BEV dropped, yaw in
[-pi, pi); z stays the box's centre (the head regresses the gravity centre).

JPEG decoding is Pillow's, where AWML reads with OpenCV: the two may differ by a grey level on some pixels, which moves
both sides of every comparison alike.
"""

from __future__ import annotations

import logging
import math
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from model_specs.image_files import read_bgr
from model_specs.scan_files import one_file
from model_specs.streampetr import data
from model_specs.streampetr.config import StreamPETRConfig
from pytest_awml.errors import DataError

log = logging.getLogger(__name__)

OPTIONS = {"data_root": "folder the info's img_path values are relative to (AWML's data_root; default: the info file's folder)",
           "scene": "scene_token or scene_name of the sequence to read (default: the first scene in AWML's order)",
           "first": "index in the scene of the first sample read (default 0)",
           "frames": "consecutive samples read (default: the spec's sequence frames and the warm-up frame)"}
"""The ``--awml-data-option`` keys :func:`load` reads, and what each means."""

ANCHOR_CAMERA = "CAM_FRONT"  # StreamPETRDataset's anchor_camera, which no AWML config sets otherwise
PAD_DIVISOR = 32  # PadMultiViewImage(size_divisor=32) in every AWML StreamPETR test pipeline
# the pickled types an info file holds (mmengine.dump of lists, dicts, numbers and numpy arrays): nothing else is loaded
_PICKLED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict")}


class _InfoUnpickler(pickle.Unpickler):
    """An info file is a pickle: only the types AWML's writer puts in one are loaded (a pickle may run any code)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLED:
            raise DataError(f"it holds a pickled {module}.{name}: only lists, dicts, numbers and numpy arrays are read "
                            "(what AWML's create_data_t4dataset.py writes); give AWML's info file")
        return super().find_class(module, name)


def _info_file(path: Path) -> Path:
    return one_file(path, ".pkl", "the info file (AWML's t4dataset_<version>_infos_<split>.pkl)")


def _read_info(path: Path) -> dict:
    try:
        with path.open("rb") as file:
            info = _InfoUnpickler(file).load()
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise DataError(f"{path}: not a pickled info file ({exc})") from None
    if not isinstance(info, dict) or not isinstance(info.get("data_list"), list):
        raise DataError(f"{path}: no data_list: expected mmdet3d's v2 info format ({{'metainfo': {{'classes': [...]}}, 'data_list': [...]}}), "
                        "as AWML's tools/detection3d/create_data_t4dataset.py writes it")
    return info


def _matrix(where: str, value: Any, shape: tuple[int, int]) -> np.ndarray:
    try:
        matrix = np.array(value, np.float64)  # a copy: the info's own arrays are never changed
    except (TypeError, ValueError):
        matrix = np.zeros(0)
    if matrix.shape != shape:
        raise DataError(f"{where} is not a {shape[0]} x {shape[1]} matrix (got shape {matrix.shape})")
    return matrix


def _label_map(file: Path, info: dict, cfg: StreamPETRConfig) -> np.ndarray:
    """The info's class indices → the spec's: by name, so that an info of the same classes in another order reads right."""
    classes = list((info.get("metainfo") or {}).get("classes") or cfg.classes)
    unknown = [c for c in classes if c not in cfg.classes]
    if unknown:
        raise DataError(f"{file}: class(es) {', '.join(map(repr, unknown))} of its metainfo.classes {classes} are not the spec's "
                        f"{list(cfg.classes)}: pass --awml-config with the training config of these classes")
    return np.asarray([cfg.classes.index(c) for c in classes], np.int64)


def _sequence(file: Path, info: dict, options: Mapping[str, str], frames: int) -> tuple[list[dict], list[dict]]:
    """(the window of samples read, the scene's samples): AWML's order, one scene."""
    entries = info["data_list"]
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "scene_token" not in entry or not isinstance(entry.get("images"), dict):
            raise DataError(f"{file}: data_list[{index}] has no scene_token or images: expected mmdet3d's v2 info entries")

    ordered = sorted(entries, key=lambda e: (str(e["scene_token"]), _anchor_time(e)))
    scenes: dict[str, list[dict]] = {}
    for entry in ordered:
        scenes.setdefault(str(entry["scene_token"]), []).append(entry)
    wanted = options.get("scene")
    if wanted is None:
        scene = next(iter(scenes.values()))
    else:
        chosen = [s for token, s in scenes.items() if wanted in (token, s[0].get("scene_name"))]
        if not chosen:
            raise DataError(f"{file}: no scene {wanted!r} (scene_token or scene_name); it holds "
                            + ", ".join(f"{t} ({s[0].get('scene_name', '?')})" for t, s in scenes.items()))
        scene = chosen[0]
    first = _count(options, "first", 0, minimum=0)
    count = _count(options, "frames", frames, minimum=2)
    window = scene[first: first + count]
    if len(window) < 2:
        raise DataError(f"{file}: scene {scene[0]['scene_token']} has {len(scene)} sample(s) from index {first}: a sequence needs two "
                        "(the warm-up frame and one judged); pick another scene (--awml-data-option scene=...) or first=")
    return window, scene


def _anchor_time(entry: dict) -> float:
    """The time AWML orders a scene's samples by: the anchor camera's; a sample without that image (which AWML drops and
    this reader refuses where it reads one) by the sample's own."""
    camera = entry["images"].get(ANCHOR_CAMERA)
    return float((camera if isinstance(camera, dict) and "timestamp" in camera else entry).get("timestamp", 0.0))


def _complete(entry: dict, root: Path, cfg: StreamPETRConfig) -> bool:
    """AWML's ``filter_data``: every camera of the order has an image file (the sequence's origin is the first such sample)."""
    images = entry["images"]
    return all(isinstance(images.get(c), dict) and images[c].get("img_path") and (root / str(images[c]["img_path"])).is_file()
               for c in cfg.camera_order)


def _count(options: Mapping[str, str], key: str, default: int, minimum: int) -> int:
    if key not in options:
        return default
    try:
        value = int(options[key])
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise DataError(f"--awml-data-option {key}={options[key]!r} must be an integer >= {minimum}")
    return value


def resize_crop(image_bgr: np.ndarray, final_dim: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Test-time ``ResizeCropFlipRotImage``: (the image at ``final_dim``, float32, BGR; the 3 x 3 image transform, float32 as
    AWML's ``ida_mat`` is, that the intrinsics are multiplied by)."""
    height, width = image_bgr.shape[:2]
    final_h, final_w = final_dim
    resize = max(final_h / height, final_w / width)
    dims = (int(width * resize), int(height * resize))
    crop_h = int((1 - 0.0) * dims[1]) - final_h  # bot_pct_lim (0.0, 0.0): the bottom rows kept
    crop_w = int(max(0, dims[0] - final_w) / 2)
    crop = (crop_w, crop_h, crop_w + final_w, crop_h + final_h)
    image = Image.fromarray(np.uint8(image_bgr)).resize(dims).crop(crop)  # Pillow's default filter, as AWML calls it
    ida = np.eye(3, dtype=np.float32)
    ida[:2, :2] *= np.float32(resize)
    ida[:2, 2] = -np.asarray(crop[:2], np.float32)
    return np.asarray(image).astype(np.float32), ida


def _camera(where: str, entry: dict, camera: str, root: Path, cfg: StreamPETRConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(normalised image [3, H, W], intrinsics 4 x 4, img2lidar 4 x 4) of one camera of one sample."""
    item = entry["images"].get(camera)
    if not isinstance(item, dict) or not item.get("img_path"):
        raise DataError(f"{where} has no image for {camera} (the spec's camera_order is {list(cfg.camera_order)}): AWML's "
                        "StreamPETRDataset drops such samples, which breaks the sequence; pick a scene whose samples have every camera "
                        "(--awml-data-option scene=...)")
    path = root / str(item["img_path"])
    if not path.is_file():
        raise DataError(f"{where}: {camera}'s image {path} does not exist (pass --awml-data-option data_root=DIR, AWML's data_root)")
    image, ida = resize_crop(read_bgr(path), cfg.final_dim)
    k = _matrix(f"{where}: {camera}'s cam2img", item.get("cam2img"), (3, 3))
    lidar2cam = _matrix(f"{where}: {camera}'s lidar2cam", item.get("lidar2cam"), (4, 4))
    intrinsics = np.eye(4)
    intrinsics[:3, :3] = ida.astype(np.float64) @ k
    lidar2img = np.concatenate([intrinsics[:3, :3] @ lidar2cam[:3, :], [[0.0, 0.0, 0.0, 1.0]]])
    return data.normalise(image, cfg), intrinsics, np.linalg.inv(lidar2img)


def _ground_truth(where: str, entry: dict, labels_of: np.ndarray, cfg: StreamPETRConfig) -> tuple[np.ndarray, np.ndarray]:
    boxes, labels = [], []
    for i, instance in enumerate(entry.get("instances") or []):
        try:
            box = np.asarray(instance["bbox_3d"], np.float64).reshape(7)
            velocity = np.asarray(instance.get("velocity", (0.0, 0.0)), np.float64).reshape(2)
            label = int(instance["bbox_label_3d"])
            points = int(instance.get("num_lidar_pts", 1))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: instance {i} needs bbox_3d (7 numbers), bbox_label_3d and velocity (2) ({exc!r})") from None
        if label < 0 or points <= 0:  # T4Dataset's filter: ignored classes and boxes no lidar point hit
            continue
        if label >= len(labels_of):
            raise DataError(f"{where}: instance {i}'s bbox_label_3d {label} indexes none of the info's {len(labels_of)} classes")
        boxes.append(np.concatenate([box, np.nan_to_num(velocity, nan=0.0)]))
        labels.append(labels_of[label])
    gt = np.asarray(boxes, np.float64).reshape(-1, 9)
    lo, hi = cfg.pc_range[:2], cfg.pc_range[3:5]
    kept = (gt[:, 0] > lo[0]) & (gt[:, 1] > lo[1]) & (gt[:, 0] < hi[0]) & (gt[:, 1] < hi[1])  # ObjectRangeFilter, BEV
    gt = gt[kept]
    gt[:, 6] -= np.floor(gt[:, 6] / (2 * math.pi) + 0.5) * 2 * math.pi  # limit_yaw(offset=0.5, period=2 pi)
    return gt.astype(np.float32), np.asarray(labels, np.int64).reshape(-1)[kept]


def _frame(where: str, entry: dict, origin: np.ndarray, start: float, root: Path, labels_of: np.ndarray, cfg: StreamPETRConfig) -> data.Frame:
    ego2global = _matrix(f"{where}: ego2global", entry.get("ego2global"), (4, 4))
    lidar2ego = _matrix(f"{where}: lidar_points.lidar2ego", (entry.get("lidar_points") or {}).get("lidar2ego"), (4, 4))
    ego2global[:3, 3] -= origin
    pose = ego2global @ lidar2ego  # lidar → global: the head's "ego" frame is the lidar's
    inverse = np.eye(4)
    inverse[:3, :3] = pose[:3, :3].T
    inverse[:3, 3] = -pose[:3, :3].T @ pose[:3, 3]
    cameras = [_camera(where, entry, camera, root, cfg) for camera in cfg.camera_order]
    gt_boxes, gt_labels = _ground_truth(where, entry, labels_of, cfg)
    return data.Frame(img=np.stack([c[0] for c in cameras])[None], img_metas_pad=np.array([*cfg.final_dim, 3], np.float32),
                      intrinsics=np.stack([c[1] for c in cameras])[None].astype(np.float32),
                      img2lidar=np.stack([c[2] for c in cameras])[None].astype(np.float32),
                      timestamp=np.array([_anchor_time(entry) - start], np.float64),
                      ego_pose=pose[None].astype(np.float32), ego_pose_inv=inverse[None].astype(np.float32), gt_boxes=gt_boxes, gt_labels=gt_labels)


def load(path: Path, options: Mapping[str, str], cfg: StreamPETRConfig, frames: int, warmup: int) -> list[list[data.Frame]]:
    """One sample per frame after the first ``warmup`` of a window of ``frames`` consecutive samples of one scene: that
    frame and the ``warmup`` before it (the spec's sample: the frames driven, then the one judged)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise DataError(f"data option(s) {', '.join(unknown)} unknown: the StreamPETR info reader knows "
                        + "; ".join(f"{key} ({meaning})" for key, meaning in OPTIONS.items()))
    if len(cfg.camera_order) != cfg.num_cameras or any(d % PAD_DIVISOR for d in cfg.final_dim):
        raise DataError(f"the spec's camera_order {list(cfg.camera_order)} must name its {cfg.num_cameras} cameras and final_dim "
                        f"{cfg.final_dim} be a multiple of {PAD_DIVISOR} (PadMultiViewImage would pad it past the graph's input)")
    file = _info_file(Path(path))
    info = _read_info(file)
    labels_of = _label_map(file, info, cfg)
    window, scene = _sequence(file, info, options, frames)
    root = Path(options["data_root"]) if "data_root" in options else file.parent
    first = next((e for e in scene if _complete(e, root, cfg)), window[0])  # none complete: the window's first refuses below
    origin = _matrix(f"{file}: sample {first.get('token')}'s ego2global", first.get("ego2global"), (4, 4))[:3, 3]
    start = _anchor_time(first)
    made = [_frame(f"{file}: sample {e.get('token')} (scene {e['scene_token']})", e, origin, start, root, labels_of, cfg) for e in window]
    log.info("%s: scene %s, %d frame(s), %d ground-truth box(es)", file, window[0]["scene_token"], len(made), sum(len(f.gt_labels) for f in made))
    if len(made) <= warmup:
        raise DataError(f"{file}: {len(made)} frame(s) read, the spec drives {warmup} before the first it judges: read more (frames=)")
    return [made[k - warmup: k + 1] for k in range(warmup, len(made))]


def sequence_of(samples: Sequence[Sequence[data.Frame]]) -> list[data.Frame]:
    """The consecutive frames :func:`load`'s samples were cut from (each sample the one before moved on by a frame)."""
    frames = list(samples[0])
    for k, sample in enumerate(samples[1:], start=1):
        if len(sample) < 2 or sample[-2] is not frames[-1]:
            raise DataError(f"--awml-data sample {k} does not follow sample {k - 1} by one frame: the sequence needs consecutive frames")
        frames.append(sample[-1])
    return frames


def loader(cfg: StreamPETRConfig, frames: int, warmup: int):
    """:func:`load` for a spec whose model is ``cfg`` (a spec's ``load_data``)."""
    def load_data(path: Path, options: Mapping[str, str]) -> list[list[data.Frame]]:
        return load(path, options, cfg, frames, warmup)

    return load_data
