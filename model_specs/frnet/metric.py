"""Mean IoU over classes of FRNet's per-point labels, through scikit-learn (``jaccard_score`` is per-class IoU)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import jaccard_score

from model_specs.frnet.data import UNSCORED, LidarScan
from pytest_awml.metric import MetricResult


def miou(outputs: Sequence, samples: Sequence[LidarScan]) -> MetricResult:
    """IoU per class present in the ground truth (``iou.<class index>``) and their mean over the scored points (a label
    of ``UNSCORED`` is skipped); the pipeline's labels are its ``(probabilities, labels)`` second half, one per original point."""
    truth = np.concatenate([scan.labels for scan in samples]) if samples else np.zeros(0, np.int64)
    predicted = np.concatenate([labels for _, labels in outputs]) if outputs else np.zeros(0, np.int64)
    scored = truth != UNSCORED
    truth, predicted = truth[scored], predicted[scored]
    present = np.unique(truth)
    if not len(truth):
        return MetricResult("mIoU", 0.0, 0)
    scores = jaccard_score(truth, predicted, labels=present, average=None, zero_division=0.0)
    return MetricResult("mIoU", float(np.mean(scores)), len(truth), {f"iou.{c}": float(v) for c, v in zip(present, scores, strict=True)})
