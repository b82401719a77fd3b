"""No silent misread of a training config: every field that can change the model, its input or its decoding,
changed one at a time in the project's AWML-structured configs, either changes what the spec builds as the field
says or is refused by name. Never "unchanged".

Each table row is (field path, new value, expected effect). A path walks dicts by key and lists by ``[Type]`` (the
test-pipeline step of that type), ``[n]`` (an index) or ``[+]`` (append); a row may change a few fields that only
make sense together. Effects: ``model`` (state_dict shapes differ, or the same weights compute other outputs),
``seeded`` (the seeded weights differ), ``data`` / ``scan`` / ``input`` (the samples' features differ), ``decode``
(the decoded boxes of fixed head outputs differ), or ``refused: <field>`` (a SpecError naming the field).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from model_specs.calibration.config import TINY as CAL_TINY
from model_specs.calibration.data import fuse
from model_specs.calibration.mmconfig import FIELDS as CAL_FIELDS
from model_specs.calibration.mmconfig import to_calibration
from model_specs.calibration.model import CalibrationClassifier
from model_specs.calibration.spec import make_spec as calibration_spec
from model_specs.centerpoint import data
from model_specs.centerpoint.config import TINY as CP_TINY
from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.decode import decode
from model_specs.centerpoint.mmconfig import FIELDS as CP_FIELDS
from model_specs.centerpoint.mmconfig import to_centerpoint
from model_specs.centerpoint.model import BackboneNeckHeadExport, CenterPoint, VoxelEncoderExport, seeded
from model_specs.centerpoint.scene import Scene, Sweep, translation
from model_specs.centerpoint.voxelize import decorate, densify, voxelize
from model_specs.mmconfig import INERT, TrainingConfig, read_config
from model_specs.seeding import init_like_trained
from model_specs.yolox.config import TINY as YOLOX_TINY
from model_specs.yolox.data import camera_frames, network_input
from model_specs.yolox.mmconfig import FIELDS as YOLOX_FIELDS
from model_specs.yolox.mmconfig import to_yolox
from model_specs.yolox.model import YoloxElan
from model_specs.yolox.postprocess import mmdet_decode
from pytest_awml.errors import SpecError
from pytest_awml.spec import Dim, LatencySettings

CONFIGS = Path(__file__).parent / "data" / "configs" / "awml"
DROP = object()  # a row's value that removes the key
M = "model"


def _step(items: list, selector: str) -> int:
    if selector == "+":
        items.append({})
        return len(items) - 1
    if selector.isdigit():
        return int(selector)
    return next(i for i, step in enumerate(items) if isinstance(step, dict) and step.get("type") == selector)


def edit(values: dict, changes: dict[str, Any]) -> dict:
    """A deep copy of ``values`` with each ``path: value`` of ``changes`` applied."""
    values = copy.deepcopy(values)
    for path, value in changes.items():
        parts = [p for p in re.split(r"\.|(\[[^\]]+\])", path) if p]
        node: Any = values
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            key: Any = _step(node, part[1:-1]) if part.startswith("[") else part
            if last:
                if value is DROP:
                    del node[key]
                else:
                    node[key] = value
            else:
                node = node[key]
    return values


def _differs(a, b) -> bool:
    """Two results (tensors, arrays, or nested tuples/dicts of them) differ in shape or in any value (NaN equals NaN)."""
    if isinstance(a, dict):
        return a.keys() != b.keys() or any(_differs(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) != len(b) or any(_differs(x, y) for x, y in zip(a, b))
    a, b = np.asarray(a), np.asarray(b)
    return a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def _shapes(model: torch.nn.Module) -> dict[str, tuple]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _same_weights(old: torch.nn.Module, new: torch.nn.Module) -> bool:
    """``new`` given ``old``'s seeded weights when their state_dicts match (else the architecture changed)."""
    if _shapes(old) != _shapes(new):
        return False
    init_like_trained(old, 0)
    new.load_state_dict(old.state_dict(), strict=True)
    old.eval(), new.eval()
    return True


def _check(effect: str, compute, changed) -> None:
    """``compute()`` is refused naming the field when ``effect`` is ``refused: …``; else ``changed(result)`` holds."""
    if effect.startswith("refused: "):
        with pytest.raises(SpecError, match=re.escape(effect.removeprefix("refused: "))):
            compute()
        return
    assert changed(compute()), f"the config change left the {effect} unchanged"


