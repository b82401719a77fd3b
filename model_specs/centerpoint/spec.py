"""The CenterPoint specs: ``centerpoint`` (AWML's j6gen2) and ``centerpoint-tiny`` (its topology, narrowed).

Both claim to be AWML's CenterPoint; ``tests/test_mmdet3d_recorded.py`` holds them to mmdet3d's own
numbers (recorded under ``tests/data/mmdet3d/``) in every CI run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from model_specs.bundled_weights import load_weights
from model_specs.centerpoint import data
from model_specs.centerpoint.autoware import AutowareSettings, node_config, write_bundle
from model_specs.centerpoint.autoware_decode import AutowareDecoder
from model_specs.centerpoint.config import FULL, TINY, CenterPointConfig
from model_specs.centerpoint.decode import decode
from model_specs.centerpoint.facts import config_facts
from model_specs.centerpoint.metric import metric
from model_specs.centerpoint.mmconfig import read_config, to_centerpoint
from model_specs.centerpoint.model import BackboneNeckHeadExport, CenterPoint, VoxelEncoderExport, calibrate_heatmap, seeded
from model_specs.centerpoint.pipeline import CenterPointPipeline, DetectionLimits, comparator, pad_pillars
from model_specs.centerpoint.scene import Scene, SceneConfig, make_scene
from model_specs.centerpoint.voxelize import decorate, densify, scatter, voxelize
from pytest_awml.metric import MetricSpec
from pytest_awml.pipeline import PipelineSpec
from pytest_awml.spec import Component, Dim, FedBy, LatencySettings, ModelSpec, OnnxOptions, TensorSpec, Tolerance

# fp32 parity: ONNX Runtime's kernels sum in another order than PyTorch's over 20+ layers. Measured
# on the full model (3 scenes): max_abs ≤ 1.1e-4, smallest passing atol 6e-5; 3e-4 leaves ~5x
# headroom for other CPUs' kernels while a wrong op, weight or 0.001 shift still fails.
FP32 = {"*": Tolerance(atol=3e-4, rtol=1e-4)}
# fp16/tf32 keep 10 mantissa bits, and the raw point features reach 122 m and intensity 200, so
# honest errors scale with activations of order 10-100. Measured on an NVIDIA H200 (PyTorch 2.11,
# full model, 3 scenes), the smallest passing atol at rtol 0.02 was 0.142 (fp16) and 0.077 (tf32),
# p99 |error| <= 0.12. atol 0.3 leaves ~2x headroom; a wrong kernel errs by the outputs' own scale.
REDUCED = {"*": Tolerance(atol=0.3, rtol=2e-2)}

# Boxes: at fp32 the graphs differ by ~1e-4, so boxes must be the same to the centimetre and no
# detection may cross the score threshold on one side only. At fp16/tf32 (H200, same run as above)
# boxes moved <= 5 cm, box sizes <= 8.2 %, sizes at top-k cells <= 16.2 % (exp turns a 0.16 dim
# error into 17 %), scores <= 0.005, 3-4 flips.
_REDUCED_BOXES = DetectionLimits(centre_m=0.2, size_rel=0.25, yaw_rad=0.1, score=0.05, unmatched_score=0.3, threshold_flips=10)
BOX_LIMITS = {
    "fp32": DetectionLimits(centre_m=0.05, size_rel=0.01, yaw_rad=0.01, score=0.01, unmatched_score=0.3, threshold_flips=0),
    "fp16": _REDUCED_BOXES,
    "tf32": _REDUCED_BOXES,
    # int8 (ONNX Runtime CPU, QDQ, minmax over 8 held-out scenes; centerpoint-tiny, 3 scenes): boxes moved <= 0.78 m,
    # sizes <= 30 %, yaw <= 0.85 rad, scores <= 0.044, an unmatched box up to 0.19, 20 threshold flips of 1758 top-k
    # cells; the head's yaw at top-k cells flips by up to 2.97 rad where the rot vector is near zero, so yaw is left
    # to the metric. About 2x headroom; the gate that matters is MAP_DELTA's.
    "int8": DetectionLimits(centre_m=1.5, size_rel=0.6, yaw_rad=3.1, score=0.1, unmatched_score=0.4, threshold_flips=60),
}


# Box parity over fewer matched boxes than this (all samples together) judged nothing; the metric needs
# this much ground truth in the grid. On the tiny spec's 3 default scenes the trained model matches ~40
# boxes against ~16 objects in range.
MIN_MATCHED_BOXES = 5
MIN_GROUND_TRUTH = 10
# |ΔmAP| a backend may cost: at fp32 the graphs agree to ~1e-4 and boxes to the centimetre, so a change in
# the third decimal is a real difference; reduced precision moves boxes by centimetres and flips a few
# near-threshold candidates.
# int8: AWML's own PTQ release lost 0.0034 mAP (J6Gen2 2.6.1_quant: 73.92 against 74.26); on the tiny spec's 16 objects
# one box moves mAP by a few hundredths, measured 0.0016.
MAP_DELTA = {"fp32": 0.005, "fp16": 0.03, "tf32": 0.03, "int8": 0.05}
# int8 tensors are reported, not the finding: 256 steps over each tensor's calibrated range moved centerpoint-tiny's
# pillar features by <= 0.70 and its heads by <= 1.37 (vel; heatmap logits 0.64). atol 3 bounds a gross error only;
# boxes and mAP are int8's gate.
INT8 = {"*": Tolerance(atol=3.0, rtol=0.1)}

# Seeded models calibrate their heatmap on a scene no test samples: seeds 0..N-1 (x1000) are samples.
CALIBRATION_SEED = 987_654


WEIGHTS = Path(__file__).with_name("weights")


def trained_weights(path: Path) -> str:
    """How bundled weights were made, from the record ``tools/train_tiny.py`` writes beside them."""
    import json

    made = json.loads(path.with_suffix(".json").read_text())
    return (f"bundled trained weights {path.parent.name}/{path.name} (mmdet3d's loss, {made['steps']} steps on "
            f"{made['trained_on']})")


def _build(cfg: CenterPointConfig, scene: SceneConfig, weights: Path | None):
    def build_model(checkpoint: Path | None, seed: int) -> CenterPoint:
        model = seeded(cfg, seed)
        if checkpoint is not None:
            return model  # the plugin loads the checkpoint into it; calibration is for seeded weights only
        if weights is not None:
            return load_weights(model, weights)
        canvas = _backbone_inputs(cfg)(model, make_scene(CALIBRATION_SEED, scene))["spatial_features"]
        calibrate_heatmap(model, canvas, cfg.calibration_detections, cfg.score_threshold)
        return model.eval()

    return build_model


def _samples(scene: SceneConfig):
    def make_samples(count: int, seed: int) -> list[Scene]:
        return [make_scene(seed * 1000 + i, scene) for i in range(count)]

    return make_samples


def _encoder_inputs(cfg: CenterPointConfig):
    def make_inputs(model: CenterPoint, sample: Scene) -> dict[str, torch.Tensor]:
        return {"input_features": decorate(voxelize(densify(sample.sweeps, cfg), cfg), cfg)}

    return make_inputs


def _canvas(pillars, coors: torch.Tensor, cfg: CenterPointConfig) -> dict[str, torch.Tensor]:
    """The backbone's input: the encoder's pillars placed at their voxels' coordinates (a padded encoder's rows
    past the voxels are never scattered)."""
    return {"spatial_features": scatter(torch.as_tensor(pillars)[: coors.shape[0]], coors, cfg)}


def _backbone_feed(cfg: CenterPointConfig):
    """The canvas from the encoder's outputs on the sample (``FedBy``): only the voxels' coordinates are made here."""
    def make(model: CenterPoint, sample: Scene, encoder: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return _canvas(encoder["pillar_features"], voxelize(densify(sample.sweeps, cfg), cfg).coors, cfg)

    return make


def _backbone_inputs(cfg: CenterPointConfig):
    """Standalone: the encoder run here; a session feeds the encoder's reference outputs instead (``FedBy``)."""
    def make_inputs(model: CenterPoint, sample: Scene) -> dict[str, torch.Tensor]:
        voxels = voxelize(densify(sample.sweeps, cfg), cfg)
        return _canvas(model.pts_voxel_encoder(decorate(voxels, cfg)), voxels.coors, cfg)

    return make_inputs


