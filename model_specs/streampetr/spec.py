"""AWML's StreamPETR specs: ``streampetr`` (``configs/default/resnet50_480x640_baseline.py``: five cameras at 480 x 640,
ResNet-50 + CPFPN, a 1024-entry memory queue) and ``streampetr-tiny`` (the same topology on two cameras at 64 x 96,
ResNet-18, two decoder layers, a 64-entry queue) for the project's tests.

The components are the sections AWML's ``deploy/torch2onnx.py`` exports (``extract_img_feat``, ``position_embedding``,
``pts_head_memory``), each a graph of its own with AWML's input and output names. The memory queue is state: the
head's ``post_memory_*`` outputs are the next frame's ``pre_memory_*`` inputs, carried by the framework's stateful
pipeline (``ModelSpec.sequence``), so that ``test_sequence_parity`` judges every frame on the reference's memory and
the memory's drift over the sequence on the target's own, and ``test_sequence_latency`` times a frame of all three.

The frames are a synthetic drive (``data``), or with ``--awml-data`` a real scene from AWML's T4dataset info file (the
``t4dataset_<version>_infos_<split>.pkl`` of ``tools/detection3d/create_data_t4dataset.py``, mmdet3d's v2 info format)
and its camera images (``real_frames``): the samples are windows of consecutive frames, the sequence the frames.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from model_specs.mmconfig import read_config
from model_specs.streampetr import data, real_frames
from model_specs.streampetr.boxes import TRUTH, BoxLimits, comparator, metric
from model_specs.streampetr.config import FULL, TINY, StreamPETRConfig
from model_specs.streampetr.head import ExtractImgFeat, Petr3D, PositionEmbedding, PtsHeadMemory
from model_specs.streampetr.mmconfig import to_streampetr
from model_specs.streampetr.weights import seeded
from pytest_awml.metric import MetricSpec
from pytest_awml.sequence import Feed, SequenceSpec
from pytest_awml.spec import Component, LatencySettings, ModelSpec, OnnxOptions, TensorSpec, Tolerance

MEMORY = ("embedding", "reference_point", "timestamp", "egopose", "velo")
# fp32 runtimes against PyTorch: features and embeddings ~1e-5 of values near 1; box centres are metres (pc_range
# scales the sigmoid by ~100): their error is ~100x the rest's
_FP32 = {"*": Tolerance(atol=2e-4, rtol=1e-3)}
# Full size (ResNet-50 + CPFPN at 480 x 640, seeded): img_feats reach |2 100| (std ~350), and ONNX Runtime's fp32
# differs from PyTorch by up to 3.66e-3 (min atol to pass 2.02e-3 at rtol 1e-3; ~1e-5 of the std, as on the tiny
# model), measured over 3 samples and a 4-frame sequence (pytest --awml-spec streampetr, 2026-12-07): 5e-3 leaves
# 2.5x over the smallest passing atol. PyTorch on CUDA at fp32 (cuDNN's convolutions, tf32 off) differs by up to 1.0e-2
# (H100, 2 sequences x 4 frames, .carry-r38b's measurement, 2026-12-08; 5e-3 failed there): 2e-2 holds both, twice
# the larger (~5e-6 of the values). The tiny model's features are near 1 and keep _FP32's bound (CUDA: 3.1e-4, within
# it at rtol 1e-3).
_FP32_FULL = {**_FP32, "img_feats": Tolerance(atol=2e-2, rtol=1e-3)}
# The head's top-k: the ``topk_proposals`` most confident queries go in front of the memory queue in score order, and
# where two scores are nearer than a backend's error the backend writes their rows the other way round (every value
# right, in another row). Those outputs compare rows matched across such swaps (Tolerance.max_reordered_rows,
# pytest_awml.reorder), each value then at the fine bound. fp32, full size, ONNX Runtime: 2, 6 and 7 of 1 280 rows
# swapped (neighbouring ranks, scores 0 to 5e-7 apart against a ~3.7e-6 score error; pytest --awml-spec streampetr,
# 2026-12-07): 2 % leaves ~3.5x. The previous queue's rows are not re-ranked, and new rows have equal ages and
# poses: those outputs need no matching.
_FP32_REORDER = 0.02
_SELECTED = ("post_memory_embedding", "post_memory_reference_point", "post_memory_velo")


def _selected(bounds: Mapping[str, Tolerance], share: float) -> dict[str, Tolerance]:
    """``bounds`` with the top-k-selected memory outputs' rows matched across swaps, at most ``share`` of them moved."""
    return {**bounds, **{name: dataclasses.replace(bounds.get(name, bounds["*"]), max_reordered_rows=share) for name in _SELECTED}}


