"""StreamPETR's decoded boxes over a sequence (``SequenceSpec.compare`` and ``SequenceSpec.metric``): each side's boxes
(:func:`~model_specs.streampetr.decode.decode`) frame by frame against the reference's, and nuScenes-style mAP against
the frames' ground truth.

A box of an NMS-free decoder is a (query, class) pair: both sides decode the same queries, so a box is compared with
the other side's same pair, kept or not (its score and box read from that side's last layer), never matched by
distance. A pair kept on one side only (``boxes.one_sided``) is what a user would see differ; near the top-k cut or a
filter's edge a score within the score limit can drop it, so the count has its own limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from model_specs.detection_ap import mean_ap
from model_specs.streampetr.config import StreamPETRConfig
from model_specs.streampetr.decode import Detections, decode, every_query
from pytest_awml.device import Precision
from pytest_awml.errors import SpecError
from pytest_awml.limits import Tolerance, Verdict
from pytest_awml.metric import MetricResult
from pytest_awml.reorder import realign

HEAD = "pts_head_memory"  # the component whose outputs are decoded
TRUTH = "truth"  # a frame's ground truth, under a name no component has: gt_boxes [G, 9], gt_labels [G]


@dataclass(frozen=True)
class BoxLimits:
    """How far a target's box may sit from the reference's same (query, class) pair, over every pair either side kept."""

    centre_m: float
    size_rel: float
    yaw_rad: float
    velocity_mps: float
    score: float
    one_sided: int  # pairs kept on one side only, over the sequence
    size_floor_m: float = 0.01  # a size is compared relative to at least this
    # the share of queries that may hold another query's object (matched by centre within centre_m): the propagated
    # queries are the memory's top rows, which a near tie writes the other way round (pytest_awml.reorder)
    reordered_queries: float = 0.0


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((a - b + np.pi) % (2 * np.pi) - np.pi)


def compare_frames(refs: Sequence[Mapping], tests: Sequence[Mapping], limits: BoxLimits, cfg: StreamPETRConfig) -> list[Verdict]:
    """Every frame's boxes, the worst figure over the frames (the detail names its frame)."""
    worst: dict[str, tuple[float, int]] = {}
    pairs = one_sided = 0
    moved = 0.0
    for k, (ref, test) in enumerate(zip(refs, tests, strict=True)):
        sides = [(decode(o[HEAD], cfg), *every_query(o[HEAD], cfg)) for o in (ref, test)]
        # a test query holding the reference's query's object elsewhere (its centre there): compared as that query
        aligned = realign(sides[0][2][:, :2], sides[1][2][:, :2], Tolerance(limits.centre_m, max_reordered_rows=limits.reordered_queries,
                                                                              row_axis=0))
        source, moved = aligned.source, max(moved, aligned.moved / aligned.rows)
        as_reference = np.argsort(source)  # test query s is compared as the reference's query as_reference[s]
        kept = [{(int(q if side == 0 else as_reference[q]), int(c)) for q, c in zip(d.queries, d.labels, strict=True)}
                for side, (d, _, _) in enumerate(sides)]
        one_sided += len(kept[0] ^ kept[1])
        union = sorted(kept[0] | kept[1])
        pairs += len(union)
        if not union:
            continue
        q, c = np.array(union).T
        (_, ref_scores, ref_boxes), (_, test_scores, test_boxes) = sides
        test_scores, test_boxes = test_scores[source], test_boxes[source]
        a, b = ref_boxes[q], test_boxes[q]
        figures = {"centre_m": np.hypot(*(a[:, :2] - b[:, :2]).T).max(),
                   "size_rel": (np.abs(a[:, 3:6] - b[:, 3:6]) / np.maximum(np.abs(a[:, 3:6]), limits.size_floor_m)).max(),
                   "yaw_rad": _angle(a[:, 6], b[:, 6]).max(), "velocity_mps": np.hypot(*(a[:, 7:9] - b[:, 7:9]).T).max(),
                   "score": np.abs(ref_scores[q, c] - test_scores[q, c]).max()}
        for name, value in figures.items():
            if float(value) >= worst.get(name, (-1.0, 0))[0]:
                worst[name] = (float(value), k)
    verdicts = [Verdict(f"boxes.{name}", value, getattr(limits, name), f"worst at frame {k}; {pairs} (query, class) pair(s) kept",
                        compared=pairs) for name, (value, k) in worst.items()]
    if not worst:  # no box on either side: every figure is over nothing
        verdicts = [Verdict(f"boxes.{name}", 0.0, getattr(limits, name), "no box on either side", compared=0)
                    for name in ("centre_m", "size_rel", "yaw_rad", "velocity_mps", "score")]
    return [*verdicts, Verdict("boxes.one_sided", float(one_sided), float(limits.one_sided),
                               f"(query, class) pairs kept on one side only, over {len(refs)} frame(s)", compared=pairs),
            Verdict("boxes.reordered_queries", moved, limits.reordered_queries,
                    "the largest share of a frame's queries compared as another query (their objects swapped)", compared=pairs)]


def comparator(cfg: StreamPETRConfig, limits: Mapping[str, BoxLimits]):
    def compare(refs: Sequence[Mapping], tests: Sequence[Mapping], precision: Precision) -> list[Verdict]:
        if precision.value not in limits:
            raise SpecError("streampetr", "sequence.compare", f"no {precision.value} box limit (it gives {', '.join(limits)})",
                            "add one to BOX_LIMITS in model_specs/streampetr/spec.py")
        return compare_frames(refs, tests, limits[precision.value], cfg)

    return compare


def detections_map(detections: Sequence[Detections], frames: Sequence[Mapping], cfg: StreamPETRConfig) -> MetricResult:
    """nuScenes-style mAP of each frame's boxes against its ground truth, in the BEV square of ``pc_range``."""
    return mean_ap([(d.boxes, d.scores, d.labels) for d in detections], [_truth(f) for f in frames], cfg.classes, cfg.pc_range)


def _truth(frame: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """A frame's (gt_boxes, gt_labels); none for a frame that carries none (the metric then says it scored nothing)."""
    truth = frame.get(TRUTH)
    if truth is None:
        return np.zeros((0, 9), np.float32), np.zeros(0, np.int64)
    return np.asarray(truth["gt_boxes"], np.float32).reshape(-1, 9), np.asarray(truth["gt_labels"], np.int64)


def metric(cfg: StreamPETRConfig):
    def compute(outputs: Sequence[Mapping], frames: Sequence[Mapping]) -> MetricResult:
        return detections_map([decode(o[HEAD], cfg) for o in outputs], frames, cfg)

    return compute
