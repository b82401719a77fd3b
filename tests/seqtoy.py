"""A tiny stateful model for the sequence mechanism's tests (:mod:`pytest_awml.sequence`): an encoder, and a step that
updates a memory carried from frame to frame (``memory_out`` → next frame's ``memory``), as StreamPETR's head updates
its memory queue. The memory accumulates (``memory + 0.1 * y``): an error in it stays, as a queue's does.

Faults are put into the *export* only (``torch.onnx.is_in_onnx_export()``): the ONNX graph's state update then
differs from PyTorch's, which is what a deployment's broken memory update looks like. ``bias``: added to every
frame's memory update; ``eps`` at ``frame``: added only when the frame's timestamp ``t`` equals ``frame``.

Not a test module (no ``test_`` prefix): tests import it, and a spec file given to ``--awml-spec`` builds its spec.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pytest_awml.limits import Verdict
from pytest_awml.metric import MetricResult, MetricSpec
from pytest_awml.sequence import Feed, SequenceSpec
from pytest_awml.spec import Component, LatencySettings, ModelSpec, TensorSpec, Tolerance

WIDTH = 4
ATOL = 1e-4  # the step's per-frame parity tolerance and the memory's sequence bound
FRAMES = 6


class Step(nn.Module):
    def __init__(self, bias: float, eps: float, frame: int) -> None:
        super().__init__()
        self.inp = nn.Linear(WIDTH, WIDTH)
        self.mix = nn.Linear(WIDTH, WIDTH)
        self.fault = (bias, eps, frame)

    def forward(self, x: torch.Tensor, t: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.tanh(self.inp(x) + self.mix(memory))
        memory_out = memory + 0.1 * y
        if torch.onnx.is_in_onnx_export():
            bias, eps, frame = self.fault
            memory_out = memory_out + bias + eps * (t == frame).to(memory_out.dtype).reshape(1, 1)
        return y, memory_out


class Toy(nn.Module):
    def __init__(self, bias: float, eps: float, frame: int) -> None:
        super().__init__()
        self.enc = nn.Linear(3, WIDTH)
        self.step = Step(bias, eps, frame)


def make_frames(model, count: int, seed: int) -> list[dict[str, dict[str, np.ndarray]]]:
    rng = np.random.default_rng(seed)
    frames: list[dict[str, dict[str, np.ndarray]]] = []
    for k in range(count):
        step = {"t": np.array([float(k)], dtype=np.float32)}
        if k == 0:
            step["memory"] = np.zeros((1, WIDTH), dtype=np.float32)
        frames.append({"enc": {"raw": rng.standard_normal((1, 3)).astype(np.float32)}, "step": step})
    return frames


TRUTH = "truth"  # the frames' ground truth, under a name no component has


def with_truth(model, count: int, seed: int) -> list[dict[str, dict[str, np.ndarray]]]:
    """The frames, each with a label to score: whether the step's output ``y`` sums above zero, drawn at random."""
    labels = np.random.default_rng(seed + 1).integers(0, 2, count)
    return [{**frame, TRUTH: {"label": np.array(label)}} for frame, label in zip(make_frames(model, count, seed), labels, strict=True)]


def compare(refs, tests, precision) -> list[Verdict]:
    """The decoded outputs' parity: the step's ``y`` over every frame, the worst against ``ATOL``."""
    worst = max(float(np.abs(r["step"]["y"] - t["step"]["y"]).max()) for r, t in zip(refs, tests, strict=True))
    return [Verdict("y", worst, ATOL, f"over {len(refs)} frames", compared=len(refs))]


def accuracy(outputs, frames) -> MetricResult:
    """How many frames' ``y`` sums to the side of zero its label says."""
    hits = [bool(o["step"]["y"].sum() > 0) == bool(f[TRUTH]["label"]) for o, f in zip(outputs, frames, strict=True)]
    return MetricResult("accuracy", float(np.mean(hits)), len(hits))


def spec(bias: float = 0.0, eps: float = 0.0, frame: int = -1, name: str = "seqtoy", judged: bool = False) -> ModelSpec:
    """``judged``: the sequence also compares its decoded outputs (``compare``) and scores them (``accuracy``, no delta
    allowed at fp32)."""
    def build_model(checkpoint, seed):
        torch.manual_seed(seed)
        return Toy(bias, eps, frame).eval()

    def step_inputs(model, sample):
        with torch.no_grad():
            x = model.enc(torch.from_numpy(sample))
        return {"x": x, "t": torch.zeros(1), "memory": torch.zeros(1, WIDTH)}

    tolerances = {"fp32": {"*": Tolerance(ATOL)}}
    return ModelSpec(
        name=name,
        build_model=build_model,
        make_samples=lambda count, seed: [np.random.default_rng(seed + i).standard_normal((1, 3)).astype(np.float32) for i in range(count)],
        components=(
            Component("enc", lambda m: m.enc, lambda m, s: {"raw": torch.from_numpy(s)},
                      (TensorSpec("raw", (1, 3)),), (TensorSpec("x", (1, WIDTH)),), tolerances),
            Component("step", lambda m: m.step, step_inputs,
                      (TensorSpec("x", (1, WIDTH)), TensorSpec("t", (1,)), TensorSpec("memory", (1, WIDTH))),
                      (TensorSpec("y", (1, WIDTH)), TensorSpec("memory_out", (1, WIDTH))), tolerances),
        ),
        sequence=SequenceSpec(order=("enc", "step"), links=(Feed("enc", "x", "step", "x"),),
                              carries=(Feed("step", "memory_out", "step", "memory"),), make_frames=with_truth if judged else make_frames,
                              drift={"fp32": {"memory_out": Tolerance(ATOL)}}, frames=FRAMES,
                              latency=LatencySettings(rounds=12, warmup_rounds=2), compare=compare if judged else None,
                              metric=MetricSpec(accuracy, {"fp32": 0.0}, min_compared=FRAMES) if judged else None),
    )
