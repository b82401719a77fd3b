"""The Autoware bundle: its manifest and graphs against the rules of autoware_lidar_centerpoint, and the
decoder that node runs, against mmdet3d's decode of the same network."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from model_specs.centerpoint import autoware_rules as rules
from model_specs.centerpoint.autoware import AutowareSettings, check_bundle, manifest, remapper, schema_problems
from model_specs.centerpoint.autoware_decode import decode_autoware
from model_specs.centerpoint.config import TINY
from model_specs.centerpoint.decode import decode
from model_specs.centerpoint.spec import TINY_SPEC

H, W = TINY.head_size


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The bundle written from the bundle components' graphs, exported as the ONNX builder does."""
    import torch

    from exporters.onnx_export import export_onnx

    root = tmp_path_factory.mktemp("bundle")
    model, graphs = TINY_SPEC.build_model(None, 0), {}
    for component in TINY_SPEC.bundle_components:
        graphs[component.name] = root / f"{component.name}.onnx"
        example = tuple(torch.zeros(t.at("opt")) for t in component.inputs)
        export_onnx(component.extract(model).eval(), example, graphs[component.name], component=component.name,
                    inputs=component.inputs, outputs=component.outputs, options=component.onnx, metadata=dict(component.onnx.metadata))
    TINY_SPEC.bundle(model, root / "centerpoint-tiny", graphs, None)
    return root / "centerpoint-tiny"


def test_the_written_bundle_passes_every_rule(bundle):
    assert sorted(p.name for p in bundle.iterdir()) == sorted([rules.ENCODER_ONNX, rules.HEAD_ONNX, rules.MANIFEST, rules.REMAPPER,
                                                               ".awml-written.json"])  # what was written, to tell a hand edit
    assert check_bundle(bundle) == []
    params = yaml.safe_load((bundle / rules.MANIFEST).read_text())["/**"]["ros__parameters"]
    assert params["version"] == "v4.1" and params["model_params"]["class_names"] == ["CAR", "TRUCK", "BUS", "BICYCLE", "PEDESTRIAN"]
    assert params["model_params"]["encoder_in_feature_size"] == 11 and params["model_params"]["point_feature_size"] == 5
    assert params["model_params"]["has_twist"] is True  # a vel head and a past sweep: the velocity means something
    scores = params["model_params"]["detection_score_thresholds"]
    assert all(len(v) == len(scores["distance_bin_upper_limits"]) for v in scores["min_confidence_scores"].values())


def _manifest():
    return manifest(TINY, AutowareSettings())


@pytest.mark.parametrize("change, words", [
    (lambda p: p.update(version="v4.0"), "version 'v4.0' is not supported"),
    (lambda p: p.update(version="4.1.0"), "is not of the form '<major>.<minor>'"),
    (lambda p: p.pop("version"), "version is missing"),
    (lambda p: p.pop("head_engine_path"), "head_engine_path must be a non-empty string"),
    (lambda p: p.update(trt_precision="int8"), "trt_precision is 'int8'"),
    (lambda p: p["model_params"].update(class_names=["car", "TRUCK"]), "class name 'car' is no Autoware label"),
    (lambda p: p["model_params"].update(encoder_in_feature_size=9), "point_feature_size 5 with encoder_in_feature_size 9"),
    (lambda p: p["model_params"].update(voxel_size=[0.4, 0.4]), "voxel_size must be 3 numbers"),
    (lambda p: p["model_params"].update(yaw_norm_thresholds=[0.3]), "yaw_norm_thresholds must hold one number in \\[0, 1\\] per class"),
    (lambda p: p["model_params"]["detection_score_thresholds"].update(distance_bin_upper_limits=[90.0, 50.0]), "ascending"),
    (lambda p: p["model_params"]["detection_score_thresholds"]["min_confidence_scores"].update(CAR=[0.3]), "min_confidence_scores.CAR"),
])
def test_each_rule_of_the_node_is_checked(change, words):
    params = copy.deepcopy(_manifest())
    assert rules.manifest_problems(params) == []
    change(params["/**"]["ros__parameters"])
    assert any(__import__("re").search(words, p) for p in rules.manifest_problems(params)), rules.manifest_problems(params)


def test_the_version_check_matches_autoware_s():
    for good in ("v4.1", "4.1", "v4.2", "v4.10", "V4.1"):
        assert rules.version_problem(good) is None, good
    for bad in ("v4.0", "v3.9", "v5.0", "", "v4", "v4.1.0", "v4.x", "latest", None):
        assert rules.version_problem(bad), bad


def test_graphs_are_bound_by_index_so_order_and_channels_are_checked():
    params = _manifest()["/**"]["ros__parameters"]["model_params"]
    heads = [("heatmap", [1, 5, H, W]), ("reg", [1, 2, H, W]), ("height", [1, 1, H, W]), ("dim", [1, 3, H, W]),
             ("rot", [1, 2, H, W]), ("vel", [1, 2, H, W])]
    args = ([["num_voxels", 32, 11]], [["num_voxels", 1, 32]], [[1, 32, 128, 128]])
    assert rules.graph_problems(params, *args, heads) == []
    swapped = heads[:4] + [heads[5], heads[4]]
    assert rules.graph_problems(params, *args, swapped) == []  # rot and vel both have 2 channels: only names differ
    wrong = heads[:2] + [heads[3], heads[2]] + heads[4:]
    assert "bound by index" in rules.graph_problems(params, *args, wrong)[0]
    assert "the head must take [1, 32, 128, 128]" in rules.graph_problems(params, args[0], args[1], [[1, 32, 64, 64]], heads)[0]
    assert rules.remapper_problems(remapper()) == [] and "64 numbers" in rules.remapper_problems({"/**": {"ros__parameters": {}}})[0]


