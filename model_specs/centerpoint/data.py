"""Real point clouds for ``--awml-data``: KITTI/nuScenes ``.bin``, ``.npy`` and ``.pcd`` files.

A file is one sweep: x, y, z and intensity are read; a fifth column (the ring index in T4 and
nuScenes ``.bin`` files) is not a model input and is dropped, as mmdet3d's LoadPointsFromMultiSweeps
overwrites it with the time lag. A single file has no past sweeps, so its points get lag 0, which is
what Autoware's densification gives on its first frame. Every malformed input ends in a
:class:`DataError` that names the file and what is wrong, never in an exception from deep inside torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import numpy as np

from model_specs.centerpoint.scene import Scene, Sweep
from pytest_awml.errors import DataError

log = logging.getLogger(__name__)

SUFFIXES = (".bin", ".npy", ".pcd")
FILE_FEATURES = 5  # a T4/nuScenes .bin point: x, y, z, intensity, ring
SWEEP_FEATURES = 4  # what a sweep keeps: x, y, z, intensity
_PCD_TYPES = {("F", 4): np.float32, ("F", 8): np.float64, ("U", 1): np.uint8, ("U", 2): np.uint16, ("U", 4): np.uint32,
              ("I", 1): np.int8, ("I", 2): np.int16, ("I", 4): np.int32, ("U", 8): np.uint64, ("I", 8): np.int64}


def load(path: Path, options: Mapping[str, str]) -> list[Scene]:
    """One scene per file; a folder gives its point-cloud files in name order."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path} holds no point cloud ({', '.join(SUFFIXES)})")
    width = int(options.get("point_features", FILE_FEATURES))
    if width not in (4, 5):
        raise DataError(f"point_features={width}: .bin scans are N x 4 (KITTI) or N x 5 (nuScenes)")
    log.info("%s: %d scan(s), one sweep each: no past sweeps to densify, time lag 0", path, len(files))
    return [Scene((Sweep(read_points(f, width), 0.0, np.eye(4)),), np.zeros((0, 9), np.float32), np.zeros(0, np.int64))
            for f in files]


def read_points(path: Path, bin_width: int = FILE_FEATURES) -> np.ndarray:
    """[N, 4] float32 x, y, z, intensity with finite coordinates."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    reader = {".bin": _read_bin, ".npy": _read_npy, ".pcd": _read_pcd}.get(path.suffix)
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
    except ValueError as exc:
        raise DataError(f"{path}: not a plain numpy array ({exc})") from None
    if array.ndim != 2 or array.shape[1] not in (4, 5):
        raise DataError(f"{path}: shape {array.shape}; expected N x 4 or N x 5 (x, y, z, intensity[, ring or time lag])")
    return array


def _read_pcd(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    header, offset = {}, 0
    for line in raw.split(b"\n"):
        offset += len(line) + 1
        text = line.decode("ascii", "replace").strip()
        if not text or text.startswith("#"):
            continue
        key, _, value = text.partition(" ")
        header[key.upper()] = value.split()
        if key.upper() == "DATA":
            break
    try:
        fields, sizes, types = header["FIELDS"], [int(s) for s in header["SIZE"]], header["TYPE"]
        counts = [int(c) for c in header.get("COUNT", ["1"] * len(fields))]
        n = int(header["POINTS"][0]) if "POINTS" in header else int(header["WIDTH"][0]) * int(header["HEIGHT"][0])
        data = header["DATA"][0].lower()
    except (KeyError, IndexError, ValueError) as exc:
        raise DataError(f"{path}: malformed PCD header ({exc!r})") from None
    if any(c != 1 for c in counts):
        raise DataError(f"{path}: PCD fields with COUNT > 1 are not supported")
    try:
        dtype = np.dtype([(f, _PCD_TYPES[(t, s)]) for f, t, s in zip(fields, types, sizes)])
    except KeyError as exc:
        raise DataError(f"{path}: PCD type {exc} is not supported") from None
    if data == "ascii":
        rows = [r.split() for r in raw[offset:].decode("ascii", "replace").splitlines() if r.strip()]
        if len(rows) != n or any(len(r) != len(fields) for r in rows):
            raise DataError(f"{path}: ASCII PCD has {len(rows)} rows, header says {n} points of {len(fields)} fields")
        table = {f: np.array([float(r[i]) for r in rows], np.float32) for i, f in enumerate(fields)}
    elif data == "binary":
        body = raw[offset:offset + n * dtype.itemsize]
        if len(body) != n * dtype.itemsize:
            raise DataError(f"{path}: binary PCD is {len(raw) - offset} bytes of data, header says {n} x {dtype.itemsize}")
        records = np.frombuffer(body, dtype=dtype)
        table = {f: records[f].astype(np.float32) for f in fields}
    else:
        raise DataError(f"{path}: PCD DATA {data} is not supported (use ascii or binary)")
    missing = [f for f in ("x", "y", "z") if f not in table]
    if missing:
        raise DataError(f"{path}: PCD has no field(s) {missing}")
    return np.column_stack([table["x"], table["y"], table["z"], table.get("intensity", np.zeros(n, np.float32))])


def _normalise(path: Path, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float32)[:, :SWEEP_FEATURES]
    finite = np.isfinite(points[:, :3]).all(axis=1)
    if not finite.all():
        log.warning("%s: dropped %d points with non-finite coordinates", path, (~finite).sum())
        points = points[finite]
    if len(points) == 0:
        raise DataError(f"{path}: no point with finite coordinates")
    return np.ascontiguousarray(points)
