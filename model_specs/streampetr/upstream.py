"""AWML's StreamPETR (its own ``Petr3D``, ``StreamPETRHead``, ``PETRTemporalTransformer``, ``CPFPN``, ``FocalHead`` on
mmdet3d and mmdet's ResNet) run through AWML's own deploy containers (``deploy/containers.py``: TrtEncoderContainer,
TrtPositionEmbeddingContainer, TrtPtsHeadContainer) over a short drive, as the peer the ``streampetr`` specs are
proven against.

``record_plan`` (needs mmdet3d, mmdet, mmengine, mmcv without compiled ops and AWML's ``projects/StreamPETR``
importable; run by ``tools/record_upstream.py`` and the opt-in live test) builds AWML's model from a training config
through ``--awml-config``'s reader with the deploy script's change (the decoder's attentions made
``PETRMultiheadAttention``), gives it regenerated weights, normalises the synthetic frames with ``mmcv.imnormalize``
(what AWML's ``NormalizeMultiviewImage`` calls) and runs the three containers frame after frame, the memory carried
by the host's update between frames (the spec's ``between``). AWML's package ``__init__`` imports its datasets
(mmpretrain, nuscenes): the models are imported module by module instead, the package registered without running it.
``compare`` (needs none of them) loads the recorded weights strictly into this project's ``Petr3D`` and runs its
sections on the same frames and initial memory, on its own memory. Each frame's boxes as AWML decodes them
(``get_bboxes`` through its ``NMSFreeCoder``) are recorded too; ``decode_differences`` holds this project's decode of the
same recorded head outputs to them.

A full-size plan (``sampled``) keeps the arrays above :data:`WHOLE_LIMIT` values (image features, position embeddings,
the decoder's states, the memory's embeddings: megabytes each) as ``sampled`` seeded positions of the flattened array
(``index/<key>``) and the whole array's max |value|, mean and standard deviation (``stats/<key>``, float64): the positions
are drawn from the seed and the size, not from the values, so another CPU's last-ulp differences cannot move them; the
statistics hold every value. The head's scores and boxes (what the decode reads) are kept whole.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model_specs.mmconfig import read_config
from model_specs.recording import REGENERATED, Recording, array_sha256, max_abs, reference_weights, scale_of, state_sha256, tensor_problems
from model_specs.streampetr import data
from model_specs.streampetr.config import FULL, TINY, StreamPETRConfig
from model_specs.streampetr.decode import BOXES, SCORES, decode
from model_specs.streampetr.head import ExtractImgFeat, Petr3D, PositionEmbedding, PtsHeadMemory
from model_specs.streampetr.mmconfig import to_streampetr
from model_specs.streampetr.spec import HOST, MEMORY, between, initial_memory

PROJECT = "projects/StreamPETR"
PACKAGE = "projects.StreamPETR.stream_petr"
MODULES = ("core.bbox.assigners", "core.bbox.coders", "core.bbox.match_costs", "models.necks.cp_fpn", "models.utils.petr_transformer",
           "models.dense_heads.focal_head", "models.dense_heads.streampetr_head", "models.detectors.petr3d")
CONTAINERS = "projects.StreamPETR.deploy.containers"
HEAD_OUT = ("all_cls_scores", "all_bbox_preds", *(f"post_memory_{m}" for m in MEMORY), "reference_points", "tgt", "temp_memory", "temp_pos",
            "query_pos", "query_pos_in", "outs_dec")
EVERY_FRAME = ("all_cls_scores", "all_bbox_preds", *(f"post_memory_{m}" for m in MEMORY))  # the rest: the first frame's only
DECODED = ("decoded_boxes", "decoded_scores", "decoded_labels")  # AWML's get_bboxes, every frame
# constants the head derives from its config (depth bins, the first frame's pseudo points, ranges): stored whole, as AWML made them
FROZEN = ("code_weights", "match_costs", "pc_range", "position_range", "coords_d", "pseudo_reference_points")
# a sampled plan keeps arrays up to this many values whole: the head's scores and boxes at full size (54 000 values)
WHOLE_LIMIT = 65_536
INDEX, STATS = "index/", "stats/"


@dataclass(frozen=True)
class Plan:
    name: str
    config: str  # relative to tests/data/configs/awml
    spec_config: StreamPETRConfig
    frames: int
    drive_seed: int
    model_seed: int = 2024
    sampled: int | None = None  # positions kept of an array above WHOLE_LIMIT values (None: every array whole)


# full size: two frames prove the memory carry; 4 096 positions of the large arrays keep the file ~0.9 MB (whole: ~25 MB)
PLANS = (Plan("streampetr-tiny", "streampetr_tiny.py", TINY, frames=2, drive_seed=41),
         Plan("streampetr", "streampetr_resnet50_480x640.py", FULL, frames=2, drive_seed=43, sampled=4096))


def kept(key: str, value: np.ndarray, sampled: int | None, seed: int) -> dict[str, np.ndarray]:
    """``value`` whole, or (a large one in a sampled plan) its values at seeded positions, the positions and its statistics."""
    if sampled is None or value.size <= WHOLE_LIMIT:
        return {key: value}
    flat = value.reshape(-1)
    index = np.sort(np.random.default_rng(seed).choice(flat.size, sampled, replace=False)).astype(np.int32)
    return {key: flat[index], f"{INDEX}{key}": index, f"{STATS}{key}": statistics(flat)}


def statistics(value: np.ndarray) -> np.ndarray:
    """max |value|, mean, standard deviation, in float64: what a sampled array's unsampled values are held to."""
    wide = np.asarray(value, np.float64)
    return np.array([np.abs(wide).max(initial=0.0), wide.mean(), wide.std()])


