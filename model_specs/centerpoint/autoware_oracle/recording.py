"""What ``tools/record_autoware.py`` keeps of Autoware's outputs (``tests/data/autoware/<spec>.npz`` and ``.json``),
and the frames they were computed on, read back for the recorded comparison.

Per frame: the node's voxels (coors, counts, and the encoder input's filled slots in the node's own order; the
padding slots are zero, checked when recording), the head outputs both decoders were given, and the node's boxes.
A synthetic frame is regenerated from its seed and must hash to the recorded digest; a real scan's points (cut to
the grid plus a margin) are stored, since the scans are not part of this repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_specs.centerpoint.autoware_oracle import frames as frame_sources
from model_specs.centerpoint.autoware_oracle.compare import Voxels
from model_specs.centerpoint.config import CenterPointConfig
from pytest_awml.errors import DataError

HEADS = ("heatmap", "reg", "height", "dim", "rot", "vel")
MAX_POINTS = 32


@dataclass(frozen=True)
class RecordedFrame:
    name: str
    voxels: Voxels  # the node's, in its order
    heads: dict[str, np.ndarray]
    boxes: np.ndarray  # oracle rows (label, score, x, y, z, length, width, height, yaw, vel_x, vel_y, entropy)
    points: np.ndarray | None  # a real scan's stored points [N, 4]
    digest: str | None  # a synthetic frame's


def pack(name: str, voxels: Voxels, heads: dict[str, np.ndarray], boxes: np.ndarray, points: np.ndarray | None) -> dict[str, np.ndarray]:
    """One frame's arrays under ``name/...`` keys; the encoder input keeps only filled slots (the rest is zero)."""
    filled = np.arange(MAX_POINTS)[None, :] < voxels.num_points[:, None]
    arrays: dict[str, np.ndarray] = {f"{name}/coors": voxels.coors.astype(np.int16), f"{name}/num_points": voxels.num_points.astype(np.uint8),
              f"{name}/rows": voxels.features[filled].astype(np.float32), f"{name}/boxes": boxes.astype(np.float32)}
    arrays.update({f"{name}/heads/{k}": np.asarray(heads[k], np.float32) for k in HEADS})
    if points is not None:
        arrays[f"{name}/points"] = points.astype(np.float32)
    return arrays


def unpack(arrays, name: str, width: int) -> tuple[Voxels, dict[str, np.ndarray], np.ndarray, np.ndarray | None]:
    counts = arrays[f"{name}/num_points"].astype(np.int64)
    features = np.zeros((len(counts), MAX_POINTS, width), np.float32)
    features[np.arange(MAX_POINTS)[None, :] < counts[:, None]] = arrays[f"{name}/rows"]
    voxels = Voxels(arrays[f"{name}/coors"].astype(np.int64), counts, features)
    heads = {k: arrays[f"{name}/heads/{k}"] for k in HEADS}
    points = arrays[f"{name}/points"] if f"{name}/points" in arrays.files else None
    return voxels, heads, arrays[f"{name}/boxes"], points


def save(folder: Path, spec: str, meta: dict, arrays: dict[str, np.ndarray]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    npz, js = folder / f"{spec}.npz", folder / f"{spec}.json"
    np.savez_compressed(npz, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as its allow_pickle
    js.write_text(json.dumps(meta, indent=1) + "\n")
    return npz, js


def load(folder: Path, spec: str, cfg: CenterPointConfig, make_samples) -> tuple[dict, list[tuple[frame_sources.Frame, RecordedFrame]]]:
    """The recording's metadata and each frame with what the node computed on it."""
    meta = json.loads((folder / f"{spec}.json").read_text())
    arrays = np.load(folder / f"{spec}.npz")
    synthetic = {f.name: f for f in frame_sources.synthetic(make_samples, meta["synthetic"]["count"], meta["synthetic"]["seed"])}
    out = []
    for entry in meta["frames"]:
        name = entry["name"]
        voxels, heads, boxes, points = unpack(arrays, name, cfg.decorated_features)
        if points is not None:
            frame = frame_sources.real(name, points, cfg)
        else:
            frame = synthetic[name]
            if frame_sources.digest(frame.scene) != entry["digest"]:
                raise DataError(f"{spec}/{name}: the regenerated synthetic scene is not the one Autoware was recorded on "
                                "(scene.py changed?): re-record with tools/record_autoware.py on a GPU")
        out.append((frame, RecordedFrame(name, voxels, heads, boxes, points, entry.get("digest"))))
    return meta, out
