"""The tests of a stateful pipeline (``ModelSpec.sequence``, :mod:`pytest_awml.sequence`): ``test_sequence_parity``
and ``test_sequence_latency``, one per target; ``test_sequence_pipeline_parity`` and ``test_sequence_metric`` where the spec
declares a sequence's ``compare`` or ``metric``. :mod:`pytest_awml.suite` imports them, so that they are collected
under its node id (``awml::test_sequence_parity[<spec>/<target>]``) with its fixtures.

The frames and the reference's rollout are made once per session (the workspace's memo); every inference of a
rollout goes through the session's one door (``Workspace.run``): stored, in the ledger, shared with the components'
parity tests where the inputs are the same (the first frame's).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, auto
from typing import TYPE_CHECKING

import numpy as np
import pytest

from pytest_awml import latency_gate, results
from pytest_awml.budgets import ROUNDS_KEY
from pytest_awml.compare import differs, require_passed
from pytest_awml.device import REFERENCE, Target
from pytest_awml.errors import ToleranceExceeded
from pytest_awml.limits import require_compared
from pytest_awml.memo import key
from pytest_awml.metric_gate import judge_metric
from pytest_awml.records import LatencyRecord, SequenceRecord
from pytest_awml.sequence import Frame, first_failures, judge, roll, step
from pytest_awml.spec import ModelSpec
from pytest_awml.timing import SpanTimer, measure, rounded_ms, warmup_rounds, warmup_total_ms

if TYPE_CHECKING:
    from pytest_awml.workspace import Workspace

__all__ = ["test_sequence_latency", "test_sequence_metric", "test_sequence_parity", "test_sequence_pipeline_parity"]

DISABLED = "pytest-benchmark is disabled here (--benchmark-disable, or pytest-xdist is active): no latency measured"
RECORD_COMPONENT = "sequence"  # the component a sequence test's latency record names (its parity records name each output's)
FRAME_SPAN = "frame"

FRAMES = "or --awml-data with frames that hold objects in range"  # what a comparison over too few objects asks for


class _Slot(Enum):
    """What this module keeps in the workspace's memo."""

    FRAMES = auto()
    ROLLOUT = auto()


def _frames(workspace: Workspace, spec: ModelSpec) -> list[Frame]:
    """The sequence's frames, made once per session from the run's seed, or from its ``--awml-data`` samples."""
    sequence = spec.sequence
    assert sequence is not None  # only sequence cases reach here (cases.Plan._sequence_*)

    def make() -> list[Frame]:
        loaded = workspace.model(spec)
        if workspace.options.data is not None and sequence.from_samples is not None:  # the --awml-data samples' frames
            made = list(sequence.from_samples(loaded.model, loaded.samples))
        else:
            made = list(sequence.make_frames(loaded.model, sequence.frames, workspace.options.seed))
        return [{c: {i: np.asarray(v) for i, v in inputs.items()} for c, inputs in frame.items()} for frame in made]

    return workspace.memo.get(key(_Slot.FRAMES, spec.name), make)


def _rollout(workspace: Workspace, spec: ModelSpec, target: Target, forced: bool) -> list[dict[str, dict[str, np.ndarray]]]:
    """Every frame on ``target``, on its own state or (``forced``) on the reference's; the reference's once a session."""
    sequence = spec.sequence
    assert sequence is not None

    def make() -> list[dict[str, dict[str, np.ndarray]]]:
        teacher = _rollout(workspace, spec, REFERENCE, forced=False) if forced else None
        return roll(sequence, _frames(workspace, spec),
                    lambda name, inputs: workspace.run(spec, spec.component(name), target, inputs), teacher)

    return workspace.memo.get(key(_Slot.ROLLOUT, spec.name, target, forced), make)


@pytest.mark.awml_cases("sequence_parity")
def test_sequence_parity(awml_case, awml_workspace, request):
    """Frame by frame, the target's outputs on the reference's state stay within each component's parity tolerance
    (the frame's own error), and its state on its own after k frames within the sequence's drift bound (the memory's
    error carried through the frames): both figures recorded at every frame."""
    spec, target = awml_case.spec, awml_case.target
    sequence = spec.sequence
    reference = _rollout(awml_workspace, spec, REFERENCE, forced=False)
    forced = _rollout(awml_workspace, spec, target, forced=True)
    free = _rollout(awml_workspace, spec, target, forced=False)
    components = {c.name: c for c in spec.components}
    verdicts = judge(sequence, components, target.precision.value, reference, forced, free)
    for verdict in verdicts:
        ids = results.record_ids(awml_case, request.node.nodeid, awml_workspace.options, component=verdict.component)
        results.attach(request.node, SequenceRecord(ids=ids, gate=verdict.gate, frame=verdict.frame, frames=len(reference),
                                                    comparison=verdict.comparison))
    failed = first_failures(verdicts)
    if failed:
        raise ToleranceExceeded(differs(f"the {target.id} sequence", REFERENCE.id, f"over {len(reference)} frame(s)", failed))


