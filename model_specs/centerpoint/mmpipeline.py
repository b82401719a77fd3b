"""What a CenterPoint config's ``test_pipeline`` says about the points the model sees.

mmdet3d's loading, as facts: ``LoadPointsFromFile`` keeps the ``use_dim`` columns of a ``load_dim``-column
scan (T4/nuScenes: x, y, z, intensity, ring); ``LoadPointsFromMultiSweeps`` overwrites column 4 with each
sweep's time lag (0 for the current one), appends ``sweeps_num`` past sweeps loaded with its own ``load_dim``,
and keeps its ``use_dim`` columns. So AWML's base config (``use_dim=[0, 1, 2, 4]``, ``in_channels=4``) feeds
x, y, z, time lag, and its j6gen2 config (``[0, 1, 2, 3, 4]``) x, y, z, intensity, time lag. Every other
transform of a test pipeline either touches only ground truth or packing (read as inert, by name) or is
refused by name: it would change the points and this spec would not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from model_specs.centerpoint.config import POINT_FEATURES, XYZ
from model_specs.mmconfig import Sections, type_name

FILE_COLUMNS = ("x", "y", "z", "intensity", "ring")  # a T4/nuScenes .bin point; KITTI's stops at intensity
LAG_COLUMN = 4  # where LoadPointsFromMultiSweeps writes the time lag
LOAD, SWEEPS, RANGE = "LoadPointsFromFile", "LoadPointsFromMultiSweeps", "PointsRangeFilter"
_IO = {"backend_args": "where files are read from"}
# mmdet3d 1.4's constructor defaults (facts from its signatures)
LOAD_DEFAULTS = {"load_dim": 6, "use_dim": [0, 1, 2], "shift_height": False, "use_color": False, "norm_intensity": False,
                 "norm_elongation": False}
SWEEPS_DEFAULTS = {"sweeps_num": 10, "load_dim": 5, "use_dim": [0, 1, 2, 4], "pad_empty_sweeps": False, "remove_close": False,
                   "test_mode": False}
# Transforms that leave the points alone: ground truth and packing.
INERT_TRANSFORMS = {
    "Pack3DDetInputs": "packs the sample; its keys change no value",
    "LoadAnnotations3D": "loads ground truth only",
    "ObjectRangeFilter": "filters ground truth only",
    "ObjectNameFilter": "filters ground truth only",
    "ObjectMinPointsFilter": "filters ground truth only",
}


@dataclass(frozen=True)
class PointInput:
    """The encoder's point columns and how sweeps are gathered, as the test pipeline makes them."""

    names: tuple[str, ...]
    past_sweeps: int
    remove_close: bool
    pad_empty_sweeps: bool
    file_columns: int  # LoadPointsFromFile's load_dim


def _columns(sections: Sections, field: str, use_dim: Any, load_dim: int) -> list[int]:
    """mmdet3d's ``use_dim``: an int n is ``range(n)``; every index must be below ``load_dim`` (mmdet3d asserts it)."""
    dims = list(range(use_dim)) if isinstance(use_dim, int) else [int(d) for d in use_dim]
    if not dims or min(dims) < 0 or max(dims) >= load_dim:
        raise sections.fail(f"{field} {dims} reaches past load_dim {load_dim} (mmdet3d refuses it too)", f"fix {field}")
    return dims


