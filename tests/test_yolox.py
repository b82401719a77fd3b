"""YOLOX-ELAN as AWML builds, exports and Autoware decodes it: config reading, letterbox, both decoders, checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from model_specs.camera import CLASS_COLOURS, Camera, visible_boxes
from model_specs.centerpoint.scene import CLASSES as SCENE_CLASSES, Scene
from model_specs.mmconfig import read_config
from model_specs.yolox.config import FULL, TINY, YoloxConfig
from model_specs.yolox.data import MIN_BOX_SIDE_PX, MIN_VISIBLE, camera_frames, class_indices, letterbox, letterbox_scale, network_input
from model_specs.yolox.metric import metric
from model_specs.yolox.mmconfig import to_yolox
from model_specs.yolox.model import YoloxElan, calibrated, objectness_biases, objectness_shift, seeded
from model_specs.yolox.postprocess import autoware_decode, mmdet_decode, published
from model_specs.yolox.spec import DEPLOYED_BATCH, DYNAMIC_SPEC, SPEC, TINY_SPEC
from pytest_awml.checkpoints import CheckpointError, load_into
from pytest_awml.errors import SpecError
from pytest_awml.metric import MetricResult
from pytest_awml.spec import Dim

CONFIGS = Path(__file__).parent / "data" / "configs" / "awml"
SCENE_CLASS_NAMES = [row[0] for row in SCENE_CLASSES]
# a 64 x 64 input: strides 8/16/32 give 64 + 16 + 4 anchor points
SMALL = dataclasses.replace(TINY, input_size=(64, 64), classes=("a", "b", "c"))


def _output(rows: dict[int, tuple[float, ...]], cfg: YoloxConfig = SMALL) -> np.ndarray:
    """An exported output [N, 5 + C], zero (no box, no score) but at the given anchor rows."""
    out = np.zeros((cfg.anchors, cfg.outputs), np.float32)
    for row, values in rows.items():
        out[row] = values
    return out


def test_the_specs_export_as_awml_deploys():
    assert (SPEC.components[0].onnx.opset, TINY_SPEC.components[0].onnx.opset) == (11, 11)  # tier4/YOLOX's export
    assert SPEC.components[0].inputs[0].shape == (DEPLOYED_BATCH, 3, 960, 960) == (6, 3, 960, 960)  # the README's --batch_size 6
    assert isinstance(DYNAMIC_SPEC.components[0].inputs[0].shape[0], Dim)
    assert SPEC.components[0].outputs[0].shape == (6, 18900, 13)


def test_the_awml_topology_and_names():
    keys = YoloxElan(TINY).state_dict()
    for key in ("backbone.stem.conv.1.conv.weight", "backbone.stage1.1.main_conv.conv.weight", "backbone.stage2.1.blocks.5.conv2.bn.running_var",
                "neck.reduce_layers.1.conv.weight", "neck.out_convs.2.bn.bias", "bbox_head.multi_level_cls_convs.0.1.conv.weight",
                "bbox_head.multi_level_conv_cls.2.weight", "bbox_head.multi_level_conv_obj.0.bias"):
        assert key in keys
    assert [s[2] for s in FULL.stages] == [2, 6, 6, 2] and FULL.stem_channels == 32 and FULL.backbone_channels == (128, 256, 512)
    assert [s[4] for s in FULL.stages] == [True, True, True, False]  # stage 4's ELAN has no residual
    model = YoloxElan(FULL)
    assert isinstance(model.backbone.stage1[1].blocks[0].conv1.activate, torch.nn.ReLU6)
    assert model.bbox_head.multi_level_conv_cls[0].weight.shape == (8, 128, 1, 1)


def test_the_letterbox_pads_bottom_right_with_114_and_keeps_the_frame_exact():
    frames = camera_frames(3, TINY, 2)
    assert frames.frames.shape == (2, 360, 640, 3) and frames.frames.dtype == np.uint8
    images = network_input(frames, TINY)
    assert images.shape == (2, 3, 320, 320)
    assert np.all(images[:, :, 180:] == 114.0)  # 640 x 360 → 320 x 180, padded below
    assert np.array_equal(images[0, :, :180], frames.frames[0, ::2, ::2].transpose(2, 0, 1).astype(np.float32))  # 2 x 2 blocks
    odd = letterbox(np.full((100, 50, 3), 7, np.uint8), (64, 64), 114.0)  # a tall frame: padded right
    assert np.all(odd[:, :, :32] == 7.0) and np.all(odd[:, :, 32:] == 114.0)


def test_autoware_decodes_every_class_above_its_threshold_and_nms_is_class_agnostic():
    cfg = SMALL
    # anchor 9 (x 1, y 1, stride 8): obj 0.9, classes 0.5 and 0.4 → 0.45 and 0.36 > 0.3: two proposals, one box
    # anchor 0: obj 1.0 x 0.3 = 0.3, not strictly above → none; anchor 30: a box far away of class 2
    out = _output({9: (0.0, 0.0, np.log(2.0), np.log(2.0), 0.9, 0.5, 0.4, 0.0), 0: (0, 0, 0, 0, 1.0, 0.3, 0, 0),
                   30: (0.0, 0.0, 0.0, 0.0, 0.8, 0.0, 0.0, 0.5)})
    found = autoware_decode(out, cfg, scale=0.5)
    assert found.labels.tolist() == [0, 2] and np.allclose(found.scores, [0.45, 0.4])
    assert np.allclose(found.boxes[0], np.array([0.0, 0.0, 16.0, 16.0]) / 0.5)  # centre (1 x 8, 1 x 8), 16 x 16, in the frame
    mmdet = mmdet_decode(out, cfg, scale=0.5)  # best class only, >= 0.01: anchors 0 (0.3), 9 (0.45), 30 (0.4)
    assert sorted(mmdet.labels.tolist()) == [0, 0, 2] and len(mmdet.candidate_scores) == cfg.anchors


def test_autoware_nms_runs_on_truncated_integer_rectangles():
    """Two 16 px boxes 2.9 px apart: as floats IoU = 13.1/18.9 = 0.69 (both kept); as Autoware's int32
    rectangles they are 2 px apart, IoU = 14/18 = 0.78 > 0.7, and the weaker one is suppressed."""
    cfg = dataclasses.replace(SMALL, autoware_score_threshold=0.1)
    side = np.log(2.0)  # 2 x stride 8 = 16 px
    first = (0.0, 0.0, side, side, 1.0, 0.9, 0.0, 0.0)  # anchor (1, 1): centre (8, 8), corner (0, 0)
    second = (10.9 / 8.0 - 2.0, 0.0, side, side, 1.0, 0.0, 0.8, 0.0)  # anchor (2, 1): corner x 2.9, another class
    found = autoware_decode(_output({9: first, 10: second}, cfg), cfg, scale=1.0)
    assert found.labels.tolist() == [0]  # class-agnostic: the class-1 box goes too
    assert published(found, (64, 64)).tolist() == [[0, 0, 16, 16]]
    as_floats = mmdet_decode(_output({9: first, 10: (*second[:5], 0.8, 0.0, 0.0)}, cfg), dataclasses.replace(cfg, eval_nms_iou=0.7), 1.0)
    assert as_floats.labels.tolist() == [0, 0]  # the same pair, one class, on float boxes: kept


def test_mmdet_nms_is_class_aware_at_its_own_threshold():
    side = np.log(2.0)
    same_place = {9: (0, 0, side, side, 1.0, 0.9, 0, 0), 10: (-1.0, 0, side, side, 1.0, 0, 0.8, 0)}  # the same box, two classes
    assert mmdet_decode(_output(same_place), SMALL, 1.0).labels.tolist() == [0, 1]
    same_class = {9: (0, 0, side, side, 1.0, 0.9, 0, 0), 10: (-1.0, 0, side, side, 1.0, 0.8, 0, 0)}
    assert mmdet_decode(_output(same_class), SMALL, 1.0).labels.tolist() == [0]


def test_seeded_objectness_is_calibrated_to_the_requested_detections():
    model = seeded(TINY, 0)
    images = torch.from_numpy(network_input(camera_frames(5, TINY, 1), TINY))
    with torch.no_grad():
        shift = objectness_shift(model.head_outputs(images), 7, 0.3)
        for bias in objectness_biases(model):
            bias.add_(shift)
        out = model(images)[0]
    assert int((out[:, 4] * out[:, 5:].max(1).values > 0.3).sum()) == 7


def test_the_calibration_reads_raw_logits_that_a_float32_sigmoid_would_saturate():
    """Objectness logits of 20-60 all give sigmoid 1.0 in float32; the shift must still rank them."""
    obj = torch.linspace(20.0, 60.0, 50).reshape(1, 1, 5, 10)
    cls = torch.full((1, 2, 5, 10), 3.0)  # best class sigmoid(3) = 0.95
    levels = [(cls, torch.zeros(1, 4, 5, 10), obj)]
    shift = objectness_shift(levels, 5, 0.3)
    scores = torch.sigmoid(obj.flatten().double() + shift) * torch.sigmoid(torch.tensor(3.0, dtype=torch.float64))
    assert int((scores > 0.3).sum()) == 5


def test_the_awml_configs_read_as_the_specs():
    assert to_yolox(read_config(CONFIGS / "yolox_elan_t4dataset.py"), dataclasses.replace(FULL, opset=13)) == dataclasses.replace(FULL, opset=13)
    assert to_yolox(read_config(CONFIGS / "yolox_elan_tiny.py"), TINY) == TINY



def test_test_pipeline_transforms_named_with_their_registry_scope_are_read():
    """``mmdet.Resize`` is mmdet's Resize: the letterbox's size and pad value are read from scoped transforms as from
    bare ones (a reader that compared the raw type would refuse the scoped pipeline as 'no keep-ratio Resize')."""
    config = read_config(CONFIGS / "yolox_elan_tiny.py")
    bare = to_yolox(config, TINY)
    side = 2 * max(TINY.input_size)
    config.values["test_pipeline"] = [
        {**step, "type": f"mmdet.{step['type']}", **({"scale": (side, side // 2)} if step["type"] == "Resize" else {}),
         **({"pad_val": {"img": (7.0, 7.0, 7.0)}} if step["type"] == "Pad" else {})}
        for step in config.values["test_pipeline"]]
    scoped = to_yolox(config, TINY)
    assert bare.input_size == TINY.input_size
    assert (scoped.input_size, scoped.pad_value) == ((side, side), 7.0)


@pytest.mark.parametrize("changes, words", [
    (dict(backbone=dict(type="CSPDarknetOpt")), "backbone: not supported: CSPDarknetOpt"),
    (dict(backbone=dict(arch="P5_ASPP")), "arch 'P5_ASPP'"),
    (dict(backbone=dict(use_depthwise=True)), "depthwise"),
    (dict(neck=dict(act_cfg=dict(type="LeakyReLU"))), "activation LeakyReLU"),
    (dict(data_preprocessor=dict(mean=[0, 0, 0], std=[255, 255, 255])), "mean/std"),
    (dict(neck=dict(in_channels=[64, 128, 256])), r"the neck takes \[64, 128, 256\] channels, the backbone gives \[32, 64, 128\]"),
])
def test_unimplemented_yolox_models_are_refused_by_name(changes, words):
    with pytest.raises(SpecError, match=words):
        to_yolox(read_config(CONFIGS / "yolox_elan_tiny.py").with_model(**changes), TINY)


def test_missing_keys_take_the_upstream_classes_defaults():
    config = read_config(CONFIGS / "yolox_elan_tiny.py")
    for section in ("backbone", "neck", "bbox_head"):
        config.values["model"][section].pop("act_cfg")
    cfg = to_yolox(config, TINY)
    assert (cfg.backbone_act, cfg.neck_act, cfg.head_act) == ("ReLU", "Swish", "Swish")  # ELANDarknet's, the PAFPN's, YOLOXHead's
    config.values["model"]["bbox_head"].pop("num_classes")
    with pytest.raises(SpecError, match="bbox_head.num_classes is not set"):
        to_yolox(config, TINY)


def test_an_awml_checkpoint_loads_strictly_and_misfits_are_named(tmp_path):
    model = seeded(TINY, 3)
    torch.save({"state_dict": model.state_dict(), "meta": {"epoch": 24, "dataset_meta": {"classes": TINY.classes}},
                "message_hub": {"runtime_info": {"iter": np.int64(7)}}}, tmp_path / "epoch_24.pth")
    target = TINY_SPEC.build_model(tmp_path / "epoch_24.pth", 0)
    load_into(target, tmp_path / "epoch_24.pth", hints=TINY_SPEC.checkpoint_hints)
    assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(), model.state_dict().values()))
    wider = seeded(dataclasses.replace(TINY, classes=TINY.classes + ("animal",)), 3)
    torch.save({"state_dict": wider.state_dict()}, tmp_path / "nine.pth")
    with pytest.raises(CheckpointError, match=r"\(bbox_head.multi_level_conv_cls\) have 9 classes, the spec has 8 .*\(bbox_head.num_classes\)\.$"):
        load_into(TINY_SPEC.build_model(tmp_path / "nine.pth", 0), tmp_path / "nine.pth", hints=TINY_SPEC.checkpoint_hints)
    tier4 = {"backbone.backbone.stem.down1.conv.weight": torch.zeros(1), **{k: v for k, v in model.state_dict().items() if "stem" not in k}}
    torch.save(tier4, tmp_path / "tier4.pth")
    with pytest.raises(CheckpointError, match="tier4/YOLOX's key names: convert the file with AWML's"):
        load_into(TINY_SPEC.build_model(tmp_path / "tier4.pth", 0), tmp_path / "tier4.pth", hints=TINY_SPEC.checkpoint_hints)


def test_detection_parity_on_no_box_fails_rather_than_passes():
    from model_specs.yolox.postprocess import Detections2D, Limits2D, compare

    empty = Detections2D(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(3, np.float32), 0.3)
    checks = {c.output: c for c in compare([empty], [empty], Limits2D())}
    assert not checks["boxes.reference_has_none"].passed
    one = Detections2D(np.array([[0, 0, 4, 4]], np.float32), np.array([0.5], np.float32), np.array([1]), np.array([0.5, 0, 0], np.float32), 0.3)
    assert all(c.passed for c in compare([one], [one], Limits2D()))


def test_a_threshold_flip_counts_only_beyond_the_margin():
    from model_specs.yolox.postprocess import Detections2D, Limits2D, compare

    box = (np.array([[0, 0, 4, 4]], np.float32), np.array([0.5], np.float32), np.array([1]))
    ref = Detections2D(*box, np.array([0.5, 0.30005, 0.31], np.float32), 0.3)
    near = Detections2D(*box, np.array([0.5, 0.29995, 0.31], np.float32), 0.3)  # crosses within 1e-4: float noise
    far = Detections2D(*box, np.array([0.5, 0.30005, 0.29], np.float32), 0.3)  # 0.31 → 0.29: a real flip
    flips = lambda test: {c.output: c.value for c in compare([ref], [test], Limits2D(flip_margin=1e-4))}["boxes.threshold_flips"]  # noqa: E731
    assert (flips(near), flips(far)) == (0.0, 1.0)


def test_a_box_suppressed_on_one_side_only_at_the_nms_iou_is_an_nms_flip_not_an_unmatched_box():
    """Measured on yolox-tiny at fp16: a box at IoU 0.6500 with a better one of its class, kept by fp32's mmdet NMS
    (IoU > 0.65 suppresses) and suppressed by fp16's. Near the NMS IoU that is a flip; far from it, a lost box."""
    from model_specs.yolox.postprocess import Detections2D, Limits2D, compare

    def detections(*rows):
        boxes, scores = zip(*rows)
        return Detections2D(np.array(boxes, np.float32), np.array(scores, np.float32), np.ones(len(rows), np.int64),
                            np.array([0.9, 0.24], np.float32), 0.01, nms_iou=0.65)  # the same candidates: no threshold flip

    best = ([0, 0, 10, 10], 0.9)
    near = ([0, 0, 10, 15.4], 0.24)  # IoU 100 / 154 = 0.6494
    far = ([0, 0, 10, 33.3], 0.24)  # IoU 100 / 333 = 0.3003
    limits = Limits2D(iou=0.9, unmatched_margin=0.1, nms_margin=0.01, nms_flips=5)
    checks = {c.output: c for c in compare([detections(best, near)], [detections(best)], limits)}
    assert checks["boxes.nms_flips"].value == 1 and checks["boxes.unmatched_score_above_threshold"].value == 0
    checks = {c.output: c for c in compare([detections(best, far)], [detections(best)], limits)}
    assert checks["boxes.nms_flips"].value == 0 and not checks["boxes.unmatched_score_above_threshold"].passed
    strict = {c.output: c for c in compare([detections(best, near)], [detections(best)], Limits2D())}
    assert not strict["boxes.unmatched_score_above_threshold"].passed  # at fp32, 0.0006 from the NMS IoU is no flip


