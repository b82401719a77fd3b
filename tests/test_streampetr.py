"""AWML's StreamPETR as a spec (model_specs/streampetr): its configs read through --awml-config's reader, AWML's module
names, the inputs built as AWML's test pipeline builds them, the memory carried between frames, and the tiny spec's
sequence judged through the plugin."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from model_specs.centerpoint.scene import make_scene
from model_specs.mmconfig import read_config
from model_specs.streampetr import data
from model_specs.streampetr.boxes import TRUTH, comparator, compare_frames, detections_map
from model_specs.streampetr.config import FULL, TINY
from model_specs.streampetr.decode import Detections, decode
from model_specs.streampetr.head import Petr3D
from model_specs.streampetr.mmconfig import to_streampetr
from model_specs.streampetr.spec import BOX_LIMITS, HOST, MIN_GROUND_TRUTH, MIN_PAIRS, TINY_SPEC, between, initial_memory
from pytest_awml.device import Precision
from pytest_awml.errors import SpecError

CONFIGS = Path(__file__).parent / "data" / "configs" / "awml"


def test_awml_s_configs_read_into_the_full_and_tiny_models():
    assert to_streampetr(read_config(CONFIGS / "streampetr_resnet50_480x640.py"), FULL) == FULL
    assert to_streampetr(read_config(CONFIGS / "streampetr_tiny.py"), FULL) == TINY  # what it refuses: tests/test_faults.py


def test_module_names_are_awml_s():
    """The keys an AWML checkpoint holds (mmdet's ResNet, CPFPN's ConvModules, mmcv's attention and FFN, the head's
    frozen parameters), so that a checkpoint loads strictly."""
    keys = set(Petr3D(TINY).state_dict())
    for key in ("img_backbone.layer3.1.bn2.running_var", "img_neck.lateral_convs.1.conv.bias", "img_neck.fpn_convs.0.conv.weight",
                "img_roi_head.shared_cls.1.weight", "pts_bbox_head.transformer.decoder.layers.1.attentions.0.attn.in_proj_weight",
                "pts_bbox_head.transformer.decoder.layers.0.attentions.1.attn.out_proj.bias",
                "pts_bbox_head.transformer.decoder.layers.0.ffns.0.layers.0.0.weight",
                "pts_bbox_head.transformer.decoder.layers.0.ffns.0.layers.1.bias",
                "pts_bbox_head.transformer.decoder.layers.0.norms.2.weight", "pts_bbox_head.transformer.decoder.post_norm.bias",
                "pts_bbox_head.cls_branches.5.6.weight", "pts_bbox_head.reg_branches.5.4.bias", "pts_bbox_head.ego_pose_pe.reduce.0.weight",
                "pts_bbox_head.spatial_alignment.gamma.weight", "pts_bbox_head.featurized_pe.conv_expand.weight", "pts_bbox_head.coords_d",
                "pts_bbox_head.pseudo_reference_points", "pts_bbox_head.pc_range", "pts_bbox_head.match_costs",
                "pts_bbox_head.reference_points.weight"):
        assert key in keys, key
    assert Petr3D(TINY).pts_bbox_head.pseudo_reference_points.shape == (TINY.num_propagated, 3)


def test_frames_are_normalised_as_awml_s_pipeline_and_the_cameras_see_the_ego_move():
    first, second = data.sequence(TINY, 2, seed=3)
    assert first.img.shape == (1, TINY.num_cameras, 3, *TINY.final_dim) and first.img.dtype == np.float32
    bgr = np.full((2, 2, 3), (103.530, 116.280, 123.675), np.float32)
    assert np.allclose(data.normalise(bgr, TINY), 0.0)  # (BGR - mean) / std, no channel swap (to_rgb False)
    k = first.intrinsics[0, 0]
    assert k[0, 2] == TINY.final_dim[1] / 2 and k[3, 3] == 1.0
    # img2lidar sends the principal point at depth d to d metres ahead of the front camera
    ray = first.img2lidar[0, 0] @ np.array([k[0, 2] * 10.0, k[1, 2] * 10.0, 10.0, 1.0])
    assert np.allclose(ray[:3], (11.0, 0.0, 1.6), atol=1e-4)
    moved = second.ego_pose[0] @ np.linalg.inv(first.ego_pose[0])
    assert 0.7 < moved[0, 3] < 0.9 and second.timestamp[0] - first.timestamp[0] == pytest.approx(data.FRAME_INTERVAL_S)
    assert np.allclose(second.ego_pose[0] @ second.ego_pose_inv[0], np.eye(4), atol=1e-5)


def test_the_host_cuts_the_queue_and_ages_the_memory_between_frames():
    model = Petr3D(TINY).eval()
    frame = data.sequence(TINY, 1, seed=0)[0]
    memory = initial_memory(model, frame)
    assert np.allclose(np.linalg.inv(frame.ego_pose[0]) @ memory["pre_memory_egopose"][0, 0], np.eye(4), atol=1e-5)
    grown = {k: np.concatenate([v[:, : TINY.topk_proposals], v], axis=1) for k, v in memory.items()}
    fed = between(TINY)(grown, {HOST: {"timestamp": np.array([0.1])}}, {HOST: {"timestamp": np.array([0.3])}})
    assert all(v.shape[1] == TINY.memory_len and v.dtype == np.float32 for v in fed.values())
    assert np.allclose(fed["pre_memory_timestamp"], 0.2)


def test_the_sections_match_the_whole_model_s_path():
    """The head section on the sections' own outputs is what the spec's standalone inputs give (make_inputs)."""
    model = TINY_SPEC.build_model(None, 0)
    sample = TINY_SPEC.make_samples(1, 0)[0]
    head = TINY_SPEC.component("pts_head_memory")
    inputs = head.make_inputs(model, sample)
    with torch.no_grad():
        features = TINY_SPEC.component("extract_img_feat").extract(model)(torch.from_numpy(sample[-1].img))
    assert torch.equal(torch.as_tensor(inputs["x"]), features)
    assert float(np.asarray(inputs["pre_memory_timestamp"]).max()) == pytest.approx(data.FRAME_INTERVAL_S)  # one frame driven before


def test_the_tiny_spec_carries_the_memory_through_onnx_runtime(run_awml):
    run = run_awml("--awml-spec=streampetr-tiny", "--awml-samples=1", "-k", "test_sequence_parity or test_sequence_pipeline_parity "
                   "or test_sequence_metric")
    run.result.assert_outcomes(passed=2, skipped=1)  # the seeded model's mAP is 0 on both sides: not judged, said so
    boxes = {r["output"]: r for r in run.report["parity"] if "test_sequence_pipeline_parity" in r["test_id"]}
    assert set(boxes) == {f"boxes.{n}" for n in ("centre_m", "size_rel", "yaw_rad", "velocity_mps", "score", "one_sided", "reordered_queries")}
    assert all(r["passed"] and r["compared"] >= MIN_PAIRS for r in boxes.values())
    (metric,) = run.report["metrics"]
    assert metric["metric"] == "mAP" and metric["compared"] >= MIN_GROUND_TRUTH and "proves nothing" in metric["not_judged"]
    records = run.report["sequence"]
    carried = {r["output"] for r in records if r["gate"] == "sequence"}
    assert carried == {f"post_memory_{m}" for m in ("embedding", "reference_point", "timestamp", "egopose", "velo")}
    assert {r["frame"] for r in records} == set(range(TINY_SPEC.sequence.frames)) and all(r["passed"] for r in records)
    ages = [r for r in records if r["gate"] == "frame" and r["output"] == "post_memory_timestamp"]
    assert all(r["ref_max_abs"] > 0 for r in ages)  # the memory holds aged entries in every frame: the gate judged something


def test_a_frame_s_ground_truth_is_the_scene_in_its_ego_frame():
    """gt_boxes: scene_at's boxes (centre, size, yaw) with velocities turned into the ego frame's axes; gt_labels index
    cfg.classes."""
    scene = make_scene(3, data.BOXES_ONLY)
    frames = data.sequence(TINY, 3, 3)
    for k, frame in enumerate(frames):
        now = data.scene_at(scene, k)
        assert frame.gt_boxes.dtype == np.float32 and frame.gt_labels.dtype == np.int64
        np.testing.assert_array_equal(frame.gt_boxes[:, :7], now.boxes[:, :7])
        assert [TINY.classes[i] for i in frame.gt_labels] == [now.class_names[i] for i in now.labels]
        np.testing.assert_allclose(np.hypot(*frame.gt_boxes[:, 7:9].T), np.hypot(*now.boxes[:, 7:9].T), rtol=1e-6)
    turned = frames[2].gt_boxes[:, 7:9]
    angle = data.EGO_YAW_RATE * 2 * data.FRAME_INTERVAL_S
    np.testing.assert_allclose(turned[:, 0], scene.boxes[:, 7] * np.cos(angle) + scene.boxes[:, 8] * np.sin(angle), atol=1e-5)


def test_the_sequence_metric_scores_boxes_at_the_ground_truth_fully():
    """Boxes at every ground-truth box in range score AP 1 for each class that has ground truth; the same boxes 5 m off
    score 0."""
    frames = [{TRUTH: {"gt_boxes": f.gt_boxes, "gt_labels": f.gt_labels}} for f in data.sequence(TINY, 2, 5)]
    exact = [Detections(f[TRUTH]["gt_boxes"], np.linspace(1, 0.5, len(f[TRUTH]["gt_labels"])).astype(np.float32), f[TRUTH]["gt_labels"],
                        np.arange(len(f[TRUTH]["gt_labels"]))) for f in frames]
    result = detections_map(exact, frames, TINY)
    seen = [c for c in TINY.classes if result.details[f"{c}.ground_truth"] > 0]
    assert seen and all(result.details[f"{c}.ap@0.5m"] == pytest.approx(1.0) for c in seen) and result.compared >= 10
    off = [dataclasses.replace(d, boxes=d.boxes + np.array([5, 0, 0, 0, 0, 0, 0, 0, 0], np.float32)) for d in exact]
    assert detections_map(off, frames, TINY).value == 0.0


def _head_outputs(rng: np.random.Generator) -> dict:
    queries = TINY.num_layers * (TINY.num_query + TINY.num_propagated)
    codes = rng.normal(0, 1, (1, TINY.code_size, queries)).astype(np.float32)
    codes[0, :2] *= 15  # centres in metres, nearly all inside post_center_range
    return {"pts_head_memory": {"all_cls_scores": rng.normal(0, 2, (1, len(TINY.classes), queries)).astype(np.float32),
                                "all_bbox_preds": codes}}


def test_the_box_comparison_catches_moved_boxes_and_pairs_kept_on_one_side():
    """Boxes are compared by (query, class) pair: the same outputs pass; centres moved 10 cm fail the fp32 centre limit
    alone; one query's scores lowered drop its pairs from one side and fail the count."""
    limits = BOX_LIMITS["fp32"]
    refs = [_head_outputs(np.random.default_rng(k)) for k in range(2)]
    same = {v.name: v for v in compare_frames(refs, refs, limits, TINY)}
    kept_pairs = sum(len(decode(r["pts_head_memory"], TINY).scores) for r in refs)
    assert all(v.passed for v in same.values()) and same["boxes.one_sided"].compared == kept_pairs > 150
    moved = [{"pts_head_memory": {**r["pts_head_memory"], "all_bbox_preds": r["pts_head_memory"]["all_bbox_preds"].copy()}} for r in refs]
    moved[1]["pts_head_memory"]["all_bbox_preds"][0, 0] += 0.1
    failed = [v.name for v in compare_frames(refs, moved, limits, TINY) if not v.passed]
    assert failed == ["boxes.centre_m"]
    dropped = [{"pts_head_memory": {**r["pts_head_memory"], "all_cls_scores": r["pts_head_memory"]["all_cls_scores"].copy()}} for r in refs]
    kept = decode(refs[0]["pts_head_memory"], TINY)
    dropped[0]["pts_head_memory"]["all_cls_scores"][0, :, -(TINY.num_query + TINY.num_propagated) + int(kept.queries[0])] = -20.0
    verdicts = {v.name: v for v in compare_frames(refs, dropped, limits, TINY)}
    assert not verdicts["boxes.one_sided"].passed and not verdicts["boxes.score"].passed
    with pytest.raises(SpecError, match="no int8 box limit"):
        comparator(TINY, BOX_LIMITS)(refs, refs, Precision.INT8)


