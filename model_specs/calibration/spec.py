"""The calibration-status classifier specs: ``calibration`` (AWML's profile, up to 4K frames) and
``calibration-tiny`` (the project's tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from model_specs.calibration.model import ResNet18, seeded
from pytest_awml.device import Precision
from pytest_awml.pipeline import Check, Pipeline, PipelineResult, PipelineSpec, StageClock
from pytest_awml.runners.base import Runner
from pytest_awml.spec import Component, Dim, LatencySettings, ModelSpec, OnnxOptions, TensorSpec, Tolerance

# logits of order 1-10; fp32 runtimes differ by ~1e-5. At fp16/tf32 an argmax may flip only where
# the two logits are within the logit tolerance of each other.
TOLERANCES = {"fp32": {"*": Tolerance(atol=1e-4, rtol=1e-4)}, "fp16": {"*": Tolerance(atol=5e-2, rtol=2e-2)},
              "tf32": {"*": Tolerance(atol=5e-2, rtol=2e-2)}}
MAX_FLIPS = {"fp32": 0, "fp16": 1, "tf32": 1}


def synthetic_frame(seed: int, height: int, width: int) -> np.ndarray:
    """[5, H, W]: a BGR image, sparse lidar depth (metres) and intensity along scan lines."""
    rng = np.random.default_rng(seed)
    frame = np.zeros((5, height, width), np.float32)
    frame[:3] = np.linspace(40, 200, height, dtype=np.float32)[None, :, None] + rng.normal(0, 10, (3, height, width))
    rows = rng.choice(height, size=max(1, height // 16), replace=False)
    frame[3, rows] = rng.uniform(2, 80, (len(rows), width))
    frame[4, rows] = rng.uniform(0, 255, (len(rows), width))
    return np.clip(frame, 0, None)


class Classify(Pipeline):
    stages = ("model", "postprocess")

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def __call__(self, sample: np.ndarray) -> PipelineResult:
        clock = StageClock()
        with clock.stage("model", self.runner):
            logits = self.runner.run({"input": sample[None]})["output"]
        with clock.stage("postprocess"):
            label = int(np.argmax(logits[0]))
        return PipelineResult((logits[0], label), clock.stages_ms)


def compare(refs: Sequence, tests: Sequence, precision: Precision) -> list[Check]:
    flips = sum(r[1] != t[1] for r, t in zip(refs, tests))
    margin = min((abs(float(r[0][0] - r[0][1])) for r in refs), default=0.0)
    return [Check("class.argmax_flips", float(flips), float(MAX_FLIPS[precision.value]),
                  f"smallest reference logit margin {margin:.3g}")]


def make_spec(name: str, batch: Dim, height: Dim, width: Dim, channel_width: int, latency: LatencySettings) -> ModelSpec:
    def build_model(checkpoint: Path | None, seed: int) -> ResNet18:
        return seeded(seed, channel_width)  # a checkpoint, if given, is loaded into it by the plugin

    def make_samples(count: int, seed: int) -> list[np.ndarray]:
        return [synthetic_frame(seed * 1000 + i, height.min, width.min) for i in range(count)]

    return ModelSpec(
        name=name,
        description="calibration-status classifier (ResNet-18, BGR + depth + intensity); seeded weights unless a checkpoint is given",
        build_model=build_model,
        make_samples=make_samples,
        sample_kind="camera+lidar frames",
        params={"width": channel_width},
        components=(Component(
            name="classifier",
            extract=lambda model: model,
            make_inputs=lambda model, sample: {"input": torch.from_numpy(sample)[None]},
            inputs=(TensorSpec("input", (batch, 5, height, width)),),
            outputs=(TensorSpec("output", (batch, 2)),),
            tolerances=TOLERANCES,
            onnx=OnnxOptions(opset=17),
            latency=latency,
        ),),
        pipeline=PipelineSpec(build=lambda model, runners: Classify(runners["classifier"]), compare=compare, latency=latency),
    )


# AWML's TensorRT profile: [1, 5, 1080, 1920] / [1, 5, 1860, 2880] / [1, 5, 2160, 3840]
SPEC = make_spec("calibration", Dim("batch", 1, 1, 1), Dim("height", 1080, 1860, 2160), Dim("width", 1920, 2880, 3840),
                 64, LatencySettings(rounds=5, warmup_rounds=1))
TINY_SPEC = make_spec("calibration-tiny", Dim("batch", 1, 1, 2), Dim("height", 64, 96, 128), Dim("width", 96, 144, 192),
                      16, LatencySettings(rounds=5, warmup_rounds=1))