# -- CenterPoint -----------------------------------------------------------------------------------------------------
CP = "model.pts_bbox_head"
CP_TEST = "model.test_cfg.pts"
SWEEPS = "test_pipeline[LoadPointsFromMultiSweeps]"
LOAD = "test_pipeline[LoadPointsFromFile]"
FOUR_NAMES = ["car", "truck", "bus", "pedestrian"]
CENTERPOINT_FIELDS = [
    # data preprocessor and voxel layer
    ({"model.data_preprocessor.voxel_layer.max_num_points": 16}, "data"),
    ({"model.data_preprocessor.voxel_layer.max_voxels": (30, 30)}, "data"),
    ({"model.data_preprocessor.voxel_layer.voxel_size": [0.8, 0.8, 8.0]}, "refused: pts_voxel_encoder.voxel_size"),
    ({"model.data_preprocessor.voxel_layer.point_cloud_range": [-12.8, -12.8, -3.0, 12.8, 12.8, 5.0]},
     "refused: pts_voxel_encoder.point_cloud_range"),
    ({"model.data_preprocessor.voxel_layer.deterministic": False}, "refused: data_preprocessor.voxel_layer: not supported: deterministic"),
    ({"model.data_preprocessor.voxel_type": "dynamic"}, "refused: data_preprocessor: not supported: voxel_type"),
    ({"model.data_preprocessor.voxel": False}, "refused: data_preprocessor: not supported: voxel=False"),
    # pillar encoder
    ({"model.pts_voxel_encoder.in_channels": 4}, "refused: pts_voxel_encoder.in_channels is 4"),
    ({"model.pts_voxel_encoder.feat_channels": [16, 32]}, "model"),
    ({"model.pts_voxel_encoder.feat_channels": [32, 64]}, "refused: pts_middle_encoder.in_channels is 32"),
    ({"model.pts_voxel_encoder.norm_cfg.eps": 0.1}, "model"),
    ({"model.pts_voxel_encoder.norm_cfg.type": "GN"}, "refused: pts_voxel_encoder: not supported: norm GN"),
    ({"model.pts_voxel_encoder.norm_cfg.affine": False}, "refused: pts_voxel_encoder.norm_cfg.affine"),
    ({"model.pts_voxel_encoder.with_distance": True}, "refused: pts_voxel_encoder: not supported: decoration"),
    ({"model.pts_voxel_encoder.with_cluster_center": False}, "refused: pts_voxel_encoder: not supported: decoration"),
    ({"model.pts_voxel_encoder.legacy": True}, "refused: pts_voxel_encoder: not supported: decoration"),
    ({"model.pts_voxel_encoder.mode": "avg"}, "refused: pts_voxel_encoder: not supported: mode='avg'"),
    ({"model.pts_voxel_encoder.voxel_size": [0.5, 0.5, 8.0]}, "refused: pts_voxel_encoder.voxel_size"),
    ({"model.pts_voxel_encoder.voxel_size": DROP}, "refused: pts_voxel_encoder.voxel_size is [0.2, 0.2, 4.0]"),
    ({"model.pts_voxel_encoder.point_cloud_range": [-25.6, -25.6, -5.0, 25.6, 25.6, 3.0]}, "refused: pts_voxel_encoder.point_cloud_range"),
    # scatter
    ({"model.pts_middle_encoder.output_shape": (64, 64)}, "refused: pts_middle_encoder.output_shape"),
    ({"model.pts_middle_encoder.in_channels": 64}, "refused: pts_middle_encoder.in_channels"),
    # backbone
    ({"model.pts_backbone.in_channels": 64}, "refused: pts_backbone.in_channels"),
    ({"model.pts_backbone.out_channels": [16, 32, 128]}, "refused: pts_neck.in_channels"),
    ({"model.pts_backbone.out_channels": [16, 32, 128], "model.pts_neck.in_channels": [16, 32, 128]}, "model"),
    ({"model.pts_backbone.layer_nums": [1, 1, 1]}, "model"),
    ({"model.pts_backbone.layer_nums": [1, 1]}, "refused: pts_backbone: out_channels, layer_nums and layer_strides"),
    ({"model.pts_backbone.layer_strides": [2, 2, 2]}, "refused: bbox_coder.out_size_factor is 2"),
    ({"model.pts_backbone.conv_cfg.bias": True}, "model"),
    ({"model.pts_backbone.conv_cfg": {"type": "Conv2d"}}, "model"),  # nn.Conv2d's own default: a bias
    ({"model.pts_backbone.conv_cfg.type": "DCNv2"}, "refused: pts_backbone.conv_cfg: not supported: type 'DCNv2'"),
    ({"model.pts_backbone.norm_cfg.eps": 0.1}, "model"),
    ({"model.pts_backbone.norm_cfg": None}, "refused: pts_backbone.norm_cfg: not supported: None"),
    ({"model.pts_backbone.depths": [3, 3, 3]}, "refused: pts_backbone.depths: not read"),
    # neck
    ({"model.pts_neck.in_channels": [16, 32, 32]}, "refused: pts_neck.in_channels"),
    ({"model.pts_neck.out_channels": [32, 32, 16]}, "refused: pts_bbox_head.in_channels is 96"),
    ({"model.pts_neck.out_channels": [32, 32, 16], f"{CP}.in_channels": 80}, "model"),
    ({"model.pts_neck.upsample_strides": [1, 2, 4]}, "refused: bbox_coder.out_size_factor"),
    ({"model.pts_neck.use_conv_for_no_stride": False}, "model"),
    ({"model.pts_neck.upsample_cfg.bias": True}, "model"),
    ({"model.pts_neck.upsample_cfg.type": "bilinear"}, "refused: pts_neck.upsample_cfg: not supported: type 'bilinear'"),
    ({"model.pts_neck.conv_cfg": {"type": "Conv2d", "bias": True}}, "model"),
    ({"model.pts_neck.norm_cfg.eps": 0.1}, "model"),
    # head
    ({f"{CP}.in_channels": 64}, "refused: pts_bbox_head.in_channels"),
    ({f"{CP}.tasks[0].num_class": 4}, "refused: pts_bbox_head.tasks[0].num_class is 4"),
    ({f"{CP}.tasks[0].num_class": 4, f"{CP}.tasks[0].class_names": FOUR_NAMES}, "model"),
    ({f"{CP}.tasks[+]": {"num_class": 1, "class_names": ["car"]}}, "refused: pts_bbox_head: not supported: 2 tasks"),
    ({f"{CP}.common_heads.dim": (4, 2)}, "refused: pts_bbox_head: not supported: common_heads"),
    ({f"{CP}.common_heads": {k: (c, 3) for k, c in (("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2))},
      f"{CP}.num_heatmap_convs": 3}, "model"),
    ({f"{CP}.share_conv_channel": 16}, "model"),
    ({f"{CP}.norm_cfg": {"type": "BN2d", "eps": 0.1}, f"{CP}.separate_head.norm_cfg": {"type": "BN2d", "eps": 0.1}}, "model"),
    ({f"{CP}.norm_cfg": {"type": "BN2d", "eps": 0.1}}, "refused: separate_head: not supported: norm_cfg"),
    ({f"{CP}.bias": True}, "model"),
    ({f"{CP}.conv_cfg": {"type": "DCN"}}, "refused: pts_bbox_head.conv_cfg: not supported: type 'DCN'"),
    ({f"{CP}.norm_bbox": False}, "refused: pts_bbox_head: not supported: norm_bbox=False"),
    ({f"{CP}.separate_head.head_conv": 16}, "model"),
    ({f"{CP}.separate_head.final_kernel": 3}, "model"),
    ({f"{CP}.separate_head.bias": True}, "model"),
    ({f"{CP}.separate_head.init_bias": 0.5}, "seeded"),
    # box coder
    ({f"{CP}.bbox_coder.code_size": 7}, "refused: bbox_coder: not supported: code_size=7"),
    ({f"{CP}.bbox_coder.y_axis_reference": True}, "decode"),
    ({f"{CP}.bbox_coder.score_threshold": 0.6}, "decode"),
    ({f"{CP}.bbox_coder.max_num": 20}, "decode"),
    ({f"{CP}.bbox_coder.post_center_range": [-10.0, -10.0, -10.0, 10.0, 10.0, 10.0],
      f"{CP_TEST}.post_center_limit_range": [-10.0, -10.0, -10.0, 10.0, 10.0, 10.0]}, "decode"),
    ({f"{CP}.bbox_coder.post_center_range": [-10.0, -10.0, -10.0, 10.0, 10.0, 10.0]}, "refused: test_cfg.pts.post_center_limit_range"),
    ({f"{CP}.bbox_coder.post_center_range": None}, "refused: bbox_coder: not supported: post_center_range=None"),
    ({f"{CP}.bbox_coder.out_size_factor": 4}, "refused: bbox_coder.out_size_factor is 4"),
    ({f"{CP}.bbox_coder.pc_range": [-51.2, -51.2, -3.0, 51.2, 51.2, 5.0]}, "refused: bbox_coder.pc_range[:2]"),
    ({f"{CP}.bbox_coder.voxel_size": [0.2, 0.2, 8.0]}, "refused: bbox_coder.voxel_size[:2]"),
    # test_cfg
    ({f"{CP_TEST}.min_radius": [4.0]}, "decode"),
    ({f"{CP_TEST}.post_max_size": 5}, "decode"),
    ({f"{CP_TEST}.nms_type": "rotate"}, "refused: test_cfg.pts: not supported: nms_type='rotate'"),
    ({f"{CP_TEST}.grid_size": [64, 64, 1]}, "refused: test_cfg.pts.grid_size"),
    ({f"{CP_TEST}.voxel_size": [0.2, 0.2, 8.0]}, "refused: test_cfg.pts.voxel_size"),
    ({f"{CP_TEST}.pc_range": [-51.2, -51.2, -3.0, 51.2, 51.2, 5.0]}, "refused: test_cfg.pts.pc_range"),
    ({f"{CP_TEST}.out_size_factor": 4}, "refused: test_cfg.pts.out_size_factor"),
    ({f"{CP_TEST}.score_threshold": 0.3}, "refused: test_cfg.pts.score_threshold"),
    ({f"{CP_TEST}.post_center_limit_range": [-10.0, -10.0, -10.0, 10.0, 10.0, 10.0]}, "refused: test_cfg.pts.post_center_limit_range"),
    ({f"{CP_TEST}.max_pool_nms": True, f"{CP_TEST}.nms_foo": 1}, "refused: test_cfg.pts.nms_foo: not read"),
    # the test pipeline: the points the model sees
    ({f"{SWEEPS}.use_dim": [0, 1, 2, 4]}, "refused: pts_voxel_encoder.in_channels is 5"),
    ({f"{SWEEPS}.use_dim": [0, 1, 2, 4], "model.pts_voxel_encoder.in_channels": 4}, "data"),  # AWML's base configs
    ({f"{SWEEPS}.use_dim": [0, 1, 2, 4, 3]}, "data"),
    ({f"{SWEEPS}.use_dim": [3, 0, 1, 2, 4]}, "refused: test_pipeline: not supported: point columns"),
    ({f"{SWEEPS}.sweeps_num": 2}, "data"),
    ({f"{SWEEPS}.remove_close": False}, "data"),
    ({f"{SWEEPS}.pad_empty_sweeps": False}, "scan"),
    ({f"{SWEEPS}.load_dim": 4}, "refused: test_pipeline.LoadPointsFromMultiSweeps.load_dim is 4"),
    ({f"{LOAD}.load_dim": 4}, "refused: test_pipeline.LoadPointsFromFile.use_dim [0, 1, 2, 3, 4] reaches past load_dim 4"),
    ({f"{LOAD}.load_dim": 4, f"{LOAD}.use_dim": 4}, "refused: test_pipeline.LoadPointsFromMultiSweeps.load_dim is 5"),
    ({f"{LOAD}.use_dim": 4}, "refused: test_pipeline.LoadPointsFromMultiSweeps.load_dim is 5"),
    ({f"{LOAD}.load_dim": 6, f"{LOAD}.use_dim": 6}, "refused: test_pipeline.LoadPointsFromFile.load_dim: not supported: 6"),
    ({f"{LOAD}.norm_intensity": True}, "refused: test_pipeline.LoadPointsFromFile: not supported: norm_intensity=True"),
    ({f"{LOAD}.coord_type": "DEPTH"}, "refused: test_pipeline.LoadPointsFromFile: not supported: coord_type"),
    ({"test_pipeline[PointsRangeFilter].point_cloud_range": [-12.8, -12.8, -3.0, 12.8, 12.8, 5.0]},
     "refused: test_pipeline.PointsRangeFilter.point_cloud_range"),
    ({"test_pipeline[+]": {"type": "PointShuffle"}}, "refused: test_pipeline: not supported: transform PointShuffle"),
    ({"model.img_backbone": {"type": "ResNet"}}, "refused: model.img_backbone: not read"),
]


def _cp_scene() -> Scene:
    """Three sweeps of uniform points, the past ones with points within 1 m of their sensor (remove_close)."""
    rng = np.random.default_rng(0)
    def sweep(n: int, time_s: float, x: float) -> Sweep:
        points = rng.uniform((-24, -24, -2, 0), (24, 24, 2, 100), (n, 4)).astype(np.float32)
        points[:20, :2] = rng.uniform(-0.9, 0.9, (20, 2))
        return Sweep(points, time_s, translation(x))
    return Scene((sweep(3000, 0.2, 1.0), sweep(3000, 0.1, 0.5), sweep(3000, 0.0, 0.0)), np.zeros((0, 9), np.float32),
                 np.zeros(0, np.int64))


def _cp_points(cfg: CenterPointConfig):
    points = densify(_cp_scene().sweeps, cfg)
    return points, decorate(voxelize(points, cfg), cfg)


def _cp_heads(cfg: CenterPointConfig) -> dict[str, np.ndarray]:
    """Head outputs whose top-k candidates straddle the score thresholds: a low heatmap with 120 cells spread over
    sigmoid 0.05-0.95, as a trained model's peaks."""
    rng = np.random.default_rng(1)
    hy, hx = cfg.head_size
    heads = {name: rng.normal(0, 0.5, (1, c, hy, hx)).astype(np.float32) for name, c in cfg.heads}
    heatmap = rng.normal(-6, 1, heads["heatmap"].shape).astype(np.float32)
    heatmap.reshape(-1)[rng.choice(heatmap.size, 120, replace=False)] = rng.uniform(-3, 3, 120)
    return {**heads, "heatmap": heatmap}


def _cp_outputs(old: CenterPointConfig, new: CenterPointConfig) -> bool:
    a, b = CenterPoint(old), CenterPoint(new)
    if not _same_weights(a, b):
        return True
    with torch.no_grad():  # the networks are convolutional: a small canvas shows any difference the full one would
        pillars = torch.randn(40, old.max_points_per_voxel, old.decorated_features, generator=torch.Generator().manual_seed(2))
        canvas = torch.randn(1, old.pfn_channels[-1], 32, 32, generator=torch.Generator().manual_seed(3))
        return _differs(VoxelEncoderExport(a)(pillars).numpy(), VoxelEncoderExport(b)(pillars).numpy()) or _differs(
            tuple(t.numpy() for t in BackboneNeckHeadExport(a)(canvas)), tuple(t.numpy() for t in BackboneNeckHeadExport(b)(canvas)))


def _cp_scan(cfg: CenterPointConfig, folder: Path):
    scan = folder / "scan.bin"
    np.random.default_rng(4).uniform((-20, -20, -2, 0, 0), (20, 20, 2, 100, 32), (2000, 5)).astype(np.float32).tofile(scan)
    return densify(data.load(scan, {}, cfg)[0].sweeps, cfg)


@pytest.fixture(scope="module")
def centerpoint_values() -> dict:
    return read_config(CONFIGS / "centerpoint_tiny.py").values


@pytest.mark.parametrize("changes, effect", CENTERPOINT_FIELDS, ids=[" ".join(map(str, c)) for c, _ in CENTERPOINT_FIELDS])
def test_each_centerpoint_field_changes_what_it_says_or_is_refused(centerpoint_values, tmp_path, changes, effect):
    old = to_centerpoint(TrainingConfig(tmp_path / "c.py", centerpoint_values), CP_TINY)
    assert old == CP_TINY
    compute = lambda: to_centerpoint(TrainingConfig(tmp_path / "c.py", edit(centerpoint_values, changes)), CP_TINY)  # noqa: E731
    changed = {
        "model": lambda new: _cp_outputs(old, new),
        "seeded": lambda new: _differs(dict(seeded(old, 0).state_dict()), dict(seeded(new, 0).state_dict())),
        "data": lambda new: _differs(_cp_points(old), _cp_points(new)),
        "scan": lambda new: _differs(_cp_scan(old, tmp_path), _cp_scan(new, tmp_path)),
        "decode": lambda new: _differs(_boxes(decode(_cp_heads(old), old)), _boxes(decode(_cp_heads(new), new))),
    }
    _check(effect, compute, changed.get(effect, lambda new: False))


def _boxes(detections) -> tuple:
    return detections.boxes, detections.scores, detections.labels


def test_awml_base_configs_feed_x_y_z_and_the_time_lag_over_one_past_sweep(centerpoint_values, tmp_path):
    """AWML's second_secfpn_8xb16_121m_base_amp (and its _rfs, _t4metric_v2 siblings): in_channels=4,
    use_dim=[0, 1, 2, 4], sweeps_num=1."""
    values = edit(centerpoint_values, {f"{SWEEPS}.use_dim": [0, 1, 2, 4], "model.pts_voxel_encoder.in_channels": 4})
    cfg = to_centerpoint(TrainingConfig(tmp_path / "c.py", values), CP_TINY)
    assert cfg.point_feature_names == ("x", "y", "z", "time_lag") and cfg.past_sweeps == 1 and cfg.decorated_features == 10
    scene = _cp_scene()
    points = densify(scene.sweeps, cfg)
    current = len(scene.sweeps[0].points)
    assert points.shape[1] == 4 and torch.all(points[:current, 3] == 0)
    assert torch.allclose(points[current:, 3], torch.tensor(0.1))  # the past sweep's lag, not its intensity
    assert torch.equal(points[:current, :3], torch.from_numpy(scene.sweeps[0].points[:, :3]))


@pytest.mark.parametrize("fields", [CP_FIELDS, YOLOX_FIELDS, CAL_FIELDS], ids=["centerpoint", "yolox", "calibration"])
def test_every_inert_key_says_why(fields):
    for section, (read, inert) in fields.items():
        assert not set(read) & set(inert), section
        assert all(isinstance(reason, str) and len(reason) > 10 for reason in {**inert, **INERT}.values()), section


@pytest.mark.parametrize("changes", [
    {"model.pts_backbone.frozen_stages": [0], "model.pts_backbone.with_cp": True, "model.pts_backbone.init_cfg": {"type": "Kaiming"},
     f"{CP}.loss_cls": {"type": "mmdet.GaussianFocalLoss"}, f"{CP}.freeze_shared_conv": True, f"{CP_TEST}.nms_thr": 0.2,
     f"{SWEEPS}.test_mode": False, "test_pipeline[+]": {"type": "LoadAnnotations3D"}},
])
def test_inert_centerpoint_keys_are_read_as_inert(centerpoint_values, tmp_path, changes):
    """Training-only keys (each listed with its reason) leave the model as it was."""
    assert to_centerpoint(TrainingConfig(tmp_path / "c.py", edit(centerpoint_values, changes)), CP_TINY) == CP_TINY


# -- YOLOX -----------------------------------------------------------------------------------------------------------
YOLOX_ROWS = [
    ({"model.backbone.deepen_factor": 1}, "model"),
    ({"model.backbone.widen_factor": 0.5}, "refused: the neck takes [32, 64, 128] channels, the backbone gives [64, 128, 256]"),
    ({"model.backbone.widen_factor": 0.5, "model.neck.in_channels": [64, 128, 256]}, "model"),
    ({"model.backbone.act_cfg": {"type": "ReLU"}}, "model"),
    ({"model.backbone.norm_cfg": {"type": "BN", "eps": 0.1}}, "model"),
    ({"model.backbone.arch": "P6"}, "refused: backbone: not supported: arch 'P6'"),
    ({"model.backbone.use_depthwise": True}, "refused: backbone: not supported: depthwise"),
    ({"model.backbone.conv_cfg": {"type": "DCN"}}, "refused: backbone: not supported: depthwise, deformable or custom convs"),
    ({"model.backbone.spp_kernal_sizes": (5, 9, 13)}, "refused: backbone.spp_kernal_sizes: not read"),
    ({"model.neck.num_elan_blocks": 1}, "model"),
    ({"model.neck.out_channels": 16}, "refused: the head takes 32 channels, the neck gives 16"),
    ({"model.neck.upsample_cfg": {"scale_factor": 2, "mode": "bilinear"}}, "refused: neck: not supported: upsample_cfg"),
    ({"model.neck.act_cfg": {"type": "Swish"}}, "model"),
    ({"model.bbox_head.num_classes": 9}, "refused: bbox_head.num_classes is 9"),
    ({"model.bbox_head.feat_channels": 16}, "model"),
    ({"model.bbox_head.stacked_convs": 1}, "model"),
    ({"model.bbox_head.strides": [8, 16, 64]}, "decode"),
    ({"model.bbox_head.conv_bias": True}, "refused: bbox_head: not supported: conv_bias=True"),
    ({"model.bbox_head.dcn_on_last_conv": True}, "refused: bbox_head: not supported: depthwise, deformable"),
    ({"model.bbox_head.norm_cfg": {"type": "BN", "eps": 0.1}}, "model"),
    ({"model.bbox_head.act_cfg": {"type": "Swish"}}, "model"),
    ({"model.test_cfg.score_thr": 0.5}, "decode"),
    ({"model.test_cfg.nms.iou_threshold": 0.1}, "decode"),
    ({"model.test_cfg.nms.type": "soft_nms"}, "refused: test_cfg: not supported: nms type 'soft_nms'"),
    ({"model.test_cfg.nms.class_agnostic": True}, "refused: test_cfg.nms: not supported: class_agnostic=True"),
    ({"model.data_preprocessor.mean": [0.0, 0.0, 0.0]}, "refused: data_preprocessor: not supported: mean/std"),
    ({"model.data_preprocessor.bgr_to_rgb": True}, "refused: data_preprocessor: not supported: mean/std or a channel swap"),
    ({"model.data_preprocessor.pad_size_divisor": 96}, "refused: data_preprocessor: not supported: pad_size_divisor=96"),
    ({"test_pipeline[Resize].scale": (256, 256)}, "input"),
    ({"test_pipeline[Resize].keep_ratio": False}, "refused: test_pipeline: not supported: an input other than"),
    ({"test_pipeline[Resize].interpolation": "nearest"}, "refused: test_pipeline.Resize.interpolation: not read"),
    ({"test_pipeline[Pad].pad_val": {"img": (0.0, 0.0, 0.0)}}, "input"),
    ({"test_pipeline[Pad].pad_val": {"img": (0.0, 114.0, 0.0)}}, "refused: test_pipeline: not supported: a per-channel pad"),
    ({"test_pipeline[Pad].pad_to_square": False}, "refused: test_pipeline: not supported: an input other than"),
    ({"test_pipeline[+]": {"type": "RandomCropWithROI", "crop_size": (1.0, 6.0)}},
     "refused: test_pipeline: not supported: transform RandomCropWithROI"),
]


def _yolox_outputs(old, new) -> bool:
    a, b = YoloxElan(old), YoloxElan(new)
    if not _same_weights(a, b):
        return True
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5)) * 255
    with torch.no_grad():
        return _differs(a(image).numpy(), b(image).numpy())


def _yolox_decode(cfg) -> tuple:
    """mmdet's decoder on an exported output (offsets, log sizes, then probabilities) with 150 objects spread over the
    scores, their boxes overlapping their neighbours'."""
    rng = np.random.default_rng(6)
    output = np.zeros((cfg.anchors, cfg.outputs), np.float32)
    output[:, :2], output[:, 2:4] = rng.normal(0, 0.3, (cfg.anchors, 2)), rng.normal(1.0, 0.3, (cfg.anchors, 2))
    output[:, 5:] = rng.uniform(0, 1, (cfg.anchors, cfg.outputs - 5))
    output[rng.choice(cfg.anchors, 150, replace=False), 4] = rng.uniform(0, 1, 150)
    detections = mmdet_decode(output, cfg, 1.0)
    return tuple(np.asarray(v) for v in vars(detections).values())


@pytest.mark.parametrize("changes, effect", YOLOX_ROWS, ids=[" ".join(map(str, c)) for c, _ in YOLOX_ROWS])
def test_each_yolox_field_changes_what_it_says_or_is_refused(tmp_path, changes, effect):
    values = read_config(CONFIGS / "yolox_elan_tiny.py").values
    old = to_yolox(TrainingConfig(tmp_path / "c.py", values), YOLOX_TINY)
    compute = lambda: to_yolox(TrainingConfig(tmp_path / "c.py", edit(values, changes)), YOLOX_TINY)  # noqa: E731
    changed = {
        "model": lambda new: _yolox_outputs(old, new),
        "input": lambda new: _differs(network_input(camera_frames(0, old, 1), old), network_input(camera_frames(0, new, 1), new)),
        "decode": lambda new: _differs(_yolox_decode(old), _yolox_decode(new)),
    }
    _check(effect, compute, changed.get(effect, lambda new: False))


# -- calibration -----------------------------------------------------------------------------------------------------
TRANSFORM = "test_pipeline[CalibrationClassificationTransform]"
CALIBRATION_ROWS = [
    ({"model.backbone.depth": 34}, "model"),
    ({"model.backbone.depth": 50}, "refused: backbone: not supported: depth 50"),
    ({"model.backbone.in_channels": 3}, "refused: backbone: not supported: in_channels=3"),
    ({"model.backbone.stem_channels": 16}, "model"),
    ({"model.backbone.base_channels": 16}, "refused: head.in_channels is 64"),
    ({"model.backbone.base_channels": 16, "model.head.in_channels": 128}, "model"),
    ({"model.backbone.num_stages": 3}, "refused: backbone: not supported: out_indices [3]"),
    ({"model.backbone.strides": (1, 2, 2, 1)}, "model"),
    ({"model.backbone.dilations": (1, 1, 2, 2)}, "refused: backbone: not supported: dilations"),
    ({"model.backbone.deep_stem": True}, "refused: backbone: not supported: a deep stem"),
    ({"model.backbone.norm_cfg": {"type": "BN", "eps": 0.1}}, "model"),
    ({"model.backbone.expansion": 4}, "refused: backbone.expansion: not read"),
    ({"model.neck.dim": 1}, "refused: neck: not supported: GlobalAveragePooling dim=1"),
    ({"model.head.num_classes": 3}, "model"),
    ({"model.head.in_channels": 32}, "refused: head.in_channels is 32"),
    ({"data_preprocessor": {"mean": [0.0] * 5, "std": [255.0] * 5}}, "refused: data_preprocessor: not supported: mean/std"),
    ({f"{TRANSFORM}.max_depth": 64.0}, "input"),
    ({f"{TRANSFORM}.dilation_size": 2}, "input"),
    ({f"{TRANSFORM}.miscalibration_probability": 1.0}, "input"),
    ({f"{TRANSFORM}.miscalibration_probability": 1.5}, "refused: miscalibration_probability is 1.5"),
    ({f"{TRANSFORM}.undistort": False}, "refused: test_pipeline: not supported: CalibrationClassificationTransform with undistort"),
    ({f"{TRANSFORM}.mode": "train"}, "refused: test_pipeline.CalibrationClassificationTransform: not supported: mode='train'"),
    ({f"{TRANSFORM}.crop": 0.5}, "refused: CalibrationClassificationTransform.crop: not read"),
    ({"test_pipeline[+]": {"type": "Resize", "scale": (64, 96)}}, "refused: test_pipeline: not supported: transform Resize"),
]


def _calibration_outputs(old, new) -> bool:
    a, b = CalibrationClassifier(old), CalibrationClassifier(new)
    if not _same_weights(a, b):
        return True
    image = torch.rand(1, 5, 32, 32, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        return _differs(a(image).numpy(), b(image).numpy())


def _calibration_inputs(cfg) -> list:
    spec = calibration_spec("c", cfg, Dim("batch", 1, 1, 1), Dim("height", 64, 64, 64), Dim("width", 96, 96, 96),
                            LatencySettings(rounds=1, warmup_rounds=0))
    return [fuse(sample, cfg) for sample in spec.make_samples(2, 0)]


@pytest.mark.parametrize("changes, effect", CALIBRATION_ROWS, ids=[" ".join(map(str, c)) for c, _ in CALIBRATION_ROWS])
def test_each_calibration_field_changes_what_it_says_or_is_refused(tmp_path, changes, effect):
    values = read_config(CONFIGS / "calibration_resnet18_5ch_tiny.py").values
    old = to_calibration(TrainingConfig(tmp_path / "c.py", values), CAL_TINY)
    compute = lambda: to_calibration(TrainingConfig(tmp_path / "c.py", edit(values, changes)), CAL_TINY)  # noqa: E731
    changed = {"model": lambda new: _calibration_outputs(old, new),
               "input": lambda new: _differs(_calibration_inputs(old), _calibration_inputs(new))}
    _check(effect, compute, changed.get(effect, lambda new: False))
