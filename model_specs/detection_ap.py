"""nuScenes-style detection AP over 3D boxes: matched by BEV centre distance at 0.5, 1, 2 and 4 m, per class; shared by
the specs that score boxes in a vehicle frame (CenterPoint's lidar boxes, StreamPETR's camera ones).

The definitions are nuScenes-devkit's (``nuscenes.eval.detection.algo.accumulate`` and ``calc_ap``):
predictions of a class in descending score order each take the nearest unmatched ground-truth box of
that class in their sample when it lies closer than the threshold; precision is interpolated at 101
recall points; AP averages the precision above 10 % recall, less 10 %, rescaled. mAP is the mean
over classes and thresholds, a class without ground truth counting 0 as in nuScenes. The devkit is not
called at run time (it pulls OpenCV and scikit-learn in at import); ``tests/test_metric.py`` checks this
module against it on the same boxes. Ground truth and predictions outside the BEV square a spec gives are not
scored: the model cannot see there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pytest_awml.metric import MetricResult

THRESHOLDS_M = (0.5, 1.0, 2.0, 4.0)
MIN_RECALL = MIN_PRECISION = 0.1
RECALL_POINTS = 101


def average_precision(scores: Sequence[np.ndarray], pred_xy: Sequence[np.ndarray], gt_xy: Sequence[np.ndarray],
                      threshold: float) -> float:
    """One class at one threshold; per sample: prediction scores [P], centres [P, 2], ground truth [G, 2]."""
    positives = sum(len(g) for g in gt_xy)
    if positives == 0:
        return 0.0
    order = [(score, sample, index) for sample, s in enumerate(scores) for index, score in enumerate(s)]
    order.sort(key=lambda item: (item[0], item[1], item[2]), reverse=True)  # the devkit sorts (score, position) descending
    taken = [np.zeros(len(g), dtype=bool) for g in gt_xy]
    tp = []
    for _, sample, index in order:
        gts = gt_xy[sample]
        if len(gts):
            distance = np.hypot(*(gts - pred_xy[sample][index]).T)
            distance[taken[sample]] = np.inf
            best = int(np.argmin(distance))
            hit = distance[best] < threshold
        else:
            hit = False
        if hit:
            taken[sample][best] = True
        tp.append(1.0 if hit else 0.0)
    if not any(tp):
        return 0.0
    tp_sum = np.cumsum(tp)
    precision = tp_sum / np.arange(1, len(tp) + 1)
    recall = tp_sum / positives
    interpolated = np.interp(np.linspace(0, 1, RECALL_POINTS), recall, precision, right=0)
    clipped = interpolated[round(100 * MIN_RECALL) + 1:] - MIN_PRECISION
    clipped[clipped < 0] = 0
    return float(np.mean(clipped)) / (1.0 - MIN_PRECISION)


def in_square(xy: np.ndarray, bev_range: Sequence[float]) -> np.ndarray:
    """Which of ``xy`` [N, 2] lie in the range's BEV square (x_min, y_min, _, x_max, y_max, _), max excluded."""
    r = bev_range
    return (xy[:, 0] >= r[0]) & (xy[:, 0] < r[3]) & (xy[:, 1] >= r[1]) & (xy[:, 1] < r[4])


def mean_ap(predictions: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], truths: Sequence[tuple[np.ndarray, np.ndarray]],
            class_names: Sequence[str], bev_range: Sequence[float]) -> MetricResult:
    """mAP of each sample's predictions (boxes [P, >= 2], scores [P], labels [P]) against its ground truth (boxes [G, >= 2],
    labels [G]), with AP per class and threshold; only the BEV centres are read."""
    details: dict[str, float] = {}
    aps = []
    ground_truth = 0
    for label, name in enumerate(class_names):
        scores, preds, gts = [], [], []
        for (boxes, box_scores, labels), (truth_boxes, truth_labels) in zip(predictions, truths, strict=True):
            keep = (labels == label) & in_square(boxes[:, :2], bev_range)
            scores.append(box_scores[keep])
            preds.append(boxes[keep, :2].astype(np.float64))
            truth = truth_boxes[(truth_labels == label)][:, :2].astype(np.float64)
            gts.append(truth[in_square(truth, bev_range)])
        count = sum(len(g) for g in gts)
        ground_truth += count
        details[f"{name}.ground_truth"] = count
        for threshold in THRESHOLDS_M:
            ap = average_precision(scores, preds, gts, threshold)
            details[f"{name}.ap@{threshold:g}m"] = ap
            aps.append(ap)
    return MetricResult("mAP", float(np.mean(aps)), ground_truth, details)
