"""Top-1 accuracy and the confusion counts of the traffic-light classifiers, through scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix

from model_specs.mobilenetv2.data import TrafficLightFrame
from pytest_awml.metric import MetricResult


def top1(outputs: Sequence, samples: Sequence[TrafficLightFrame]) -> MetricResult:
    """Share of lights whose top-1 class is the one drawn, with the confusion counts that are not zero
    (``true_<class>.predicted_<class>``: a red light taken for a green one is the costly cell)."""

    truth = np.concatenate([frame.labels for frame in samples]) if samples else np.zeros(0, np.int64)
    predicted = np.concatenate([labels for _, labels in outputs]) if outputs else np.zeros(0, np.int64)
    if not len(truth):
        return MetricResult("top1_accuracy", 0.0, 0)
    classes = max(int(p.shape[1]) for p, _ in outputs)
    cells = confusion_matrix(truth, predicted, labels=np.arange(classes))
    details = {f"true_{t}.predicted_{p}": float(cells[t, p]) for t, p in zip(*np.nonzero(cells), strict=True)}
    return MetricResult("top1_accuracy", float(accuracy_score(truth, predicted)), len(truth), details)
