"""The calibration-status classifier specs: ``calibration`` (AWML's deploy profile, up to 4K frames, opset 16)
and ``calibration-tiny`` (ResNet-18's topology at an eighth of the widths: the project's tests).

``tests/test_upstream_recorded.py`` holds both to mmpretrain's own numbers, and the samples to AWML's own
transform, in every CI run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from model_specs.bundled_weights import load_weights
from model_specs.calibration.config import FULL, TINY, CalibrationConfig
from model_specs.calibration.data import CalibrationFrame, calibration_frame, fuse
from model_specs.calibration.facts import config_facts
from model_specs.calibration.mmconfig import to_calibration
from model_specs.calibration.model import CalibrationClassifier, seeded
from model_specs.mmconfig import read_config
from pytest_awml.device import Precision
from pytest_awml.metric import MetricResult, MetricSpec
from pytest_awml.pipeline import Check, Pipeline, PipelineResult, PipelineSpec, StageClock
from pytest_awml.runners.base import Runner
from pytest_awml.spec import Component, Dim, LatencySettings, ModelSpec, OnnxOptions, TensorSpec, Tolerance

# logits of order 1-10; fp32 runtimes differ by ~1e-5. At fp16/tf32 an argmax may flip only where
# the two logits are within the logit tolerance of each other.
TOLERANCES = {"fp32": {"*": Tolerance(atol=1e-4, rtol=1e-4)}, "fp16": {"*": Tolerance(atol=5e-2, rtol=2e-2)},
              "tf32": {"*": Tolerance(atol=5e-2, rtol=2e-2)}, "int8": {"*": Tolerance(atol=0.5, rtol=0.1)}}
# int8 (QDQ, minmax over 8 held-out frames) moved calibration-tiny's logits by <= 0.24: a gross-error bound; the argmax
# flips and the accuracy are int8's gate, with fp16's budget.
MAX_FLIPS = {"fp32": 0, "fp16": 1, "tf32": 1, "int8": 1}


class Classify(Pipeline):
    """Frame → AWML's transform → the graph → argmax (0 miscalibrated, 1 calibrated)."""

    stages = ("preprocess", "model", "postprocess")

    def __init__(self, cfg: CalibrationConfig, runner: Runner) -> None:
        self.cfg, self.runner = cfg, runner

    def __call__(self, sample: CalibrationFrame) -> PipelineResult:
        clock = StageClock()
        with clock.stage("preprocess"):
            fused = fuse(sample, self.cfg)[None]
        with clock.stage("model", self.runner):
            logits = self.runner.run({"input": fused})["output"]
        with clock.stage("postprocess"):
            label = int(np.argmax(logits[0]))
        return PipelineResult((logits[0], label), clock.stages_ms)


def compare(refs: Sequence, tests: Sequence, precision: Precision) -> list[Check]:
    flips = sum(r[1] != t[1] for r, t in zip(refs, tests, strict=True))
    margin = min((abs(float(r[0][0] - r[0][1])) for r in refs), default=0.0)
    return [Check("class.argmax_flips", float(flips), float(MAX_FLIPS[precision.value]),
                  f"smallest reference logit margin {margin:.3g}", compared=len(refs))]


def _trained(path: Path) -> str:
    import json

    made = json.loads(path.with_suffix(".json").read_text())
    return (f"bundled trained weights {path.parent.name}/{path.name} (cross-entropy, {made['epochs']} epochs on {made['trained_on']}; "
            f"held-out accuracy {made['held_out_accuracy']:.2f})")


def accuracy(outputs: Sequence, samples: Sequence[CalibrationFrame]) -> MetricResult:
    """Share of frames classified as what they were built as, with the confusion counts
    (``true_<label>.predicted_<label>``: miscalibrated frames taken for calibrated ones are the costly cell)."""
    pairs = [(frame.label, predicted) for (_, predicted), frame in zip(outputs, samples, strict=True)]
    confusion = {f"true_{t}.predicted_{p}": sum(1 for a, b in pairs if (a, b) == (t, p)) for t in (0, 1) for p in (0, 1)}
    hits = sum(1 for a, b in pairs if a == b)
    return MetricResult("accuracy", hits / len(pairs) if pairs else 0.0, len(pairs), confusion)


# Accuracy moves in steps of one frame: at fp32 no frame may change class, at fp16/tf32 one of the default
# three may (the same budget as MAX_FLIPS, as a share).
ACCURACY_DELTA = {"fp32": 0.0, "fp16": 0.34, "tf32": 0.34, "int8": 0.34}
WEIGHTS = Path(__file__).with_name("weights")


