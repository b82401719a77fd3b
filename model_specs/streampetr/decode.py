"""StreamPETR's boxes from ``pts_head_memory``'s outputs, as AWML decodes them (``NMSFreeCoder.decode`` on the last
decoder layer, then ``StreamPETRHead.get_bboxes``): no NMS, the ``max_num`` best (query, class) scores kept.

Written from the facts of AWML @ 7a6ec07 (``core/bbox/coders/nms_free_coder.py``, ``core/bbox/util.py``
``denormalize_bbox``, ``dense_heads/streampetr_head.py`` ``get_bboxes``); ``tests/test_upstream_recorded.py`` holds it to
AWML's own coder run on the same head outputs. The scores' sigmoid and top-k are torch's, as AWML's are: the same
kernels give the same order on ties. The graph lays the head's outputs out as AWML's deploy wrapper does:
``[1, classes, layers * queries]`` and ``[1, code_size, layers * queries]``, the last layer's queries last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from model_specs.streampetr.config import StreamPETRConfig

SCORES, BOXES = "all_cls_scores", "all_bbox_preds"  # pts_head_memory's outputs the decode reads


@dataclass(frozen=True)
class Detections:
    """One frame's boxes, best score first. ``boxes`` rows: x, y, z, length, width, height, yaw, vx, vy in the ego frame
    of the frame (z at the bottom when the head's ``use_bottom_center``, as AWML reports it); ``queries``: the decoder
    query each box came from (two sides' boxes of one query and class are the same object)."""

    boxes: np.ndarray  # [K, 9] float32
    scores: np.ndarray  # [K] float32
    labels: np.ndarray  # [K] int64, indexes into cfg.classes
    queries: np.ndarray  # [K] int64


def last_layer(outputs: Mapping[str, np.ndarray], cfg: StreamPETRConfig) -> tuple[np.ndarray, np.ndarray]:
    """(class logits [Q, classes], box codes [Q, code_size]) of the last decoder layer."""
    queries = cfg.num_query + cfg.num_propagated
    scores, boxes = np.asarray(outputs[SCORES]), np.asarray(outputs[BOXES])
    return scores[0, :, -queries:].T, boxes[0, :, -queries:].T


def _boxes(codes: torch.Tensor) -> torch.Tensor:
    """Box codes (centre in metres, log sizes, sin and cos of yaw, velocity) → centre, sizes, yaw, velocity."""
    yaw = torch.atan2(codes[:, 6:7], codes[:, 7:8])
    return torch.cat([codes[:, 0:3], codes[:, 3:6].exp(), yaw, codes[:, 8:10]], dim=1)


def every_query(outputs: Mapping[str, np.ndarray], cfg: StreamPETRConfig) -> tuple[np.ndarray, np.ndarray]:
    """(scores [Q, classes], boxes [Q, 9]) of every query of the last layer, before the top-k and the filters: what
    another side's kept box is compared with, whether or not this side kept it."""
    logits, codes = (torch.from_numpy(np.ascontiguousarray(a, np.float32)) for a in last_layer(outputs, cfg))
    boxes = _boxes(codes)
    if cfg.use_bottom_center:
        boxes[:, 2] = boxes[:, 2] - boxes[:, 5] * 0.5
    return logits.sigmoid().numpy(), boxes.numpy()


def decode(outputs: Mapping[str, np.ndarray], cfg: StreamPETRConfig) -> Detections:
    """The frame's boxes from ``pts_head_memory``'s outputs (any backend's: the same arrays AWML's head returns)."""
    logits, codes = (torch.from_numpy(np.ascontiguousarray(a, np.float32)) for a in last_layer(outputs, cfg))
    classes = len(cfg.classes)
    scores, index = logits.sigmoid().reshape(-1).topk(cfg.max_num)
    labels, queries = index % classes, torch.div(index, classes, rounding_mode="floor")
    boxes = _boxes(codes[queries])
    low, high = torch.tensor(cfg.post_center_range[:3]), torch.tensor(cfg.post_center_range[3:])
    keep = (boxes[:, :3] >= low).all(1) & (boxes[:, :3] <= high).all(1)
    if cfg.score_threshold:  # AWML applies its coder's threshold only when it is truthy
        keep &= scores >= cfg.score_threshold
    keep &= scores > cfg.score_thres  # get_bboxes' own
    boxes = boxes[keep]
    if cfg.use_bottom_center:
        boxes[:, 2] = boxes[:, 2] - boxes[:, 5] * 0.5
    return Detections(boxes.numpy().astype(np.float32), scores[keep].numpy(), labels[keep].numpy().astype(np.int64),
                      queries[keep].numpy().astype(np.int64))
