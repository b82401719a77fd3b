"""Real checkpoints and configs: mmdet3d-format weights in, clear errors for every bad file."""

from __future__ import annotations

import argparse
import hashlib

import pytest
import torch

from model_specs.centerpoint.config import TINY
from model_specs.centerpoint.mmconfig import read_config, to_centerpoint
from model_specs.centerpoint.model import seeded
from model_specs.centerpoint.spec import TINY_SPEC
from pytest_awml.checkpoints import CheckpointError, load_into, read_state_dict
from pytest_awml.errors import SpecError
from pytest_awml.workspace import state_dict_sha256


def _mmdet3d_checkpoint(path, seed=123, prefix="", cfg=TINY):
    model = seeded(cfg, seed)
    torch.save({"state_dict": {prefix + k: v for k, v in model.state_dict().items()},
                "meta": {"epoch": 50, "mmdet3d_version": "1.4.0", "config": "centerpoint.py"}}, path)
    return model


def test_mmdet3d_checkpoint_loads_exactly(tmp_path):
    expected = _mmdet3d_checkpoint(tmp_path / "epoch_50.pth", prefix="module.")
    model = TINY_SPEC.build_model(tmp_path / "epoch_50.pth", 0)
    load_into(model, tmp_path / "epoch_50.pth")
    assert state_dict_sha256(model) == state_dict_sha256(expected)


def test_missing_batchnorm_counters_are_tolerated(tmp_path):
    model = seeded(TINY, 5)
    torch.save({k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}, tmp_path / "old.pth")
    target = seeded(TINY, 0)
    load_into(target, tmp_path / "old.pth")
    assert torch.equal(target.pts_backbone.blocks[0][0].weight, model.pts_backbone.blocks[0][0].weight)


def test_wrong_class_count_names_the_key_and_the_fix(tmp_path):
    import dataclasses

    _mmdet3d_checkpoint(tmp_path / "ten.pth", cfg=dataclasses.replace(TINY, class_names=tuple(f"c{i}" for i in range(10))))
    with pytest.raises(CheckpointError) as info:
        load_into(TINY_SPEC.build_model(tmp_path / "ten.pth", 0), tmp_path / "ten.pth", hints=TINY_SPEC.checkpoint_hints)
    message = str(info.value)
    assert "shape mismatch(es): pts_bbox_head.task_heads.0.heatmap.1.weight is (10, 32, 3, 3) in the checkpoint, (5, 32, 3, 3) in the model" in message
    assert "has 10 classes, the spec has 5" in message and "pass --awml-config" in message


def test_missing_and_unexpected_keys_are_listed_ten_and_a_count(tmp_path):
    state = seeded(TINY, 0).state_dict()
    broken = {("renamed." + k if "pts_backbone" in k else k): v for k, v in state.items()}
    torch.save(broken, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointError) as info:
        load_into(seeded(TINY, 0), tmp_path / "renamed.pth")
    n = sum("pts_backbone" in k and not k.endswith("num_batches_tracked") for k in state)
    assert f"{n} missing key(s): pts_backbone.blocks.0.0.weight" in str(info.value) and f"(and {n - 10} more)" in str(info.value)
    assert "unexpected key(s): renamed.pts_backbone" in str(info.value)


