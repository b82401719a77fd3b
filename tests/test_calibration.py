"""The calibration classifier as AWML builds and deploys it: its 5-channel input, its config, its checkpoints."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from model_specs.calibration.config import FULL, TINY
from model_specs.calibration.data import CalibrationFrame, calibration_frame, fuse, miscalibrate
from model_specs.calibration.mmconfig import to_calibration
from model_specs.calibration.model import CalibrationClassifier, seeded
from model_specs.calibration.spec import SPEC, TINY_SPEC
from model_specs.mmconfig import read_config
from pytest_awml.checkpoints import CheckpointError, load_into
from pytest_awml.errors import SpecError

CONFIGS = Path(__file__).parent / "data" / "configs" / "awml"


def _frame(points: list[tuple[float, float, float, float]], height: int = 20, width: int = 30) -> CalibrationFrame:
    """A grey frame and points already in a camera frame (the identity transform), f = 10, centre (15, 10)."""
    k = np.array([[10.0, 0.0, 15.0], [0.0, 10.0, 10.0], [0.0, 0.0, 1.0]])
    return CalibrationFrame(np.full((height, width, 3), 51, np.uint8), np.array(points, np.float32).reshape(-1, 4), k, np.eye(4), 1, 0)


def test_the_specs_export_as_awml_deploys():
    component = SPEC.components[0]
    assert component.onnx.opset == 16 and TINY_SPEC.components[0].onnx.opset == 16  # configs/deploy/resnet18_5ch.py
    _, channels, height, width = component.inputs[0].shape
    assert channels == 5 and (height.min, height.opt, height.max) == (1080, 1860, 2160) and (width.min, width.opt, width.max) == (1920, 2880, 3840)
    keys = CalibrationClassifier(FULL).state_dict()
    assert {"backbone.conv1.weight", "backbone.bn1.running_var", "backbone.layer2.0.downsample.0.weight", "head.fc.weight"} <= set(keys)
    assert keys["head.fc.weight"].shape == (2, 512) and FULL.classes == ("miscalibrated", "calibrated")


def test_every_channel_is_divided_by_255_and_depth_is_255_z_over_128():
    fused = fuse(_frame([(0.0, 0.0, 64.0, 200.0)]), FULL)  # one point straight ahead at 64 m → pixel (10, 15)
    assert fused.shape == (5, 20, 30) and fused.dtype == np.float32
    assert np.allclose(fused[:3], 51 / 255.0)
    assert fused[3, 10, 15] == np.float32(255 * 64.0 / 128.0) / np.float32(255.0) and np.isclose(fused[3, 10, 15], 0.5)
    assert np.isclose(fused[4, 10, 15], 200 / 255.0)
    assert int((fused[3] > 0).sum()) == 9 and np.all(fused[3, 9:12, 14:17] > 0)  # the 3 x 3 patch (dilation_size 1)
    assert int((fuse(_frame([(0.0, 0.0, 64.0, 200.0)]), dataclasses.replace(FULL, dilation_size=0))[3] > 0).sum()) == 1


def test_the_nearer_point_wins_and_far_or_behind_points_are_dropped():
    near, far = (0.0, 0.0, 10.0, 50.0), (0.1, 0.0, 40.0, 250.0)  # pixels (10, 15) and (10, 15.025): patches overlap
    fused = fuse(_frame([far, near, (0.0, 0.0, 130.0, 9.0), (0.0, 0.0, -5.0, 9.0)]), FULL)
    assert np.isclose(fused[3, 10, 15], 10.0 / 128.0) and np.isclose(fused[4, 10, 15], 50 / 255.0)
    assert not np.any(np.isclose(fused[4], 9 / 255.0))  # z >= 128 m and z < 0 project nowhere
    edge = fuse(_frame([(-1.5, -1.0, 1.0, 9.0)]), FULL)  # projects to (0, 0): its patch is cut at the border
    assert int((edge[4] > 0).sum()) == 4


def test_miscalibration_has_awml_s_magnitudes():
    rng = np.random.default_rng(0)
    for _ in range(50):
        noise = miscalibrate(np.eye(4), rng)  # applied to the identity: the noise itself
        angle = math.degrees(math.acos(np.clip((np.trace(noise[:3, :3]) - 1) / 2, -1, 1)))
        assert 1.0 - 1e-6 <= angle <= 10.0 + 1e-6 and 0.05 - 1e-9 <= np.linalg.norm(noise[:3, 3]) <= 0.2 + 1e-9
    frames = TINY_SPEC.make_samples(2, 0)
    assert [f.label for f in frames] == [1, 0] and not np.allclose(frames[0].lidar_to_camera, frames[1].lidar_to_camera)


def test_the_awml_configs_read_as_the_specs():
    assert to_calibration(read_config(CONFIGS / "calibration_resnet18_5ch.py"), FULL) == FULL
    config = read_config(CONFIGS / "calibration_resnet18_5ch_tiny.py")
    assert to_calibration(config, TINY) == TINY == TINY_SPEC.params["model"]
    assert config.values["test_pipeline"][0]["max_depth"] == 128.0  # the child's variables, through _base_.transform_config too
    assert config.values["test_pipeline"][0]["transform_config"] == dict(crop_ratio=0.6, max_distortion=0.001, rgb_weight=0.3)



@pytest.mark.parametrize("changes, words", [
    (dict(backbone=dict(depth=50)), "depth 50 .implemented: 18, 34"),
    (dict(backbone=dict(type="ResNeXt")), "backbone: not supported: ResNeXt"),
    (dict(backbone=dict(deep_stem=True)), "a deep stem"),
    (dict(head=dict(in_channels=512)), "head.in_channels is 512, the backbone's last stage gives 64"),
    (dict(backbone=dict(in_channels=3)), "in_channels=3"),
])
def test_unimplemented_classifiers_are_refused_by_name(changes, words):
    with pytest.raises(SpecError, match=words):
        to_calibration(read_config(CONFIGS / "calibration_resnet18_5ch_tiny.py").with_model(**changes), TINY)


def test_a_package_base_that_is_absent_is_named_and_its_keys_take_class_defaults(tmp_path):
    (tmp_path / "c.py").write_text("_base_ = ['nothere::_base_/models/resnet18.py']\n"
                                   "model = dict(type='ImageClassifier', backbone=dict(type='ResNet', in_channels=5),\n"
                                   "             neck=dict(type='GlobalAveragePooling'), head=dict(type='LinearClsHead', num_classes=2, in_channels=512))\n")
    config = read_config(tmp_path / "c.py")
    assert any(note.startswith("_base_ nothere::_base_/models/resnet18.py not read") for note in config.notes)
    with pytest.raises(SpecError, match="backbone.depth is not set"):  # mmpretrain's ResNet has no default depth
        to_calibration(config, FULL)


def test_an_mmengine_checkpoint_loads_strictly_without_trust(tmp_path):
    model = seeded(TINY, 4)
    torch.save({"meta": {"epoch": 50, "seed": np.int64(42), "dataset_meta": {"classes": ["miscalibrated", "calibrated"]}},
                "state_dict": model.state_dict(), "message_hub": {"runtime_info": {"epoch": np.int64(50)}},
                "optimizer": {"state": {}, "param_groups": [{"lr": np.float64(1e-6)}]}}, tmp_path / "best_accuracy_top1_epoch_50.pth")
    target = TINY_SPEC.build_model(tmp_path / "best_accuracy_top1_epoch_50.pth", 0)
    load_into(target, tmp_path / "best_accuracy_top1_epoch_50.pth", hints=TINY_SPEC.checkpoint_hints)
    assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(), model.state_dict().values()))
    torchvision_named = {k.replace("backbone.", "").replace("head.", ""): v for k, v in model.state_dict().items()}
    torch.save(torchvision_named, tmp_path / "torchvision.pth")
    with pytest.raises(CheckpointError, match="these are torchvision's key names; mmpretrain's are backbone"):
        load_into(TINY_SPEC.build_model(tmp_path / "torchvision.pth", 0), tmp_path / "torchvision.pth", hints=TINY_SPEC.checkpoint_hints)


def test_frames_are_reproducible():
    a, b = calibration_frame(3, 64, 96, True), calibration_frame(3, 64, 96, True)
    assert np.array_equal(fuse(a, TINY), fuse(b, TINY)) and int((fuse(a, TINY)[3] > 0).sum()) > 100