def _pipeline(cfg: CenterPointConfig):
    def build(model: CenterPoint, runners) -> CenterPointPipeline:
        return CenterPointPipeline(cfg, runners, decoder=lambda heads: decode(heads, cfg))

    return build


# The bundle's graphs under their own names: the node's fixed encoder shape and the y-axis head.
BUNDLE_ENCODER, BUNDLE_HEAD = "autoware.pts_voxel_encoder", "autoware.pts_backbone_neck_head"


def _bundle_pipeline(cfg: CenterPointConfig, settings: AutowareSettings):
    node = node_config(cfg)  # Autoware's densification keeps a past sweep's close points

    def build(model: CenterPoint, runners) -> CenterPointPipeline:
        return CenterPointPipeline(node, runners, decoder=AutowareDecoder(node, settings),
                                   encoder=BUNDLE_ENCODER, head=BUNDLE_HEAD, pad_to=cfg.max_voxels)

    return build


def _bundle_encoder_inputs(cfg: CenterPointConfig):
    """The pillars Autoware feeds its encoder engine: always max_voxel_size rows, zeros past the real ones."""
    def make_inputs(model: CenterPoint, sample: Scene) -> dict[str, torch.Tensor]:
        return {"input_features": pad_pillars(_encoder_inputs(cfg)(model, sample)["input_features"], cfg.max_voxels)}

    return make_inputs