def test_corrupted_and_truncated_files(tmp_path):
    (tmp_path / "noise.pth").write_bytes(hashlib.sha256(b"x").digest() * 100)
    with pytest.raises(CheckpointError, match="cannot be read as a torch checkpoint"):
        read_state_dict(tmp_path / "noise.pth")
    _mmdet3d_checkpoint(tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        read_state_dict(tmp_path / "cut.pth")
    torch.save({"epoch": 3}, tmp_path / "nostate.pth")
    with pytest.raises(CheckpointError, match="holds no state_dict"):
        read_state_dict(tmp_path / "nostate.pth")


def test_a_checkpoint_needing_pickle_is_refused_unless_trusted(tmp_path):
    state = seeded(TINY, 0).state_dict()
    torch.save({"state_dict": state, "meta": {"args": argparse.Namespace(lr=0.1)}}, tmp_path / "pickled.pth")
    with pytest.raises(CheckpointError, match="needs pickle to load .* pass --awml-trust-checkpoint"):
        read_state_dict(tmp_path / "pickled.pth")
    assert set(read_state_dict(tmp_path / "pickled.pth", trust=True)) == set(state)


AWML_BASE = """
point_cloud_range = [-25.6, -25.6, -3.0, 25.6, 25.6, 5.0]
voxel_size = [0.4, 0.4, 8.0]
class_names = ["car", "truck", "bus", "bicycle", "pedestrian"]
out_size_factor = 2
model = dict(
    type="CenterPoint",
    data_preprocessor=dict(voxel_layer=dict(max_num_points=32, voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                                            max_voxels=(12000, 12000))),
    pts_voxel_encoder=dict(type="PillarFeatureNet", in_channels=5, feat_channels=[32, 32], with_distance=False,
                           with_cluster_center=True, with_voxel_center=True, voxel_size=voxel_size, point_cloud_range=point_cloud_range),
    pts_backbone=dict(type="SECOND", in_channels=32, out_channels=[16, 32, 64], layer_nums=[3, 5, 5], layer_strides=[1, 2, 2]),
    pts_neck=dict(type="SECONDFPN", in_channels=[16, 32, 64], out_channels=[32, 32, 32], upsample_strides=[0.5, 1, 2]),
    pts_bbox_head=dict(type="CenterHead", in_channels=sum([32, 32, 32]), tasks=[dict(num_class=len(class_names), class_names=class_names)],
                       common_heads=dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2)), share_conv_channel=32,
                       bbox_coder=dict(type="CenterPointBBoxCoder", post_center_range=[-200.0, -200.0, -10.0, 200.0, 200.0, 10.0],
                                       max_num=500, score_threshold=0.1, out_size_factor=out_size_factor, voxel_size=voxel_size[:2]),
                       separate_head=dict(type="SeparateHead", init_bias=-2.19, final_kernel=3)),
    test_cfg=dict(pts=dict(nms_type="circle", min_radius=[1.0], post_max_size=100)),
)
"""
AWML_CHILD = """
_base_ = ["base.py"]
class_names = ["car", "truck", "bus"]
model = dict(pts_bbox_head=dict(tasks=[dict(num_class=3, class_names=class_names)]),
             test_cfg=dict(pts=dict(post_max_size=50)))
"""


def test_restricted_config_reader_with_inheritance(tmp_path):
    (tmp_path / "base.py").write_text(AWML_BASE)
    (tmp_path / "child.py").write_text(AWML_CHILD)
    assert to_centerpoint(read_config(tmp_path / "base.py"), tmp_path / "base.py", TINY) == TINY
    child = to_centerpoint(read_config(tmp_path / "child.py"), tmp_path / "child.py", TINY)
    assert child.class_names == ("car", "truck", "bus") and child.post_max_size == 50 and child.backbone_channels == (16, 32, 64)


@pytest.mark.parametrize("text, words", [
    ("import os\nmodel = dict(type='CenterPoint')", "imports are not read without mmengine"),
    ("model = dict(type=open('x'))", "is outside the readable subset"),
    ("model = dict(type='BEVFusion')", "model: not supported: BEVFusion"),
])
def test_unreadable_or_unsupported_configs(tmp_path, text, words):
    (tmp_path / "c.py").write_text(text)
    with pytest.raises(SpecError, match=words):
        to_centerpoint(read_config(tmp_path / "c.py"), tmp_path / "c.py", TINY)


def test_the_whole_suite_on_a_user_checkpoint_and_config(run_awml, pytester):
    expected = _mmdet3d_checkpoint(pytester.path / "epoch_50.pth", prefix="module.")
    (pytester.path / "base.py").write_text(AWML_BASE)
    run = run_awml("--awml-spec=centerpoint-tiny", f"--awml-checkpoint={pytester.path / 'epoch_50.pth'}",
                   f"--awml-config={pytester.path / 'base.py'}", "--awml-autoware=bundle")
    run.result.assert_outcomes(passed=13, skipped=2)
    assert f"checkpoint {pytester.path / 'epoch_50.pth'}" in run.text
    weights = {a["weights_sha256"] for a in run.report["artifacts"]}
    assert weights == {state_dict_sha256(expected)}
    from model_specs.centerpoint.autoware import check_bundle

    assert check_bundle(pytester.path / "bundle" / "centerpoint-tiny", "centerpoint_tiny", TINY) == []


def test_a_bad_checkpoint_stops_the_run_in_one_message(run_awml, pytester):
    import dataclasses

    _mmdet3d_checkpoint(pytester.path / "ten.pth", cfg=dataclasses.replace(TINY, class_names=tuple(f"c{i}" for i in range(10))))
    run = run_awml("--awml-spec=centerpoint-tiny", f"--awml-checkpoint={pytester.path / 'ten.pth'}")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    assert "has 10 classes, the spec has 5" in run.text and "Traceback" not in run.text