def test_the_ground_truth_boxes_are_the_objects_the_frames_show():
    classes = set(class_indices(TINY).tolist())
    assert {TINY.classes[i] for i in classes} == {"car", "truck", "bus", "bicycle", "pedestrian"}
    counted = 0
    for seed in range(4):
        sample = camera_frames(seed * 1000, TINY, 4)
        assert len(sample.truth) == 4
        for frame, truth in zip(sample.frames, sample.truth):
            h, w = frame.shape[:2]
            boxes = truth.boxes
            assert boxes.dtype == np.float32 and boxes.shape == (len(truth.labels), 4)
            assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
            assert (boxes[:, 2:] - boxes[:, :2] >= MIN_BOX_SIDE_PX).all()
            assert set(truth.labels.tolist()) <= classes
            for (x0, y0, x1, y1), label in zip(boxes.astype(int), truth.labels):  # the painted object is there, not sky or road
                patch = frame[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64)
                colour = CLASS_COLOURS[SCENE_CLASS_NAMES.index(TINY.classes[label])]
                near = np.abs(patch - colour * np.linspace(1.1, 0.8, 3).mean()).max(1) < 70  # shading, jitter and noise
                assert near.mean() >= MIN_VISIBLE * 0.8
            counted += len(truth.labels)
    assert counted >= 40


