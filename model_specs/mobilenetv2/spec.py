"""AWML's MobileNetV2 traffic-light classifier specs: ``mobilenetv2-car`` (11 classes) and
``mobilenetv2-pedestrian`` (3), each deployed as AWML deploys it, one static-batch graph per deploy config
(batch 1, 4 and 6, 224 x 224, opset 11: ``classifier.batch1``, ``classifier.batch4``, ``classifier.batch6``),
and ``-tiny`` variants (a quarter of the widths on 64 x 64 crops) for the project's tests.

``tests/test_upstream_recorded.py`` holds them to mmpretrain's own MobileNetV2, and the crops to mmcv's and
mmpretrain's own transforms, in every CI run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model_specs.bundled_weights import load_weights
from model_specs.mmconfig import read_config
from model_specs.mobilenetv2 import real_frames
from model_specs.mobilenetv2.config import CAR, CAR_TINY, PEDESTRIAN, PEDESTRIAN_TINY, ClassifierConfig
from model_specs.mobilenetv2.data import TrafficLightFrame, crops, traffic_light_frame
from model_specs.mobilenetv2.metric import top1
from model_specs.mobilenetv2.mmconfig import to_classifier
from model_specs.mobilenetv2.model import TrafficLightClassifier, seeded
from pytest_awml.device import Precision
from pytest_awml.metric import MetricSpec
from pytest_awml.pipeline import Check, Pipeline, PipelineResult, PipelineSpec, StageClock
from pytest_awml.runners.base import Runner
from pytest_awml.spec import Component, Dim, LatencySettings, ModelSpec, OnnxOptions, TensorSpec, Tolerance
from pytest_awml.static_shapes import fit, variant_name

COMPONENT = "classifier"
# AWML's deploy configs, one engine each (configs/deploy/MobileNetv2-*/..._batch_{1,4,6}.py); the last is the one the
# pipeline runs (a frame's six lights in one call)
BATCHES = {"batch1": 1, "batch4": 4, "batch6": 6}
# softmax probabilities in [0, 1]; fp32 runtimes differ by ~1e-7. At fp16/tf32 a top-1 may flip only where the two
# best probabilities are within the tolerance of each other.
TOLERANCES = {"fp32": {"*": Tolerance(atol=1e-5, rtol=1e-4)}, "fp16": {"*": Tolerance(atol=5e-3, rtol=2e-2)},
              "tf32": {"*": Tolerance(atol=5e-3, rtol=2e-2)}}
MAX_FLIPS = {"fp32": 0, "fp16": 1, "tf32": 1}
# top-1 accuracy moves in steps of one light: none may change at fp32, one of the default three frames' 18 at fp16/tf32
ACCURACY_DELTA = {"fp32": 0.0, "fp16": 0.06, "tf32": 0.06}


class Classify(Pipeline):
    """Frame and boxes → AWML's crop and normalisation → the static-batch graph, in calls of its batch (the last call
    filled by repeating its crops, as a static engine needs) → probabilities and top-1 per light."""

    stages = ("preprocess", "model", "postprocess")

    def __init__(self, cfg: ClassifierConfig, runner: Runner, batch: int) -> None:
        self.cfg, self.runner, self.batch = cfg, runner, batch

    def __call__(self, sample: TrafficLightFrame) -> PipelineResult:
        clock = StageClock()
        with clock.stage("preprocess"):
            batch = crops(sample, self.cfg).numpy()
            chunks = [fit(batch[i:i + self.batch], {0: self.batch}) for i in range(0, len(batch), self.batch)]
        with clock.stage("model", self.runner):
            outputs = [self.runner.run({"input": chunk})["output"] for chunk in chunks]
        with clock.stage("postprocess"):
            probabilities = np.concatenate(outputs)[: len(batch)]
            labels = probabilities.argmax(axis=1)
        return PipelineResult((probabilities, labels), clock.stages_ms)


def _build(cfg: ClassifierConfig, runners) -> Classify:
    name = next(v for v in reversed(BATCHES) if variant_name(COMPONENT, v) in runners)  # the last shape a deploy config kept
    return Classify(cfg, runners[variant_name(COMPONENT, name)], BATCHES[name])


def compare(refs: Sequence, tests: Sequence, precision: Precision) -> list[Check]:
    flips = sum(int((r[1] != t[1]).sum()) for r, t in zip(refs, tests, strict=True))
    ranked = [np.sort(r[0], axis=1) for r in refs]
    margin = min((float((p[:, -1] - p[:, -2]).min()) for p in ranked if p.shape[1] > 1), default=0.0)
    return [Check("class.top1_flips", float(flips), float(MAX_FLIPS[precision.value]),
                  f"smallest reference top-2 probability margin {margin:.3g}", compared=sum(len(r[1]) for r in refs))]


def _hints(cfg: ClassifierConfig):
    def checkpoint_hints(found) -> list[str]:
        hints = []
        for key, ckpt, model in found.shapes:
            if key.startswith("head.fc."):
                hints.append(f"{key} is {tuple(ckpt)} in the checkpoint, {tuple(model)} in the spec ({len(cfg.classes)} classes): "
                             "the car classifier has 11, the pedestrian one 3; pass --awml-config with the training config.")
            else:
                hints.append(f"{key} is {tuple(ckpt)} in the checkpoint, {tuple(model)} in the spec (widen_factor={cfg.widen_factor}): "
                             "pass --awml-config.")
        if any(k.startswith(("features.", "classifier.")) for k in found.unexpected):
            hints.append("these are torchvision's key names; mmpretrain's are backbone.* and head.fc.* (an AWML checkpoint has them).")
        return list(dict.fromkeys(hints))

    return checkpoint_hints


WEIGHTS = Path(__file__).with_name("weights")


def _trained(path: Path) -> str:
    made = json.loads(path.with_suffix(".json").read_text())
    return (f"bundled trained weights {path.parent.name}/{path.name} (cross-entropy, {made['epochs']} epochs on {made['trained_on']}; "
            f"held-out accuracy {made['held_out_accuracy']:.2f}, chance {made['chance']:.2f})")


def make_spec(name: str, cfg: ClassifierConfig, latency: LatencySettings, weights: Path | None = None) -> ModelSpec:
    """``weights``: a state_dict the model holds without ``--awml-checkpoint`` (else seeded weights)."""
    def configure(path: Path) -> ModelSpec:
        """This spec rebuilt from AWML's training config (``--awml-config``); bundled weights only while the configuration
        is the bundled one."""
        new = to_classifier(read_config(path), cfg)
        return make_spec(name, new, latency, weights if new == cfg else None)

    def build_model(checkpoint: Path | None, seed: int) -> TrafficLightClassifier:
        model = seeded(cfg, seed)  # a checkpoint, if given, is loaded into it by the plugin
        return load_weights(model, weights) if checkpoint is None and weights is not None else model.eval()

    def make_samples(count: int, seed: int) -> list[TrafficLightFrame]:
        return [traffic_light_frame(seed * 1000 + i, cfg.classes) for i in range(count)]

    size, batch = cfg.image_size, Dim("batch", 1, max(BATCHES.values()), max(BATCHES.values()))
    return ModelSpec(
        name=name,
        description=(f"AWML's traffic-light classifier (mmpretrain MobileNetV2 x{cfg.widen_factor:g}, {len(cfg.classes)} classes, "
                     f"{size} x {size} crops of the lights' boxes, softmax out as mmdeploy exports it), one graph per static batch "
                     f"({', '.join(map(str, BATCHES.values()))}); "
                     + ("trained weights bundled (synthetic frames)" if weights is not None else "seeded weights")
                     + " unless a checkpoint is given"),
        default_weights=_trained(weights) if weights is not None else "",
        metric=MetricSpec(compute=top1, max_delta=ACCURACY_DELTA, min_compared=2),
        build_model=build_model,
        make_samples=make_samples,
        sample_kind="camera frames with traffic-light boxes",
        load_data=real_frames.loader(cfg),
        data_options=real_frames.OPTIONS,
        params={"model": cfg},
        deploy_components={"end2end": COMPONENT},  # mmdeploy's one graph
        components=(Component(
            name=COMPONENT,
            extract=lambda model: model,
            make_inputs=lambda model, sample: {"input": crops(sample, cfg)},
            inputs=(TensorSpec("input", (batch, 3, size, size)),),
            outputs=(TensorSpec("output", (batch, len(cfg.classes))),),
            tolerances=TOLERANCES,
            onnx=OnnxOptions(opset=cfg.opset),
            latency=latency,
            static_shapes={shape: {"batch": n} for shape, n in BATCHES.items()},
        ),),
        pipeline=PipelineSpec(build=lambda model, runners: _build(cfg, runners), compare=compare, latency=latency,
                              stage_components={"model": COMPONENT}),
        checkpoint_hints=_hints(cfg),
        configure=configure,
    )


LATENCY = LatencySettings(rounds=5, warmup_rounds=1)
CAR_SPEC = make_spec("mobilenetv2-car", CAR, LATENCY)
PEDESTRIAN_SPEC = make_spec("mobilenetv2-pedestrian", PEDESTRIAN, LATENCY)
CAR_TINY_SPEC = make_spec("mobilenetv2-car-tiny", CAR_TINY, LATENCY, weights=WEIGHTS / "mobilenetv2-car-tiny.pt")
PEDESTRIAN_TINY_SPEC = make_spec("mobilenetv2-pedestrian-tiny", PEDESTRIAN_TINY, LATENCY, weights=WEIGHTS / "mobilenetv2-pedestrian-tiny.pt")
