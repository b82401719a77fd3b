"""Real lidar scans for ``--awml-data`` on the FRNet specs, with per-point labels where the files have them.

The points are read by the shared :mod:`model_specs.scan_files` (``.bin``/``.npy``/``.pcd``; x, y, z, intensity, as
AWML's ``LoadPointsWithIdentifierFromFile`` with ``use_dim=4``), in the sensor's frame as recorded. A scan's labels are
the file beside it with the same stem and ``.label`` (SemanticKITTI's layout: one little-endian uint32 per point, the
semantic class in the low 16 bits, the instance id in the high 16, which is dropped), holding the spec's class indices
(the t4dataset ``class_mapping`` already applied); points labelled ``ignore_index`` are not scored, as AWML's metric
skips them. A scan without a label file is unlabelled: parity is judged on it, the mIoU is not. A scan larger than the
spec's profile (after RangeInterpolation's added points, or in frustum cells) is read and said (a
:class:`~pytest_awml.models.DataWarning`): ONNX Runtime runs it, an engine built for the profile refuses it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from model_specs.frnet.config import FRNetConfig
from model_specs.frnet.data import UNSCORED, LidarScan, group, interpolate
from model_specs.scan_files import FILE_FEATURES, POINT_FEATURES, bin_width, check_options, read_points, scan_files
from pytest_awml.errors import DataError
from pytest_awml.models import DataWarning

log = logging.getLogger(__name__)

LABEL_SUFFIX = ".label"
OPTIONS = POINT_FEATURES
"""The ``--awml-data-option`` keys :func:`load` reads, and what each means."""


def read_labels(path: Path, points: int, cfg: FRNetConfig) -> np.ndarray:
    """[points] int64 class indices of ``path`` (SemanticKITTI ``.label``), ``UNSCORED`` where ``ignore_index``."""
    size = path.stat().st_size
    if size != 4 * points:
        raise DataError(f"{path}: {size} bytes, but its scan has {points} points (4 bytes, one uint32, each): "
                        "the labels must be the scan's rows in its order")
    labels = (np.fromfile(path, dtype="<u4") & 0xFFFF).astype(np.int64)
    bad = labels >= len(cfg.classes)
    if bad.any():
        raise DataError(f"{path}: label {int(labels[bad][0])} at row {int(np.argmax(bad))} is not one of the spec's {len(cfg.classes)} "
                        f"classes: map the dataset's labels to the training config's class indices (ignore_index {cfg.ignore_index} "
                        "for points not scored)")
    labels[labels == cfg.ignore_index] = UNSCORED
    return labels


def _report_profile(path: Path, points: np.ndarray, cfg: FRNetConfig) -> None:
    inputs = group(interpolate(points, cfg), cfg)
    rows, cells = len(inputs["points"]), len(inputs["voxel_coors"])
    if rows > cfg.points[2] or cells > cfg.cells[2]:
        message = (f"{path}: {len(points)} points ({rows} after RangeInterpolation) in {cells} frustum cells; the profile holds up to "
                   f"{cfg.points[2]} points and {cfg.cells[2]} cells, so an engine built for it refuses this scan")
        log.warning("%s", message)
        warnings.warn(DataWarning(message), stacklevel=3)


def load(path: Path, options: Mapping[str, str], cfg: FRNetConfig) -> list[LidarScan]:
    """One scan per file; a folder gives its point-cloud files in name order."""
    check_options(options, OPTIONS)
    files = scan_files(Path(path))
    width = bin_width(options, FILE_FEATURES)  # AWML's OT128 config: load_dim=5, use_dim=4
    scans = []
    for index, file in enumerate(files):
        label_file = file.with_suffix(LABEL_SUFFIX)
        labelled = label_file.is_file()
        points = read_points(file, width, keep_rows=labelled)
        labels = read_labels(label_file, len(points), cfg) if labelled else np.full(len(points), UNSCORED, np.int64)
        _report_profile(file, points, cfg)
        scans.append(LidarScan(points, labels, index))
    log.info("%s: %d scan(s), %d with labels", path, len(scans), sum(int((s.labels != UNSCORED).any()) for s in scans))
    return scans


def loader(cfg: FRNetConfig):
    """:func:`load` for a spec whose model is ``cfg`` (a spec's ``load_data``)."""
    def load_data(path: Path, options: Mapping[str, str]) -> list[LidarScan]:
        return load(path, options, cfg)

    return load_data