_FP32_HEAD = _selected({"*": Tolerance(atol=5e-4, rtol=1e-3), "all_bbox_preds": Tolerance(atol=5e-3, rtol=1e-3),
                        "post_memory_reference_point": Tolerance(atol=5e-3, rtol=1e-3)}, _FP32_REORDER)
# fp16: PyTorch's CPU autocast at float16 against fp32 (model_specs/streampetr/precision.py), the atol each output needed
# at rtol 1e-2 (tools/measure_streampetr_precision.py prints it), each bound ~3x the figure, rounded up. streampetr-tiny
# (--seeds 0,1,2,3,4 --frames 4: 5 sequences x 4 frames, seeded weights, the largest of 3 such runs): img_feats 0.099
# (|values| up to 97), pos_embed 6.3e-3, cone 0 (max abs 4.8e-4); all_cls_scores 3.5e-3, all_bbox_preds 0.112 (metres),
# reference_points 3.0e-4, tgt 1.8e-3, temp_memory 1.9e-3, temp_pos 4.7e-3, query_pos 4.0e-3, query_pos_in 1.2e-3, outs_dec 3.8e-3,
# post_memory_egopose 6.4e-4, post_memory_timestamp 0 (ages are the host's float64 sums, the new rows' zeros).
# streampetr (full size, 1 sequence x 2 frames, 9.4 min of CPU): the head's figures within the tiny's bounds
# (all_cls_scores 3.6e-3, all_bbox_preds 0.178, outs_dec 5.8e-3, query_pos_in 1.5e-3), but img_feats 3.57 (|values| up
# to 2.1e3, where fp16's spacing is 2) and pos_embed 0.40 (a tail of rays far outside position_range, where the
# inverse sigmoid's clamp amplifies the half-precision ray): each spec has its own section bounds (``SECTIONS_*``).
# tf32 (10-bit mantissas on matmul and convolution inputs alone, fp32 accumulation and every other op fp32): not
# measurable on a CPU, held to fp16's bounds. On CUDA (H100, 2026-12-08; tiny 5 x 4 frames, full 2 x 4) every output
# but the memory queue's rows holds these bounds: fp16 tiny img_feats 0.139, all_bbox_preds 0.108, outs_dec 5.4e-3;
# tf32 tiny 0.098 / 0.079 / 3.7e-3; full fp16 img_feats 5.0, boxes 0.173; full tf32 3.58 / 0.134 (the memory's rows
# were compared there in order, not through the row matching below, so they are not judged by that run).
_RTOL = 1e-2
SECTIONS_TINY = {"img_feats": Tolerance(atol=0.3, rtol=_RTOL), "pos_embed": Tolerance(atol=2e-2, rtol=_RTOL),
                 "cone": Tolerance(atol=2e-3, rtol=_RTOL)}
SECTIONS_FULL = {"img_feats": Tolerance(atol=10.0, rtol=_RTOL), "pos_embed": Tolerance(atol=1.2, rtol=_RTOL),
                 "cone": Tolerance(atol=2e-3, rtol=_RTOL)}


def _section_tolerances(reduced: Mapping[str, Tolerance], outputs: tuple[str, ...],
                        fp32: Mapping[str, Tolerance] = _FP32) -> dict[str, Mapping[str, Tolerance]]:
    """A section's bounds: ``fp32``, and at fp16 and tf32 the spec's measured bound of each of ``outputs``."""
    bounds = {output: reduced[output] for output in outputs}
    return {"fp32": fp32, "fp16": bounds, "tf32": bounds}


def _swappable(cfg: StreamPETRConfig) -> float:
    """At fp16 any new row may move: class scores move by ~4e-3 and near ties swap in every sequence measured (1 to 8
    of streampetr-tiny's 16 new rows; seeded or trained, the low-score end of a top-k is dense with near ties)."""
    return cfg.topk_proposals / (cfg.topk_proposals + cfg.memory_len)


def _cut(cfg: StreamPETRConfig) -> float:
    """At fp16 a quarter of the new rows may hold a query the reference did not select (its k-th and k+1-th scores
    nearer than the error): measured on streampetr-tiny with the weights of seeds 1 to 12, 2 frames, the frame gate:
    none in 9, 1 row in 2, 3 rows of 16 in 1; set aside and counted (``Tolerance.max_unmatched_rows``)."""
    return 0.25 * _swappable(cfg)