def _consistency(cfg: CenterPointConfig):
    def shapes_match_config(spec: ModelSpec) -> list[str]:
        """The profile and graph shapes must be the model's: a mismatch deploys a broken engine."""
        problems = []
        encoder, head = spec.component("pts_voxel_encoder"), spec.component("pts_backbone_neck_head")
        voxels, points, width = encoder.inputs[0].shape
        most = voxels.max if isinstance(voxels, Dim) else voxels  # a static size is its own max
        if most != cfg.max_voxels:
            problems.append(f"the num_voxels profile max is {most}, the voxelizer keeps up to {cfg.max_voxels}")
        # a deploy config may name an axis dynamic whose profile fixes it (AWML's num_max_points, the canvas's
        # height and width): the graph is then symbolic there and the engine fixed, which fits the same model
        points, width = _fixed(points), _fixed(width)
        if (points, width) != (cfg.max_points_per_voxel, cfg.decorated_features):
            problems.append(f"input_features is [*, {points}, {width}], "
                            f"the voxelizer gives [*, {cfg.max_points_per_voxel}, {cfg.decorated_features}]")
        nx, ny, nz = cfg.grid_size
        if nx * ny * nz >= 2**31 - 1:
            problems.append(f"the grid has {nx * ny * nz} cells: the voxelizer's int32 cell keys hold fewer than 2**31 - 1")
        if tuple(_fixed(d) for d in head.inputs[0].shape[2:]) != (ny, nx):
            problems.append(f"spatial_features is {head.inputs[0].shape[2:]}, the grid is {(ny, nx)} (range / voxel size)")
        heat = head.outputs[0]
        if heat.name != "heatmap" or heat.shape[1] != len(cfg.class_names):
            problems.append(f"the heatmap has {heat.shape[1]} channels, the spec has {len(cfg.class_names)} classes")
        return problems

    return shapes_match_config


def _fixed(size):
    """A static size, or a dim whose profile fixes it, as that size; another dim as itself (it fits no size)."""
    return size.min if isinstance(size, Dim) and size.min == size.max else size


def _bundle(cfg: CenterPointConfig, settings: AutowareSettings):
    def bundle(model: CenterPoint, folder: Path, graphs, schema: Path | None) -> list[Path]:
        """The tested bundle graphs copied as Autoware names them, with the manifest and the remapper."""
        return write_bundle(folder, graphs[BUNDLE_ENCODER], graphs[BUNDLE_HEAD], cfg, settings, schema)

    return bundle


def _y_axis_head(model: CenterPoint) -> BackboneNeckHeadExport:
    return BackboneNeckHeadExport(model, rot_y_axis_reference=True)


