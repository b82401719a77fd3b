"""AWML's CenterPoint family (ShortRange, ConvNeXtPC standard and small, and their tiny topologies), proven in
every CI run against what AWML's own modules computed.

``tests/data/mmdet3d/centerpoint-{shortrange,convnextpc}*`` hold mmdet3d 1.4's ``test_step`` (mmcv's voxelizer,
AWML's ``BackwardPillarFeatureNet`` and ``ConvNeXt_PC`` imported from an AWML checkout, mmpretrain's ConvNeXt
blocks) on seeded weights (``tools/record_mmdet3d.py --awml-root``). Here the recorded state_dict loads strictly
into the project's model built from the member's config, and the tiny members' pillars, heads and boxes must
agree with AWML's; the full-size members' forward passes take minutes on a CPU and run under ``-m full``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from model_specs.centerpoint.config import FULL
from model_specs.centerpoint.convnext_pc import ConvNeXtPC, ConvNeXtPCConfig
from model_specs.centerpoint.decode import Detections
from model_specs.centerpoint.family import CONFIGS, MEMBERS, model_config, spec
from model_specs.centerpoint.mmconfig import read_config, to_centerpoint
from model_specs.centerpoint.mmdet3d_peer import (
    MIN_BOXES,
    Recording,
    box_difference,
    compare,
    state_sha256,
)
from model_specs.centerpoint.model import CenterPoint

DATA = Path(__file__).parent / "data" / "mmdet3d"
TINY_MEMBERS = [name for name, member in MEMBERS.items() if member.tiny]
FULL_MEMBERS = [name for name, member in MEMBERS.items() if not member.tiny]


def test_each_member_is_what_its_config_says():
    short, convnext, small = (model_config(n) for n in ("centerpoint-shortrange", "centerpoint-convnextpc", "centerpoint-convnextpc-small"))
    assert short.voxel_size[:2] == (0.16, 0.16) and short.point_cloud_range[3] == 51.2 and short.grid_size == (640, 640, 1)
    assert short.head_size == (640, 640) and short.convnext is None and short.backbone_strides == (1, 2, 2)
    assert short.neck_upsample_strides == (1.0, 2.0, 4.0) and short.max_voxels == 60_000
    for cfg in (short, convnext, small):  # BackwardPillarFeatureNet: x, y pillar-centre offsets only
        assert not cfg.voxel_center_z and cfg.decorated_features == cfg.point_features + 5
    assert convnext.grid_size == (1216, 1216, 1) and convnext.head_size == (304, 304) and convnext.out_size_factor == 4
    assert convnext.convnext == ConvNeXtPCConfig(channels=(32, 192, 192, 192, 192), depths=(3, 3, 2, 1, 1), out_indices=(2, 3, 4))
    assert small.convnext == ConvNeXtPCConfig(channels=(32, 64, 128, 128, 128), depths=(3, 2, 1, 1, 1), out_indices=(2, 3, 4))
    assert convnext.backbone_channels == (192, 192, 192) and small.backbone_channels == (128, 128, 128)  # what the neck reads
    assert dataclasses.replace(small, convnext=convnext.convnext, backbone_channels=convnext.backbone_channels) == convnext


@pytest.mark.parametrize("tiny, full", [("centerpoint-shortrange-tiny", "centerpoint-shortrange"),
                                        ("centerpoint-convnextpc-tiny", "centerpoint-convnextpc-small")])
def test_a_tiny_member_keeps_its_full_member_s_topology(tiny, full):
    small, big = model_config(tiny), model_config(full)
    same = ("voxel_center_z", "backbone_layers", "backbone_strides", "neck_upsample_strides", "use_conv_for_no_stride",
            "out_size_factor", "head_num_conv", "head_final_kernel", "class_names", "point_feature_names", "past_sweeps")
    assert {f: getattr(small, f) for f in same} == {f: getattr(big, f) for f in same}
    assert small.voxel_size == big.voxel_size
    if big.convnext is not None:
        assert (small.convnext.depths, small.convnext.out_indices) == (big.convnext.depths, big.convnext.out_indices)


@pytest.mark.parametrize("name", list(MEMBERS))
def test_the_spec_is_built_from_the_config_through_the_reader(name):
    built = spec(name)
    assert built.name == name and built.params["model"] == to_centerpoint(read_config(CONFIGS / MEMBERS[name].config), MEMBERS[name].base)
    assert built.component("pts_voxel_encoder").inputs[0].shape[2] == built.params["model"].decorated_features


def _recorded(name: str):
    recording = Recording.load(DATA, name)
    assert recording.meta["config"] == MEMBERS[name].config
    return recording, model_config(name)


@pytest.mark.parametrize("name", list(MEMBERS))
def test_awml_s_weights_load_strictly_with_the_same_keys_and_shapes(name):
    recording, cfg = _recorded(name)
    assert recording.meta["versions"]["mmdet3d"] == "1.4.0" and recording.meta["awml"]["awml_commit"].startswith("7a6ec07")
    ours = {k: tuple(v.shape) for k, v in CenterPoint(cfg).state_dict().items()}
    assert ours == {k: tuple(shape) for k, shape in recording.meta["state_shapes"]}  # every key and shape of AWML's model
    state = recording.state_dict()
    assert state_sha256(state) == recording.meta["state_sha256"]  # the weights AWML's modules ran with
    CenterPoint(cfg).load_state_dict(state, strict=True)


@pytest.fixture(scope="module", params=TINY_MEMBERS)
def tiny_comparison(request):
    recording, cfg = _recorded(request.param)
    return recording, cfg, compare(recording, cfg)


def test_every_stage_of_a_tiny_member_agrees_with_awml(tiny_comparison):
    """Voxels identical to mmcv's; pillars and heads within TENSOR_RTOL; AWML's boxes from this project's decode."""
    recording, _, result = tiny_comparison
    assert result.problems() == []
    assert result.recorded_boxes >= MIN_BOXES and result.end_to_end.count == (result.recorded_boxes,) * 2
    layer_norms = [v for k, v in recording.state_dict().items() if k.endswith("norm.weight") and "stages" in k]
    assert all(not torch.all(w == 1) for w in layer_norms)  # randomised: a swapped LayerNorm affine would show