def _reduced_head(cfg: StreamPETRConfig) -> dict[str, Tolerance]:
    return {"*": Tolerance(atol=2e-2, rtol=_RTOL), "all_bbox_preds": Tolerance(atol=0.5, rtol=_RTOL),
            "reference_points": Tolerance(atol=1e-3, rtol=_RTOL), "query_pos_in": Tolerance(atol=5e-3, rtol=_RTOL),
            "post_memory_egopose": Tolerance(atol=2e-3, rtol=_RTOL), "post_memory_timestamp": Tolerance(atol=1e-4),
            **_selected({"*": Tolerance(atol=2e-2, rtol=_RTOL, max_unmatched_rows=_cut(cfg)),
                         "post_memory_reference_point": Tolerance(atol=0.5, rtol=_RTOL, max_unmatched_rows=_cut(cfg))}, _swappable(cfg)),
            # velocities: at this bound two queries' rows are alike (|v| <= ~2 m/s), so swaps pass unmatched and a row
            # matched elsewhere would prove nothing: held row by row (measured 0.18 with every swap in place); a cut's
            # newcomer is set aside (seeds 4 to 6: two rows 0.58 to 1.3 m/s off)
            "post_memory_velo": Tolerance(atol=0.5, rtol=_RTOL, max_unmatched_rows=_cut(cfg))}


def _reduced_drift(cfg: StreamPETRConfig) -> dict[str, Tolerance]:
    """The memory on the target's own state after k frames: egopose and timestamp as the frame gate's (6.4e-4, 0).
    The top-k-selected rows get gross bounds, by design: on its own state an fp16 run selects, at the low-score end
    of a top-k, another query than fp32 now and then, and that row then stays in its queue; after matching swapped
    rows, up to 20 % of streampetr-tiny's rows stayed a query apart (66.8 m of reference point, 0.28 of embedding;
    tools/measure_streampetr_precision.py, 5 sequences x 4 frames, CPU autocast). These bounds catch what no other
    selection can give: non-finite values, a unit or frame error, a row outside the decoder's range (twice a
    LayerNorm'ed row's ~5, ``pc_range``'s span, twice the ~20 m/s of road traffic). Each frame's values are held at
    the fine bounds by the frame gate, where the state is the reference's and rows are matched across swaps."""
    head = _reduced_head(cfg)
    span = max(hi - lo for lo, hi in zip(cfg.pc_range[:3], cfg.pc_range[3:], strict=True))
    gross = {"post_memory_embedding": Tolerance(atol=10.0), "post_memory_reference_point": Tolerance(atol=1.5 * span),
             "post_memory_velo": Tolerance(atol=40.0)}
    return {name: gross.get(name, head[name]) for name in (f"post_memory_{m}" for m in MEMORY)}


def head_tolerances(cfg: StreamPETRConfig) -> dict[str, dict[str, Tolerance]]:
    return {"fp32": _FP32_HEAD, "fp16": _reduced_head(cfg), "tf32": _reduced_head(cfg)}


# the memory after k frames: at fp32 the same bounds, held at every frame of the sequence
def drift(cfg: StreamPETRConfig) -> dict[str, dict[str, Tolerance]]:
    return {"fp32": _selected({"*": Tolerance(atol=1e-3, rtol=1e-3), "post_memory_reference_point": Tolerance(atol=1e-2, rtol=1e-3)},
                              _FP32_REORDER),
            "fp16": _reduced_drift(cfg), "tf32": _reduced_drift(cfg)}

# Decoded boxes over the sequence, each side on its own memory (test_sequence_pipeline_parity), by (query, class) pair,
# a query that holds another's object (the propagated queries are the memory's top rows, which a near tie writes the other
# way round) compared as that one. fp32: the head's boxes differ by <= 5e-3 (head_tolerances), so boxes within
# centimetres, no pair kept on one side only (measured on streampetr-tiny, ONNX Runtime CPU, 4 frames: see
# docs/design.md). fp16 (CPU autocast, streampetr-tiny, 5 sequences x 4 frames on their own state, seeded weights;
# tf32 held to the same): centre 0.15 m, size 4.7e-3 relative, yaw 3.5e-3 rad, velocity 7.6e-3 m/s, score 1.2e-3,
# 2 pairs one-sided, up to 8 of 48 queries (17 %) holding another's object; unmatched, query by query, centres were
# 17 to 63 m apart. Limits ~3-4x those; any propagated query may move (a third of the queries).
_REDUCED_BOXES = BoxLimits(centre_m=0.5, size_rel=0.02, yaw_rad=0.01, velocity_mps=0.03, score=5e-3, one_sided=8,
                           reordered_queries=1 / 3)