def _hints(cfg: CenterPointConfig):
    def checkpoint_hints(found) -> list[str]:
        """Name the config field behind each shape misfit: class count, kernel size, widths."""
        hints = []
        for key, ckpt, model in found.shapes:
            where = key.split(".")
            if len(ckpt) == 4 and len(model) == 4 and ckpt[2:] != model[2:]:
                if "task_heads" in where:
                    hints.append(f"{key} has {ckpt[2]}x{ckpt[3]} kernels in the checkpoint, {model[2]}x{model[3]} in the "
                                 f"spec (head_final_kernel={cfg.head_final_kernel}): pass --awml-config with the training "
                                 "config (separate_head.final_kernel).")
                elif "deblocks" in where:
                    hints.append(f"{key} has {ckpt[2]}x{ckpt[3]} kernels in the checkpoint, {model[2]}x{model[3]} in the "
                                 f"spec (neck_upsample_strides={cfg.neck_upsample_strides}): pass --awml-config.")
            elif key.endswith("task_heads.0.heatmap.1.weight") or (key.endswith(".bias") and "heatmap" in where):
                hints.append(f"{key} has {ckpt[0]} classes, the spec has {model[0]} ({', '.join(cfg.class_names)}): "
                             "pass --awml-config with the training config, or set class_names.")
            elif key.endswith("pfn_layers.0.linear.weight"):
                hints.append(f"{key} takes {ckpt[1]} decorated point features, the spec {model[1]} "
                             f"({', '.join(cfg.point_feature_names)} + {cfg.decorated_features - cfg.point_features} offsets): pass --awml-config.")
            elif "deblocks" in where and ckpt == model[1::-1] + model[2:]:
                hints.append(f"{key} is {tuple(ckpt)} in the checkpoint, {tuple(model)} in the spec: a ConvTranspose2d "
                             "against a Conv2d (use_conv_for_no_stride): pass --awml-config.")
            elif "task_heads" in where and where[-2] == "conv":
                hints.append(f"{key} is {tuple(ckpt)} in the checkpoint, {tuple(model)} in the spec "
                             f"(head_conv_channels={cfg.head_conv_channels}, head_shared_channels={cfg.head_shared_channels}): "
                             "pass --awml-config.")
        if any(".task_heads.1." in k for k in found.unexpected):
            hints.append("the checkpoint has several CenterHead tasks; this spec models one task: pass --awml-config.")
        return list(dict.fromkeys(hints))

    return checkpoint_hints


