"""Task metrics: CenterPoint's centre-distance AP against nuScenes-devkit's own on the same boxes, YOLOX's COCO AP
(pycocotools' COCOeval) on boxes whose AP is known, the metric verdict, and test_metric end to end on the
trained tiny models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model_specs.centerpoint.config import TINY
from model_specs.centerpoint.decode import Detections
from model_specs.centerpoint.metric import THRESHOLDS_M, average_precision, mean_ap
from model_specs.centerpoint.scene import Scene
from model_specs.yolox.config import TINY as YOLOX_TINY
from model_specs.yolox.data import CameraFrames, FrameTruth
from model_specs.yolox.metric import coco_ap, metric as yolox_metric
from model_specs.yolox.postprocess import Detections2D
from pytest_awml.metric import MetricResult, metric_verdict


def _random_case(seed: int):
    """Ground truth and noisy, partly wrong predictions over a few samples, with tied scores too."""
    rng = np.random.default_rng(seed)
    gts, scores, preds = [], [], []
    for _ in range(4):
        gt = rng.uniform(-20, 20, (int(rng.integers(0, 6)), 2))
        found = gt[rng.random(len(gt)) < 0.8]  # most objects found, each a little off
        found = found + rng.normal(0, 0.8, found.shape)
        ghosts = rng.uniform(-20, 20, (int(rng.integers(0, 3)), 2))
        pred = np.concatenate([found, ghosts])
        gts.append(gt)
        preds.append(pred)
        scores.append(np.round(rng.uniform(0.1, 1.0, len(pred)), 1))  # rounded: ties, as real scores have
    return scores, preds, gts


@pytest.mark.parametrize("seed", range(6))
def test_average_precision_is_nuscenes_devkit_s(seed):
    algo = pytest.importorskip("nuscenes.eval.detection.algo", reason="nuscenes-devkit (installed --no-deps by .ci/run) is absent")
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.utils import center_distance
    from nuscenes.eval.detection.data_classes import DetectionBox

    scores, preds, gts = _random_case(seed)
    gt_boxes, pred_boxes = EvalBoxes(), EvalBoxes()
    for i, (s, p, g) in enumerate(zip(scores, preds, gts)):
        token = f"sample{i}"
        gt_boxes.add_boxes(token, [DetectionBox(token, (x, y, 0.0), (1, 1, 1), detection_name="car") for x, y in g])
        pred_boxes.add_boxes(token, [DetectionBox(token, (x, y, 0.0), (1, 1, 1), detection_name="car", detection_score=float(c))
                                     for (x, y), c in zip(p, s)])
    for threshold in THRESHOLDS_M:
        theirs = algo.calc_ap(algo.accumulate(gt_boxes, pred_boxes, "car", center_distance, threshold), 0.1, 0.1)
        assert average_precision(scores, preds, gts, threshold) == pytest.approx(theirs, abs=1e-12), threshold


def _detections(xy, scores, labels) -> Detections:
    boxes = np.zeros((len(xy), 9), np.float32)
    boxes[:, :2] = xy
    empty = np.zeros((0, 3), np.int64)
    return Detections(boxes, np.asarray(scores, np.float32), np.asarray(labels, np.int64), empty, np.zeros(0, np.float32),
                      np.zeros((5, 1, 1), np.float32), np.zeros((3, 1, 1), np.float32), np.zeros((1, 1), np.float32))


def test_mean_ap_scores_the_grid_only_and_counts_its_ground_truth():
    gt = np.zeros((3, 9), np.float32)
    gt[:, :2] = [[1.0, 1.0], [5.0, -3.0], [40.0, 0.0]]  # the last lies outside the tiny grid (±25.6 m)
    scene = Scene((), gt, np.array([0, 4, 0]))
    perfect = mean_ap([_detections(gt[:2, :2], [0.9, 0.8], [0, 4])], [scene], TINY)
    assert perfect.compared == 2 and perfect.details["car.ground_truth"] == 1 and perfect.details["car.ap@0.5m"] == pytest.approx(1.0)
    assert perfect.value == pytest.approx(2 / 5)  # two of five classes perfect, three without ground truth count 0
    missed = mean_ap([_detections(np.array([[3.0, 1.0]]), [0.9], [0])], [scene], TINY)
    assert missed.details["car.ap@0.5m"] == 0.0 and missed.details["car.ap@4m"] == pytest.approx(1.0)


def test_the_metric_verdict_is_the_absolute_delta():
    ref, test = MetricResult("mAP", 0.60, 16), MetricResult("mAP", 0.594, 16)
    verdict = metric_verdict(ref, test, 0.005)
    assert verdict.value == pytest.approx(0.006) and not verdict.passed and verdict.compared == 16
    assert metric_verdict(ref, MetricResult("mAP", 0.604, 16), 0.005).passed
    assert math.isclose(metric_verdict(ref, ref, 0.0).value, 0.0)


def test_metric_and_box_counts_end_to_end(run_awml):
    run = run_awml("--awml-spec=centerpoint-tiny", "-k", "pipeline_parity or metric", "-v")
    run.result.assert_outcomes(passed=2)
    assert "test_metric[centerpoint-tiny/onnxruntime-cpu-fp32] PASSED" in run.text
    (record,) = run.report["metrics"]
    assert record["metric"] == "mAP" and record["compared"] >= 10 and record["reference_value"] > 0.3  # trained weights find objects
    assert record["delta"] <= record["max_delta"] == 0.005
    boxes = next(r for r in run.report["parity"] if r["output"] == "boxes.centre_m")
    assert boxes["compared"] >= 5  # boxes were matched, not passed on nothing
    assert "no checkpoint given: bundled trained weights" in run.text


def test_nothing_compared_fails_with_the_fix(run_awml, pytester):
    import numpy as np

    scan = pytester.path / "ground.bin"  # flat ground only, no labels: nothing to find, nothing to score
    xs, ys = np.meshgrid(np.linspace(-20, 20, 40), np.linspace(-20, 20, 40))
    points = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size), np.full(xs.size, 5.0)], axis=1).astype(np.float32)
    scan.write_bytes(points.tobytes())
    run = run_awml("--awml-spec=centerpoint-tiny", f"--awml-data={scan}", "--awml-data-option=point_features=4", "-k",
                   "pipeline_parity or metric", "-rs")
    run.result.assert_outcomes(failed=1, skipped=1)
    assert "NothingCompared: the onnxruntime-cpu-fp32 pipeline's comparison compared too little to judge" in run.text
    assert "--awml-checkpoint with trained weights" in run.text
    assert "the samples hold no ground truth for mAP" in run.text


def test_a_metric_of_zero_on_both_sides_is_not_judged(run_awml, pytester):
    """mAP 0.0 against 0.0 (seeded weights find nothing) agrees by construction: the test says it judged nothing, with
    the fix, in its outcome, the report and the summary, instead of passing silently (issue 30)."""
    pytester.makepyfile(zero_spec="""
