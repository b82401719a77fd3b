"""mmdet3d's own CenterPoint as the peer this spec is proven against, and the comparison.

``record`` (needs mmdet3d and mmcv's ops; run by ``tools/record_mmdet3d.py`` and by the opt-in live
test) builds mmdet3d's CenterPoint from a training config file, gives it seeded weights with
randomised BatchNorm statistics (so no layer is an identity), runs its whole predict path
(``test_step``: Det3DDataPreprocessor with mmcv's Voxelization, PillarFeatureNet, PointPillarsScatter,
SECOND, SECONDFPN, CenterHead, CenterPointBBoxCoder and circle NMS) on a densified scan and keeps
what every stage produced. ``compare`` (needs neither) runs this project's model on the same points
with the same weights, loaded strictly, and measures each stage against the recording: every CI
run does that on the recordings committed under ``tests/data/mmdet3d/``.

A full-size recording does not carry its 4.5 M weights: they come from :func:`reference_weights`
(NumPy's legacy ``RandomState``, whose streams NumPy keeps stable across versions), loaded strictly
into mmdet3d's model when recording and into this project's when comparing, with the recorded
sha256 proving both sides used the same numbers.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_specs.centerpoint.config import FULL, TINY, CenterPointConfig
from model_specs.centerpoint.decode import Detections, decode
from model_specs.centerpoint.mmconfig import TrainingConfig, read_config, to_centerpoint
from model_specs.centerpoint.model import BackboneNeckHeadExport, CenterPoint, VoxelEncoderExport, calibration_shift
from model_specs.centerpoint.scene import SceneConfig, make_scene
from model_specs.centerpoint.voxelize import decorate, densify, scatter, voxelize
from model_specs.recording import TENSOR_RTOL, agrees, array_sha256, reference_weights, scale_of, state_sha256, tensor_problems  # noqa: F401 (TENSOR_RTOL, state_sha256: re-exported)
from model_specs.recording import Recording as SharedRecording
from model_specs.recording import max_abs as _max_abs
from model_specs.seeding import randomise_batchnorms, randomise_layer_norms

HEADS = ("heatmap", "reg", "height", "dim", "rot", "vel")
HEATMAP_BIAS = "pts_bbox_head.task_heads.0.heatmap.1.bias"
HEATMAP_WEIGHT = "pts_bbox_head.task_heads.0.heatmap.1.weight"
# AWML-only registry names in its configs and the mmdet3d classes that compute the same at inference
# (CustomSeparateHead sets the heatmap bias in __init__, SeparateHead in init_weights; the focal-loss
# variant only changes training).
PEER_TYPES = {"CustomSeparateHead": "SeparateHead", "mmdet.AmpGaussianFocalLoss": "mmdet.GaussianFocalLoss"}
# What "agrees" means: tensors within TENSOR_RTOL of their scale (model_specs.recording). Boxes decoded
# from heads that close: 1e-4 m, rad, score. And a box comparison needs boxes: a recording with fewer
# proves nothing about decoding.
BOX_TOL = 1e-4
MIN_BOXES = 10
# How many cells a full-size recording keeps of each head and rows of the pillar features: enough to
# cover every decoded box and a spread of the map, small enough for git (the heads are 15 x 510 x 510).
SAMPLED = 4096


@dataclass(frozen=True)
class Plan:
    """One recording: the config file it is built from, the spec configuration that file must read as,
    the scan, and whether tensors are kept whole (tiny) or sampled (full size, for git's sake)."""

    name: str
    config: str
    spec_config: CenterPointConfig
    scene: SceneConfig
    scene_seed: int
    full_tensors: bool
    calibration_detections: int
    model_seed: int = 2024
    # Regenerated full-size weights can give heatmap logits tens above the threshold: sigmoid then rounds many
    # scores to 1.0, and boxes of equal score come in any order (from top-k and from circle NMS alike). A spread
    # scales the heatmap's final conv so that the best logit lies at most this far above the calibrated
    # threshold's; None (the first recordings) leaves it as drawn.
    heatmap_spread: float | None = None


PLANS = (
    Plan("centerpoint-tiny", "centerpoint_tiny.py", TINY, SceneConfig(max_range=36.3, rings=32, azimuth_steps=1024, objects=12),
         scene_seed=11, full_tensors=True, calibration_detections=40),
    # A 64-ring scan keeps the file small; the grid, the pillar limit and the model are j6gen2's.
    Plan("centerpoint", "centerpoint_j6gen2.py", FULL, SceneConfig(max_range=122.4, rings=64, azimuth_steps=1024, objects=60),
         scene_seed=12, full_tensors=False, calibration_detections=120),
)


class Recording(SharedRecording):
    """A CenterPoint recording: a full-size one regenerates its weights and carries the calibrated
    heatmap bias as ``heatmap_bias`` (the layout these files were first written in), and the heatmap's
    scaled final conv, where the recording scaled it, as a stored ``state/`` tensor."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights mmdet3d ran with: stored (tiny) or regenerated (full size) with the stored overrides."""
        stored = self.stored_state()
        if "heatmap_bias" not in self.arrays:
            return stored
        weights = self.meta["weights"]
        state = reference_weights([(k, tuple(s)) for k, s in self.meta["state_shapes"]], weights["seed"])
        state[HEATMAP_BIAS] = torch.from_numpy(np.array(self.arrays["heatmap_bias"]))
        state.update(stored)
        return state

    @property
    def full_tensors(self) -> bool:
        return "head/heatmap" in self.arrays and self.arrays["head/heatmap"].ndim == 4


# -- the peer (mmdet3d, imported only here) ------------------------------------------------------------

def peer_model_dict(config: TrainingConfig) -> dict:
    """The config's model section with AWML-only registry names replaced by mmdet3d's."""
    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (PEER_TYPES.get(v, v) if k == "type" else swap(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    return swap(copy.deepcopy(dict(config.values["model"])))


def build_peer(config: TrainingConfig, seed: int, *, randomise_norms: bool = True, model: Mapping[str, Any] | None = None):
    """mmdet3d's CenterPoint from the config: mmdet3d's own init (seeded), BatchNorms randomised unless
    ``randomise_norms`` is False (training starts from mmdet3d's init). ``model`` overrides the config's
    model section (already passed through :func:`peer_model_dict`)."""
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    from mmengine.config import ConfigDict
    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.WARNING)  # init_weights reports every parameter at INFO
    register_all_modules()
    torch.manual_seed(seed)
    peer = MODELS.build(ConfigDict(model or peer_model_dict(config)))  # mmdet3d reads sections as attributes
    peer.init_weights()
    if randomise_norms:
        randomise_batchnorms(peer, seed)
        randomise_layer_norms(peer, seed + 1)  # ConvNeXt_PC's; CenterPoint with SECOND has none
    return peer.eval()


def run_peer(model, points: torch.Tensor) -> dict[str, Any]:
    """mmdet3d's predict path (``test_step``) on one cloud, with every stage's output captured."""
    from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes

    seen: dict[str, Any] = {}
    hooks = [
        model.data_preprocessor.voxel_layer.register_forward_hook(lambda m, i, o: seen.__setitem__("voxelization", o)),
        model.pts_voxel_encoder.register_forward_hook(lambda m, i, o: seen.__setitem__("pillar_features", o)),
        model.pts_middle_encoder.register_forward_hook(lambda m, i, o: seen.__setitem__("canvas", o)),
        model.pts_bbox_head.task_heads[0].register_forward_hook(lambda m, i, o: seen.__setitem__("heads", o)),
    ]
    sample = Det3DDataSample(metainfo={"box_type_3d": LiDARInstance3DBoxes, "sample_idx": 0})
    try:
        with torch.no_grad():
            (result,) = model.test_step({"inputs": {"points": [points]}, "data_samples": [sample]})
    finally:
        for hook in hooks:
            hook.remove()
    voxels, coors, num_points = seen["voxelization"]
    predicted = result.pred_instances_3d
    return {
        "voxels": voxels, "coors": coors, "num_points": num_points, "pillar_features": seen["pillar_features"],
        "canvas": seen["canvas"], "heads": {name: seen["heads"][name] for name in HEADS},
        "boxes": predicted.bboxes_3d.tensor, "scores": predicted.scores_3d, "labels": predicted.labels_3d,
    }


def record_plan(plan: Plan, configs: Path) -> tuple[Recording, CenterPointConfig]:
    """Build mmdet3d's model from ``configs / plan.config`` through ``--awml-config``'s reader and record it."""
    config = read_config(Path(configs) / plan.config)
    cfg = to_centerpoint(config, plan.spec_config)
    scene = dataclasses.replace(plan.scene, past_sweeps=cfg.past_sweeps, sweep_interval_s=cfg.sweep_interval_s)
    points = densify(make_scene(plan.scene_seed, scene).sweeps, cfg)
    recording = record(config, cfg, points, seed=plan.model_seed, full_tensors=plan.full_tensors,
                       calibration_detections=plan.calibration_detections, heatmap_spread=plan.heatmap_spread)
    meta = {**recording.meta, "config": plan.config, "scene": dataclasses.asdict(scene), "scene_seed": plan.scene_seed}
    return Recording(recording.arrays, meta), cfg


def record(config: TrainingConfig, cfg: CenterPointConfig, points: torch.Tensor, *, seed: int, full_tensors: bool,
           calibration_detections: int, heatmap_spread: float | None = None) -> Recording:
    """Run mmdet3d on ``points`` (already densified) and keep each stage.

    The heatmap bias is shifted once so that ``calibration_detections`` cells of this scan pass the
    score threshold: seeded weights otherwise decode to no box or to hundreds, and a box comparison
    on no box proves nothing. ``full_tensors`` stores weights, voxels, pillars and heads whole;
    otherwise (full size) weights come from :func:`reference_weights` and tensors are sampled.
    """
    import mmcv
    import mmdet3d
    import mmengine

    peer = build_peer(config, seed)
    if not full_tensors:
        shapes = [(k, tuple(v.shape)) for k, v in peer.state_dict().items()]
        peer.load_state_dict(reference_weights(shapes, seed), strict=True)
    parameters = dict(peer.named_parameters())
    bias = parameters[HEATMAP_BIAS]
    with torch.no_grad():
        heatmap = run_peer(peer, points)["heads"]["heatmap"]
        if heatmap_spread is not None:  # the final conv is linear: scaling it scales every logit
            ranked = torch.sort(heatmap.flatten(), descending=True).values
            scale = min(1.0, heatmap_spread / float(ranked[0] - ranked[calibration_detections]))
            parameters[HEATMAP_WEIGHT].mul_(scale)
            bias.mul_(scale)
            heatmap = heatmap * scale
        bias.add_(calibration_shift(heatmap, calibration_detections, cfg.score_threshold))
    out = run_peer(peer, points)
    state = {k: v.detach().clone() for k, v in peer.state_dict().items()}
    arrays: dict[str, np.ndarray] = {"points": points.numpy(), "coors": out["coors"].int().numpy(),
                                     "num_points": out["num_points"].int().numpy(), "boxes": out["boxes"].float().numpy(),
                                     "scores": out["scores"].float().numpy(), "labels": out["labels"].long().numpy()}
    voxels, pillars = out["voxels"].numpy(), out["pillar_features"].numpy()
    heads = {name: tensor.numpy() for name, tensor in out["heads"].items()}
    if full_tensors:
        arrays.update({f"state/{k}": v.numpy() for k, v in state.items()})
        arrays.update(voxels=voxels, pillar_features=pillars, **{f"head/{n}": v for n, v in heads.items()})
    else:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(len(pillars), min(SAMPLED, len(pillars)), replace=False))
        detected = np.stack(np.unravel_index(np.argsort(-heads["heatmap"][0].max(axis=0), axis=None)[: cfg.max_detections_pre_nms],
                                             heads["heatmap"].shape[2:]), axis=1)
        spread = np.stack([rng.integers(0, n, SAMPLED) for n in heads["heatmap"].shape[2:]], axis=1)
        cells = np.unique(np.concatenate([detected, spread]), axis=0)
        if heatmap_spread is not None:
            arrays[f"state/{HEATMAP_WEIGHT}"] = state[HEATMAP_WEIGHT].numpy()
        arrays.update(pillar_rows=rows, pillar_features=pillars[rows], head_cells=cells,
                      heatmap_bias=state[HEATMAP_BIAS].numpy(),
                      **{f"head/{n}": v[0][:, cells[:, 0], cells[:, 1]].T for n, v in heads.items()})
    meta = {
        "versions": {"mmdet3d": mmdet3d.__version__, "mmcv": mmcv.__version__, "mmengine": mmengine.__version__,
                     "torch": torch.__version__, "numpy": np.__version__},
        "seed": seed,
        "calibration_detections": calibration_detections,
        "heatmap_spread": heatmap_spread,
        "state_shapes": [[k, list(v.shape)] for k, v in state.items()],
        "state_sha256": state_sha256(state),
        "voxels_sha256": array_sha256(voxels),
        "weights": {"source": "mmdet3d init_weights + randomised BatchNorm" if full_tensors else
                    "model_specs.centerpoint.mmdet3d_peer.reference_weights", "seed": seed},
        "boxes": "mmdet3d predict_by_feat: x, y, z of the bottom face, l, w, h, yaw, vx, vy",
    }
    return Recording(arrays, meta)


# -- the comparison (no mmdet3d needed) -------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """This project's model against a recording: each figure is a max |difference|."""

    voxels_identical: bool
    coors_identical: bool
    num_points_identical: bool
    pillar_features: float
    heads: Mapping[str, float]
    head_scale: Mapping[str, float]
    recorded_boxes: int
    decode_of_recorded_heads: BoxDifference
    end_to_end: BoxDifference
    pillar_scale: float = 1.0

    def problems(self) -> list[str]:
        """Every stage that does not agree within TENSOR_RTOL / BOX_TOL, as a sentence; empty when all do."""
        found = [f"{what} differ from mmcv's" for what, same in (("voxels", self.voxels_identical), ("voxel coordinates", self.coors_identical),
                                                                 ("points per voxel", self.num_points_identical)) if not same]
        found += tensor_problems({"pillar features": self.pillar_features}, {"pillar features": self.pillar_scale})
        found += tensor_problems(self.heads, self.head_scale, "head ")
        if self.recorded_boxes < MIN_BOXES:
            found.append(f"the recording has {self.recorded_boxes} boxes, fewer than {MIN_BOXES}: re-record with more calibration_detections")
        for stage, boxes in (("decoding mmdet3d's heads", self.decode_of_recorded_heads), ("end to end", self.end_to_end)):
            if boxes.count[0] != boxes.count[1] or not boxes.labels_equal or boxes.worst > BOX_TOL:
                found.append(f"{stage}: {boxes}")
        return found


@dataclass(frozen=True)
class BoxDifference:
    """Our boxes against mmdet3d's, matched in ``by_score`` order (both are sorted by score by circle NMS)."""

    count: tuple[int, int]
    labels_equal: bool
    centre: float = math.inf
    # our z (centre) against mmdet3d's bottom + height / 2, per metre of height above 1 m: mmdet3d keeps the bottom
    # in float32, so a box of height h has its centre to ~h x 6e-8 (seeded full-size heads reach heights of 1e20 m)
    z_centre: float = math.inf
    size: float = math.inf
    yaw: float = math.inf
    score: float = math.inf
    velocity: float = math.inf

    @property
    def worst(self) -> float:
        return max(self.centre, self.z_centre, self.size, self.yaw, self.score, self.velocity)


def by_score(scores: np.ndarray, labels: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The order boxes are matched in: score, highest first; boxes of equal score by label, then x, then y.

    Both sides come out of circle NMS sorted by score, but the order among boxes of exactly the same score is the
    sort's and the top-k's (it changed with the machine's thread count on the full-size ConvNeXtPC recording: two
    boxes of one label and score, 3.2 m apart, swapped). Ties are put in an order both sides share; a box of a
    different score still moves nothing."""
    return np.lexsort((boxes[:, 1], boxes[:, 0], labels, -scores))


def box_difference(ours: Detections, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> BoxDifference:
    count = (len(ours.scores), len(scores))
    if count[0] != count[1]:
        return BoxDifference(count, False)
    if not count[0]:
        return BoxDifference(count, True, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    mine = by_score(ours.scores, ours.labels, ours.boxes)
    ours = dataclasses.replace(ours, boxes=ours.boxes[mine], scores=ours.scores[mine], labels=ours.labels[mine])
    theirs = by_score(scores, labels, boxes)
    boxes, scores, labels = boxes[theirs], scores[theirs], labels[theirs]
    theirs_z = boxes[:, 2] + boxes[:, 5] / 2
    yaw = np.abs((ours.boxes[:, 6] - boxes[:, 6] + np.pi) % (2 * np.pi) - np.pi)
    return BoxDifference(
        count, bool(np.array_equal(ours.labels, labels)),
        centre=float(np.abs(ours.boxes[:, :2] - boxes[:, :2]).max()),
        z_centre=float((np.abs(ours.boxes[:, 2] - theirs_z) / np.maximum(1.0, boxes[:, 5])).max()),
        size=float(np.abs(ours.boxes[:, 3:6] - boxes[:, 3:6]).max()),
        yaw=float(yaw.max()),
        score=float(np.abs(ours.scores - scores).max()),
        velocity=float(np.abs(ours.boxes[:, 7:9] - boxes[:, 7:9]).max()),
    )


def recording_differences(live: Recording, committed: Recording) -> list[str]:
    """What a live recording does not share with a committed one, by name (empty when it is the same recording).

    Exact where the computation is a copy (the points, voxels and state's keys and shapes); float tensors within
    TENSOR_RTOL of their scale, because the heatmap bias is calibrated on the peer's own output and so differs in
    its last bits across CPUs. Both crosschecks (mmdet3d's CenterPoint and AWML's family) hold a live run to this."""
    found = [k for k in ("points", "coors", "num_points", "labels") if not np.array_equal(live.arrays[k], committed.arrays[k])]
    found += [k for k in ("voxels_sha256", "state_shapes") if live.meta[k] != committed.meta[k]]
    live_state, committed_state = live.state_dict(), committed.state_dict()
    if live_state.keys() != committed_state.keys():
        found.append("state_dict keys")
    else:
        found += [k for k in committed_state if not _agree(live_state[k], committed_state[k])]
    found += [k for k in ("pillar_features", "boxes", "scores", *(f"head/{h}" for h in HEADS))
              if not _agree(live.arrays[k], committed.arrays[k])]
    return found


def _agree(live: Any, committed: Any) -> bool:
    return agrees(_max_abs(np.asarray(live), np.asarray(committed)), scale_of(np.asarray(committed)))


def _heads_at(recording: Recording, heads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Our head tensors in the recording's layout: whole, or at its sampled cells."""
    if recording.full_tensors:
        return dict(heads)
    y, x = recording.arrays["head_cells"].T
    return {n: v[0][:, y, x].T for n, v in heads.items()}


def compare(recording: Recording, cfg: CenterPointConfig) -> Comparison:
    """Run this project's CenterPoint (weights loaded strictly) on the recorded points, stage by stage."""
    model = CenterPoint(cfg).eval()
    model.load_state_dict(recording.state_dict(), strict=True)
    arrays = recording.arrays
    points = torch.from_numpy(np.array(arrays["points"]))
    voxels = voxelize(points, cfg)
    with torch.no_grad():
        pillars = VoxelEncoderExport(model)(decorate(voxels, cfg))
        heads = dict(zip(HEADS, (h.numpy() for h in BackboneNeckHeadExport(model)(scatter(pillars, voxels.coors, cfg))), strict=True))
    pillars = pillars[:, 0].numpy()
    if "pillar_rows" in arrays:
        pillars = pillars[arrays["pillar_rows"]] if len(pillars) > arrays["pillar_rows"].max() else pillars[:0]
    ours_at, theirs = _heads_at(recording, heads), {n: np.array(arrays[f"head/{n}"]) for n in HEADS}
    recorded = {k: np.array(arrays[k]) for k in ("boxes", "scores", "labels")}
    if recording.full_tensors:
        recorded_heads = theirs
    else:  # decode needs whole maps: ours, with mmdet3d's values written into every recorded cell
        y, x = arrays["head_cells"].T
        recorded_heads = {n: v.copy() for n, v in heads.items()}
        for n in HEADS:
            recorded_heads[n][0][:, y, x] = theirs[n].T
    return Comparison(
        voxels_identical=array_sha256(voxels.features.numpy()) == recording.meta["voxels_sha256"],
        coors_identical=np.array_equal(voxels.coors.numpy(), arrays["coors"]),
        num_points_identical=np.array_equal(voxels.num_points.numpy(), arrays["num_points"]),
        pillar_features=_max_abs(pillars, arrays["pillar_features"]),
        pillar_scale=float(np.abs(arrays["pillar_features"]).max()),
        heads={n: _max_abs(ours_at[n], theirs[n]) for n in HEADS},
        head_scale={n: float(np.abs(theirs[n]).max()) for n in HEADS},
        recorded_boxes=len(recorded["scores"]),
        decode_of_recorded_heads=box_difference(decode(recorded_heads, cfg), **recorded),
        end_to_end=box_difference(decode(heads, cfg), **recorded),
    )