def make_spec(name: str, cfg: CenterPointConfig, scene: SceneConfig, encoder_latency: LatencySettings,
              backbone_latency: LatencySettings, weights: Path | None = None) -> ModelSpec:
    """``weights``: a state_dict the model holds without ``--awml-checkpoint`` (else seeded weights)."""
    def configure(path: Path) -> ModelSpec:
        """This spec rebuilt from an AWML/mmdet3d training config (``--awml-config``); bundled weights
        belong to the bundled configuration, so the rebuilt model is seeded unless a checkpoint is given."""
        config = read_config(path)
        new = to_centerpoint(config, cfg)
        reach = max(abs(v) for v in new.point_cloud_range[:2] + new.point_cloud_range[3:5]) * math.sqrt(2)
        rebuilt = make_spec(name, new, dataclasses.replace(scene, max_range=reach), encoder_latency, backbone_latency,
                            weights if new == cfg else None)
        return dataclasses.replace(rebuilt, facts=config_facts(config, new))

    nx, ny, _ = cfg.grid_size
    hy, hx = cfg.head_size
    voxels = Dim("num_voxels", cfg.min_voxels, cfg.opt_voxels, cfg.max_voxels)
    fixed = Dim("num_voxels", cfg.max_voxels, cfg.max_voxels, cfg.max_voxels)  # the node's profile: min = opt = max
    tolerances = {"fp32": FP32, "fp16": REDUCED, "tf32": REDUCED, "int8": INT8}
    onnx = OnnxOptions(opset=cfg.opset)
    settings = AutowareSettings()

    def encoder(component: str, dim: Dim, make_inputs) -> Component:
        return Component(name=component, extract=VoxelEncoderExport, make_inputs=make_inputs,
                         inputs=(TensorSpec("input_features", (dim, cfg.max_points_per_voxel, cfg.decorated_features)),),
                         outputs=(TensorSpec("pillar_features", (dim, 1, cfg.pfn_channels[-1])),),
                         tolerances=tolerances, onnx=onnx, latency=encoder_latency)

    def head(component: str, extract, options: OnnxOptions, encoder: str) -> Component:
        return Component(name=component, extract=extract, make_inputs=_backbone_inputs(cfg), fed_by=FedBy(encoder, _backbone_feed(cfg)),
                         inputs=(TensorSpec("spatial_features", (1, cfg.pfn_channels[-1], ny, nx)),),
                         outputs=tuple(TensorSpec(h, (1, channels, hy, hx)) for h, channels in cfg.heads),
                         tolerances=tolerances, onnx=options, latency=backbone_latency)

    scene = dataclasses.replace(scene, past_sweeps=cfg.past_sweeps, sweep_interval_s=cfg.sweep_interval_s)
    return ModelSpec(
        name=name,
        description=(f"AWML's CenterPoint ({'PointPillars' if cfg.voxel_center_z else 'BackwardPillarFeatureNet'}, "
                     f"{'SECOND' if cfg.convnext is None else 'ConvNeXt_PC'}/SECONDFPN, CenterHead) as AWML exports it; points are "
                     f"{', '.join(cfg.point_feature_names)} over {cfg.past_sweeps} past sweep(s); decoded boxes follow "
                     "mmdet3d's CenterPointBBoxCoder + circle NMS with z at the box centre (mmdet3d: bottom); "
                     + ("trained weights bundled (synthetic scenes)" if weights is not None else "seeded weights")
                     + " unless a checkpoint is given"),
        build_model=_build(cfg, scene, weights),
        default_weights=trained_weights(weights) if weights is not None else "",
        make_samples=_samples(scene),
        sample_kind="point clouds",
        params={"model": cfg, "scene": scene},
        pipeline=PipelineSpec(build=_pipeline(cfg), compare=comparator(cfg.score_threshold, BOX_LIMITS), latency=backbone_latency,
                              min_compared=MIN_MATCHED_BOXES,
                              stage_components={"voxel_encoder": "pts_voxel_encoder", "backbone_head": "pts_backbone_neck_head"}),
        metric=MetricSpec(compute=metric(cfg), max_delta=MAP_DELTA, min_compared=MIN_GROUND_TRUTH),
        load_data=data.loader(cfg),
        data_options=data.OPTIONS,
        checks=(_consistency(cfg),),
        checkpoint_hints=_hints(cfg),
        configure=configure,
        deploy_components={"pts_voxel_encoder": "pts_voxel_encoder", "pts_backbone_neck_head": "pts_backbone_neck_head"},
        components=(encoder("pts_voxel_encoder", voxels, _encoder_inputs(cfg)),
                    head("pts_backbone_neck_head", BackboneNeckHeadExport, onnx, "pts_voxel_encoder")),
        bundle=_bundle(cfg, settings),
        bundle_components=(encoder(BUNDLE_ENCODER, fixed, _bundle_encoder_inputs(cfg)),
                           head(BUNDLE_HEAD, _y_axis_head, dataclasses.replace(onnx, metadata=(("rot_y_axis_reference", "true"),)), BUNDLE_ENCODER)),
        bundle_pipeline=PipelineSpec(build=_bundle_pipeline(cfg, settings), compare=comparator(settings.default_confidence, BOX_LIMITS),
                                     latency=backbone_latency, min_compared=MIN_MATCHED_BOXES,
                                     stage_components={"voxel_encoder": BUNDLE_ENCODER, "backbone_head": BUNDLE_HEAD}),
    )


SPEC = make_spec("centerpoint", FULL, SceneConfig(max_range=FULL.point_cloud_range[3]),
                 encoder_latency=LatencySettings(rounds=10, warmup_rounds=2),
                 backbone_latency=LatencySettings(rounds=3, warmup_rounds=1))

# The tiny scene: a 32-ring lidar whose reach covers the 51.2 m square grid's corners.
TINY_SPEC = make_spec("centerpoint-tiny", TINY, SceneConfig(max_range=36.3, rings=32, azimuth_steps=1024, objects=12),
                      encoder_latency=LatencySettings(rounds=5, warmup_rounds=1),
                      backbone_latency=LatencySettings(rounds=5, warmup_rounds=1),
                      weights=WEIGHTS / "centerpoint-tiny.pt")