BOX_LIMITS = {"fp32": BoxLimits(centre_m=0.05, size_rel=0.01, yaw_rad=0.01, velocity_mps=0.05, score=0.01, one_sided=0,
                                reordered_queries=0.05),
              "fp16": _REDUCED_BOXES, "tf32": _REDUCED_BOXES}
MIN_PAIRS = 5  # fewer (query, class) pairs over the sequence than this judged nothing
# |ΔmAP| over the sequence (test_sequence_metric), as CenterPoint's; over fewer ground-truth boxes in range it says nothing
MAP_DELTA = {"fp32": 0.005, "fp16": 0.03, "tf32": 0.03}
MIN_GROUND_TRUTH = 10

HOST = "host"  # a frame's values no graph takes, which the host's update between frames reads (the frame's timestamp)


def _frame_inputs(frame: data.Frame) -> dict[str, dict[str, np.ndarray]]:
    """One frame's inputs by section (the links and the carried memory left out), and what the host keeps of it."""
    return {"extract_img_feat": {"img": frame.img},
            "position_embedding": {"img_metas_pad": frame.img_metas_pad, "intrinsics": frame.intrinsics, "img2lidar": frame.img2lidar},
            "pts_head_memory": {"data_ego_pose": frame.ego_pose, "data_ego_pose_inv": frame.ego_pose_inv},
            HOST: {"timestamp": frame.timestamp}}


def initial_memory(model: Petr3D, frame: data.Frame) -> dict[str, np.ndarray]:
    """AWML's first-frame memory (``pre_update_memory`` with no previous frame): zeros, the first ``num_propagated``
    entries at the pseudo reference points with identity poses; given in the global frame, as the graph takes it."""
    cfg = model.cfg
    head = model.pts_bbox_head
    rows = cfg.memory_len
    reference = np.zeros((1, rows, 3), np.float32)
    egopose = np.zeros((1, rows, 4, 4), np.float32)
    with torch.no_grad():
        pseudo = (head.pseudo_reference_points * (head.pc_range[3:6] - head.pc_range[0:3]) + head.pc_range[0:3]).numpy()
    pose = frame.ego_pose[0].astype(np.float64)
    reference[0, : cfg.num_propagated] = pseudo @ pose[:3, :3].T + pose[:3, 3]
    egopose[0, : cfg.num_propagated] = pose
    return {"pre_memory_embedding": np.zeros((1, rows, 256), np.float32), "pre_memory_reference_point": reference,
            "pre_memory_timestamp": np.zeros((1, rows, 1), np.float32), "pre_memory_egopose": egopose,
            "pre_memory_velo": np.zeros((1, rows, 2), np.float32)}


WARMUP = 1  # frames the PyTorch model drives before a sample or a sequence starts: its memory is the state given


def warm_memory(model: Petr3D, frames: list[data.Frame], following: data.Frame) -> dict[str, np.ndarray]:
    """The memory the PyTorch model carries into ``following`` after driving ``frames``: AWML's first-frame memory,
    then each frame's head and the host's update. A sequence or a sample starts mid-drive: on the first frame every age is zero,
    and an output that is zero on both sides judges nothing."""
    cfg = model.cfg
    state = initial_memory(model, frames[0])
    advance = between(cfg)
    sections = (ExtractImgFeat(model), PositionEmbedding(model), PtsHeadMemory(model))
    with torch.no_grad():
        for k, frame in enumerate(frames):
            inputs = _frame_inputs(frame)
            feats = sections[0](torch.from_numpy(frame.img))
            pos_embed, cone = sections[1](*(torch.from_numpy(v) for v in inputs["position_embedding"].values()))
            head = {**{k: torch.from_numpy(v) for k, v in inputs["pts_head_memory"].items()}, **{k: torch.from_numpy(v) for k, v in state.items()}}
            outputs = sections[2](feats, pos_embed, cone, *head.values())[2:7]
            carried = {f"pre_memory_{m}": o.numpy() for m, o in zip(MEMORY, outputs, strict=True)}
            state = dict(advance(carried, inputs, _frame_inputs(frames[k + 1] if k + 1 < len(frames) else following)))
    return state


