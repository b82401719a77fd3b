"""Where a latency figure is read from: the policy, kept apart from measuring (:mod:`pytest_awml.timing`)
and from caching (:class:`~pytest_awml.workspace.Workspace`, which only remembers what these compute).

- A pipeline's rounds run once per session and target; ``test_pipeline_latency`` reads them whole.
- On a CPU, a component that a pipeline stage runs alone (``PipelineSpec.stage_components``) is timed in that
  stage's rounds: the network runs once per round for both tests. On a GPU a stage also holds the runner's dtype
  casts, so components are timed alone (:func:`stage_source`).
- A same-run ratio's baseline p50 is the one ``test_latency`` measured, or, when that test has not run (yet), is
  measured the same way now, so that the verdict does not depend on test order (:func:`p50`).
- ``--awml-latency-baseline``'s medians and rounds are read once per session (:func:`baseline_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, auto
from typing import TYPE_CHECKING

from pytest_awml.budgets import baseline_medians, load_benchmarks, rounds_ms
from pytest_awml.device import Target
from pytest_awml.limits import LatencySettings
from pytest_awml.memo import key
from pytest_awml.pipeline import PipelineName
from pytest_awml.records import MeasuredIn
from pytest_awml.spec import Component, ModelSpec
from pytest_awml.timing import LatencyStats, PipelineRounds, compute_of, measure_pipeline, measure_shared, timer_for, warmup_rounds

if TYPE_CHECKING:
    from pytest_awml.workspace import Workspace

__all__ = ["Baseline", "StageRounds", "StageSource", "baseline_of", "p50", "pipeline_rounds", "remember_p50", "stage_rounds", "stage_source"]


class _Slot(Enum):
    """What these policies keep in the workspace's memo (its keys' namespaces)."""

    PIPELINE_ROUNDS = auto()
    P50 = auto()
    BASELINE = auto()


@dataclass(frozen=True)
class StageSource:
    """The pipeline stage whose rounds are a component's latency on a target."""

    pipeline: PipelineName
    stage: str

    @property
    def measured_in(self) -> MeasuredIn:
        """What a latency record says of where its rounds ran."""
        return MeasuredIn(test="test_pipeline_latency", pipeline=self.pipeline.label, stage=self.stage)


@dataclass(frozen=True)
class StageRounds:
    """A component's latency read from a pipeline stage's rounds, and where they were measured."""

    ms: tuple[float, ...]
    rounds_cut: bool
    warmup_rounds: int  # the pipeline's
    measured_in: MeasuredIn


def stage_source(spec: ModelSpec, component: Component, target: Target) -> StageSource | None:
    """The stage whose rounds time ``component`` on ``target``: on a CPU, the stage that runs it alone; None on a GPU
    (a stage there also holds the runner's dtype casts) and for a component no stage runs alone."""
    if target.device.is_cuda:
        return None
    found = spec.stage_running(component)
    return None if found is None else StageSource(*found)


def pipeline_rounds(workspace: Workspace, spec: ModelSpec, target: Target, name: PipelineName,
                    settings: LatencySettings) -> PipelineRounds:
    """The pipeline's rounds on ``target`` (on its first sample), run once per session."""
    return workspace.memo.get(key(_Slot.PIPELINE_ROUNDS, spec.name, name, target),
                              lambda: measure_pipeline(workspace.pipeline(spec, target, name), workspace.model(spec).samples[0], settings,
                                                       what=f"{spec.name}/{name.record_component} on {target.id}"))


def stage_rounds(workspace: Workspace, spec: ModelSpec, target: Target, source: StageSource) -> StageRounds:
    """A component's rounds on ``target`` read from the pipeline stage that runs it (``source``, from :func:`stage_source`)."""
    settings = workspace.options.latency(spec.pipeline_named(source.pipeline).latency)
    shared = pipeline_rounds(workspace, spec, target, source.pipeline, settings)
    return StageRounds(shared.stages[source.stage], shared.rounds.rounds_cut, warmup_rounds(settings), source.measured_in)


def remember_p50(workspace: Workspace, spec: ModelSpec, component: Component, target: Target, p50_ms: float) -> None:
    """What ``test_latency`` measured, for the same-run ratios of later tests."""
    workspace.memo.put(key(_Slot.P50, spec.name, component.name, target.id), p50_ms)


def p50(workspace: Workspace, spec: ModelSpec, component: Component, target_id: str, settings: LatencySettings) -> float:
    """p50 of a component on a target: as ``test_latency`` measured it earlier in this session, else measured now
    as that test measures it (a same-run ratio's baseline must not depend on test order): a CPU pipeline stage's
    rounds, or the compute rounds on the runner's clock (CUDA events: no synchronize in the span)."""
    def measure() -> float:
        target = Target.parse(target_id)
        source = stage_source(spec, component, target)
        if source is not None:
            return LatencyStats.from_ms(stage_rounds(workspace, spec, target, source).ms).p50_ms
        runner = workspace.runner(spec, component, target)
        timer = timer_for(runner)
        compute = compute_of(runner, runner.prepare(workspace.inputs(spec, component)[0]), timer)
        return measure_shared(timer, compute, settings, span="compute", what=f"{spec.name}/{component.name} on {target_id}").stats.p50_ms

    return workspace.memo.get(key(_Slot.P50, spec.name, component.name, target_id), measure)


@dataclass(frozen=True)
class Baseline:
    """A test's figures in ``--awml-latency-baseline``: its median (ms) and, when the file kept them, each round's ms."""

    median_ms: float
    rounds_ms: tuple[float, ...] | None


def _baselines(data: Mapping) -> dict[str, Baseline]:
    medians = baseline_medians(data)
    out = {}
    for bench in data["benchmarks"]:
        kept = rounds_ms(bench)
        out[bench["name"]] = Baseline(medians[bench["name"]], None if kept is None else tuple(kept))
    return out


def baseline_of(workspace: Workspace, test_name: str) -> Baseline | None:
    """``test_name``'s figures in ``--awml-latency-baseline``, if given and present."""
    path = workspace.options.latency_baseline
    if path is None:
        return None
    return workspace.memo.get(key(_Slot.BASELINE, path), lambda: _baselines(load_benchmarks(path))).get(test_name)