def test_an_object_hidden_behind_a_nearer_one_or_behind_the_camera_has_no_box():
    car = [10.0, 0.0, 0.8, 4.5, 1.9, 1.6, 0.0, 0.0, 0.0]
    hidden = [30.0, 0.0, 0.8, 4.5, 1.9, 1.6, 0.0, 0.0, 0.0]  # straight behind the first, smaller in the picture
    behind = [-10.0, 0.0, 0.8, 4.5, 1.9, 1.6, 0.0, 0.0, 0.0]
    scene = Scene((), np.array([car, hidden, behind], np.float32), np.array([0, 0, 0]))
    found = visible_boxes(scene, Camera(360, 640), 2, MIN_VISIBLE, MIN_BOX_SIDE_PX)
    assert len(found.labels) == 1 and found.visible[0] == 1.0
    x0, y0, x1, y1 = found.boxes[0]
    assert x0 < 320 < x1 and y0 < 180 < y1  # straight ahead: around the principal point


def test_the_bundled_weights_detect_what_seeded_weights_do_not():
    """Held-out frames (the spec's sample seeds, four cameras each; training used seeds from 30_000_000)."""
    samples = [camera_frames(seed * 1000 + i, TINY, 4) for seed in (0, 1) for i in range(4)]
    scale = letterbox_scale(TINY.camera_size, TINY.input_size)

    def ap(model) -> MetricResult:
        with torch.no_grad():
            outputs = [{"mmdet": [mmdet_decode(o, TINY, scale) for o in model(torch.from_numpy(network_input(s, TINY))).numpy()]}
                       for s in samples]
        return metric(TINY)(outputs, samples)

    trained, seeded_ap = ap(TINY_SPEC.build_model(None, 0)), ap(calibrated(TINY, 0))
    assert trained.compared >= 200
    assert trained.details["AP@0.5"] >= 0.5 and trained.value >= 0.25, trained.details
    assert seeded_ap.details["AP@0.5"] <= 0.05 and trained.details["AP@0.5"] >= seeded_ap.details["AP@0.5"] + 0.4
    assert "bundled trained weights weights/yolox-tiny.pt" in TINY_SPEC.default_weights and not SPEC.default_weights
