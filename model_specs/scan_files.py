"""Real lidar scan files for ``--awml-data``, shared by every lidar spec: KITTI/nuScenes ``.bin``, ``.npy`` and
``.pcd``, each read to [N, 4] float32 x, y, z, intensity.

A fifth column (the ring index in T4 and nuScenes ``.bin`` files) is not a model input and is dropped. PCD files
(ascii, binary and the binary_compressed PCL tools write for recorded scans) are read by :mod:`model_specs.pcd`
(pypcd4, behind a field-by-field header check). Every malformed input ends in a :class:`DataError` that names the
file and what is wrong, never in an exception from deep inside a reader; what a spec does with the points (sweeps,
labels, its profile's limits) is the spec's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from model_specs import pcd
from pytest_awml.errors import DataError

log = logging.getLogger(__name__)

SUFFIXES = (".bin", ".npy", ".pcd")
FILE_FEATURES = 5  # a T4/nuScenes .bin point: x, y, z, intensity, ring
SWEEP_FEATURES = 4  # what a scan keeps: x, y, z, intensity
BIN_WIDTHS = (SWEEP_FEATURES, FILE_FEATURES)
POINT_FEATURES = {"point_features": f"columns of a .bin scan: {FILE_FEATURES} (x, y, z, intensity, ring: T4/nuScenes, the default) "
                                    f"or {SWEEP_FEATURES} (KITTI)"}
"""The ``--awml-data-option`` key every scan reader takes, and what it means."""


def check_options(options: Mapping[str, str], known: Mapping[str, str]) -> None:
    """A key ``known`` lacks is a :class:`DataError` listing the keys there are."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise DataError(f"data option(s) {', '.join(unknown)} unknown: the point cloud reader knows "
                        + "; ".join(f"{key} ({meaning})" for key, meaning in known.items()))


def one_file(path: Path, suffix: str, what: str) -> Path:
    """``path`` itself, or the one ``*suffix`` file in the folder ``path`` (an annotation or info file given by its
    folder); ``what`` names the file a user should give when there is none or more than one."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        return path
    found = sorted(path.glob(f"*{suffix}"))
    if len(found) != 1:
        raise DataError(f"{path}: holds {len(found)} {suffix} files; give {what} itself")
    return found[0]


def scan_files(path: Path) -> list[Path]:
    """``path`` itself, or a folder's point-cloud files in name order."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path} holds no point cloud ({', '.join(SUFFIXES)})")
    return files


def bin_width(options: Mapping[str, str], default: int = FILE_FEATURES) -> int:
    """The ``point_features`` option's width, else ``default`` (a training config's LoadPointsFromFile.load_dim)."""
    text = options.get("point_features", str(default))
    try:
        width = int(text)
    except ValueError:
        width = None
    if width not in BIN_WIDTHS:
        raise DataError(f"point_features={text}: .bin scans are N x 4 (KITTI) or N x 5 (nuScenes): "
                        "pass --awml-data-option point_features=4 or =5")
    return width


def read_points(path: Path, width: int = FILE_FEATURES, keep_rows: bool = False) -> np.ndarray:
    """[N, 4] float32 x, y, z, intensity with finite coordinates; ``keep_rows``: a point with a non-finite coordinate
    is refused instead of dropped (per-point labels beside the file must keep matching the rows)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix == ".bin":
        points = _read_bin(path, width)
    elif path.suffix == ".npy":
        points = _read_npy(path)
    elif path.suffix == ".pcd":
        points = pcd.read(path)
    else:
        raise DataError(f"{path}: unknown point cloud format; use {', '.join(SUFFIXES)}")
    return _normalise(path, points, keep_rows)


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


def _normalise(path: Path, points: np.ndarray, keep_rows: bool) -> np.ndarray:
    points = np.asarray(points, dtype=np.float32)[:, :SWEEP_FEATURES]
    finite = np.isfinite(points[:, :3]).all(axis=1)
    if not finite.all():
        if keep_rows:
            raise DataError(f"{path}: {(~finite).sum()} point(s) with non-finite coordinates (first at row "
                            f"{int(np.argmin(finite))}); remove them from the scan and its labels")
        log.warning("%s: dropped %d points with non-finite coordinates", path, (~finite).sum())
        points = points[finite]
    if len(points) == 0:
        raise DataError(f"{path}: no point with finite coordinates")
    return np.ascontiguousarray(points)
