"""AWML's traffic-light classifiers (model_specs/mobilenetv2): configs read as the specs, AWML's crop and
normalisation, and the main job of a tiny spec run through the plugin (three static batches, one graph each).
The proof against mmpretrain's own model and transforms is tests/test_upstream_recorded.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model_specs.mmconfig import read_config
from model_specs.mobilenetv2.config import CAR, CAR_TINY, PEDESTRIAN, PEDESTRIAN_TINY, make_divisible
from model_specs.mobilenetv2.data import crop_roi, crops, normalise, resize_pad, traffic_light_frame
from model_specs.mobilenetv2.metric import top1
from model_specs.mobilenetv2.mmconfig import to_classifier
from model_specs.mobilenetv2.spec import CAR_SPEC, CAR_TINY_SPEC, PEDESTRIAN_TINY_SPEC
from pytest_awml.errors import SpecError

CONFIGS = Path(__file__).parent / "data" / "configs"
CAR_CONFIG = CONFIGS / "awml" / "mobilenetv2_tlr_car.py"  # project-written, AWML 7a6ec07's structure and values


def test_the_awml_structured_configs_read_as_the_specs():
    assert to_classifier(read_config(CAR_CONFIG), CAR) == CAR == CAR_SPEC.params["model"]
    assert to_classifier(read_config(CONFIGS / "awml" / "mobilenetv2_tlr_pedestrian.py"), CAR) == PEDESTRIAN
    assert to_classifier(read_config(CONFIGS / "awml" / "mobilenetv2_tlr_car_tiny.py"), CAR) == CAR_TINY


@pytest.mark.parametrize("changes, words", [
    (dict(backbone=dict(type="MobileNetV3")), "backbone: not supported: MobileNetV3"),
    (dict(backbone=dict(out_indices=(6,))), r"out_indices \[6\]"),
    (dict(backbone=dict(act_cfg=dict(type="Swish"))), "an activation other than ReLU6"),
    (dict(head=dict(in_channels=640)), "head.in_channels is 640, but backbone.widen_factor makes it 1280"),
    (dict(backbone=dict(frozen_stages=2, widen_factor=0.5, strides=(1,))), r"backbone.strides: not read by this spec"),
])
def test_unimplemented_classifiers_are_refused_by_name(changes, words):
    with pytest.raises(SpecError, match=words):
        to_classifier(read_config(CAR_CONFIG).with_model(**changes), CAR)


def test_mmpretrain_s_channel_rounding():
    assert [make_divisible(c * 0.25) for c in (32, 16, 24, 64, 96, 160, 320)] == [8, 8, 8, 16, 24, 40, 80]
    assert make_divisible(28 * 1.0) == 32 and make_divisible(20) == 24  # never below 90 % of the value


def test_a_crop_is_cut_resized_keeping_its_ratio_padded_and_normalised_as_awml_s_pipeline():
    image = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    crop = crop_roi(image, np.array([-3.7, 2.9, 12.99, 50.0], np.float32))  # truncated corners, clipped to the image
    assert crop.shape == (18, 12, 3) and np.array_equal(crop, image[2:20, 0:12])
    padded = resize_pad(crop, 64)
    assert padded.shape == (64, 64, 3) and not padded[:, 43:].any() and padded[:, :42].any()  # 12 x 64/18 = 42.7 rounds to 43
    rgb = normalise(np.full((1, 2, 2, 3), (10, 20, 30), np.uint8), CAR).numpy()
    assert np.allclose(rgb[0, :, 0, 0], [(30 - 123.675) / 58.395, (20 - 116.28) / 57.12, (10 - 103.53) / 57.375])


def test_frames_are_reproducible_and_their_lights_fill_the_deployed_batch():
    a, b = traffic_light_frame(5, CAR.classes), traffic_light_frame(5, CAR.classes)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes) and len(a.labels) == 6
    assert not np.array_equal(a.image, traffic_light_frame(6, CAR.classes).image)


def test_top1_accuracy_and_confusion_through_scikit_learn():
    frames = [traffic_light_frame(1, PEDESTRIAN.classes)]
    truth = frames[0].labels
    wrong = (truth + 1) % 3
    wrong[:2] = truth[:2]
    result = top1([(np.eye(3)[wrong], wrong)], frames)
    assert result.value == pytest.approx(2 / 6) and result.compared == 6
    assert sum(result.details.values()) == 6 and all(int(k.split(".")[0][5:]) != int(k.split("_")[-1]) or v <= 2 for k, v in result.details.items())


def test_the_main_job_tests_each_static_batch_as_its_own_graph(run_awml):
    run = run_awml(f"--awml-spec={PEDESTRIAN_TINY_SPEC.name}", "-k", "test_export or test_parity or test_metric")
    run.result.assert_outcomes(passed=7)  # an export and a parity test per static batch, the metric over the batch-6 pipeline
    ids = {r["test_id"] for r in run.report["parity"]}
    assert {f"awml::test_parity[mobilenetv2-pedestrian-tiny/classifier.batch{n}/onnxruntime-cpu-fp32]" for n in (1, 4, 6)} <= ids
    onnx = {a["component"]: a for a in run.report["artifacts"] if a["format"] == "onnx"}
    assert sorted(onnx) == ["classifier.batch1", "classifier.batch4", "classifier.batch6"]
    assert len({a["sha256"] for a in onnx.values()}) == 3  # three graphs
    assert [m["metric"] for m in run.report["metrics"]] == ["top1_accuracy"]


def _write_annotations(folder: Path, seeds: range) -> list:
    """Synthetic frames as PNGs and AWML's classification info (tools/classification2d/create_data_t4dataset.py's layout)
    naming them, with a frame without lights that the reader skips."""
    from PIL import Image

    frames = [traffic_light_frame(seed, PEDESTRIAN.classes) for seed in seeds]
    (folder / "images").mkdir()
    data_list = []
    for i, frame in enumerate(frames):
        Image.fromarray(frame.image[:, :, ::-1]).save(folder / "images" / f"{i}.png")  # BGR in memory, RGB in the file
        data_list.append({"img_id": i, "img_path": f"images/{i}.png", "width": frame.image.shape[1], "height": frame.image.shape[0],
                          "instances": [{"bbox": box.tolist(), "bbox_label": int(label), "mask": [], "extra_anns": [], "ignore_flag": 0}
                                        for box, label in zip(frame.boxes, frame.labels, strict=True)]})
    data_list.append({"img_id": len(frames), "img_path": "images/0.png", "instances": []})
    info = {"metainfo": {"dataset_type": "tlr", "task_name": "detection_task", "classes": list(PEDESTRIAN.classes)}, "data_list": data_list}
    (folder / "tlr_infos_test.json").write_text(json.dumps(info))
    return frames


def test_real_frames_read_from_awml_s_annotation_file(tmp_path):
    frames = _write_annotations(tmp_path, range(2))
    read = PEDESTRIAN_TINY_SPEC.load_data(tmp_path, {})  # the folder holding the one annotation file
    assert len(read) == 2
    for got, made in zip(read, frames, strict=True):
        assert np.array_equal(got.image, made.image) and np.array_equal(got.labels, made.labels)
        assert np.allclose(got.boxes, made.boxes, atol=1e-5)
        assert torch.equal(crops(got, PEDESTRIAN_TINY), crops(made, PEDESTRIAN_TINY))  # the same crops as the synthetic frame's
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "images").rename(tmp_path / "elsewhere" / "images")  # img_path relative to image_root, not the file's folder
    assert len(PEDESTRIAN_TINY_SPEC.load_data(tmp_path / "tlr_infos_test.json", {"image_root": str(tmp_path / "elsewhere")})) == 2


def test_the_bundled_weights_classify_the_synthetic_lights():
    """The tiny classifiers hold trained weights by default: their accuracy on the specs' own samples is well above chance
    (1/3, 1/11), so test_metric judges something. The car lights' arrows lie outside their boxes, so its red classes that
    differ only by arrows look alike (tools/train_mobilenetv2_tiny.py): 0.33 over 60 lights, not more."""
    for spec, floor in ((PEDESTRIAN_TINY_SPEC, 0.9), (CAR_TINY_SPEC, 0.25)):
        assert spec.default_weights.startswith(f"bundled trained weights weights/{spec.name}.pt")
        model, samples = spec.build_model(None, 0), spec.make_samples(10, 0)
        with torch.no_grad():
            outputs = [(p.numpy(), p.numpy().argmax(1)) for p in (model(crops(s, spec.params["model"])) for s in samples)]
        assert top1(outputs, samples).value > floor, spec.name
