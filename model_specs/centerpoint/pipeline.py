"""CenterPoint end to end: sweeps → densified points → voxels → encoder → scatter → backbone/head → boxes.

The two exported graphs run on whatever runners the pipeline is given; every other stage is the
shared PyTorch code below, identical for every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch

from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.decode import Detections
from model_specs.centerpoint.graphs import GraphedPreprocess, Replayed
from model_specs.centerpoint.scene import Scene
from model_specs.centerpoint.voxelize import Frame, UploadedSweeps, assemble, decorate, frame, scatter_at, scatter_index, voxelize
from pytest_awml.device import Precision
from pytest_awml.errors import DataError
from pytest_awml.pipeline import Check, Pipeline, PipelineResult, StageClock
from pytest_awml.runners.base import Runner

STAGES = ("preprocess", "voxel_encoder", "middle_encoder", "backbone_head", "postprocess")


Decoder = Callable[[Mapping[str, np.ndarray]], Detections]


def pad_pillars(features: torch.Tensor, count: int) -> torch.Tensor:
    """Zero pillars up to ``count``: Autoware fills its encoder's fixed [max_voxel_size, ...] buffer so."""
    return torch.cat([features, features.new_zeros((count - features.shape[0], *features.shape[1:]))])


class CenterPointPipeline(Pipeline):
    """``encoder``/``head`` name the runners to use (the bundle's graphs under their own names);
    ``pad_to`` pads the encoder's input to a fixed pillar count (Autoware's fixed engine shape); the
    decoder turns the head's outputs into boxes (mmdet3d's, or the node's for the bundle). Like Autoware's
    densification, it keeps the sweeps it uploaded on the device for the frames that follow; on CUDA the
    pre-processing replays as one CUDA graph (:mod:`model_specs.centerpoint.graphs`) and the encoder runs on the
    graph's buffers, on as many rows as a frame like the graph's last one needs (``Replayed.rows``): the rows past
    the voxel count are zero and never scattered, and the host queues every stage without waiting for the count
    (Autoware reads it back first, to size its encoder's input; here that read would leave the device idle while
    the host launches the encoder). A frame with more voxels than those rows runs again. An encoder that runs
    synchronously (``Runner.cuda_stream()`` None: ONNX Runtime's CUDA runner) waits
    for torch's work before it runs anyway; it gets the voxels alone, the count read first, rather than the
    padding too."""

    stages = STAGES

    def __init__(self, cfg: CenterPointConfig, runners: Mapping[str, Runner], decoder: Decoder, *,
                 encoder: str = "pts_voxel_encoder", head: str = "pts_backbone_neck_head", pad_to: int | None = None) -> None:
        self.cfg = cfg
        self.encoder = runners[encoder]
        self.backbone = runners[head]
        self.decoder = decoder
        self.pad_to = pad_to
        self.uploaded = UploadedSweeps()
        self.graphed = GraphedPreprocess(cfg, pad_to)  # on CUDA its pillars are written into the padded input

    def __call__(self, sample: Scene) -> PipelineResult:
        """Every stage on the encoder's device: the sweeps go up once, the boxes come down once (on CUDA no tensor
        crosses to the host between stages, and with an asynchronous encoder the host waits for nothing before the
        boxes; stages are CUDA-event timed). A frame with more voxels than its encoder was given rows for runs again,
        with rows for its count, or with a graph captured for it when the graph had no room (again if another thread's
        frame changed that graph meanwhile)."""
        device = torch.device(self.encoder.target.device.torch)
        while (result := self._run(sample, device)) is None:
            pass
        return result

    def _run(self, sample: Scene, device: torch.device) -> PipelineResult | None:
        """One pass; None when the encoder lacked rows (the next pass has them) or the graph lacked room (it is dropped:
        the next pass captures one sized for the frame)."""
        clock, cfg = StageClock(device), self.cfg
        with ExitStack() as held:
            with clock.stage("preprocess"):
                inputs = frame(sample.sweeps, cfg, device, self.uploaded)
                unchecked = None  # a replay whose count is read after the boxes
                if device.type == "cuda":  # the graph's own buffers, valid until the block ends
                    replayed = held.enter_context(self.graphed(inputs))
                    if self.encoder.cuda_stream() is None:  # a synchronous runtime waits for torch's work anyway:
                        rows = _counted(replayed, inputs, cfg)  # it gets the voxels alone, not the padding
                        if rows > replayed.capacity:
                            return None
                    else:  # the rows a frame like the graph's last one needs, checked after the boxes
                        rows, unchecked = replayed.rows, replayed
                    features, index = replayed.features[:rows], replayed.index[:rows]
                    if replayed.padded is not None:  # the same rows, then zeros to pad_to: no copy
                        features = replayed.padded
                else:
                    voxels = voxelize(assemble(inputs, cfg), cfg)
                    _require_voxels(voxels.coors.shape[0], inputs, cfg)
                    features, index = decorate(voxels, cfg), scatter_index(voxels.coors, cfg.pfn_channels[-1], cfg)
                if self.pad_to is not None and features.shape[0] != self.pad_to:
                    features = pad_pillars(features, self.pad_to)
            with clock.stage("voxel_encoder", self.encoder):
                pillars = self.encoder.run_tensors({"input_features": features})["pillar_features"]
            with clock.stage("middle_encoder"):
                canvas = scatter_at(pillars[: index.shape[0]], index, cfg)  # padding rows land where nothing reads
            with clock.stage("backbone_head", self.backbone):
                heads = self.backbone.run_tensors({"spatial_features": canvas})
            with clock.stage("postprocess"):
                detections = self.decoder(heads)
            if unchecked is not None and _counted(unchecked, inputs, cfg) > unchecked.rows:  # its copy is long done
                return None
        return PipelineResult(detections, clock.stages_ms)