@pytest.mark.full
@pytest.mark.parametrize("name", FULL_MEMBERS)
def test_every_stage_of_a_full_size_member_agrees_with_awml(name):
    recording, cfg = _recorded(name)
    result = compare(recording, cfg)
    assert result.problems() == [] and result.recorded_boxes >= MIN_BOXES


def test_the_comparison_would_catch_pillar_feature_net_for_backward_pillar_feature_net():
    """Offsetting z from the pillar centre too (mmdet3d's PillarFeatureNet) widens the first PFN layer: no strict load."""
    recording, cfg = _recorded("centerpoint-shortrange-tiny")
    with pytest.raises(RuntimeError, match="size mismatch for pts_voxel_encoder.pfn_layers.0.linear.weight"):
        CenterPoint(dataclasses.replace(cfg, voxel_center_z=True)).load_state_dict(recording.state_dict(), strict=True)


def test_convnext_pc_keeps_the_inherited_quirks():
    """mmpretrain's constructor registers a 768-wide norm3 that AWML's keeps unless stage 3 is an output, and a negative
    out index counts from 4 whatever the number of stages."""
    without_3 = ConvNeXtPC(ConvNeXtPCConfig(channels=(8, 8, 8, 8, 8), depths=(1, 1, 1, 1, 1), out_indices=(2, 4)))
    assert without_3.state_dict()["norm3.weight"].shape == (768,) and "norm2.weight" in without_3.state_dict()
    assert [o.shape for o in without_3(torch.zeros(1, 8, 32, 32))] == [(1, 8, 8, 8), (1, 8, 2, 2)]
    values = read_config(CONFIGS / "centerpoint_convnextpc_tiny.py").values
    backbone = {**values["model"]["pts_backbone"], "out_indices": [-2, -1]}
    config = read_config(CONFIGS / "centerpoint_convnextpc_tiny.py").with_model(pts_backbone=backbone, pts_neck=dict(in_channels=[32, 32], out_channels=[32, 32], upsample_strides=[1, 2]),
                                                                                   pts_bbox_head=dict(in_channels=64))
    assert to_centerpoint(config, FULL).convnext.out_indices == (2, 3)


def test_boxes_of_equal_score_are_matched_whatever_their_order_and_a_moved_box_is_still_caught():
    """Circle NMS's order among boxes of exactly one score is the sort's (the full-size ConvNeXtPC recording on 16
    threads swapped two); the comparison matches such ties by position, and still sees a box that moved."""
    rng = np.random.default_rng(3)
    boxes = rng.normal(size=(5, 9)).astype(np.float32)
    scores = np.array([0.9, 0.7, 0.7, 0.7, 0.2], np.float32)
    labels = np.array([0, 1, 1, 2, 0])
    empty = np.zeros((0,))
    theirs = boxes.copy()
    theirs[:, 2] -= theirs[:, 5] / 2  # mmdet3d reports the bottom
    ours = Detections(boxes[[0, 2, 1, 3, 4]], scores, labels[[0, 2, 1, 3, 4]], empty, empty, empty, empty, empty)
    assert box_difference(ours, theirs, scores, labels).worst < 1e-6  # z: float32 rounding of bottom + h / 2
    moved = theirs.copy()
    moved[2, 0] += 3.2
    assert box_difference(ours, moved, scores, labels).centre > 1.0
    swapped_scores = Detections(boxes[[1, 0, 2, 3, 4]], scores, labels[[1, 0, 2, 3, 4]], empty, empty, empty, empty, empty)
    assert box_difference(swapped_scores, theirs, scores, labels).worst > 0.1  # different scores: order is meaningful
