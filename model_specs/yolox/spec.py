"""The YOLOX-ELAN specs: ``yolox`` (960 x 960, batch 1, as AWML ships it), ``yolox-dynamic``
(batch 1-6, for shape tests) and ``yolox-tiny`` (320 x 320, batch 1-4: the project's tests)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from model_specs.yolox.model import YoloxConfig, YoloxElan, calibrate, seeded
from model_specs.yolox.postprocess import Limits2D, comparator, decode
from pytest_awml.pipeline import Pipeline, PipelineResult, PipelineSpec, StageClock
from pytest_awml.runners.base import Runner
from pytest_awml.spec import Component, Dim, LatencySettings, ModelSpec, OnnxOptions, TensorSpec, Tolerance

CALIBRATION_SEED = 424_242
# fp32: ONNX Runtime vs PyTorch sum in another order; outputs are sigmoids (0-1) and box logits of
# order 1, measured errors ~1e-5 on the tiny model. fp16/tf32: 10-bit mantissas.
TOLERANCES = {"fp32": {"*": Tolerance(atol=1e-4, rtol=1e-4)}, "fp16": {"*": Tolerance(atol=5e-2, rtol=2e-2)},
              "tf32": {"*": Tolerance(atol=5e-2, rtol=2e-2)}}
LIMITS = {"fp32": Limits2D(iou=0.99, score=0.01, unmatched_score=0.3, threshold_flips=0),
          "fp16": Limits2D(iou=0.9, score=0.05, unmatched_score=0.3, threshold_flips=20),
          "tf32": Limits2D(iou=0.9, score=0.05, unmatched_score=0.3, threshold_flips=20)}


def synthetic_image(seed: int, cfg: YoloxConfig) -> np.ndarray:
    """A seeded BGR 0-255 image [3, H, W]: a gradient road scene with coloured boxes as 'objects'."""
    rng = np.random.default_rng(seed)
    h, w = cfg.input_size
    image = np.empty((3, h, w), np.float32)
    image[:] = np.linspace(60, 160, h, dtype=np.float32)[None, :, None] + rng.normal(0, 8, (3, h, w)).astype(np.float32)
    for _ in range(rng.integers(5, 15)):
        bh, bw = rng.integers(h // 20, h // 4), rng.integers(w // 20, w // 4)
        y, x = rng.integers(0, h - bh), rng.integers(0, w - bw)
        image[:, y:y + bh, x:x + bw] = rng.uniform(0, 255, (3, 1, 1))
    return np.clip(image, 0, 255)


class YoloxPipeline(Pipeline):
    stages = ("preprocess", "model", "postprocess")

    def __init__(self, cfg: YoloxConfig, runner: Runner) -> None:
        self.cfg, self.runner = cfg, runner

    def __call__(self, sample: np.ndarray) -> PipelineResult:
        clock = StageClock()
        with clock.stage("preprocess"):
            images = np.ascontiguousarray(sample[None], dtype=np.float32)  # already letterboxed BGR 0-255
        with clock.stage("model", self.runner):
            output = self.runner.run({"images": images})["output"]
        with clock.stage("postprocess"):
            detections = decode(output, self.cfg, self.cfg.input_size)
        return PipelineResult(detections, clock.stages_ms)


def make_spec(name: str, cfg: YoloxConfig, batch: Dim | int, latency: LatencySettings) -> ModelSpec:
    h, w = cfg.input_size

    def build_model(checkpoint: Path | None, seed: int) -> YoloxElan:
        model = seeded(cfg, seed)
        if checkpoint is None:  # with a checkpoint the plugin loads the weights into this architecture
            calibrate(model, torch.from_numpy(synthetic_image(CALIBRATION_SEED, cfg))[None], cfg.calibration_detections)
        return model.eval()

    def make_samples(count: int, seed: int) -> Sequence[np.ndarray]:
        return [synthetic_image(seed * 1000 + i, cfg) for i in range(count)]

    def make_inputs(model, sample: np.ndarray) -> Mapping[str, torch.Tensor]:
        return {"images": torch.from_numpy(sample)[None]}

    def build_pipeline(model, runners) -> YoloxPipeline:
        return YoloxPipeline(cfg, runners["yolox"])

    def shapes_match_config(spec: ModelSpec) -> list[str]:
        out = spec.components[0].outputs[0].shape
        problems = []
        if out[1:] != (cfg.anchors, cfg.outputs):
            problems.append(f"output is [*, {out[1]}, {out[2]}], the model gives [*, {cfg.anchors}, {cfg.outputs}] at {cfg.input_size}")
        if any(side % max(cfg.strides) for side in cfg.input_size):
            problems.append(f"input {cfg.input_size} is not a multiple of the largest stride {max(cfg.strides)}")
        return problems

    return ModelSpec(
        name=name,
        description="YOLOX with an ELAN backbone as AWML's YOLOX_opt_elan deploys it; seeded weights unless a checkpoint is given",
        build_model=build_model,
        make_samples=make_samples,
        sample_kind="images",
        params={"model": cfg, "batch": batch},
        components=(Component(
            name="yolox",
            extract=lambda model: model,
            make_inputs=make_inputs,
            inputs=(TensorSpec("images", (batch, 3, h, w)),),
            outputs=(TensorSpec("output", (batch, cfg.anchors, cfg.outputs)),),
            tolerances=TOLERANCES,
            onnx=OnnxOptions(opset=16),
            latency=latency,
        ),),
        pipeline=PipelineSpec(build=build_pipeline, compare=comparator(cfg, LIMITS), latency=latency),
        checks=(shapes_match_config,),
    )


FULL = YoloxConfig()
TINY = dataclasses.replace(FULL, input_size=(320, 320), stage_channels=(16, 32, 64, 128), neck_channels=32, calibration_detections=10)

SPEC = make_spec("yolox", FULL, 1, LatencySettings(rounds=10, warmup_rounds=2))
DYNAMIC_SPEC = make_spec("yolox-dynamic", FULL, Dim("batch", 1, 1, 6), LatencySettings(rounds=5, warmup_rounds=1))
TINY_SPEC = make_spec("yolox-tiny", TINY, Dim("batch", 1, 1, 4), LatencySettings(rounds=5, warmup_rounds=1))
