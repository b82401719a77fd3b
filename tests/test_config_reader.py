"""``--awml-config``: AWML-style training configs read into CenterPointConfig, with or without mmengine.

The config files under tests/data/configs/awml/ have the structure and model values of AWML's CenterPoint
j6gen2 config (a three-file ``_base_`` chain, ``+=`` on ``custom_imports``, ``{{_base_.x}}``, an ``if``);
the live mmdet3d test builds mmdet3d's own model from the same files.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from model_specs.centerpoint.config import FULL, TINY
from model_specs.centerpoint.mmconfig import MAX_EXPONENT, TrainingConfig, _Reader, read_config, to_centerpoint
from model_specs.centerpoint.spec import SPEC, TINY_SPEC
from pytest_awml.errors import SpecError

CONFIGS = Path(__file__).parent / "data" / "configs" / "awml"


@pytest.mark.parametrize("name, expected, spec", [("centerpoint_j6gen2.py", FULL, SPEC), ("centerpoint_tiny.py", TINY, TINY_SPEC)])
def test_the_awml_configs_read_as_the_specs(name, expected, spec):
    cfg = to_centerpoint(read_config(CONFIGS / name), dataclasses.replace(expected, head_final_kernel=7, opset=11))
    assert dataclasses.replace(cfg, head_final_kernel=1, opset=13) == expected == spec.params["model"]
    assert cfg.head_final_kernel == 1  # read from the file, not kept from the base config
    assert cfg.opset == 11  # the export opset is no training setting: kept from the spec


def test_the_features_awml_uses(tmp_path):
    values = _Reader(CONFIGS / "centerpoint_j6gen2.py").read()
    assert values["custom_imports"]["imports"] == [
        "projects.CenterPoint.models", "autoware_ml.detection3d.datasets.t4dataset",
        "autoware_ml.detection3d.evaluation.t4metric.t4metric", "autoware_ml.hooks"]  # += on a subscript, _base_.x
    assert values["test_evaluator"]["class_names"] == ["car", "truck", "bus", "bicycle", "pedestrian"]  # {{_base_.x}}
    assert values["sync_bn"] == "torch"  # an if block
    assert values["optim_wrapper"]["loss_scale"]["init_scale"] == 4096.0
    assert values["default_scope"] == "mmdet3d" and values["work_dir"] == "work_dirs/centerpoint/j6gen2_base/T4Dataset/second_secfpn_j6gen2"
    model = values["model"]  # the child merged into the base key by key
    assert model["pts_bbox_head"]["bbox_coder"]["max_num"] == 500 and model["pts_bbox_head"]["bbox_coder"]["out_size_factor"] == 2
    assert model["pts_bbox_head"]["separate_head"] == {"type": "CustomSeparateHead", "init_bias": -4.595, "final_kernel": 1}
    assert model["test_cfg"]["pts"]["nms_type"] == "circle" and model["test_cfg"]["pts"]["grid_size"] == [1020, 1020, 1]
    (tmp_path / "base.py").write_text("a = dict(x=1, y=dict(z=2))\nb = [1, 2]\n")
    (tmp_path / "child.py").write_text("_base_ = 'base.py'\na = dict(_delete_=True, w=3)\nb = _base_.b + [3]\n")
    assert _Reader(tmp_path / "child.py").read() == {"a": {"w": 3}, "b": [1, 2, 3]}


def test_mmengine_reads_the_same_values():
    pytest.importorskip("mmengine", reason="mmengine is not installed (it is in the mmdet3d extra)")
    for name in ("centerpoint_j6gen2.py", "centerpoint_tiny.py"):
        assert read_config(CONFIGS / name).values == _Reader(CONFIGS / name).read()


def test_absent_custom_imports_are_named_not_imported(caplog):
    with caplog.at_level(logging.WARNING):
        config = read_config(CONFIGS / "centerpoint_j6gen2.py")
    (note,) = config.notes
    assert note.startswith("custom_imports not imported (not installed here): projects.CenterPoint.models, ")
    assert "autoware_ml.hooks" in note and note in caplog.text


def _config(tmp_path, **model_changes) -> TrainingConfig:
    values = read_config(CONFIGS / "centerpoint_tiny.py").values
    model = dict(values["model"])
    for section, change in model_changes.items():
        model[section] = None if change is None else {**model[section], **change}
    return TrainingConfig(tmp_path / "c.py", {**values, "model": model})


@pytest.mark.parametrize("changes, words", [
    (dict(pts_voxel_encoder=dict(type="HardVFE")), "pts_voxel_encoder: not supported: HardVFE"),
    (dict(pts_voxel_encoder=dict(legacy=True)), "pts_voxel_encoder: not supported: decoration other than"),
    (dict(pts_backbone=dict(type="ResNet")), "pts_backbone: not supported: ResNet"),
    (dict(pts_bbox_head=dict(separate_head=dict(type="DCNSeparateHead"))), "separate_head: not supported: DCNSeparateHead"),
    (dict(pts_bbox_head=dict(common_heads=dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2)))), "common_heads"),
    (dict(pts_voxel_encoder=dict(voxel_size=[0.3, 0.3, 8.0])), r"pts_voxel_encoder.voxel_size is \[0.3, 0.3, 8.0\], but the voxel layer makes it \[0.4, 0.4, 8.0\]"),
])
def test_unknown_or_unimplemented_models_are_refused_by_name(tmp_path, changes, words):
    with pytest.raises(SpecError, match=words):
        to_centerpoint(_config(tmp_path, **changes), TINY)


def test_missing_keys_take_mmdet3d_s_defaults_not_the_spec_s(tmp_path):
    config = _config(tmp_path, pts_bbox_head=dict(separate_head=dict(type="SeparateHead"), share_conv_channel=None))
    config.values["model"]["pts_bbox_head"].pop("share_conv_channel")
    config.values["model"]["pts_neck"].pop("use_conv_for_no_stride")
    cfg = to_centerpoint(config, dataclasses.replace(TINY, head_final_kernel=3, heatmap_init_bias=0.5))
    assert (cfg.head_final_kernel, cfg.head_conv_channels, cfg.heatmap_init_bias) == (1, 64, -2.19)  # SeparateHead's defaults
    assert cfg.head_shared_channels == 64 and cfg.use_conv_for_no_stride is False  # CenterHead's, SECONDFPN's


def test_the_point_features_follow_the_test_pipeline(tmp_path):
    values = read_config(CONFIGS / "centerpoint_tiny.py").values
    no_sweeps = dict(values, test_pipeline=[t for t in values["test_pipeline"] if t["type"] != "LoadPointsFromMultiSweeps"])
    with pytest.raises(SpecError, match=r"test_pipeline: not supported: point columns \['x', 'y', 'z', 'intensity', 'ring'\]"):
        to_centerpoint(TrainingConfig(tmp_path / "c.py", no_sweeps), TINY)
    three = dict(values, test_pipeline=[dict(t, sweeps_num=3) if t["type"] == "LoadPointsFromMultiSweeps" else t for t in values["test_pipeline"]])
    assert to_centerpoint(TrainingConfig(tmp_path / "c.py", three), TINY).past_sweeps == 3


@pytest.mark.parametrize("text, words", [
    ("import os\nmodel = dict(type='CenterPoint')", "imports are not read without mmengine"),
    ("model = dict(type=open('x'))", "is outside the readable subset"),
    ("model = dict(type='BEVFusion')", "model: not supported: BEVFusion"),
    ("model = dict(type='CenterPoint'\n", "line 1: syntax error"),
    ("_base_ = ['missing.py']\nmodel = dict()", "missing.py.*does not exist: the config is broken upstream"),
    ("x = y + 1", "'y' is not defined before use"),
    ("for i in range(3):\n    x = i", "For statements are not read"),
])
def test_unreadable_or_unsupported_configs(tmp_path, text, words):
    (tmp_path / "c.py").write_text(text)
    with pytest.raises(SpecError, match=words):
        to_centerpoint(TrainingConfig(tmp_path / "c.py", _Reader(tmp_path / "c.py").read()), TINY)


def test_a_config_cannot_stall_the_reader(tmp_path):
    (tmp_path / "c.py").write_text("x = 9 ** 9 ** 9\n")  # refused before it is computed (9 ** 387420489 would not end)
    with pytest.raises(SpecError, match=f"exponent .* is beyond what a config needs \\(max {MAX_EXPONENT}\\)"):
        _Reader(tmp_path / "c.py").read()
    (tmp_path / "c.py").write_text("_base_ = ['d.py']\n")
    (tmp_path / "d.py").write_text("_base_ = ['c.py']\n")
    with pytest.raises(SpecError, match="_base_ includes itself"):
        _Reader(tmp_path / "c.py").read()


def test_what_deploy_configs_compute_reads_as_python_does(tmp_path):
    """Shifts, string methods, f-strings, ``%`` and ``str.format``: the deploy configs' features, each value
    what Python itself computes (the reader evaluates them without running the file)."""
    lines = {
        "workspace": "2 << 30", "mask": "(1 << 8) - 1 | 0x100 & 0xFFF ^ 3", "root": "'work_dirs/x/'.rstrip('/')",
        "onnx": "f'{root}/onnx'", "padded": "f'{7:03d}-{1.5:.2f}-{root!r:>30}'", "printf": "'%s_%05.1f' % ('a', 2.25)",
        "formatted": "'{1}/{name}.{0}'.format('onnx', 'dir', name='model') + '{}{}'.format(1, 2)", "parts": "'a/b/c'.split('/')",
        "joined": "'-'.join(['a', 'b'])", "flags": "[root.startswith('work'), root.endswith('x'), 'A'.lower()]",
    }
    mutations = "meta = dict(a=1)\nmeta.update(dict(b=2))\nitems = [1]\nitems.append(2)\nitems.extend([3])\n"
    (tmp_path / "c.py").write_text("".join(f"{name} = {expression}\n" for name, expression in lines.items()) + mutations)
    expected: dict = {}
    for name, expression in lines.items():
        expected[name] = eval(expression, {}, dict(expected))  # noqa: S307 (the test's own literals)
    assert read_config(tmp_path / "c.py").values == {**expected, "meta": {"a": 1, "b": 2}, "items": [1, 2, 3]}


def test_a_base_named_with_other_letter_case_is_named_as_broken_upstream(tmp_path):
    (tmp_path / "Bases").mkdir()
    (tmp_path / "Bases" / "Runtime.py").write_text("x = 1\n")
    (tmp_path / "c.py").write_text("_base_ = ['bases/runtime.py']\n")
    with pytest.raises(SpecError) as info:
        read_config(tmp_path / "c.py")
    message = str(info.value)
    assert "_base_ 'bases/runtime.py' names" in message and "which does not exist: the config is broken upstream" in message
    assert "Bases/Runtime.py differs from it only by letter case" in message and "install mmengine" not in message
    (tmp_path / "Bases" / "t4dataset_dynamic_recognition.py").write_text("y = 2\n")  # renamed upstream (AWML's YOLOX base)
    (tmp_path / "d.py").write_text("_base_ = ['Bases/t4dataset_DynamicRecognition.py']\n")
    with pytest.raises(SpecError, match="t4dataset_dynamic_recognition.py differs from it only by letter case and '_'/'-'"):
        read_config(tmp_path / "d.py")


def test_the_facts_a_config_decided_name_the_file_that_set_each(tmp_path):
    """``run.facts``: configure records point features, past sweeps, classes, voxel size, range and grid, each with the
    file of the ``_base_`` chain that set the key it was read from; the report's ``run`` carries them per spec."""
    from pytest_awml.device import Device, Precision
    from pytest_awml.options import AwmlOptions
    from pytest_awml.results import run_info

    spec = TINY_SPEC.configure(CONFIGS / "centerpoint_tiny.py")
    facts = {fact.name: fact for fact in spec.facts}
    assert facts["voxel_size"].value == [0.4, 0.4, 8.0] and facts["voxel_size"].source == str((CONFIGS / "centerpoint_tiny.py").resolve())
    assert facts["point_features"].source == str((CONFIGS / "centerpoint_j6gen2.py").resolve())  # in_channels: the base's
    assert facts["past_sweeps"].value == 1 and facts["grid_size"].value == list(spec.params["model"].grid_size)
    assert facts["class_names"].value == ["car", "truck", "bus", "bicycle", "pedestrian"]
    options = AwmlOptions(specs=(spec.name,), backends=None, device=Device("cpu"), precisions=(Precision.FP32,), artifacts=tmp_path,
                          checkpoint=None, samples=1, seed=0, report=tmp_path / "r.json")
    recorded = run_info(options, [spec], 0.0)["facts"][spec.name]
    assert {"fact": "voxel_size", "value": [0.4, 0.4, 8.0], "source": facts["voxel_size"].source} in recorded


def test_yolox_and_calibration_configs_record_their_facts_with_the_file_that_set_each():
    """The YOLOX and calibration specs' ``configure`` records what their configs decided, as CenterPoint's does."""
    from model_specs.calibration.spec import TINY_SPEC as CALIBRATION_TINY
    from model_specs.yolox.spec import TINY_SPEC as YOLOX_TINY

    yolox = {fact.name: fact for fact in YOLOX_TINY.configure(CONFIGS / "yolox_elan_tiny.py").facts}
    cfg = YOLOX_TINY.configure(CONFIGS / "yolox_elan_tiny.py").params["model"]
    assert yolox["input_size"].value == list(cfg.input_size) and yolox["class_names"].value == list(cfg.classes)
    assert yolox["score_threshold"].value == cfg.eval_score_threshold and yolox["strides"].value == list(cfg.strides)
    assert all(fact.source.endswith(".py") for fact in yolox.values())
    calibration = {fact.name: fact for fact in CALIBRATION_TINY.configure(CONFIGS / "calibration_resnet18_5ch_tiny.py").facts}
    assert calibration["in_channels"].value == 5 and calibration["depth"].value in (18, 34)
    assert calibration["max_depth"].source.endswith(".py") and len(calibration["class_names"].value) == 2