def test_a_bundle_with_the_x_axis_head_is_refused(bundle, tmp_path):
    import onnx

    copy_folder = tmp_path / "b"
    copy_folder.mkdir()
    for path in bundle.iterdir():
        (copy_folder / path.name).write_bytes(path.read_bytes())
    head = onnx.load(copy_folder / rules.HEAD_ONNX)
    del head.metadata_props[:]
    onnx.save(head, copy_folder / rules.HEAD_ONNX)
    assert any("rot_y_axis_reference" in p for p in check_bundle(copy_folder))


def test_a_real_checkout_s_schema_is_applied(bundle, tmp_path):
    schema = {"type": "object", "required": ["/**"], "properties": {"/**": {"type": "object", "properties": {"ros__parameters": {
        "type": "object", "required": ["version", "trt_precision"], "properties": {"trt_precision": {"enum": ["fp32"]}}}}}}}
    (tmp_path / "ml_package.schema.json").write_text(json.dumps(schema))
    problems = schema_problems(bundle, tmp_path)
    assert len(problems) == 1 and "trt_precision" in problems[0] and "'fp16' is not one of ['fp32']" in problems[0]


def _x_axis_heads(peaks, rot_norm=1.0):
    heads = {"heatmap": np.full((1, 5, H, W), -10.0, np.float32), "reg": np.full((1, 2, H, W), 0.5, np.float32),
             "height": np.ones((1, 1, H, W), np.float32),
             "dim": np.log(np.array([4.0, 2.0, 1.5], np.float32)).reshape(1, 3, 1, 1).repeat(H, 2).repeat(W, 3),
             "rot": (rot_norm * np.stack([np.full((H, W), math.sin(0.3)), np.full((H, W), math.cos(0.3))])[None]).astype(np.float32),
             "vel": np.full((1, 2, H, W), 2.0, np.float32)}
    for cls, y, x, logit in peaks:
        heads["heatmap"][0, cls, y, x] = logit
    return heads


def _y_axis(heads):
    """What the bundle's head emits for the same network: (w, l, h) and (-cos, -sin)."""
    return dict(heads, dim=heads["dim"][:, [1, 0, 2]], rot=np.concatenate([-heads["rot"][:, 1:2], -heads["rot"][:, 0:1]], 1))


def test_autoware_s_decoder_publishes_mmdet3d_s_boxes_for_confident_objects():
    heads = _x_axis_heads([(0, 10, 20, 3.0), (4, 40, 30, 2.0)])
    ours, theirs = decode(heads, TINY), decode_autoware(_y_axis(heads), TINY, AutowareSettings())
    assert theirs.labels.tolist() == ours.labels.tolist() == [0, 4]
    np.testing.assert_allclose(theirs.boxes, ours.boxes, atol=1e-5)  # centre, z centre, l, w, h, yaw and velocity
    np.testing.assert_allclose(theirs.scores, ours.scores, atol=1e-7)


def test_autoware_s_thresholds_bins_and_yaw_norm():
    low = math.log(0.3 / 0.7)  # 0.3: above mmdet3d's 0.1, below Autoware's 0.35
    heads = _x_axis_heads([(0, 10, 20, 3.0), (1, 30, 30, low)])
    assert len(decode(heads, TINY).scores) == 2 and len(decode_autoware(_y_axis(heads), TINY, AutowareSettings()).scores) == 1
    near_only = AutowareSettings(distance_bin_upper_limits=(5.0,))  # the first peak sits ~17 m out: beyond the last bin
    assert len(decode_autoware(_y_axis(_x_axis_heads([(0, 10, 20, 3.0)])), TINY, near_only).scores) == 0
    weak_yaw = _x_axis_heads([(0, 10, 20, 3.0), (4, 40, 30, 3.0)], rot_norm=0.2)  # |(sin, cos)| 0.2 < 0.3 for CAR, >= 0 for PEDESTRIAN
    assert decode_autoware(_y_axis(weak_yaw), TINY, AutowareSettings()).labels.tolist() == [4]


def test_autoware_s_nms_ignores_the_class_and_velocity_needs_has_twist():
    heads = _x_axis_heads([(0, 10, 20, 3.0), (3, 10, 20, 2.0)])  # same cell: the kernel keeps the best class only
    heads["heatmap"][0, 2, 10, 21] = 2.5  # 0.8 m away: inside mmdet3d's radius 1 (squared), outside Autoware's 0.5 m
    assert decode_autoware(_y_axis(heads), TINY, AutowareSettings()).labels.tolist() == [0, 2]
    assert decode(heads, TINY).labels.tolist() == [0]  # mmdet3d: per class and cell, then 0.64 <= 1 suppresses both
    still = dataclasses.replace(TINY, past_sweeps=0)
    assert not decode_autoware(_y_axis(heads), still, AutowareSettings()).boxes[:, 7:].any()