def test_two_queries_holding_each_other_s_objects_are_compared_as_each_other_and_counted():
    """A near tie in the memory's top rows swaps two propagated queries' objects (every value right, in another query):
    compared as each other they pass, and the share is a verdict; beyond reordered_queries the swap fails as moved boxes."""
    refs = [_head_outputs(np.random.default_rng(k)) for k in range(2)]
    kept = decode(refs[1]["pts_head_memory"], TINY)
    a, b = (-(TINY.num_query + TINY.num_propagated) + int(q) for q in kept.queries[:2])  # two kept queries of the last layer
    swapped = [{"pts_head_memory": {name: value.copy() for name, value in r["pts_head_memory"].items()}} for r in refs]
    for value in swapped[1]["pts_head_memory"].values():
        value[0, :, [a, b]] = value[0, :, [b, a]]
    verdicts = {v.name: v for v in compare_frames(refs, swapped, BOX_LIMITS["fp32"], TINY)}
    assert all(v.passed for v in verdicts.values())
    assert verdicts["boxes.reordered_queries"].value == pytest.approx(2 / (TINY.num_query + TINY.num_propagated))
    strict = dataclasses.replace(BOX_LIMITS["fp32"], reordered_queries=0.0)
    assert "boxes.centre_m" in [v.name for v in compare_frames(refs, swapped, strict, TINY) if not v.passed]
