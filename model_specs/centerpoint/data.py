"""Real point clouds for ``--awml-data``: KITTI/nuScenes ``.bin``, ``.npy`` and ``.pcd`` files.

A file is one sweep: x, y, z and intensity are read; a fifth column (the ring index in T4 and
nuScenes ``.bin`` files) is not a model input and is dropped, as mmdet3d's LoadPointsFromMultiSweeps
overwrites it with the time lag. A single file has no past sweeps, so its points get lag 0, which is
what Autoware's densification gives on its first frame; with the config's ``pad_empty_sweeps`` (AWML's
setting) the scan also stands in for each past sweep, lag 0, as mmdet3d's LoadPointsFromMultiSweeps pads
a sample without sweeps. PCD files (ascii, binary and the binary_compressed PCL tools write for recorded
scans) are read by :mod:`model_specs.scan_files`, shared with every lidar spec. Every malformed input ends
in a :class:`~pytest_awml.errors.DataError` that names the file and what is wrong, never in an exception from deep inside
a reader or torch; a scan with more occupied pillars than the model keeps is read, and the cut is
said (a logged warning and a :class:`~pytest_awml.models.DataWarning`, which the report keeps).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.scene import Scene, Sweep
from model_specs.scan_files import FILE_FEATURES, POINT_FEATURES, bin_width, check_options, read_points, scan_files
from pytest_awml.models import DataWarning

log = logging.getLogger(__name__)

OPTIONS = POINT_FEATURES
"""The ``--awml-data-option`` keys :func:`load` reads, and what each means."""


def load(path: Path, options: Mapping[str, str], cfg: CenterPointConfig | None = None) -> list[Scene]:
    """One scene per file; a folder gives its point-cloud files in name order. With ``cfg``, a scan
    whose pillars the voxelizer would cut to ``cfg.max_voxels`` is reported."""
    path = Path(path)
    check_options(options, OPTIONS)
    files = scan_files(path)
    width = bin_width(options, cfg.file_point_features if cfg is not None else FILE_FEATURES)
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
