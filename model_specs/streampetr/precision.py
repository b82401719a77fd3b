"""StreamPETR's sections at reduced precision in PyTorch, to measure what fp16 and tf32 do to each output of each
section and to the memory over a sequence: the figures behind ``spec``'s fp16 and tf32 tolerances and drift bounds
(``tools/measure_streampetr_precision.py`` prints them; ``tests/test_streampetr_precision.py`` runs the CPU fp16
autocast on the tiny spec against those bounds).

The modes are what a GPU runtime's reduced precision does, as PyTorch can do it: ``fp16`` runs each section under
``torch.autocast`` at float16 (matmuls, linears and convolutions in half; normalisations, softmax and the
float64/float32 pose algebra as written: the layers TensorRT's fp16 builder flag lets it run in half; casting the
whole section with ``.half()`` fails, as the head builds float32 constants inside the graph), ``tf32`` lets CUDA's matmuls and convolutions round
their inputs to tf32 (CUDA only: the CPU has no tf32). Outputs come back as float32 (the graph's output types), so that
the framework's comparison reads them as it reads a runtime's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pytest_awml.sequence import FRAME, SEQUENCE, Run, roll
from pytest_awml.spec import ModelSpec

MODES = ("fp16", "tf32", "fp32")


@contextlib.contextmanager
def _precision(mode: str, device: str) -> Iterator[None]:
    if mode == "fp16":
        with torch.autocast(device, dtype=torch.float16):
            yield
    elif mode == "tf32":
        if device != "cuda":
            raise ValueError("tf32 is a CUDA mode: the CPU has no tf32 matmul (run it on a GPU)")
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    else:
        yield


def section_runner(spec: ModelSpec, model: torch.nn.Module, mode: str, device: str = "cpu") -> Run:
    """``run(component, inputs) -> outputs`` for :func:`pytest_awml.sequence.roll`: the spec's section in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if mode != "tf32" and device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 is fp32, fp16 alone is fp16
    sections = {c.name: c.extract(model).to(device).eval() for c in spec.components}

    def cast(value: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(value)).to(device)

    def run(name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        component = spec.component(name)
        with torch.no_grad(), _precision(mode, device):
            out = sections[name](*(cast(inputs[i]) for i in component.input_names))
        out = out if isinstance(out, tuple) else (out,)
        return {n: o.float().cpu().numpy() for n, o in zip(component.output_names, out, strict=True)}

    return run


@dataclass(frozen=True)
class Figure:
    """The largest error of one output over a sequence under one gate, and where it was."""

    gate: str
    component: str
    output: str
    max_abs: float
    ref_max_abs: float
    frame: int


def rollouts(spec: ModelSpec, model: torch.nn.Module, frames: Sequence, mode: str, device: str = "cpu") -> tuple[list, list, list]:
    """(reference, forced, free): fp32 PyTorch on the CPU; ``mode`` on the reference's state (teacher forcing);
    ``mode`` on its own state. The rollouts :func:`pytest_awml.sequence.judge` takes."""
    sequence = spec.sequence
    assert sequence is not None
    reference = roll(sequence, frames, section_runner(spec, model, "fp32", "cpu"))
    target = section_runner(spec, model, mode, device)
    forced = roll(sequence, frames, target, reference)
    free = roll(sequence, frames, target)
    model.to("cpu")
    return reference, forced, free


def figures(spec: ModelSpec, reference: Sequence, forced: Sequence, free: Sequence) -> list[Figure]:
    """Per output, its largest error over the frames: every output of every section on the reference's state
    (``FRAME``), the carried outputs on the target's own (``SEQUENCE``)."""
    sequence = spec.sequence
    assert sequence is not None
    found = []

    def worst(gate: str, component: str, output: str, pairs: list[tuple[np.ndarray, np.ndarray]]) -> Figure:
        errors = [float(np.abs(t.astype(np.float64) - r).max()) for r, t in pairs]
        k = int(np.argmax(errors))
        return Figure(gate, component, output, errors[k], float(np.abs(pairs[k][0]).max()), k)

    for name in sequence.order:
        for output in spec.component(name).output_names:
            found.append(worst(FRAME, name, output, [(r[name][output], t[name][output]) for r, t in zip(reference, forced, strict=True)]))
    for feed in sequence.carries:
        found.append(worst(SEQUENCE, feed.source, feed.output,
                           [(r[feed.source][feed.output], t[feed.source][feed.output]) for r, t in zip(reference, free, strict=True)]))
    return found
