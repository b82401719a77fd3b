"""CenterPoint's detection metric: nuScenes-style centre-distance mAP (:mod:`model_specs.detection_ap`) of decoded boxes
against each scene's ground truth, over the grid's BEV square (the model cannot see outside it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.decode import Detections
from model_specs.centerpoint.scene import Scene
from model_specs.detection_ap import THRESHOLDS_M, average_precision, in_square
from model_specs.detection_ap import mean_ap as _mean_ap
from pytest_awml.metric import MetricResult

__all__ = ["THRESHOLDS_M", "average_precision", "in_grid", "mean_ap", "metric"]


def in_grid(xy: np.ndarray, cfg: CenterPointConfig) -> np.ndarray:
    return in_square(xy, cfg.point_cloud_range)


def mean_ap(detections: Sequence[Detections], scenes: Sequence[Scene], cfg: CenterPointConfig) -> MetricResult:
    """mAP of decoded boxes against each scene's ground truth, with AP per class and threshold."""
    return _mean_ap([(d.boxes, d.scores, d.labels) for d in detections], [(s.boxes, s.labels) for s in scenes], cfg.class_names,
                    cfg.point_cloud_range)


def metric(cfg: CenterPointConfig):
    def compute(outputs: Sequence[Detections], samples: Sequence[Scene]) -> MetricResult:
        return mean_ap(outputs, samples, cfg)

    return compute
