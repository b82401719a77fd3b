"""The Autoware hand-off: a bundle folder ``autoware_lidar_centerpoint`` loads as it is, and the decoder
that node runs on the bundle's graphs.

The bundle (Autoware's manifest layout v4.1): ``pts_voxel_encoder.onnx``, ``pts_backbone_neck_head.onnx``
(exported with ``rot_y_axis_reference``, as AWML ships it), ``ml_package.param.yaml`` and
``detection_class_remapper.param.yaml``. The two graphs are copied from the artifacts the run tested,
byte for byte; ``check_bundle`` holds every file to the rules in :mod:`autoware_rules` and to each other,
before the bundle replaces the previous one (``write_bundle``: all or nothing; hand-edited files refused).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_specs.centerpoint import autoware_rules as rules
from model_specs.centerpoint.config import CenterPointConfig
from pytest_awml import schema
from pytest_awml.errors import ArtifactError
from pytest_awml.paths import Staged, commit_staged, edited_since_written, no_link, write_error


@dataclass(frozen=True)
class AutowareSettings:
    """What the bundle says beyond the model: the node's precision and its decoder's thresholds.

    Defaults are Autoware's (``ml_package.schema.json``): fp16 engines, distance bins
    [0, 50), [50, 90), [90, 121), [121, 200) m with a 0.35 minimum score each, yaw-norm 0.3 for
    vehicles and cyclists and 0.0 for pedestrians; ``circle_nms_dist_threshold`` 0.5 m is the node's
    (``centerpoint_common.param.yaml``). ``remap`` are rows of the class remapper (none by default: the
    model's classes are published as they are).
    """

    trt_precision: str = "fp16"
    distance_bin_upper_limits: tuple[float, ...] = (50.0, 90.0, 121.0, 200.0)
    min_confidence: Mapping[str, float] = field(default_factory=dict)  # CLASS -> score; absent: default_confidence
    default_confidence: float = 0.35
    yaw_norm_thresholds: Mapping[str, float] = field(default_factory=lambda: {"PEDESTRIAN": 0.0})
    default_yaw_norm: float = 0.3
    circle_nms_dist_threshold: float = 0.5
    max_candidates: int = 500  # cells the parity comparison looks at (threshold flips); not a node setting

    def confidence(self, name: str) -> float:
        return self.min_confidence.get(name, self.default_confidence)

    def yaw_norm(self, name: str) -> float:
        return self.yaw_norm_thresholds.get(name, self.default_yaw_norm)


def node_config(cfg: CenterPointConfig) -> CenterPointConfig:
    """The model's configuration as the node pre-processes for it: Autoware's densification keeps a past sweep's
    points close to its own sensor (mmdet3d's remove_close is training's, not the node's)."""
    return dataclasses.replace(cfg, remove_close=False)


def class_names(cfg: CenterPointConfig) -> list[str]:
    """Autoware maps labels by exact upper-case name (ros_utils.cpp): ``car`` would be UNKNOWN."""
    return [name.upper() for name in cfg.class_names]


def has_twist(cfg: CenterPointConfig) -> bool:
    """The node publishes velocity only with ``has_twist``. The head always has a ``vel`` output (the
    engine needs it), but a velocity means something only when the input spans time: past sweeps."""
    return any(name == "vel" for name, _ in cfg.heads) and cfg.past_sweeps > 0 and "time_lag" in cfg.point_feature_names


def manifest(cfg: CenterPointConfig, settings: AutowareSettings) -> dict[str, Any]:
    names = class_names(cfg)
    bins = [float(b) for b in settings.distance_bin_upper_limits]
    return {"/**": {"ros__parameters": {
        "version": rules.MANIFEST_VERSION,
        "encoder_onnx_path": rules.ENCODER_ONNX,
        "encoder_engine_path": rules.ENCODER_ONNX.replace(".onnx", ".engine"),
        "head_onnx_path": rules.HEAD_ONNX,
        "head_engine_path": rules.HEAD_ONNX.replace(".onnx", ".engine"),
        "class_remapper_param_path": rules.REMAPPER,
        "trt_precision": settings.trt_precision,
        "model_params": {
            "class_names": names,
            "point_feature_size": cfg.point_features,
            "max_voxel_size": cfg.max_voxels,
            "point_cloud_range": [float(v) for v in cfg.point_cloud_range],
            "voxel_size": [float(v) for v in cfg.voxel_size],
            "downsample_factor": cfg.out_size_factor,
            "encoder_in_feature_size": cfg.decorated_features,
            "has_variance": False,  # the heads carry no variance channels
            "has_twist": has_twist(cfg),
            "yaw_norm_thresholds": [settings.yaw_norm(n) for n in names],
            "detection_score_thresholds": {
                "distance_bin_upper_limits": bins,
                "min_confidence_scores": {n: [settings.confidence(n)] * len(bins) for n in names},
            },
        },
    }}}


def remapper() -> dict[str, Any]:
    """No remapping: every matrix all zeros over Autoware's eight labels (the node requires them non-empty)."""
    zeros = [0] * len(rules.REMAPPER_LABELS) ** 2
    return {"/**": {"ros__parameters": {"allow_remapping_by_area_matrix": zeros, "min_area_matrix": [0.0] * len(zeros),
                                        "max_area_matrix": [0.0] * len(zeros)}}}


def write_bundle(folder: Path, encoder_onnx: Path, head_onnx: Path, cfg: CenterPointConfig,
                 settings: AutowareSettings, schema_path: Path | None = None) -> list[Path]:
    """Copy the two tested graphs and write the manifest and the remapper; raise when they disagree,
    break Autoware's rules or the consumer's schema at ``schema_path``.

    The files are written and checked in a staging folder, and moved into ``folder`` only when every
    check passed (the manifest last): a bundle that fails is removed, and the one a previous run wrote
    stays as it was, never half-replaced nor looking complete. A file of ``folder`` that changed since
    the plugin wrote it (a manifest tuned by hand) is refused rather than overwritten: its edits exist
    nowhere else, and a warning in a CI log is easily missed; moving it away is one command."""
    import yaml  # PyYAML writes the ROS 2 parameter files; a hand-written emitter would get quoting wrong

    layout = rules.POINT_LAYOUTS.get(cfg.point_features)
    if layout != cfg.point_feature_names:
        raise ArtifactError(f"the model takes points as {', '.join(cfg.point_feature_names)}; autoware_lidar_centerpoint feeds "
                            f"point_feature_size {cfg.point_features} as {', '.join(layout or ('no layout',))}: its engine "
                            "would read other columns (train with x, y, z[, intensity], time lag)")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ArtifactError(f"--awml-autoware {folder.parent}: {folder} is a file; give a folder")
    names = (rules.ENCODER_ONNX, rules.HEAD_ONNX, rules.REMAPPER, rules.MANIFEST)
    no_link(folder, folder.parent)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    try:
        staged = {name: staging / name for name in names}
        shutil.copyfile(encoder_onnx, staged[rules.ENCODER_ONNX])
        shutil.copyfile(head_onnx, staged[rules.HEAD_ONNX])
        staged[rules.MANIFEST].write_text(yaml.safe_dump(manifest(cfg, settings), sort_keys=False))
        staged[rules.REMAPPER].write_text(yaml.safe_dump(remapper(), sort_keys=False))
        problems = check_bundle(staging)
        if problems:
            raise ArtifactError(f"the Autoware bundle for {folder} would not load in autoware_lidar_centerpoint: " + "; ".join(problems)
                                + f". It was not written ({_kept(folder)})")
        problems = schema_problems(staging, schema_path) if schema_path is not None else []
        if problems:
            raise ArtifactError(f"the bundle's manifest breaks {schema_path}: " + "; ".join(problems) + f". It was not written ({_kept(folder)})")
        checked = Staged.of(staged)
        edited = edited_since_written(folder, checked)
        if edited:
            raise ArtifactError(f"{', '.join(map(str, edited))} changed since pytest-awml wrote it (edited by hand?): the new "
                                f"bundle would overwrite it, so none was written. Move it away (mv {edited[0]} {edited[0]}.mine) "
                                "or delete it and run again; to keep edited thresholds, set them in the spec's AutowareSettings")
        return commit_staged(folder, checked, last=rules.MANIFEST)
    except OSError as exc:
        raise write_error(folder, "the Autoware bundle", exc) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _kept(folder: Path) -> str:
    return "the bundle a previous run wrote there is unchanged" if (folder / rules.MANIFEST).exists() else "the folder holds no bundle"


def _shapes(values) -> list[list]:
    return [[d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in v.type.tensor_type.shape.dim] for v in values]


def check_bundle(folder: Path) -> list[str]:
    """Every file of a bundle folder against Autoware's rules and against each other."""
    import onnx
    import yaml

    folder = Path(folder)
    found = []
    try:
        params = yaml.safe_load((folder / rules.MANIFEST).read_text())
        remap = yaml.safe_load((folder / rules.REMAPPER).read_text())
    except (OSError, yaml.YAMLError) as exc:
        return [f"cannot read the bundle's parameter files: {exc}"]
    found += rules.manifest_problems(params) + rules.remapper_problems(remap)
    ros = params["/**"]["ros__parameters"] if not found else {}
    for key in ("encoder_onnx_path", "head_onnx_path", "class_remapper_param_path"):
        if ros and not (folder / ros[key]).is_file():
            found.append(f"{key} names {ros[key]}, which is not in the bundle")
    if found:
        return found
    encoder = onnx.load(folder / ros["encoder_onnx_path"], load_external_data=False)
    head = onnx.load(folder / ros["head_onnx_path"], load_external_data=False)
    found += rules.graph_problems(ros["model_params"], _shapes(encoder.graph.input), _shapes(encoder.graph.output),
                                  _shapes(head.graph.input), list(zip([o.name for o in head.graph.output], _shapes(head.graph.output), strict=True)))
    meta = {p.key: p.value for p in head.metadata_props}
    if meta.get("rot_y_axis_reference") != "true":
        found.append(f"{ros['head_onnx_path']} was not exported with rot_y_axis_reference (Autoware reads w, l, h and a y-axis yaw)")
    return found


def schema_problems(folder: Path, schema_dir: Path) -> list[str]:
    """The manifest against a real Autoware checkout's ``schema/ml_package.schema.json`` (``--awml-autoware-schema``),
    offline (:mod:`pytest_awml.schema`: no ``$ref`` is fetched)."""
    import yaml

    params = yaml.safe_load((Path(folder) / rules.MANIFEST).read_text())
    return schema.load(schema_dir).problems(params)