import dataclasses
from model_specs.centerpoint.spec import TINY_SPEC
from pytest_awml.metric import MetricResult

SPEC = dataclasses.replace(TINY_SPEC, metric=dataclasses.replace(TINY_SPEC.metric, compute=lambda outputs, samples: MetricResult("mAP", 0.0, 12)))
""")
    run = run_awml("--awml-spec=zero_spec.py", "-k", "metric", "-rs")
    run.result.assert_outcomes(skipped=1)
    assert "not judged: mAP is 0 for both PyTorch and onnxruntime-cpu-fp32 over 12 ground-truth item(s)" in run.text
    assert "--awml-checkpoint with trained weights" in run.text and "not judged" in run.text.split("pytest-awml ===")[-1]
    (record,) = run.report["metrics"]
    assert record["not_judged"].startswith("mAP is 0 for both") and record["value"] == record["reference_value"] == 0.0
    assert any(s["reason"].startswith("not judged: mAP is 0") for s in run.report["skipped"])


def _found(boxes, labels, scores) -> Detections2D:
    return Detections2D(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32), np.asarray(labels, np.int64),
                        np.zeros(0, np.float32), 0.01)


def _truth(boxes, labels) -> FrameTruth:
    return FrameTruth(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64))


def test_coco_ap_scores_known_cases():
    truth = [_truth([[100, 100, 200, 200]], [1]), _truth([[10, 20, 60, 120], [300, 50, 400, 90]], [6, 1])]
    perfect = coco_ap([_found(t.boxes, t.labels, [0.9] * len(t.labels)) for t in truth], truth, YOLOX_TINY.classes)
    assert perfect.value == pytest.approx(1.0) and perfect.details["AP@0.5"] == pytest.approx(1.0) and perfect.compared == 3
    assert perfect.details["car.ground_truth"] == 2 and perfect.details["pedestrian.AP"] == pytest.approx(1.0)
    # shifted by 20 px: IoU 80/120 = 0.67 passes the thresholds 0.5-0.65, four of COCO's ten
    shifted = coco_ap([_found([[120, 100, 220, 200]], [1], [0.9])], truth[:1], YOLOX_TINY.classes)
    assert shifted.details["AP@0.5"] == pytest.approx(1.0) and shifted.value == pytest.approx(0.4)
    wrong_class = coco_ap([_found([[100, 100, 200, 200]], [2], [0.9])], truth[:1], YOLOX_TINY.classes)
    assert wrong_class.value == 0.0 and wrong_class.details["AP@0.5"] == 0.0
    nothing = coco_ap([_found([], [], [])], truth[:1], YOLOX_TINY.classes)
    assert nothing.value == 0.0 and nothing.compared == 1


def test_coco_ap_ranks_by_score():
    """A false positive scored above the true one halves the precision at full recall (COCO's 101-point AP)."""
    truth = [_truth([[100, 100, 200, 200]], [1])]
    ghost_first = coco_ap([_found([[400, 100, 500, 200], [100, 100, 200, 200]], [1, 1], [0.9, 0.5])], truth, YOLOX_TINY.classes)
    ghost_last = coco_ap([_found([[400, 100, 500, 200], [100, 100, 200, 200]], [1, 1], [0.5, 0.9])], truth, YOLOX_TINY.classes)
    assert ghost_first.details["AP@0.5"] == pytest.approx(0.5) and ghost_last.details["AP@0.5"] == pytest.approx(1.0)


def test_the_yolox_metric_scores_the_mmdet_decoder_and_only_labelled_frames():
    truth = _truth([[100, 100, 200, 200]], [1])
    labelled = CameraFrames(np.zeros((1, 4, 4, 3), np.uint8), 0, (truth,))
    unlabelled = CameraFrames(np.zeros((1, 4, 4, 3), np.uint8), 1)
    hit, miss = _found(truth.boxes, truth.labels, [0.9]), _found([[0, 0, 10, 10]], [1], [0.9])
    result = yolox_metric(YOLOX_TINY)([{"mmdet": [hit], "autoware": [miss]}, {"mmdet": [miss], "autoware": [miss]}], [labelled, unlabelled])
    assert result.value == pytest.approx(1.0) and result.compared == 1
    assert yolox_metric(YOLOX_TINY)([{"mmdet": [miss], "autoware": [miss]}], [unlabelled]).compared == 0


def test_yolox_metric_end_to_end(run_awml):
    run = run_awml("--awml-spec=yolox-tiny", "-k", "pipeline_parity or metric", "-v")
    run.result.assert_outcomes(passed=2)
    assert "test_metric[yolox-tiny/onnxruntime-cpu-fp32] PASSED" in run.text
    (record,) = run.report["metrics"]
    assert record["metric"] == "bbox_mAP" and record["compared"] >= 10
    assert record["reference_details"]["AP@0.5"] > 0.5 and record["reference_value"] > 0.25  # trained weights find the objects
    assert record["delta"] <= record["max_delta"] == 0.005
    assert "no checkpoint given: bundled trained weights weights/yolox-tiny.pt" in run.text