def between(cfg: StreamPETRConfig):
    """What the graph leaves to the host between frames: the queue cut back to ``memory_len`` (the graph returns
    ``topk_proposals`` more rows) and the entries' age advanced by the time since the last frame (the graph keeps
    timestamps relative: AWML comments both updates out of it, 'cast to float64 out-of-tensorrt'), fed as float32."""
    def advance(state: Mapping[str, np.ndarray], previous: Mapping, frame: Mapping) -> dict[str, np.ndarray]:
        elapsed = float(frame[HOST]["timestamp"][0] - previous[HOST]["timestamp"][0])
        cut = {name: np.asarray(value)[:, : cfg.memory_len] for name, value in state.items()}
        cut["pre_memory_timestamp"] = (cut["pre_memory_timestamp"] + elapsed).astype(np.float32)
        return {name: value.astype(np.float32) for name, value in cut.items()}

    return advance


def _driven(model: Petr3D, made: list[data.Frame]) -> list[dict[str, dict[str, np.ndarray]]]:
    """A sequence's frames by section: the first ``WARMUP`` driven by PyTorch, their memory the first judged frame's state."""
    frames = [{**_frame_inputs(frame), TRUTH: {"gt_boxes": frame.gt_boxes, "gt_labels": frame.gt_labels}} for frame in made[WARMUP:]]
    frames[0]["pts_head_memory"].update(warm_memory(model, made[:WARMUP], made[WARMUP]))
    return frames