@pytest.mark.awml_cases("sequence_pipeline_parity")
def test_sequence_pipeline_parity(awml_case, awml_workspace, request):
    """Frame by frame, the target's decoded outputs (boxes, classes…) on its own state agree with the reference's on
    its own: the spec's ``SequenceSpec.compare`` over every frame, as ``test_pipeline_parity`` judges a pipeline."""
    spec, target = awml_case.spec, awml_case.target
    sequence = spec.sequence
    reference = _rollout(awml_workspace, spec, REFERENCE, forced=False)
    free = _rollout(awml_workspace, spec, target, forced=False)
    checks = sequence.compare(reference, free, target.precision)
    ids = results.record_ids(awml_case, request.node.nodeid, awml_workspace.options, component=RECORD_COMPONENT)
    results.attach_verdicts(request.node, ids, checks)
    require_passed(checks, f"the {target.id} sequence's decoded outputs", REFERENCE.id, f"{len(reference)} frame(s)")
    require_compared(checks, sequence.min_compared, f"the {target.id} sequence's decoded comparison", FRAMES)


@pytest.mark.awml_cases("sequence_metric")
def test_sequence_metric(awml_case, awml_workspace, request):
    """The task metric over the sequence, the target on its own state, within the spec's limit of the reference's
    (|delta|), as ``test_metric`` judges a pipeline's: what an error carried through the state costs the user."""
    spec, target = awml_case.spec, awml_case.target
    metric = spec.sequence.metric
    frames = _frames(awml_workspace, spec)
    reference = metric.compute(_rollout(awml_workspace, spec, REFERENCE, forced=False), frames)
    if reference.compared == 0:
        pytest.skip(f"the frames hold no ground truth for {reference.name}: nothing to score; run on the spec's synthetic "
                    "frames, or give it labelled data")
    score = metric.compute(_rollout(awml_workspace, spec, target, forced=False), frames)
    ids = results.record_ids(awml_case, request.node.nodeid, awml_workspace.options, component=RECORD_COMPONENT)
    judge_metric(request.node, ids, metric, reference, score, target, subject=f"the {target.id} sequence's {score.name}",
                 thin=f"the {target.id} sequence's {score.name}", over=f"{len(frames)} frame(s)", remedy=FRAMES)


@pytest.mark.awml_cases("sequence_latency")
def test_sequence_latency(awml_case, awml_workspace, benchmark, request):
    """One frame of the stateful pipeline per round, the state carried from round to round as a deployment carries
    it (after the last frame the sequence starts again from its initial state): the per-frame latency, each
    component's span beside it."""
    spec, target = awml_case.spec, awml_case.target
    sequence = spec.sequence
    settings = awml_workspace.options.latency(sequence.latency)
    frames = _frames(awml_workspace, spec)
    runners = {name: awml_workspace.runner(spec, spec.component(name), target) for name in sequence.order}
    timer = SpanTimer()
    carried: list[Frame | None] = [None]  # the last frame's outputs: the next frame's state
    done = [0]

    def run(name: str, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        with timer.span(name):
            return runners[name].run(inputs)

    def one_frame() -> None:
        index = done[0] % len(frames)
        carried[0] = step(sequence, frames[index], carried[0] if index else None, run, index, frames[index - 1] if index else None)
        done[0] += 1

    benchmark.group = f"{spec.name}/{RECORD_COMPONENT}"
    measured = measure(benchmark, timer, one_frame, settings, FRAME_SPAN, what=f"{spec.name} sequence on {target.id}")
    if measured is None:
        pytest.skip(DISABLED)
    spans = {name: stats for name, stats in timer.stats().items() if name != FRAME_SPAN}
    rounds = tuple(timer.spans[FRAME_SPAN])
    record = LatencyRecord(ids=results.record_ids(awml_case, request.node.nodeid, awml_workspace.options, component=RECORD_COMPONENT),
                           stats=measured.stats, clock=SpanTimer.clock, spans=spans, rounds_cut=measured.rounds_cut,
                           warmup_rounds=warmup_rounds(settings), warmup_total_ms=warmup_total_ms(measured.warmup_ms))
    benchmark.extra_info.update(spec=spec.name, component=RECORD_COMPONENT, target=target.id, **record.benchmark_info(),
                                **measured.stats.as_json())
    judged = latency_gate.judge(request, awml_workspace, settings, measured.stats.p50_ms, rounds)
    benchmark.extra_info[ROUNDS_KEY] = list(rounded_ms(rounds))
    results.attach(request.node, latency_gate.with_rounds(record, rounds, judged))
    latency_gate.gate([], judged)
