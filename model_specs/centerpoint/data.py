"""Real point clouds for ``--awml-data``: KITTI/nuScenes ``.bin``, ``.npy`` and ``.pcd`` files.

A file is one sweep: x, y, z and intensity are read; a fifth column (the ring index in T4 and
nuScenes ``.bin`` files) is not a model input and is dropped, as mmdet3d's LoadPointsFromMultiSweeps
overwrites it with the time lag. A single file has no past sweeps, so its points get lag 0, which is
what Autoware's densification gives on its first frame; with the config's ``pad_empty_sweeps`` (AWML's
setting) the scan also stands in for each past sweep, lag 0, as mmdet3d's LoadPointsFromMultiSweeps pads
a sample without sweeps. PCD files (ascii, binary and the binary_compressed PCL tools write for recorded
scans) are read by :mod:`pcd` (pypcd4, behind a field-by-field header check). Every malformed input ends
in a :class:`DataError` that names the file and what is wrong, never in an exception from deep inside
a reader or torch; a scan with more occupied pillars than the model keeps is read, and the cut is
said (a logged warning and a :class:`~pytest_awml.models.DataWarning`, which the report keeps).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np

from model_specs.centerpoint import pcd
from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.scene import Scene, Sweep
from pytest_awml.errors import DataError
from pytest_awml.models import DataWarning

log = logging.getLogger(__name__)

SUFFIXES = (".bin", ".npy", ".pcd")
FILE_FEATURES = 5  # a T4/nuScenes .bin point: x, y, z, intensity, ring
SWEEP_FEATURES = 4  # what a sweep keeps: x, y, z, intensity
BIN_WIDTHS = (SWEEP_FEATURES, FILE_FEATURES)
OPTIONS = {"point_features": f"columns of a .bin scan: {FILE_FEATURES} (x, y, z, intensity, ring: T4/nuScenes, the default) "
                             f"or {SWEEP_FEATURES} (KITTI)"}
"""The ``--awml-data-option`` keys :func:`load` reads, and what each means."""
def load(path: Path, options: Mapping[str, str], cfg: CenterPointConfig | None = None) -> list[Scene]:
    """One scene per file; a folder gives its point-cloud files in name order. With ``cfg``, a scan
    whose pillars the voxelizer would cut to ``cfg.max_voxels`` is reported."""
    path = Path(path)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise DataError(f"data option(s) {', '.join(unknown)} unknown: the point cloud reader knows "
                        + "; ".join(f"{key} ({meaning})" for key, meaning in OPTIONS.items()))
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path} holds no point cloud ({', '.join(SUFFIXES)})")
    width = _bin_width(options, cfg.file_point_features if cfg is not None else FILE_FEATURES)
    stand_ins = cfg.past_sweeps if cfg is not None and cfg.pad_empty_sweeps else 0
    log.info("%s: %d scan(s), one sweep each: no past sweeps to densify, time lag 0%s", path, len(files),
             f"; the scan stands in for its {stand_ins} past sweep(s) (pad_empty_sweeps)" if stand_ins else "")
    scenes = []
    for file in files:
        points = read_points(file, width)
        if cfg is not None:
            _report_cut(file, points, cfg)
        sweep = Sweep(points, 0.0, np.eye(4))
        scenes.append(Scene((sweep,) * (1 + stand_ins), np.zeros((0, 9), np.float32), np.zeros(0, np.int64)))
    return scenes


def loader(cfg: CenterPointConfig):
    """:func:`load` for a spec whose model is ``cfg`` (a spec's ``load_data``)."""
    def load_data(path: Path, options: Mapping[str, str]) -> list[Scene]:
        return load(path, options, cfg)

    return load_data


def _bin_width(options: Mapping[str, str], default: int = FILE_FEATURES) -> int:
    """The option's width, else ``default`` (the training config's LoadPointsFromFile.load_dim)."""
    text = options.get("point_features", str(default))
    try:
        width = int(text)
    except ValueError:
        width = None
    if width not in BIN_WIDTHS:
        raise DataError(f"point_features={text}: .bin scans are N x 4 (KITTI) or N x 5 (nuScenes): "
                        "pass --awml-data-option point_features=4 or =5")
    return width


def occupied_pillars(points: np.ndarray, cfg: CenterPointConfig) -> int:
    """How many pillars of ``cfg``'s grid hold at least one of ``points`` (before the max_voxels cut)."""
    xyz = points[:, :3].astype(np.float64)
    low, size = np.asarray(cfg.point_cloud_range[:3]), np.asarray(cfg.voxel_size)
    cell = np.floor((xyz - low) / size).astype(np.int64)
    inside = ((cell >= 0) & (cell < np.asarray(cfg.grid_size))).all(axis=1)
    nx, ny, _ = cfg.grid_size
    cell = cell[inside]
    return int(np.unique((cell[:, 2] * ny + cell[:, 1]) * nx + cell[:, 0]).shape[0])


def _report_cut(path: Path, points: np.ndarray, cfg: CenterPointConfig) -> None:
    pillars = occupied_pillars(points, cfg)
    if pillars > cfg.max_voxels:
        message = (f"{path}: {len(points)} points fill {pillars} pillars; the model keeps the first {cfg.max_voxels} "
                   f"(max_voxels), so {pillars - cfg.max_voxels} pillars of this scan are cut from every test that uses it")
        log.warning("%s", message)
        warnings.warn(DataWarning(message), stacklevel=2)


def read_points(path: Path, bin_width: int = FILE_FEATURES) -> np.ndarray:
    """[N, 4] float32 x, y, z, intensity with finite coordinates."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    reader = {".bin": _read_bin, ".npy": _read_npy, ".pcd": pcd.read}.get(path.suffix)
    if reader is None:
        raise DataError(f"{path}: unknown point cloud format; use {', '.join(SUFFIXES)}")
    points = reader(path, bin_width) if path.suffix == ".bin" else reader(path)
    return _normalise(path, points)


def _read_bin(path: Path, width: int) -> np.ndarray:
    size = path.stat().st_size
    if size % (4 * width):
        hint = " (an N x 4 KITTI scan? pass --awml-data-option point_features=4)" if width == 5 and size % 16 == 0 else ""
        raise DataError(f"{path}: {size} bytes is not a whole number of float32 points of {width} features{hint}")
    return np.fromfile(path, dtype=np.float32).reshape(-1, width)


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a plain numpy array ({exc})") from None
    if not isinstance(array, np.ndarray) or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(f"{path}: holds {getattr(array, 'dtype', type(array).__name__)} values; expected numbers "
                        "(x, y, z, intensity[, ring or time lag])")
    if array.ndim != 2 or array.shape[1] not in BIN_WIDTHS:
        raise DataError(f"{path}: shape {array.shape}; expected N x 4 or N x 5 (x, y, z, intensity[, ring or time lag])")
    return array


def _normalise(path: Path, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float32)[:, :SWEEP_FEATURES]
    finite = np.isfinite(points[:, :3]).all(axis=1)
    if not finite.all():
        log.warning("%s: dropped %d points with non-finite coordinates", path, (~finite).sum())
        points = points[finite]
    if len(points) == 0:
        raise DataError(f"{path}: no point with finite coordinates")
    return np.ascontiguousarray(points)