def _counted(replayed: Replayed, inputs: Frame, cfg: CenterPointConfig) -> int:
    """The replay's voxel count, read back; none is the named error."""
    count = replayed.voxels
    _require_voxels(count, inputs, cfg)
    return count


def _require_voxels(count: int, inputs: Frame, cfg: CenterPointConfig) -> None:
    if count == 0:
        raise DataError(f"no point of the cloud ({inputs.points} points) lies in the range {cfg.point_cloud_range}")


@dataclass(frozen=True)
class DetectionLimits:
    """What 'the same boxes' means at one precision. Limits are inclusive upper bounds."""

    match_distance_m: float = 1.0
    centre_m: float = 0.05
    size_rel: float = 0.01
    yaw_rad: float = 0.01
    score: float = 0.01
    unmatched_score: float = 0.3  # no box above this score may lack a partner
    threshold_flips: int = 0
    near_threshold: float = 0.05  # heatmap probabilities compared within this band of the threshold
    size_floor_m: float = 0.01  # a size is compared relative to at least this: exp(dim) underflows to 0 far from objects


def _size_rel(ref: np.ndarray, test: np.ndarray, floor_m: float) -> np.ndarray:
    """|test - ref| relative to ref, or to ``floor_m`` where ref is smaller (0/0 is no answer)."""
    return np.abs(ref - test) / np.maximum(np.abs(ref), floor_m)


def _angle_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((a - b + np.pi) % (2 * np.pi) - np.pi)


def match(ref: Detections, test: Detections, max_distance: float) -> list[tuple[int, int]]:
    """Greedy BEV-centre matching, reference boxes in score order, same class only."""
    pairs, used = [], set()
    for i in np.argsort(-ref.scores, kind="stable"):
        candidates = [j for j in range(len(test.scores)) if j not in used and test.labels[j] == ref.labels[i]]
        if not candidates:
            continue
        d = np.hypot(test.boxes[candidates, 0] - ref.boxes[i, 0], test.boxes[candidates, 1] - ref.boxes[i, 1])
        best = int(np.argmin(d))
        if d[best] <= max_distance:
            pairs.append((int(i), candidates[best]))
            used.add(candidates[best])
    return pairs


def _candidates(ref: Detections, test: Detections) -> np.ndarray:
    """(class, y, x) of the heatmap cells in either side's top-k, sorted; shape [T, 3]."""
    cells = {tuple(c) for c in ref.candidate_cells} | {tuple(c) for c in test.candidate_cells}
    return np.array(sorted(cells), dtype=np.int64).reshape(-1, 3)