def import_awml_models(awml_root: Path | None = None) -> None:
    """AWML's StreamPETR model modules, registered in mmdet3d's registry, without the package ``__init__`` (datasets)."""
    import mmdet.models  # noqa: F401 (registers mmdet's modules)
    import mmdet3d.models  # noqa: F401

    root = Path(awml_root) if awml_root is not None else next(Path(p) for p in sys.path if (Path(p) / PROJECT).is_dir())
    for name, folder in (("projects", root / "projects"), ("projects.StreamPETR", root / PROJECT), (PACKAGE, root / PROJECT / "stream_petr")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            package.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
            sys.modules[name] = package
    for module in MODULES:
        importlib.import_module(f"{PACKAGE}.{module}")


def build_peer(values: Mapping):
    """AWML's Petr3D from the config's model section with ``deploy/torch2onnx.py``'s change (both decoder attentions
    ``PETRMultiheadAttention``); the backbone named ``mmdet.ResNet`` (the config's bare ``ResNet`` is mmdet's, which
    mmdet3d's registry reaches through AWML's runtime scope), no pretrained weights to fetch."""
    from mmdet3d.registry import MODELS
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope

    model = dict(values["model"])
    head = dict(model["pts_bbox_head"])
    decoder = dict(head["transformer"]["decoder"])
    layers = dict(decoder["transformerlayers"])
    layers["attn_cfgs"] = [{**a, "type": "PETRMultiheadAttention"} for a in layers["attn_cfgs"]]
    head["transformer"] = {**head["transformer"], "decoder": {**decoder, "transformerlayers": layers}}
    model["pts_bbox_head"] = head
    model["img_backbone"] = {**model["img_backbone"], "type": "mmdet.ResNet", "pretrained": None}
    with DefaultScope.overwrite_default_scope("mmdet3d"):
        peer = MODELS.build(ConfigDict(model))
    peer.eval()  # AWML's Petr3D.eval returns nothing
    return peer


def seeded_state(peer, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[tuple[str, tuple[int, ...]]]]:
    """(the whole state, the overrides stored whole, the shapes the weights are regenerated from): regenerated weights,
    the head's frozen constants as AWML built them, the query reference points uniform in the unit cube as AWML's
    ``init_weights`` draws them."""
    state = peer.state_dict()
    frozen = {k: v.detach().clone() for k, v in state.items() if k.rsplit(".", 1)[-1] in FROZEN}
    shapes = [(k, tuple(v.shape)) for k, v in state.items() if k not in frozen]
    weights = reference_weights(shapes, seed)
    key = "pts_bbox_head.reference_points.weight"
    overrides = {**frozen, key: torch.from_numpy(np.random.RandomState(seed + 1).random_sample(tuple(state[key].shape)).astype(np.float32))}
    return {**weights, **overrides}, overrides, shapes


def normalised(frames: list[data.Frame], cfg: StreamPETRConfig, values: Mapping, seed: int) -> list[np.ndarray]:
    """Each frame's images rendered as the project renders them, normalised by ``mmcv.imnormalize`` with the config's
    ``img_norm_cfg`` (AWML's NormalizeMultiviewImage), [1, N, 3, H, W]."""
    import mmcv

    from model_specs.camera import render
    from model_specs.centerpoint.scene import make_scene

    norm = values["img_norm_cfg"]
    mean, std = np.array(norm["mean"], np.float32), np.array(norm["std"], np.float32)
    scene = make_scene(seed, data.BOXES_ONLY)
    made = []
    for k, _ in enumerate(frames):
        now = data.scene_at(scene, k)
        images = [mmcv.imnormalize(render(now, camera, seed * 1000 + k * 10 + i), mean, std, norm["to_rgb"]).transpose(2, 0, 1)
                  for i, camera in enumerate(data.cameras(cfg))]
        made.append(np.stack(images)[None].astype(np.float32))
    return made


def _inputs(frame: data.Frame) -> dict[str, dict[str, np.ndarray]]:
    return {"pts_head_memory": {}, HOST: {"timestamp": frame.timestamp}}


def record_plan(plan: Plan, configs: Path) -> tuple[Recording, StreamPETRConfig]:
    import mmcv
    import mmdet3d
    import mmengine

    config = read_config(Path(configs) / plan.config)
    cfg = to_streampetr(config, plan.spec_config)
    import_awml_models()
    containers = importlib.import_module(CONTAINERS)
    peer = build_peer(config.values)
    state, overrides, shapes = seeded_state(peer, plan.model_seed)
    with_metadata = peer.state_dict()  # AnchorFreeHead renames old-version keys unless the state's _metadata says the version
    with_metadata.update(state)
    peer.load_state_dict(with_metadata, strict=True)
    peer.pts_bbox_head.with_dn = False  # as torch2onnx.py sets it for pts_head_memory
    encoder, position, head = (containers.TrtEncoderContainer(peer), containers.TrtPositionEmbeddingContainer(peer),
                               containers.TrtPtsHeadContainer(peer))
    frames = data.sequence(cfg, plan.frames, plan.drive_seed)
    images = normalised(frames, cfg, config.values, plan.drive_seed)
    memory = {k: torch.from_numpy(v) for k, v in initial_memory_of(cfg, peer, frames[0]).items()}
    arrays: dict[str, np.ndarray] = {f"state/{k}": v.numpy() for k, v in overrides.items()}
    advance = between(cfg)
    with torch.no_grad():
        for k, frame in enumerate(frames):
            feats = encoder(torch.from_numpy(images[k]))
            pos_embed, cone = position(*(torch.from_numpy(v) for v in (frame.img_metas_pad, feats.numpy(), frame.intrinsics, frame.img2lidar)))
            out = dict(zip(HEAD_OUT, head(feats, pos_embed, cone, torch.from_numpy(frame.timestamp), torch.from_numpy(frame.ego_pose),
                                          torch.from_numpy(frame.ego_pose_inv), *memory.values()), strict=True))
            recorded = {"img_feats": feats, "pos_embed": pos_embed, "cone": cone, **out} if k == 0 else {n: out[n] for n in EVERY_FRAME}
            for n, v in recorded.items():
                arrays.update(kept(f"frame{k}/{n}", v.numpy(), plan.sampled, plan.model_seed))
            arrays.update(upstream_decode(peer, out, cfg, k))
            if k + 1 < len(frames):
                carried = {f"pre_memory_{m}": out[f"post_memory_{m}"].numpy() for m in MEMORY}
                memory = {n: torch.from_numpy(v) for n, v in advance(carried, _inputs(frame), _inputs(frames[k + 1])).items()}
    meta = {
        "versions": {"mmdet3d": mmdet3d.__version__, "mmengine": mmengine.__version__, "mmcv": mmcv.__version__, "torch": torch.__version__,
                     "numpy": np.__version__},
        "config": plan.config, "frames": plan.frames, "drive_seed": plan.drive_seed, "seed": plan.model_seed, "sampled": plan.sampled,
        "images_sha256": [array_sha256(i) for i in images],
        "state_shapes": [[k, list(s)] for k, s in shapes], "state_sha256": state_sha256(state),
        "weights": {"source": REGENERATED, "seed": plan.model_seed, "stored_whole": sorted(overrides)},
        "imports": "AWML's model modules one by one (the package __init__ imports its datasets: mmpretrain, nuscenes); flash-attn, "
                   "which AWML's attention.py imports at import time, stood in for by a module whose functions raise (the deploy "
                   "script's PETRMultiheadAttention never calls it); mmcv's compiled ops likewise (none is called)",
        "input": "synthetic drive (model_specs.streampetr.data), images normalised by mmcv.imnormalize with the config's img_norm_cfg; "
                 "the first frame's memory: AWML's pre_update_memory for a first frame in the global frame (spec.initial_memory)",
        "output": "AWML's deploy/containers.py (TrtEncoderContainer, TrtPositionEmbeddingContainer, TrtPtsHeadContainer, with_dn off) "
                  "frame after frame, the memory carried by the host's update (spec.between): every head output of frame 0, the "
                  f"scores, boxes and memory of every frame ({', '.join(EVERY_FRAME)}); each frame's boxes as AWML decodes them "
                  f"({', '.join(DECODED)}: StreamPETRHead.get_bboxes through its NMSFreeCoder on the container's outputs, laid out "
                  "back as the head returns them)"
                  + ("" if plan.sampled is None else f"; an array above {WHOLE_LIMIT} values as {plan.sampled} seeded positions of "
                     f"the flattened array ({INDEX}<key>, numpy default_rng(seed)) and its max |value|, mean and std ({STATS}<key>)"),
    }
    return Recording(arrays, meta), cfg


def upstream_decode(peer, out: Mapping[str, torch.Tensor], cfg: StreamPETRConfig, frame: int) -> dict[str, np.ndarray]:
    """AWML's ``get_bboxes`` (its NMSFreeCoder, then the head's threshold and bottom centre) on the container's outputs,
    laid back out as the head returns them ([layers, 1, queries, channels]; the container flattens and transposes)."""
    layers, queries = cfg.num_layers, cfg.num_query + cfg.num_propagated
    heads = {name: out[name].transpose(1, 2).reshape(layers, 1, queries, -1) for name in (SCORES, BOXES)}
    boxes, scores, labels = peer.pts_bbox_head.get_bboxes(heads)[0]
    return {f"frame{frame}/{name}": value.numpy() for name, value in zip(DECODED, (boxes, scores, labels), strict=True)}


def decode_differences(recording: Recording, cfg: StreamPETRConfig) -> dict[str, float]:
    """This project's decode of the recorded head outputs against AWML's decode of them: per frame and field, the max
    abs difference (a count or label that differs: inf)."""
    found = {}
    for k in range(recording.meta["frames"]):
        arrays = {name: recording.arrays[f"frame{k}/{name}"] for name in (SCORES, BOXES, *DECODED)}
        ours = decode(arrays, cfg)
        for name, mine in zip(DECODED, (ours.boxes, ours.scores, ours.labels), strict=True):
            theirs = arrays[name]
            same = mine.shape == theirs.shape and (name != DECODED[2] or np.array_equal(mine, theirs))
            found[f"frame{k}/{name}"] = max_abs(mine, theirs) if same else float("inf")
    return found


def initial_memory_of(cfg: StreamPETRConfig, peer, frame: data.Frame) -> dict[str, np.ndarray]:
    """The spec's initial memory, its pseudo points from AWML's own head (the same numbers: its grid and range)."""
    ours = Petr3D(cfg)
    with torch.no_grad():
        ours.pts_bbox_head.pseudo_reference_points.copy_(peer.pts_bbox_head.pseudo_reference_points)
        ours.pts_bbox_head.pc_range.copy_(peer.pts_bbox_head.pc_range)
    return initial_memory(ours, frame)


@dataclass(frozen=True)
class Comparison:
    inputs_identical: Mapping[str, bool]
    differences: Mapping[str, float]
    scales: Mapping[str, float]

    def problems(self) -> list[str]:
        found = [f"{name}: this project's differs from AWML's" for name, same in self.inputs_identical.items() if not same]
        return found + tensor_problems(self.differences, self.scales)


def compare(recording: Recording, cfg: StreamPETRConfig) -> Comparison:
    """This project's sections with the recorded weights (strict), on the same frames, on their own memory."""
    arrays, meta = recording.arrays, recording.meta
    model = Petr3D(cfg).eval()
    built = model.state_dict()
    identical = {f"constant {k}": bool(np.array_equal(built[k].numpy(), arrays[f"state/{k}"]))
                 for k in built if k.rsplit(".", 1)[-1] in FROZEN}
    model.load_state_dict(recording.state_dict(), strict=True)
    frames = data.sequence(cfg, meta["frames"], meta["drive_seed"])
    identical["images"] = [array_sha256(f.img) for f in frames] == meta["images_sha256"]
    sections = (ExtractImgFeat(model), PositionEmbedding(model), PtsHeadMemory(model))
    memory = initial_memory(model, frames[0])
    advance = between(cfg)
    differences, scales = {}, {}
    with torch.no_grad():
        for k, frame in enumerate(frames):
            feats = sections[0](torch.from_numpy(frame.img))
            pos_embed, cone = sections[1](*(torch.from_numpy(v) for v in (frame.img_metas_pad, frame.intrinsics, frame.img2lidar)))
            head = sections[2](feats, pos_embed, cone, torch.from_numpy(frame.ego_pose), torch.from_numpy(frame.ego_pose_inv),
                               *(torch.from_numpy(v) for v in memory.values()))
            out = {"img_feats": feats, "pos_embed": pos_embed, "cone": cone, **dict(zip(HEAD_OUT, head, strict=True))}
            for name, value in out.items():
                key = f"frame{k}/{name}"
                if key in arrays:
                    found, scale = _held(key, value.numpy(), arrays)
                    differences.update(found)
                    scales.update(dict.fromkeys(found, scale))
            carried = {f"pre_memory_{m}": out[f"post_memory_{m}"].numpy() for m in MEMORY}
            if k + 1 < len(frames):
                memory = dict(advance(carried, _inputs(frame), _inputs(frames[k + 1])))
    return Comparison(identical, differences, scales)


def _held(key: str, value: np.ndarray, arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, float], float]:
    """(max |ours - recorded| of ``key``, the recorded array's max |value|): a sampled array at its recorded positions and
    by its statistics."""
    if f"{INDEX}{key}" not in arrays:
        return {key: max_abs(value, arrays[key])}, scale_of(arrays[key])
    stats = arrays[f"{STATS}{key}"]
    sampled = max_abs(value.reshape(-1)[arrays[f"{INDEX}{key}"]], arrays[key])
    return {key: sampled, f"{STATS}{key}": max_abs(statistics(value), stats)}, float(stats[0])
