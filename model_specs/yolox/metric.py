"""COCO-style box AP of decoded YOLOX detections against the frames' ground truth, by pycocotools' COCOeval.

The evaluation is mmdet's ``CocoMetric`` for bbox: the ground truth and the detections (mmdet's evaluation
decoder: best class per anchor point, score >= 0.01, class-aware NMS) go into pycocotools as they are,
COCOeval runs with mmdet's ``proposal_nums`` (100, 300, 1000) as ``maxDets``, so AP is at up to 1000
detections per frame. ``bbox_mAP`` (AP@[.5:.95], COCO's headline and mmdet's) is the value the metric
gates; AP@0.5 and AP per class are in the details. Frames without ground truth (unlabelled data) are not
scored. pycocotools (a dependency of pytest-awml) is imported when the metric runs.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from model_specs.yolox.config import YoloxConfig
from model_specs.yolox.data import CameraFrames, FrameTruth
from model_specs.yolox.postprocess import Detections2D
from pytest_awml.errors import AwmlError
from pytest_awml.metric import MetricResult

DECODER = "mmdet"  # AWML evaluates with mmdet's decoder; Autoware's keeps only scores above 0.3
MAX_DETECTIONS = (100, 300, 1000)  # mmdet CocoMetric's proposal_nums: COCOeval's maxDets
NAME = "bbox_mAP"


def _xywh(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).astype(np.float64)


def coco_ap(detections: Sequence[Detections2D], truths: Sequence[FrameTruth], classes: Sequence[str]) -> MetricResult:
    """AP@[.5:.95] with AP@0.5 and per-class AP in the details, over frames paired with their ground truth."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as missing:  # a dependency of pytest-awml: only a hand-made environment lacks it
        raise AwmlError(f"the YOLOX metric needs pycocotools ({missing}): pip install pycocotools") from missing

    images: list[dict[str, int]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for image_id, (found, truth) in enumerate(zip(detections, truths, strict=True), start=1):
        images.append({"id": image_id})
        for box, label in zip(_xywh(truth.boxes), truth.labels, strict=True):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                                "bbox": box.tolist(), "area": float(box[2] * box[3]), "iscrowd": 0})
        results += [{"image_id": image_id, "category_id": int(label) + 1, "bbox": box.tolist(), "score": float(score)}
                    for box, label, score in zip(_xywh(found.boxes), found.labels, found.scores, strict=True)]
    counts = np.bincount([a["category_id"] - 1 for a in annotations], minlength=len(classes))
    details: dict[str, float] = {f"{name}.ground_truth": int(n) for name, n in zip(classes, counts, strict=True) if n}
    if not annotations or not results:  # COCOeval needs both; nothing found scores 0
        return MetricResult(NAME, 0.0, len(annotations), {"AP@0.5": 0.0, "AP@[.5:.95]": 0.0, **details})
    truth_set = COCO()
    truth_set.dataset = {"images": images, "annotations": annotations,
                         "categories": [{"id": i + 1, "name": name} for i, name in enumerate(classes)]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports progress on stdout
        truth_set.createIndex()
        evaluation = COCOeval(truth_set, truth_set.loadRes(results), "bbox")
        evaluation.params.maxDets = list(MAX_DETECTIONS)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    ap, ap50 = (max(float(v), 0.0) for v in evaluation.stats[:2])  # -1: no ground truth in any class
    precision = evaluation.eval["precision"]  # [iou threshold, recall, class, area range, max dets]
    for k, name in enumerate(classes):
        if counts[k]:
            p = precision[:, :, k, 0, -1]
            details[f"{name}.AP"] = float(p[p > -1].mean()) if (p > -1).any() else 0.0
    return MetricResult(NAME, ap, len(annotations), {"AP@0.5": ap50, "AP@[.5:.95]": ap, **details})


def metric(cfg: YoloxConfig):
    def compute(outputs: Sequence, samples: Sequence[CameraFrames]) -> MetricResult:
        """The pipeline's mmdet-decoded detections of every labelled frame of every sample."""
        pairs = [(found, truth) for output, sample in zip(outputs, samples, strict=True) if sample.truth  # unlabelled: truth ()
                 for found, truth in zip(output[DECODER], sample.truth, strict=True)]
        return coco_ap([p[0] for p in pairs], [p[1] for p in pairs], cfg.classes)

    return compute