def _hints(cfg: CalibrationConfig):
    def checkpoint_hints(found) -> list[str]:
        hints = []
        for key, ckpt, model in found.shapes:
            if key.startswith("head.fc."):
                hints.append(f"{key} is {tuple(ckpt)} in the checkpoint, {tuple(model)} in the spec ({len(cfg.classes)} classes, "
                             f"{cfg.head_in_channels} features): pass --awml-config with the training config.")
            elif key == "backbone.conv1.weight" and ckpt[1] != model[1]:
                hints.append(f"{key} takes {ckpt[1]} input channels, the spec {model[1]} (B, G, R, depth, intensity).")
            else:
                hints.append(f"{key} is {tuple(ckpt)} in the checkpoint, {tuple(model)} in the spec (stem_channels={cfg.stem_channels}, "
                             f"base_channels={cfg.base_channels}): pass --awml-config.")
        if any(k.startswith(("conv1.", "layer1.", "fc.")) for k in found.unexpected):
            hints.append("these are torchvision's key names; mmpretrain's are backbone.* and head.fc.* (an AWML checkpoint has them).")
        elif any(".layer" in k for k in (*found.missing, *found.unexpected)) and not found.shapes:
            hints.append(f"the block counts differ (depth={cfg.depth}): pass --awml-config.")
        return list(dict.fromkeys(hints))

    return checkpoint_hints


def make_spec(name: str, cfg: CalibrationConfig, batch: Dim, height: Dim, width: Dim, latency: LatencySettings,
              weights: Path | None = None) -> ModelSpec:
    """``weights``: a state_dict the model holds without ``--awml-checkpoint`` (else seeded weights)."""
    def configure(path: Path) -> ModelSpec:
        """This spec rebuilt from AWML's training config (``--awml-config``); the profile stays the deploy config's,
        bundled weights only while the configuration is the bundled one."""
        config = read_config(path)
        new = to_calibration(config, cfg)
        rebuilt = make_spec(name, new, batch, height, width, latency, weights if new == cfg else None)
        return dataclasses.replace(rebuilt, facts=config_facts(config, new))

    def build_model(checkpoint: Path | None, seed: int) -> CalibrationClassifier:
        model = seeded(cfg, seed)  # a checkpoint, if given, is loaded into it by the plugin
        return load_weights(model, weights) if checkpoint is None and weights is not None else model.eval()

    def make_samples(count: int, seed: int) -> list[CalibrationFrame]:
        """Frames at the profile's smallest size, ``miscalibration_probability`` of them miscalibrated, spread evenly
        (AWML's transform draws it per sample; at its 0.5, calibrated and miscalibrated in turn)."""
        share = cfg.miscalibration_probability
        return [calibration_frame(seed * 1000 + i, height.min, width.min, calibrated=math.floor((i + 1) * share) == math.floor(i * share))
                for i in range(count)]

    return ModelSpec(
        name=name,
        description=(f"AWML's calibration-status classifier (mmpretrain ResNet-{cfg.depth}, 5 channels: B, G, R, depth, intensity, "
                     "all /255, from projected lidar as AWML's transform builds them; class 0 miscalibrated, 1 calibrated); "
                     + ("trained weights bundled (synthetic frames)" if weights is not None else "seeded weights")
                     + " unless a checkpoint is given"),
        default_weights=_trained(weights) if weights is not None else "",
        metric=MetricSpec(compute=accuracy, max_delta=ACCURACY_DELTA, min_compared=2),
        build_model=build_model,
        make_samples=make_samples,
        sample_kind="camera+lidar frames",
        params={"model": cfg},
        deploy_components={"end2end": "classifier"},  # AWML's mmdeploy config (configs/deploy/resnet18_5ch.py): one graph
        components=(Component(
            name="classifier",
            extract=lambda model: model,
            make_inputs=lambda model, sample: {"input": torch.from_numpy(fuse(sample, cfg))[None]},
            inputs=(TensorSpec("input", (batch, cfg.in_channels, height, width)),),
            outputs=(TensorSpec("output", (batch, len(cfg.classes))),),
            tolerances=TOLERANCES,
            onnx=OnnxOptions(opset=cfg.opset),
            latency=latency,
        ),),
        pipeline=PipelineSpec(build=lambda model, runners: Classify(cfg, runners["classifier"]), compare=compare, latency=latency,
                              stage_components={"model": "classifier"}),
        checkpoint_hints=_hints(cfg),
        configure=configure,
    )


# AWML's deploy config (configs/deploy/resnet18_5ch.py): [1, 5, 1080, 1920] / [1, 5, 1860, 2880] / [1, 5, 2160, 3840]
SPEC = make_spec("calibration", FULL, Dim("batch", 1, 1, 1), Dim("height", 1080, 1860, 2160), Dim("width", 1920, 2880, 3840),
                 LatencySettings(rounds=5, warmup_rounds=1))
TINY_SPEC = make_spec("calibration-tiny", TINY, Dim("batch", 1, 1, 2), Dim("height", 64, 96, 128), Dim("width", 96, 144, 192),
                      LatencySettings(rounds=5, warmup_rounds=1), weights=WEIGHTS / "calibration-tiny.pt")
