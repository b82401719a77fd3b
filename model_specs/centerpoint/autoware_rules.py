"""What Autoware's ``autoware_lidar_centerpoint`` node accepts, as rules written from its code.

Facts from autoware_universe (``perception/autoware_lidar_centerpoint``, 2026: ``schema/ml_package.schema.json``,
``lib/ml_package_version.cpp``, ``src/node.cpp``, ``lib/centerpoint_trt.cpp``, ``lib/preprocess/``,
``lib/postprocess/``, ``lib/ros_utils.cpp``): the bundle is a folder holding ``ml_package.param.yaml``
(manifest version 4.1 or later within major 4), the two ONNX files and ``detection_class_remapper.param.yaml``;
the node declares every key below without a default, so a missing one stops it at start-up; the engines are
bound by tensor index, not by name; labels map by exact upper-case name. The project's own checks here are
the same facts as code; ``--awml-autoware-schema`` adds a validation against a real checkout's schema files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

# ml_package_version.hpp: SUPPORTED_ML_PACKAGE_MAJOR_VERSION = 4, MINIMUM_ML_PACKAGE_MINOR_VERSION = 1.
MANIFEST_VERSION = "v4.1"
SUPPORTED_MAJOR, MINIMUM_MINOR = 4, 1
_VERSION = re.compile(r"^[vV]?(\d+)\.(\d+)$")
MANIFEST = "ml_package.param.yaml"
REMAPPER = "detection_class_remapper.param.yaml"
ENCODER_ONNX, HEAD_ONNX = "pts_voxel_encoder.onnx", "pts_backbone_neck_head.onnx"
# ros_utils.cpp getSemanticType: these names become labels; any other string is published as UNKNOWN.
LABELS = ("CAR", "TRUCK", "BUS", "TRAILER", "BICYCLE", "MOTORBIKE", "PEDESTRIAN")
# The remapper's matrices are square over autoware_perception_msgs' label enum, in this order.
REMAPPER_LABELS = ("UNKNOWN", "CAR", "TRUCK", "BUS", "TRAILER", "MOTORCYCLE", "BICYCLE", "PEDESTRIAN")
TRT_PRECISIONS = ("fp32", "fp16")
# preprocess_kernel.cu generateFeatures: point_feature_size → the encoder_in_feature_size values it supports
# (4: x, y, z, time lag; 5: x, y, z, intensity, time lag; then 3 cluster offsets and 2 or 3 centre offsets).
ENCODER_FEATURES = {4: (9, 10), 5: (11,)}
# the point columns generateFeatures makes for each point_feature_size (densification writes the time lag last)
POINT_LAYOUTS = {4: ("x", "y", "z", "time_lag"), 5: ("x", "y", "z", "intensity", "time_lag")}
# centerpoint_config.hpp: fixed sizes the node allocates with.
MAX_POINTS_PER_VOXEL = 32
ENCODER_OUT_FEATURES = 32
# centerpoint_trt.cpp / centerpoint_config.hpp: head outputs by index, their channels (with variance: doubled but heatmap).
HEAD_OUTPUTS = ("heatmap", "offset", "z", "dim", "rot", "vel")
HEAD_CHANNELS = {"offset": 2, "z": 1, "dim": 3, "rot": 2, "vel": 2}
REQUIRED_STRINGS = ("encoder_onnx_path", "encoder_engine_path", "head_onnx_path", "head_engine_path", "class_remapper_param_path")


def version_problem(version: Any) -> str | None:
    """ml_package_version.cpp's check: '<major>.<minor>' with an optional 'v', major 4, minor >= 1."""
    if not isinstance(version, str) or not version:
        return "version is missing: the node rejects a manifest that declares none"
    match = _VERSION.match(version)
    if not match:
        return f"version {version!r} is not of the form '<major>.<minor>'"
    major, minor = int(match.group(1)), int(match.group(2))
    if major != SUPPORTED_MAJOR or minor < MINIMUM_MINOR:
        return f"version {version!r} is not supported: the node reads v{SUPPORTED_MAJOR}.{MINIMUM_MINOR} or later within major {SUPPORTED_MAJOR}"
    return None


def _numbers(value: Any, count: int | None = None) -> TypeGuard[list[float]]:
    return (isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            and (count is None or len(value) == count))