def point_input(sections: Sections, pipeline: list, point_cloud_range: tuple[float, ...], in_channels: int) -> PointInput:
    """The points ``pipeline`` gives the encoder; refused by name where this spec could not give the same."""
    load = None
    sweeps: list[Mapping[str, Any]] = []
    for step in pipeline:
        kind = type_name(step)
        if kind == LOAD:
            sections.fields(f"test_pipeline.{LOAD}", step, ("coord_type", *LOAD_DEFAULTS), _IO)
            load = {**LOAD_DEFAULTS, **step}
        elif kind == SWEEPS:
            sections.fields(f"test_pipeline.{SWEEPS}", step, tuple(SWEEPS_DEFAULTS), {
                **_IO, "test_mode": "which sweeps are drawn when a sample has more than sweeps_num: the scenes here "
                                    "hold exactly sweeps_num, which mmdet3d takes either way"})
            sweeps.append({**SWEEPS_DEFAULTS, **step})
        elif kind == RANGE:
            sections.fields(f"test_pipeline.{RANGE}", step, ("point_cloud_range",))
            kept = tuple(float(v) for v in sections.required(f"test_pipeline.{RANGE}", step, "point_cloud_range"))
            sections.agree(f"test_pipeline.{RANGE}.point_cloud_range", kept, "the voxel layer's point_cloud_range",
                           point_cloud_range, "filter points to the voxelizer's range (a narrower filter is not implemented)")
        elif kind not in INERT_TRANSFORMS:
            raise sections.unsupported("test_pipeline", f"transform {kind} (it changes the points; implemented: "
                                       f"{LOAD}, {SWEEPS}, {RANGE}, and {', '.join(INERT_TRANSFORMS)}, which touch no point)")
    if load is None:
        raise sections.fail(f"test_pipeline has no {LOAD}: nothing says what a point holds", f"add {LOAD}")
    _refuse_flags(sections, load)
    load_dim = int(load["load_dim"])
    if not 4 <= load_dim <= len(FILE_COLUMNS):
        raise sections.unsupported(f"test_pipeline.{LOAD}.load_dim", f"{load_dim} (scans here are x, y, z, intensity[, ring]: 4 or 5)")
    names = [FILE_COLUMNS[i] for i in _columns(sections, f"test_pipeline.{LOAD}.use_dim", load["use_dim"], load_dim)]
    past, remove_close, pad = 0, False, False
    if len(sweeps) > 1:
        raise sections.unsupported("test_pipeline", f"{len(sweeps)} {SWEEPS} steps")
    if sweeps:
        sweep = sweeps[0]
        sweep_dim = int(sweep["load_dim"])
        if names != list(FILE_COLUMNS[:sweep_dim]) or sweep_dim <= LAG_COLUMN:
            raise sections.fail(f"test_pipeline.{SWEEPS}.load_dim is {sweep_dim} and {LOAD} keeps {names}: the current and "
                                f"past sweeps must share their columns, with a column {LAG_COLUMN} for the time lag",
                                f"load the same {len(FILE_COLUMNS)} columns in both")
        names[LAG_COLUMN] = POINT_FEATURES[-1]
        names = [names[i] for i in _columns(sections, f"test_pipeline.{SWEEPS}.use_dim", sweep["use_dim"], sweep_dim)]
        past, remove_close, pad = int(sweep["sweeps_num"]), bool(sweep["remove_close"]), bool(sweep["pad_empty_sweeps"])
    if tuple(names[:3]) != XYZ or not set(names[3:]) <= set(POINT_FEATURES[3:]):
        raise sections.unsupported("test_pipeline", f"point columns {names} (implemented: x, y, z first, then intensity and "
                                   "the time lag in any order; PillarFeatureNet reads columns 0-2 as x, y, z, and the scans "
                                   "here carry no ring index)")
    sections.agree("pts_voxel_encoder.in_channels", in_channels, f"the test pipeline's columns {names}", len(names),
                   "set in_channels to the number of point columns use_dim keeps")
    return PointInput(tuple(names), past, remove_close, pad, load_dim)


def _refuse_flags(sections: Sections, load: Mapping[str, Any]) -> None:
    refuse: Callable[[str], Any] = lambda what: sections.unsupported(f"test_pipeline.{LOAD}", what)  # noqa: E731
    if load.get("coord_type", "LIDAR") != "LIDAR":
        raise refuse(f"coord_type={load['coord_type']!r} (lidar points are implemented)")
    for flag in ("shift_height", "use_color", "norm_intensity", "norm_elongation"):
        if load[flag]:
            raise refuse(f"{flag}=True (the points are taken as the scan holds them)")