def threshold_flips(ref: Detections, test: Detections, threshold: float) -> int:
    """Heatmap cells in either side's top-k whose probability is above the threshold on one side only."""
    idx = _candidates(ref, test)
    if not len(idx):
        return 0
    a = ref.probabilities[idx[:, 0], idx[:, 1], idx[:, 2]] > threshold
    b = test.probabilities[idx[:, 0], idx[:, 1], idx[:, 2]] > threshold
    return int((a != b).sum())


def compare_detections(refs: Sequence[Detections], tests: Sequence[Detections], limits: DetectionLimits, threshold: float) -> list[Check]:
    centre, size, yaw, score, unmatched, flips, matched, total, cells, banded = [], [], [], [], [], 0, 0, 0, 0, 0
    near, head_size, head_yaw = [], [], []
    for ref, test in zip(refs, tests, strict=True):
        ref, test = ref.host(), test.host()
        pairs = match(ref, test, limits.match_distance_m)
        matched += len(pairs)
        total += max(len(ref.scores), len(test.scores))
        if pairs:
            i, j = np.array(pairs).T
            centre.append(np.hypot(*(ref.boxes[i, :2] - test.boxes[j, :2]).T).max())
            size.append(_size_rel(ref.boxes[i, 3:6], test.boxes[j, 3:6], limits.size_floor_m).max())
            yaw.append(_angle_diff(ref.boxes[i, 6], test.boxes[j, 6]).max())
            score.append(np.abs(ref.scores[i] - test.scores[j]).max())
        lonely_ref = np.setdiff1d(np.arange(len(ref.scores)), [p[0] for p in pairs])
        lonely_test = np.setdiff1d(np.arange(len(test.scores)), [p[1] for p in pairs])
        unmatched.append(max([0.0, *ref.scores[lonely_ref].tolist(), *test.scores[lonely_test].tolist()]))
        flips += threshold_flips(ref, test, threshold)
        band = (np.abs(ref.probabilities - threshold) <= limits.near_threshold) | (np.abs(test.probabilities - threshold) <= limits.near_threshold)
        banded += int(band.sum())
        near.append(np.abs(ref.probabilities - test.probabilities)[band].max() if band.any() else 0.0)
        # decoded heads where boxes can come from (either side's top-k): elsewhere rot is near (0, 0)
        # and its angle is noise that no deployment ever reads
        c, y, x = _candidates(ref, test).T
        cells += len(c)
        head_size.append(_size_rel(ref.sizes[:, y, x], test.sizes[:, y, x], limits.size_floor_m).max() if len(c) else 0.0)
        head_yaw.append(_angle_diff(ref.yaws[y, x], test.yaws[y, x]).max() if len(c) else 0.0)
    worst = lambda xs: float(max(xs)) if xs else 0.0  # noqa: E731
    boxes = f"{matched} matched of {total}"
    return [
        Check("boxes.centre_m", worst(centre), limits.centre_m, boxes, compared=matched),
        Check("boxes.size_rel", worst(size), limits.size_rel, boxes, compared=matched),
        Check("boxes.yaw_rad", worst(yaw), limits.yaw_rad, boxes, compared=matched),
        Check("boxes.score", worst(score), limits.score, boxes, compared=matched),
        Check("boxes.unmatched_max_score", worst(unmatched), limits.unmatched_score, "highest score of a box without a partner",
              compared=total),
        Check("boxes.threshold_flips", float(flips), float(limits.threshold_flips), f"score threshold {threshold}", compared=cells),
        # no cell near the threshold is a fine answer, not an empty comparison: the count is said, not gated
        Check("heads.prob_near_threshold", worst(near), limits.score,
              f"|Δ sigmoid(heatmap)| within ±{limits.near_threshold} of the threshold ({banded} cells)"),
        Check("heads.size_rel", worst(head_size), limits.size_rel, "exp(dim), relative, at top-k cells", compared=cells),
        Check("heads.yaw_rad", worst(head_yaw), limits.yaw_rad, "atan2(rot) at top-k cells", compared=cells),
    ]


def comparator(score_threshold: float, limits: Mapping[str, DetectionLimits]):
    """Detection parity at ``score_threshold`` (the decoder's: mmdet3d's, or the node's minimum score)."""
    def compare(refs: Sequence[Detections], tests: Sequence[Detections], precision: Precision) -> list[Check]:
        return compare_detections(refs, tests, limits[precision.value], score_threshold)

    return compare