def manifest_problems(manifest: Mapping[str, Any]) -> list[str]:
    """Every rule of the manifest alone (types, sizes, ranges, the version), as sentences."""
    params = (manifest.get("/**") or {}).get("ros__parameters") if isinstance(manifest, Mapping) else None
    if not isinstance(params, Mapping):
        return ["the file has no '/**' -> 'ros__parameters' mapping"]
    found = [p for p in [version_problem(params.get("version"))] if p]
    found += [f"{key} must be a non-empty string (a file name relative to the bundle)" for key in REQUIRED_STRINGS
              if not isinstance(params.get(key), str) or not params.get(key)]
    if params.get("trt_precision") not in TRT_PRECISIONS:
        found.append(f"trt_precision is {params.get('trt_precision')!r}, not one of {TRT_PRECISIONS}")
    model = params.get("model_params")
    if not isinstance(model, Mapping):
        return [*found, "model_params is missing"]
    names = model.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        found.append("model_params.class_names must be a non-empty list of unique strings")
        names = []
    found += [f"class name {n!r} is no Autoware label ({', '.join(LABELS)}): its objects would be published as UNKNOWN"
              for n in names if n not in LABELS]
    for key in ("has_twist", "has_variance"):
        if not isinstance(model.get(key), bool):
            found.append(f"model_params.{key} must be true or false")
    for key, minimum in (("point_feature_size", 1), ("max_voxel_size", 1), ("downsample_factor", 1), ("encoder_in_feature_size", 1)):
        value = model.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            found.append(f"model_params.{key} must be an integer >= {minimum}, got {value!r}")
    size, width = model.get("point_feature_size"), model.get("encoder_in_feature_size")
    if isinstance(size, int) and width not in ENCODER_FEATURES.get(size, ()):
        found.append(f"point_feature_size {size} with encoder_in_feature_size {width}: the node's feature kernel supports "
                     + "; ".join(f"{p} -> {', '.join(map(str, w))}" for p, w in ENCODER_FEATURES.items()))
    # the node only warns on these and then silently uses its own defaults
    if not _numbers(model.get("point_cloud_range"), 6):
        found.append("model_params.point_cloud_range must be 6 numbers (the node would fall back to its defaults)")
    if not _numbers(model.get("voxel_size"), 3):
        found.append("model_params.voxel_size must be 3 numbers (the node would fall back to its defaults)")
    yaw = model.get("yaw_norm_thresholds")
    if not _numbers(yaw, len(names)) or not all(0.0 <= v <= 1.0 for v in yaw):
        found.append(f"model_params.yaw_norm_thresholds must hold one number in [0, 1] per class ({len(names)})")
    scores = model.get("detection_score_thresholds")
    bins = scores.get("distance_bin_upper_limits") if isinstance(scores, Mapping) else None
    if not _numbers(bins) or not bins or list(bins) != sorted(bins):
        found.append("detection_score_thresholds.distance_bin_upper_limits must be a non-empty ascending list")
        bins = []
    confidences = scores.get("min_confidence_scores") if isinstance(scores, Mapping) else None
    for name in names:
        values = confidences.get(name) if isinstance(confidences, Mapping) else None
        if not _numbers(values, len(bins)) or not all(0.0 <= v < 1.0 for v in values):
            found.append(f"min_confidence_scores.{name} must hold one score in [0, 1) per distance bin ({len(bins)})")
    return found


def remapper_problems(remapper: Mapping[str, Any]) -> list[str]:
    params = (remapper.get("/**") or {}).get("ros__parameters") if isinstance(remapper, Mapping) else None
    if not isinstance(params, Mapping):
        return ["the remapper file has no '/**' -> 'ros__parameters' mapping"]
    cells = len(REMAPPER_LABELS) ** 2
    return [f"{key} must be {cells} numbers ({len(REMAPPER_LABELS)} x {len(REMAPPER_LABELS)} over {', '.join(REMAPPER_LABELS)})"
            for key in ("allow_remapping_by_area_matrix", "min_area_matrix", "max_area_matrix") if not _numbers(params.get(key), cells)]


def graph_problems(model: Mapping[str, Any], encoder_inputs: Sequence[Sequence], encoder_outputs: Sequence[Sequence],
                   head_inputs: Sequence[Sequence], head_outputs: Sequence[tuple[str, Sequence]]) -> list[str]:
    """The manifest against the two graphs' shapes, as the node allocates and binds them (by index).

    Shapes are lists of ints or dim names; ``head_outputs`` are (name, shape) in graph order.
    """
    found = []
    width = model.get("encoder_in_feature_size")
    if len(encoder_inputs) != 1 or list(encoder_inputs[0][1:]) != [MAX_POINTS_PER_VOXEL, width]:
        found.append(f"the encoder must take one input [voxels, {MAX_POINTS_PER_VOXEL}, {width}], it takes {list(map(list, encoder_inputs))}")
    if len(encoder_outputs) != 1 or list(encoder_outputs[0][1:]) != [1, ENCODER_OUT_FEATURES]:
        found.append(f"the encoder must give one output [voxels, 1, {ENCODER_OUT_FEATURES}], it gives {list(map(list, encoder_outputs))}")
    pcr, voxel, factor = model.get("point_cloud_range"), model.get("voxel_size"), model.get("downsample_factor")
    if _numbers(pcr, 6) and _numbers(voxel, 3) and isinstance(factor, int) and factor > 0:
        # centerpoint_config.hpp: static_cast<size_t>((max - min) / voxel), a truncation
        nx, ny = (int((pcr[3] - pcr[0]) / voxel[0]), int((pcr[4] - pcr[1]) / voxel[1]))
        if len(head_inputs) != 1 or list(head_inputs[0]) != [1, ENCODER_OUT_FEATURES, ny, nx]:
            found.append(f"the head must take [1, {ENCODER_OUT_FEATURES}, {ny}, {nx}] (grid from range / voxel size), "
                         f"it takes {list(map(list, head_inputs))}")
        variance = 2 if model.get("has_variance") else 1
        expected = [len(model.get("class_names") or [])] + [HEAD_CHANNELS[n] * variance for n in HEAD_OUTPUTS[1:]]
        got = [shape[1] if len(shape) == 4 else None for _, shape in head_outputs]
        if got != expected:
            found.append(f"the head's outputs, bound by index as {', '.join(HEAD_OUTPUTS)}, must have {expected} channels; "
                         f"the graph's {[n for n, _ in head_outputs]} have {got}")
        down = [1, None, ny // factor, nx // factor]
        if any(len(shape) != 4 or [shape[0], shape[2], shape[3]] != [down[0], down[2], down[3]] for _, shape in head_outputs):
            found.append(f"every head output must be [1, C, {ny // factor}, {nx // factor}] (grid / downsample_factor {factor})")
    return found
