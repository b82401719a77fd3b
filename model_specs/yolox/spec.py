"""The YOLOX-ELAN specs: ``yolox`` (960 x 960, static batch 6: AWML's README deploy command),
``yolox-dynamic`` (batch 1-6, for shape tests) and ``yolox-tiny`` (AWML's topology at a quarter of the
widths, 320 x 320, batch 1-4: the project's tests); ``yolox-nms`` and ``yolox-tiny-nms`` are AWML's
``--nms`` export (static batch 1, the deploy script's default), whose graph ends in TensorRT's
EfficientNMS_TRT plugin (:mod:`model_specs.yolox.efficient_nms`).

``tests/test_upstream_recorded.py`` holds ``yolox`` and ``yolox-tiny`` to mmdet's own numbers (AWML's
ELANDarknet and YOLOXPAFPN_ELAN, mmdet's YOLOXHead) in every CI run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from model_specs.bundled_weights import load_weights
from model_specs.mmconfig import read_config
from model_specs.yolox.config import FULL, TINY, YoloxConfig
from model_specs.yolox.data import CameraFrames, camera_frames, letterbox_scale, network_input
from model_specs.yolox.efficient_nms import OUTPUTS as NMS_OUTPUTS
from model_specs.yolox.efficient_nms import PLUGIN, DecodedYolox, EfficientNmsConfig, YoloxWithEfficientNms
from model_specs.yolox.facts import config_facts
from model_specs.yolox.metric import metric
from model_specs.yolox.mmconfig import to_yolox
from model_specs.yolox.model import CALIBRATION_SEED, YoloxElan, calibrated, seeded  # noqa: F401 (CALIBRATION_SEED: its old home)
from model_specs.yolox.postprocess import DECODERS, Limits2D, comparator, decode
from pytest_awml.metric import MetricSpec
from pytest_awml.pipeline import Pipeline, PipelineResult, PipelineSpec, StageClock
from pytest_awml.runners.base import Runner
from pytest_awml.spec import Component, Dim, LatencySettings, ModelSpec, OnnxOptions, TensorSpec, Tolerance

# fp32: ONNX Runtime vs PyTorch sum in another order; outputs are sigmoids (0-1) and box logits of
# order 1, measured errors ~1e-5 on the tiny model. fp16/tf32: 10-bit mantissas.
TOLERANCES = {"fp32": {"*": Tolerance(atol=1e-4, rtol=1e-4)}, "fp16": {"*": Tolerance(atol=5e-2, rtol=2e-2)},
              "tf32": {"*": Tolerance(atol=5e-2, rtol=2e-2)}, "int8": {"*": Tolerance(atol=1.0, rtol=0.1)}}
# int8 (ONNX Runtime CPU, QDQ, minmax over 8 held-out frames): outputs moved by <= 0.35 on yolox-tiny; reported, a
# gross-error bound only: boxes and bbox_mAP are int8's gate.
# fp32: the same boxes, scores within 0.01, no candidate crossing a threshold from farther than 1e-4 (outputs
# differ by ~1e-5: measured 1.3e-5 on the full model). Reduced precision moves scores by up to ~0.05 and
# boxes by a few percent, so near-threshold candidates may flip.
# NMS flips the same way: at fp32 none (IoUs move by ~1e-5); reduced precision moves an IoU by up to ~0.01 (boxes
# by a few tenths of a pixel on boxes of tens), and a suppression that sat on the NMS IoU may go either way:
# measured on yolox-tiny at fp16 (H200 and CPU half): a class-7 box at IoU 0.6500 with a better one, kept in fp32.
_FP32 = Limits2D(iou=0.99, score=0.01, unmatched_margin=0.05, threshold_flips=0, flip_margin=1e-4, nms_margin=1e-4, nms_flips=0)
_REDUCED = Limits2D(iou=0.9, score=0.05, unmatched_margin=0.1, threshold_flips=20, flip_margin=0.01, nms_margin=0.01, nms_flips=5)
# int8 on yolox-tiny: IoU >= 0.72 (1 - IoU 0.279), scores within 0.065, no threshold flip, 6 NMS flips, an unmatched
# box 0.52 above the node's threshold (a box NMS kept on one side only); ~1.5x headroom, bbox_mAP is the gate.
_INT8 = Limits2D(iou=0.6, score=0.15, unmatched_margin=0.8, threshold_flips=20, flip_margin=0.1, nms_margin=0.1, nms_flips=30)
LIMITS = {decoder: {"fp32": _FP32, "fp16": _REDUCED, "tf32": _REDUCED, "int8": _INT8} for decoder in DECODERS}
# COCO bbox_mAP a backend may cost: at fp32 boxes agree to IoU 0.99 and scores to 1e-5, so a change in the
# third decimal is a real difference; reduced precision moves boxes by a few percent and flips near-threshold
# candidates. The tiny spec's 3 default samples hold 20 ground-truth boxes (one forward camera each).
AP_DELTA = {"fp32": 0.005, "fp16": 0.03, "tf32": 0.03, "int8": 0.05}  # int8: measured 0.021 on yolox-tiny
MIN_GROUND_TRUTH = 10
# The graph before the plugin: boxes are the box terms through exp(.) x stride (up to 32), so the output's
# ~1e-5 becomes ~1e-3 px on a box of a few hundred pixels; scores are sigmoid products, errors ~1e-5.
DECODED_TOLERANCES = {"fp32": {"boxes": Tolerance(atol=1e-2, rtol=1e-4), "scores": Tolerance(atol=1e-4, rtol=1e-4)},
                      "fp16": {"boxes": Tolerance(atol=2.0, rtol=5e-2), "scores": Tolerance(atol=5e-2, rtol=2e-2)},
                      "tf32": {"boxes": Tolerance(atol=2.0, rtol=5e-2), "scores": Tolerance(atol=5e-2, rtol=2e-2)}}
# The plugin's outputs, slot by slot. At fp32 the count and classes must be equal and boxes and scores agree
# as the decoded graph's do. Reduced precision moves scores by ~1e-2 and so the order of near-equal
# detections, which a slot-wise comparison would count as errors: no fp16/tf32 entry, so those targets skip
# and say so, and their detections are judged by the decoded component's fp16 parity instead.
NMS_TOLERANCES = {"fp32": {"num_detections": Tolerance(atol=0.0), "detection_classes": Tolerance(atol=0.0),
                           "detection_boxes": Tolerance(atol=1e-2, rtol=1e-4), "detection_scores": Tolerance(atol=1e-4, rtol=1e-4)}}
WEIGHTS = Path(__file__).with_name("weights")


class YoloxPipeline(Pipeline):
    """Frames → letterbox → the graph → Autoware's decoder (the deployed post-process) and mmdet's (evaluation)."""

    stages = ("preprocess", "model", "postprocess", "evaluation_decode")

    def __init__(self, cfg: YoloxConfig, runner: Runner) -> None:
        self.cfg, self.runner = cfg, runner

    def __call__(self, sample: CameraFrames) -> PipelineResult:
        clock = StageClock()
        with clock.stage("preprocess"):
            images = network_input(sample, self.cfg)
        with clock.stage("model", self.runner):
            output = self.runner.run({"images": images})["output"]
        scale = letterbox_scale(sample.frames.shape[1:3], self.cfg.input_size)
        detections = {}
        for decoder, stage in zip(DECODERS, self.stages[2:], strict=True):
            with clock.stage(stage):
                detections[decoder] = [decode(decoder, out, self.cfg, scale) for out in output]
        return PipelineResult(detections, clock.stages_ms)


def _hints(cfg: YoloxConfig):
    def checkpoint_hints(found) -> list[str]:
        """Name the config field behind a misfit: class count, widths, block counts, tier4/YOLOX naming."""
        hints = []
        for key, ckpt, model in found.shapes:
            if key.startswith("bbox_head.multi_level_conv_cls."):
                hints.append(f"the class predictors (bbox_head.multi_level_conv_cls) have {ckpt[0]} classes, the spec has {model[0]} "
                             f"({', '.join(cfg.classes)}): pass --awml-config with the training config (bbox_head.num_classes).")
            else:
                hints.append(f"{key} is {tuple(ckpt)} in the checkpoint, {tuple(model)} in the spec (widen_factor={cfg.widen_factor}, "
                             f"neck {list(cfg.neck_in_channels)} -> {cfg.neck_out_channels}, head {cfg.head_feat_channels}): pass --awml-config.")
                break  # one width hint says it; the list above names every key
        if any(".blocks." in k for k in (*found.missing, *found.unexpected)) and not found.shapes:
            hints.append(f"ELAN block counts differ (deepen_factor={cfg.deepen_factor} gives {[s[2] for s in cfg.stages]} blocks per "
                         "stage): pass --awml-config.")
        if any(k.startswith(("backbone.backbone.", "head.")) for k in found.unexpected):
            hints.append("these are tier4/YOLOX's key names: convert the file with AWML's "
                         "projects/YOLOX_opt_elan/scripts/convert_yolox_s_opt_to_mmdet.py first.")
        return list(dict.fromkeys(hints))

    return checkpoint_hints


def _trained(path: Path) -> str:
    made = json.loads(path.with_suffix(".json").read_text())
    return (f"bundled trained weights {path.parent.name}/{path.name} ({made['steps']} steps on {made['trained_on']}; "
            f"held-out AP@0.5 {made['held_out_ap50']:.2f}, AP@[.5:.95] {made['held_out_ap']:.2f})")


def make_spec(name: str, cfg: YoloxConfig, batch: Dim | int, latency: LatencySettings, weights: Path | None = None) -> ModelSpec:
    """``weights``: a state_dict the model holds without ``--awml-checkpoint`` (else calibrated seeded weights)."""
    h, w = cfg.input_size
    frames = batch if isinstance(batch, int) else batch.opt

    def configure(path: Path) -> ModelSpec:
        """This spec rebuilt from an AWML/mmdet YOLOX training config (``--awml-config``); bundled weights only
        while the configuration is the bundled one."""
        config = read_config(path)
        new = to_yolox(config, cfg)
        rebuilt = make_spec(name, new, batch, latency, weights if new == cfg else None)
        return dataclasses.replace(rebuilt, facts=config_facts(config, new))

    def build_model(checkpoint: Path | None, seed: int) -> YoloxElan:
        if checkpoint is not None:  # the plugin loads the checkpoint into this architecture
            return seeded(cfg, seed).eval()
        if weights is not None:
            return load_weights(seeded(cfg, seed), weights)
        return calibrated(cfg, seed)

    def make_samples(count: int, seed: int) -> Sequence[CameraFrames]:
        return [camera_frames(seed * 1000 + i, cfg, frames) for i in range(count)]

    def make_inputs(model, sample: CameraFrames) -> Mapping[str, torch.Tensor]:
        return {"images": torch.from_numpy(network_input(sample, cfg))}

    def build_pipeline(model, runners) -> YoloxPipeline:
        return YoloxPipeline(cfg, runners["yolox"])

    def shapes_match_config(spec: ModelSpec) -> list[str]:
        out = spec.components[0].outputs[0].shape
        problems = list(cfg.problems())
        if out[1:] != (cfg.anchors, cfg.outputs):
            problems.append(f"output is [*, {out[1]}, {out[2]}], the model gives [*, {cfg.anchors}, {cfg.outputs}] at {cfg.input_size}")
        return problems

    return ModelSpec(
        name=name,
        description=("AWML's YOLOX_opt_elan (ELANDarknet, YOLOXPAFPN_ELAN, mmdet's YOLOXHead; ReLU6) as AWML deploys it: "
                     f"letterboxed BGR 0-255 frames, opset {cfg.opset}; decoded as Autoware does (every class with obj x cls > "
                     f"{cfg.autoware_score_threshold}, class-agnostic NMS {cfg.autoware_nms_iou}) and as mmdet evaluates; "
                     + ("trained weights bundled (synthetic frames)" if weights is not None else "seeded weights")
                     + " unless a checkpoint is given"),
        default_weights=_trained(weights) if weights is not None else "",
        metric=MetricSpec(compute=metric(cfg), max_delta=AP_DELTA, min_compared=MIN_GROUND_TRUTH),
        build_model=build_model,
        make_samples=make_samples,
        sample_kind=f"camera frames x {frames}",
        params={"model": cfg, "batch": batch},
        components=(Component(
            name="yolox",
            extract=lambda model: model,
            make_inputs=make_inputs,
            inputs=(TensorSpec("images", (batch, 3, h, w)),),
            outputs=(TensorSpec("output", (batch, cfg.anchors, cfg.outputs)),),
            tolerances=TOLERANCES,
            onnx=OnnxOptions(opset=cfg.opset),
            latency=latency,
        ),),
        pipeline=PipelineSpec(build=build_pipeline, compare=comparator(LIMITS), latency=latency, stage_components={"model": "yolox"}),
        checks=(shapes_match_config,),
        checkpoint_hints=_hints(cfg),
        configure=configure,
    )


def with_efficient_nms(base: ModelSpec, name: str, nms: EfficientNmsConfig = EfficientNmsConfig()) -> ModelSpec:
    """``base`` (a static-batch YOLOX spec) exported as AWML's ``--nms`` graph: two components, ``yolox_decoded``
    (the graph up to the plugin, which every backend runs) and ``yolox_nms`` (the deployed graph, with the
    EfficientNMS_TRT node, which only a TensorRT whose registry holds the plugin builds). No pipeline and no
    task metric: the deployed graph's detections are its outputs, compared slot by slot."""
    cfg, batch = base.params["model"], base.params["batch"]
    h, w = cfg.input_size
    images = TensorSpec("images", (batch, 3, h, w))
    yolox = base.components[0]
    reconfigure = base.configure

    def shapes_match_config(spec: ModelSpec) -> list[str]:
        boxes, scores = spec.components[0].outputs
        problems = list(cfg.problems())
        if boxes.shape[1:] != (cfg.anchors, 4) or scores.shape[1:] != (cfg.anchors, len(cfg.classes)):
            problems.append(f"decoded outputs are {list(boxes.shape)} and {list(scores.shape)}, the model gives "
                            f"[*, {cfg.anchors}, 4] and [*, {cfg.anchors}, {len(cfg.classes)}] at {cfg.input_size}")
        if isinstance(batch, Dim):
            problems.append("AWML's --nms export is a static-batch graph: give the base spec an int batch")
        return problems

    decoded = dataclasses.replace(
        yolox, name="yolox_decoded", extract=lambda model: DecodedYolox(model, cfg), inputs=(images,),
        outputs=(TensorSpec("boxes", (batch, cfg.anchors, 4)), TensorSpec("scores", (batch, cfg.anchors, len(cfg.classes)))),
        tolerances=DECODED_TOLERANCES)
    k = nms.max_output_boxes
    deployed = dataclasses.replace(
        yolox, name="yolox_nms", extract=lambda model: YoloxWithEfficientNms(model, cfg, nms), inputs=(images,),
        outputs=tuple(TensorSpec(n, s) for n, s in zip(NMS_OUTPUTS, ((batch, 1), (batch, k, 4), (batch, k), (batch, k)), strict=True)),
        tolerances=NMS_TOLERANCES, plugins=(PLUGIN,))
    return dataclasses.replace(
        base, name=name, components=(decoded, deployed), pipeline=None, metric=None, params={**base.params, "nms": nms},
        checks=(shapes_match_config,),
        configure=None if reconfigure is None else lambda path: with_efficient_nms(reconfigure(path), name, nms),
        description=(f"AWML's YOLOX_opt_elan --nms export: boxes decoded in the graph, {PLUGIN} (score {nms.score_threshold}, "
                     f"IoU {nms.iou_threshold}, at most {nms.max_output_boxes}, class-aware) appended; the plugin runs only "
                     "under a TensorRT that registers it, the graph before it everywhere; " + base.description.rsplit("; ", 1)[-1]))


# AWML's README deploys ``--batch_size 6``: a static batch-6 graph (Autoware runs it over its cameras)
DEPLOYED_BATCH = 6

SPEC = make_spec("yolox", FULL, DEPLOYED_BATCH, LatencySettings(rounds=5, warmup_rounds=1))
DYNAMIC_SPEC = make_spec("yolox-dynamic", FULL, Dim("batch", 1, 1, DEPLOYED_BATCH), LatencySettings(rounds=5, warmup_rounds=1))
TINY_SPEC = make_spec("yolox-tiny", TINY, Dim("batch", 1, 1, 4), LatencySettings(rounds=5, warmup_rounds=1),
                      weights=WEIGHTS / "yolox-tiny.pt")
# AWML's deploy script exports --nms at its default --batch_size 1
NMS_SPEC = with_efficient_nms(make_spec("yolox-nms", FULL, 1, LatencySettings(rounds=5, warmup_rounds=1)), "yolox-nms")
TINY_NMS_SPEC = with_efficient_nms(make_spec("yolox-tiny-nms", TINY, 1, LatencySettings(rounds=5, warmup_rounds=1),
                                             weights=WEIGHTS / "yolox-tiny.pt"), "yolox-tiny-nms")
