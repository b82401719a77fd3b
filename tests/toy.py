"""A model no spec ships: small enough that unit tests build, export and run it in a second.

Not a test module (no ``test_`` prefix): tests import what they need from it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pytest_awml.backends import builtin as builtin_backends
from pytest_awml.builders import builtin as builtin_builders
from pytest_awml.cases import Plan
from pytest_awml.device import Device, Precision
from pytest_awml.options import AwmlOptions
from pytest_awml.pipeline import Check, Pipeline, PipelineResult, PipelineSpec, StageClock
from pytest_awml.spec import Component, Dim, ModelSpec, TensorSpec, Tolerance

N = Dim("n", 2, 4, 8)


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(3, 2)
        self.head = nn.Linear(2, 1)


class ToyPipeline(Pipeline):
    stages = ("enc", "head")

    def __init__(self, runners) -> None:
        self.runners = runners

    def __call__(self, sample) -> PipelineResult:
        clock = StageClock()
        with clock.stage("enc", self.runners["enc"]):
            features = self.runners["enc"].run({"x": sample})["y"]
        with clock.stage("head", self.runners["head"]):
            out = self.runners["head"].run({"f": features[:1]})["z"]
        return PipelineResult(out, clock.stages_ms)


def compare(refs, tests, precision):
    return [Check("z.max_abs", max(float(np.abs(r - t).max()) for r, t in zip(refs, tests)), 1e-4)]


def build_model(checkpoint, seed):
    torch.manual_seed(seed)
    return Toy().eval()


def make_samples(count, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(count)]


FP32 = {"fp32": {"*": Tolerance(1e-5, 1e-5)}}
SPEC = ModelSpec(
    name="toy",
    build_model=build_model,
    make_samples=make_samples,
    components=(
        Component("enc", lambda m: m.enc, lambda m, s: {"x": torch.from_numpy(s)},
                  (TensorSpec("x", (N, 3)),), (TensorSpec("y", (N, 2)),), FP32),
        Component("head", lambda m: m.head, lambda m, s: {"f": m.enc(torch.from_numpy(s))[:1]},
                  (TensorSpec("f", (1, 2)),), (TensorSpec("z", (1, 1)),), FP32),
    ),
    pipeline=PipelineSpec(build=lambda model, runners: ToyPipeline(runners), compare=compare),
)


def options(tmp_path: Path, **changes) -> AwmlOptions:
    base = AwmlOptions(specs=("toy",), backends=("pytorch", "onnxruntime", "tensorrt"), device=Device.parse("cpu"),
                       precisions=(Precision.FP32,), artifacts=tmp_path / "artifacts", checkpoint=None, samples=2, seed=0,
                       report=tmp_path / "report.json")
    return dataclasses.replace(base, **changes)


def plan(tmp_path: Path, specs=(SPEC,), registry=None, **changes) -> Plan:
    """The plan of ``specs``; ``changes`` replace options' fields, ``registry`` the built-in backends."""
    return Plan.build(options(tmp_path, **changes), list(specs), registry or builtin_backends(), builtin_builders())
