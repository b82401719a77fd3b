"""A stateful pipeline: components run frame after frame, some outputs carried into the next frame's inputs (a
temporal memory, a tracker's state), declared by a spec as a :class:`SequenceSpec` (``ModelSpec.sequence``).

A component's parity test feeds every backend the same inputs, so it cannot see what a deployment sees: the
backend's own state, fed back frame after frame, an error in one frame's memory carried into the next. Two gates
judge a sequence (:func:`judge`):

- **per frame** (``gate="frame"``): frame k on the target is fed the *reference's* state after frame k-1
  (teacher forcing), so its error is frame k's own; every output of every component is held to the component's
  parity tolerance at the target's precision. A state update that is wrong in one frame fails at that frame.
- **over the sequence** (``gate="sequence"``): the target runs on its own state; the carried outputs after k frames
  are held to ``SequenceSpec.drift`` at every frame. An error within the per-frame tolerance that accumulates
  (or grows) through the memory fails where it leaves the bound, and the report holds its figure at every frame.

Everything here is a pure function of the frames and a ``run(component, inputs)`` step handed down by the caller
(:mod:`pytest_awml.sequence_suite` hands the workspace's one inference door); nothing runs a backend itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from pytest_awml.compare import OutputComparison, compare_output, compare_outputs
from pytest_awml.component import ANY_OUTPUT, Component, ToleranceTable
from pytest_awml.device import Precision
from pytest_awml.errors import DataError
from pytest_awml.limits import LatencySettings, Tolerance, Verdict
from pytest_awml.metric import MetricSpec

__all__ = ["FRAME", "SEQUENCE", "Feed", "FrameVerdict", "Outputs", "SequenceSpec", "first_failures", "judge", "roll", "step"]

FRAME = "frame"  # the per-frame gate's name in records and messages: teacher-forced state, the frame's own error
SEQUENCE = "sequence"  # the sequence gate's: the target's own state, error after k frames

Frame = Mapping[str, Mapping[str, np.ndarray]]
"""One frame's tensors by component, then by tensor name."""
Outputs = Mapping[str, Mapping[str, np.ndarray]]
"""One frame's outputs by component, then by output name (a rollout's frame)."""
Run = Callable[[str, Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
"""``run(component, inputs) -> outputs``: one inference on the side being rolled."""


@dataclass(frozen=True)
class Feed:
    """``source``'s output ``output`` is ``target``'s input ``input``: in the same frame (``SequenceSpec.links``), or
    in the next frame (``SequenceSpec.carries``: the state)."""

    source: str
    output: str
    target: str
    input: str

    @property
    def label(self) -> str:
        return f"{self.source}.{self.output} -> {self.target}.{self.input}"


@dataclass(frozen=True)
class SequenceSpec:
    """A spec's stateful pipeline over ``frames`` frames.

    ``order``: the components run each frame, in that order. ``links``: outputs fed to a later component in the same
    frame; ``carries``: outputs fed to a component's input in the next frame (the state). ``make_frames(model, count,
    seed)`` returns ``count`` frames, each component → its inputs that no link feeds; the first frame also holds the
    carried inputs (the initial state), later frames never do (the state is the pipeline's own). ``drift``:
    precision → carried output name (or ``"*"``) → the bound on its error after k frames, at every frame.
    ``latency``: how a frame is timed (``test_sequence_latency``: one round is one frame, the state carried).
    ``between(state, previous, frame)`` (optional): what the deployment does on the host to the state between two
    frames (a queue cut back to its length, an age advanced by the time since the last frame): the carried values by
    the input they feed, the frame before and the frame to come → the values fed; the same on every side.

    What the user sees over the sequence, each side on its own state (optional): ``compare(refs, tests, precision)`` the
    decoded outputs' parity (each frame's outputs by component, the reference's and the target's) → :class:`Verdict`
    list, as ``PipelineSpec.compare``; a verdict over fewer than ``min_compared`` items judged nothing. ``metric`` the
    task metric (:class:`~pytest_awml.metric.MetricSpec`): ``compute(outputs, frames)``, the frames holding the ground
    truth under a name no component has (``step`` passes only ``order``'s components on).
    """

    order: tuple[str, ...]
    carries: tuple[Feed, ...]
    make_frames: Callable[[Any, int, int], Sequence[Frame]]
    drift: ToleranceTable
    frames: int = 8
    links: tuple[Feed, ...] = ()
    latency: LatencySettings = field(default_factory=LatencySettings)
    between: Callable[[Mapping[str, np.ndarray], Frame, Frame], Mapping[str, np.ndarray]] | None = None
    from_samples: Callable[[Any, Sequence[Any]], Sequence[Frame]] | None = None
    compare: Callable[[Sequence[Outputs], Sequence[Outputs], Precision], list[Verdict]] | None = None
    min_compared: int = 1
    metric: MetricSpec | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", tuple(self.order))
        object.__setattr__(self, "carries", tuple(self.carries))
        object.__setattr__(self, "links", tuple(self.links))
        object.__setattr__(self, "drift", MappingProxyType({str(p): MappingProxyType(dict(t)) for p, t in self.drift.items()}))

    def drift_tolerance(self, precision: str, output: str) -> Tolerance | None:
        """The sequence bound on a carried output at ``precision``; None: the spec sets none at that precision."""
        table = self.drift.get(precision)
        return None if table is None else table.get(output) or table.get(ANY_OUTPUT)

    def problems(self, components: Mapping[str, Component]) -> list[str]:
        """What the declaration shows wrong against the spec's components (run by ``spec.validate``)."""
        found = []
        if not isinstance(self.frames, int) or self.frames < 2:
            found.append(f"frames must be an int >= 2 (one frame carries no state), got {self.frames!r}")
        if not self.carries:
            found.append("carries is empty: a sequence without state is the spec's pipeline")
        if not callable(self.make_frames):
            found.append("make_frames is not callable")
        if self.between is not None and not callable(self.between):
            found.append("between is not callable")
        if self.from_samples is not None and not callable(self.from_samples):
            found.append("from_samples is not callable")
        if self.compare is not None and not callable(self.compare):
            found.append("compare is not callable")
        if not isinstance(self.min_compared, int) or self.min_compared < 1:
            found.append(f"min_compared must be an int >= 1, got {self.min_compared!r}")
        if self.metric is not None:
            found += [f"metric: {problem}" for problem in self.metric.problems()]
        for name in self.order:
            if name not in components:
                found.append(f"order names {name!r}, which is not a component ({', '.join(components)})")
        position = {name: i for i, name in enumerate(self.order)}
        for kind, feeds in (("links", self.links), ("carries", self.carries)):
            for feed in feeds:
                source, target = components.get(feed.source), components.get(feed.target)
                if feed.source not in position or feed.target not in position or source is None or target is None:
                    found.append(f"{kind} {feed.label}: both components must be in order")
                    continue
                if feed.output not in source.output_names:
                    found.append(f"{kind} {feed.label}: {feed.source} has no output {feed.output!r}")
                if feed.input not in target.input_names:
                    found.append(f"{kind} {feed.label}: {feed.target} has no input {feed.input!r}")
                if kind == "links" and position[feed.source] >= position[feed.target]:
                    found.append(f"links {feed.label}: {feed.source} must run before {feed.target} in order")
        fed = [(f.target, f.input) for f in self.links + self.carries]
        found += [f"{t}.{i} is fed twice (links and carries feed an input once)" for t, i in sorted(set(fed)) if fed.count((t, i)) > 1]
        carried = {f.output for f in self.carries}
        for precision, table in self.drift.items():
            for output, tol in table.items():
                if output != ANY_OUTPUT and output not in carried:
                    found.append(f"drift[{precision!r}][{output!r}] names no carried output ({', '.join(sorted(carried))})")
                if not isinstance(tol, Tolerance) or tol.problems():
                    found.append(f"drift[{precision!r}][{output!r}] is not a valid Tolerance")
            missing = sorted(carried - set(table)) if ANY_OUTPUT not in table else []
            if missing:
                found.append(f"drift[{precision!r}] covers no bound for {', '.join(missing)}: add them or a '*' default")
        return found


def step(sequence: SequenceSpec, frame: Frame, previous: Frame | None, run: Run, index: int = 0,
         before: Frame | None = None) -> dict[str, dict[str, np.ndarray]]:
    """One frame through ``order``: its outputs by component. ``previous``: the outputs of the frame before, whose
    carried outputs are this frame's state (None for the first frame, whose inputs hold the initial state);
    ``before``: the frame before's inputs, for ``between``."""
    carried_inputs = {(f.target, f.input) for f in sequence.carries}
    outputs: dict[str, dict[str, np.ndarray]] = {}
    for name in sequence.order:
        given = dict(frame.get(name, {}))
        held = sorted(i for i in given if (name, i) in carried_inputs)
        if previous is not None and held:
            raise DataError(f"frame {index} of the sequence gives {name} its carried input(s) {', '.join(held)}: only the "
                            "first frame holds the state (later frames take it from the pipeline); make_frames must leave them out")
        if previous is not None:
            state = {f.input: previous[f.source][f.output] for f in sequence.carries if f.target == name}
            if sequence.between is not None and state:
                state = {i: np.asarray(v) for i, v in sequence.between(state, before if before is not None else {}, frame).items()}
            given.update(state)
        given.update({f.input: outputs[f.source][f.output] for f in sequence.links if f.target == name})
        outputs[name] = {o: np.asarray(v) for o, v in run(name, given).items()}
    return outputs


def roll(sequence: SequenceSpec, frames: Sequence[Frame], run: Run, forced: Sequence[Frame] | None = None) -> list[dict[str, dict[str, np.ndarray]]]:
    """Every frame on one side. The state each frame k > 0 is fed is this side's previous frame's carried outputs,
    or ``forced``'s (the reference's outputs: teacher forcing, so that frame k's error is its own)."""
    rolled: list[dict[str, dict[str, np.ndarray]]] = []
    for k, frame in enumerate(frames):
        previous = None if k == 0 else (forced[k - 1] if forced is not None else rolled[k - 1])
        rolled.append(step(sequence, frame, previous, run, k, frames[k - 1] if k else None))
    return rolled


@dataclass(frozen=True)
class FrameVerdict:
    """One output of one component at one frame, under one gate (``FRAME`` or ``SEQUENCE``)."""

    gate: str
    frame: int
    component: str
    comparison: OutputComparison


def judge(sequence: SequenceSpec, components: Mapping[str, Component], precision: str,
          reference: Sequence[Frame], forced: Sequence[Frame], free: Sequence[Frame]) -> list[FrameVerdict]:
    """Both gates at every frame: ``forced`` (the target on the reference's state) against ``reference`` with each
    component's parity tolerance; ``free`` (the target on its own state) on the carried outputs with the sequence's
    drift bound at ``precision``."""
    verdicts = []
    for k, (ref, test) in enumerate(zip(reference, forced, strict=True)):
        for name in sequence.order:
            tolerances = {o: components[name].tolerance(precision, o) for o in components[name].output_names}
            verdicts += [FrameVerdict(FRAME, k, name, c) for c in compare_outputs([ref[name]], [test[name]], tolerances)]
    for k, (ref, test) in enumerate(zip(reference, free, strict=True)):
        for feed in sequence.carries:
            bound = sequence.drift_tolerance(precision, feed.output)
            if bound is not None:
                verdicts.append(FrameVerdict(SEQUENCE, k, feed.source, compare_output(
                    feed.output, [ref[feed.source][feed.output]], [test[feed.source][feed.output]], bound)))
    return verdicts


def first_failures(verdicts: Sequence[FrameVerdict]) -> list[str]:
    """Per gate, the first frame that failed and its failed outputs, as sentences (empty: both gates pass)."""
    found = []
    for gate in (FRAME, SEQUENCE):
        failed = [v for v in verdicts if v.gate == gate and not v.comparison.passed]
        if failed:
            first = min(v.frame for v in failed)
            what = "; ".join(f"{v.component}.{v.comparison.describe()}" for v in failed if v.frame == first)
            found.append(f"{gate} gate: first fails at frame {first} ({len({v.frame for v in failed})} frame(s) failed): {what}")
    return found