def make_spec(name: str, cfg: StreamPETRConfig, frames: int, latency: LatencySettings, reduced: Mapping[str, Tolerance],
              fp32_features: Mapping[str, Tolerance] = _FP32) -> ModelSpec:
    """``reduced``: the fp16/tf32 bounds of the sections' outputs measured on this spec's size (``SECTIONS_*``);
    ``fp32_features``: the image-feature section's fp32 bounds (its features' scale is the backbone's: ResNet-50's reach thousands)."""
    def configure(path: Path) -> ModelSpec:
        """This spec rebuilt from AWML's training config (``--awml-config``)."""
        return make_spec(name, to_streampetr(read_config(path), cfg), frames, latency, reduced, fp32_features)

    def build_model(checkpoint: Path | None, seed: int) -> Petr3D:
        return Petr3D(cfg).eval() if checkpoint is not None else seeded(cfg, seed)

    def make_samples(count: int, seed: int) -> list[list[data.Frame]]:
        """Each sample: a frame and the ``WARMUP`` frames driven before it (whose memory the head is given)."""
        return [data.sequence(cfg, WARMUP + 1, seed * 1000 + i) for i in range(count)]

    def position_inputs(model: Petr3D, sample: list[data.Frame]) -> dict:
        return _frame_inputs(sample[-1])["position_embedding"]

    def head_inputs(model: Petr3D, sample: list[data.Frame]) -> dict:
        frame = sample[-1]
        with torch.no_grad():
            feats = model.extract_img_feat(torch.from_numpy(frame.img))
            pos_embed, cone = PositionEmbedding(model)(*(torch.as_tensor(v) for v in position_inputs(model, sample).values()))
        return {"x": feats, "pos_embed": pos_embed, "cone": cone, **_frame_inputs(frame)["pts_head_memory"], **warm_memory(model, sample[:-1], frame)}

    def make_frames(model: Petr3D, count: int, seed: int) -> list[dict[str, dict[str, np.ndarray]]]:
        return _driven(model, data.sequence(cfg, WARMUP + count, seed))

    def from_samples(model: Petr3D, samples: Sequence[Sequence[data.Frame]]) -> list[dict[str, dict[str, np.ndarray]]]:
        """The --awml-data sequence: the consecutive frames the samples were cut from."""
        return _driven(model, real_frames.sequence_of(samples))

    n, (h, w), tokens, classes = cfg.num_cameras, cfg.feature_size, cfg.tokens, len(cfg.classes)
    queries, rows, kept = cfg.num_query + cfg.num_propagated, cfg.memory_len, cfg.topk_proposals + cfg.memory_len
    feats = TensorSpec("img_feats", (1, n, cfg.in_channels, h, w))
    memory_in = (TensorSpec("pre_memory_embedding", (1, rows, 256)), TensorSpec("pre_memory_reference_point", (1, rows, 3)),
                 TensorSpec("pre_memory_timestamp", (1, rows, 1)), TensorSpec("pre_memory_egopose", (1, rows, 4, 4)),
                 TensorSpec("pre_memory_velo", (1, rows, 2)))
    memory_out = (TensorSpec("post_memory_embedding", (1, kept, 256)), TensorSpec("post_memory_reference_point", (1, kept, 3)),
                  TensorSpec("post_memory_timestamp", (1, kept, 1)), TensorSpec("post_memory_egopose", (1, kept, 4, 4)),
                  TensorSpec("post_memory_velo", (1, kept, 2)))
    onnx = OnnxOptions(opset=cfg.opset)
    components = (
        Component("extract_img_feat", ExtractImgFeat, lambda model, sample: {"img": sample[-1].img},
                  (TensorSpec("img", (1, n, 3, *cfg.final_dim)),), (feats,), _section_tolerances(reduced, ("img_feats",), fp32_features),
                  onnx=onnx, latency=latency),
        Component("position_embedding", PositionEmbedding, position_inputs,
                  (TensorSpec("img_metas_pad", (3,)), TensorSpec("intrinsics", (1, n, 4, 4)), TensorSpec("img2lidar", (1, n, 4, 4))),
                  (TensorSpec("pos_embed", (1, tokens, 256)), TensorSpec("cone", (1, tokens, 8))),
                  _section_tolerances(reduced, ("pos_embed", "cone")), onnx=onnx, latency=latency),
        Component("pts_head_memory", PtsHeadMemory, head_inputs,
                  (TensorSpec("x", feats.shape), TensorSpec("pos_embed", (1, tokens, 256)), TensorSpec("cone", (1, tokens, 8)),
                   TensorSpec("data_ego_pose", (1, 4, 4)),
                   TensorSpec("data_ego_pose_inv", (1, 4, 4)), *memory_in),
                  (TensorSpec("all_cls_scores", (1, classes, cfg.num_layers * queries)),
                   TensorSpec("all_bbox_preds", (1, cfg.code_size, cfg.num_layers * queries)), *memory_out,
                   TensorSpec("reference_points", (1, queries, 3)), TensorSpec("tgt", (1, queries, 256)),
                   TensorSpec("temp_memory", (1, rows - cfg.num_propagated, 256)), TensorSpec("temp_pos", (1, rows - cfg.num_propagated, 256)),
                   TensorSpec("query_pos", (1, queries, 256)), TensorSpec("query_pos_in", (1, cfg.num_query, 256)),
                   TensorSpec("outs_dec", (cfg.num_layers, 1, queries, 256))),
                  head_tolerances(cfg), onnx=onnx, latency=latency),
    )
    links = (Feed("extract_img_feat", "img_feats", "pts_head_memory", "x"),
             Feed("position_embedding", "pos_embed", "pts_head_memory", "pos_embed"), Feed("position_embedding", "cone", "pts_head_memory", "cone"))
    carries = tuple(Feed("pts_head_memory", f"post_memory_{m}", "pts_head_memory", f"pre_memory_{m}") for m in MEMORY)
    return ModelSpec(
        name=name,
        description=(f"AWML's StreamPETR ({n} cameras at {cfg.final_dim[0]} x {cfg.final_dim[1]}, ResNet-{cfg.depth} + CPFPN, "
                     f"{cfg.num_layers} decoder layers, a {rows}-entry memory queue), exported in AWML's three sections; "
                     "the memory carried over a synthetic drive; seeded weights unless a checkpoint is given"),
        build_model=build_model,
        make_samples=make_samples,
        sample_kind="multi-camera frames",
        params={"model": cfg, "frames": frames},
        components=components,
        sequence=SequenceSpec(order=tuple(c.name for c in components), links=links, carries=carries, make_frames=make_frames,
                              drift=drift(cfg), frames=frames, latency=latency, between=between(cfg), from_samples=from_samples,
                              compare=comparator(cfg, BOX_LIMITS), min_compared=MIN_PAIRS,
                              metric=MetricSpec(compute=metric(cfg), max_delta=MAP_DELTA, min_compared=MIN_GROUND_TRUTH)),
        configure=configure,
        load_data=real_frames.loader(cfg, WARMUP + frames, WARMUP),
        data_options=real_frames.OPTIONS,
    )


SPEC = make_spec("streampetr", FULL, 4, LatencySettings(rounds=3, warmup_rounds=1), SECTIONS_FULL, _FP32_FULL)
TINY_SPEC = make_spec("streampetr-tiny", TINY, 4, LatencySettings(rounds=5, warmup_rounds=1), SECTIONS_TINY)
