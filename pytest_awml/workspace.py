"""The session cache: every model, input set, artifact, runner and pipeline a test session needs,
made once on first use and released when the session ends (``awml_workspace``).

Nothing is decided here: models and inputs come from :mod:`pytest_awml.models`, artifacts from the
builder registered for their format (:mod:`pytest_awml.builders`), runners from the target's
backend, pipelines from the spec, inferences and seeded weights from the inference store
(:mod:`pytest_awml.inference_store`, given the runner and the key resolved here). A deliberate failure is
remembered like a value: an export that failed fails every test that needs it with the same error,
without exporting again. What a test's calls produce goes to the test collecting it
(:mod:`pytest_awml.produced`), never onto this object.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import Enum, auto
from functools import partial
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from pytest_awml import models
from pytest_awml.artifacts import Artifact, ArtifactStore
from pytest_awml.budgets import baseline_medians, load_benchmarks
from pytest_awml.builders import BuildContext
from pytest_awml.cases import BUNDLE, Plan
from pytest_awml.device import REFERENCE, Target
from pytest_awml.digests import content_digest
from pytest_awml.errors import AwmlError
from pytest_awml.inference_store import Compute, InferenceStore
from pytest_awml.limits import LatencySettings
from pytest_awml.machine import machine_identity
from pytest_awml.memo import Memo, key
from pytest_awml.models import LoadedModel, state_dict_sha256
from pytest_awml.options import AwmlOptions
from pytest_awml.pipeline import Pipeline, PipelineSpec
from pytest_awml.produced import Collector
from pytest_awml.provenance import versions
from pytest_awml.runners.base import Runner, RunnerSource
from pytest_awml.spec import Component, ModelSpec
from pytest_awml.stored_formats import OutputsKey
from pytest_awml.timing import LatencyStats, Rounds, SpanTimer, compute_of, measure_shared, timer_for, warmup_rounds

__all__ = ["Workspace", "state_dict_sha256"]  # state_dict_sha256: its home is models.py

log = logging.getLogger(__name__)


class _Slot(Enum):
    """What the workspace's memo holds (its keys' namespaces)."""

    MODEL = auto()
    INPUTS = auto()
    OUTPUTS_KEY = auto()
    ARTIFACT = auto()
    RUNNER = auto()
    PIPELINE = auto()
    PIPELINE_ROUNDS = auto()
    PIPELINE_OUTPUTS = auto()
    P50 = auto()
    BASELINE = auto()


@dataclass(frozen=True)
class PipelineRounds:
    """A pipeline's timed rounds: the whole call's statistics and each stage's milliseconds per round."""

    rounds: Rounds
    total: tuple[float, ...]  # ms of each timed round, whole call
    stages: Mapping[str, tuple[float, ...]]


@dataclass(frozen=True)
class StageRounds:
    """A component's latency read from a pipeline stage's rounds, and where they were measured."""

    ms: tuple[float, ...]
    rounds_cut: bool
    warmup_rounds: int  # the pipeline's
    measured_in: Mapping[str, str]


class SharingRunner(Runner):
    """A runner whose calls go through the session's memo of inferences (see ``Workspace.run``): for the
    pipeline outputs parity and metrics judge, never for latency (a memo hit takes no time)."""

    def __init__(self, inner: Runner, run: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]) -> None:
        super().__init__(inner.target, inner.output_names, inner.input_specs)
        self._inner, self._run = inner, run

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        return inputs

    def execute(self, prepared: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._run(prepared)

    def fetch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return raw

    def synchronize(self) -> None:
        self._inner.synchronize()


def pipeline_of(spec: ModelSpec, name: str = "") -> PipelineSpec:
    """The spec's pipeline, or its bundle's (``name`` ``"bundle"``)."""
    found = spec.bundle_pipeline if name else spec.pipeline
    if found is None:
        raise AwmlError(f"spec {spec.name!r} declares no {name or 'spec'} pipeline")
    return found


def components_of(spec: ModelSpec, name: str = "") -> tuple[Component, ...]:
    """The components the spec's pipeline (``name`` ``"bundle"``: its bundle's) runs."""
    return spec.bundle_components if name else spec.components


def timing_stage(spec: ModelSpec, component: Component, target: Target) -> tuple[str, PipelineSpec, str] | None:
    """(pipeline name, pipeline, stage) when ``component``'s latency on ``target`` is read from that pipeline's
    rounds: on a CPU, for a stage of ``stage_components`` (see :class:`~pytest_awml.pipeline.PipelineSpec`)."""
    if target.device.is_cuda:
        return None
    for name, pipeline in (("", spec.pipeline), (BUNDLE, spec.bundle_pipeline)):
        stage = pipeline.stage_of(component.name) if pipeline is not None else None
        if stage is not None and component in components_of(spec, name):
            return name, pipeline, stage
    return None


class Workspace:
    def __init__(self, plan: Plan, store: ArtifactStore, inferences: InferenceStore | None = None,
                 collector: Collector | None = None) -> None:
        """``inferences`` and ``collector`` are the session's (their fixtures'); left out, this workspace makes its own."""
        self.plan = plan
        self.store = store
        self.collector = collector or Collector()
        self.inferences = inferences or InferenceStore(store, self.collector, rerun_backends=plan.options.rerun_backends)
        self._memo = Memo()
        self._open_runners: list[Runner] = []

    @property
    def options(self) -> AwmlOptions:
        return self.plan.options

    # -- models and data --------------------------------------------------------------------
    def model(self, spec: ModelSpec) -> LoadedModel:
        return self._memo.get(key(_Slot.MODEL, spec.name), lambda: self._load(spec))

    def _load(self, spec: ModelSpec) -> LoadedModel:
        loaded = models.load(spec, self.options, partial(self.inferences.seeded_weights, spec, self.options.seed))
        for note in loaded.notes:
            self.collector.noted(spec.name, note)
        return loaded

    def inputs(self, spec: ModelSpec, component: Component) -> list[dict[str, np.ndarray]]:
        """The component's inputs for the session's samples; a component ``fed_by`` another is fed that one's
        reference outputs (:meth:`reference`: computed once, stored, in the ledger), not a second run of it."""
        def make() -> list[dict[str, np.ndarray]]:
            if component.fed_by is None:
                return models.component_inputs(self.model(spec), component)
            upstream = self.reference(spec, spec.component(component.fed_by.component))
            return models.component_inputs(self.model(spec), component, upstream)

        return self._memo.get(key(_Slot.INPUTS, spec.name, component.name), make)

    def reference(self, spec: ModelSpec, component: Component) -> list[dict[str, np.ndarray]]:
        """PyTorch CPU fp32 outputs of the very module that is exported, for the session's inputs."""
        return self.outputs(spec, component, REFERENCE)

    def input_digests(self, spec: ModelSpec, component: Component) -> list[str]:
        """The content digest of each of the session's inputs (:meth:`InferenceStore.input_digests`)."""
        return self.inferences.input_digests(spec.name, component.name, self.inputs(spec, component))

    def outputs(self, spec: ModelSpec, component: Component, target: Target) -> list[dict[str, np.ndarray]]:
        """The component's outputs on ``target`` for the session's inputs (:meth:`InferenceStore.outputs`)."""
        feeds = list(zip(self.input_digests(spec, component), self._computes(spec, component, target)))
        return self.inferences.outputs(spec.name, component, target, feeds, self.outputs_key(spec, component, target))

    def recheck(self, spec: ModelSpec, component: Component, targets: tuple[Target, ...],
                inputs: list[dict[str, np.ndarray]] | None = None) -> None:
        """Recompute every input of ``component`` (the session's, or ``inputs``) the store replayed on ``targets``:
        raises :class:`~pytest_awml.errors.StoreMismatch` for those that differ (before a failure blames a backend)."""
        samples = self.inputs(spec, component) if inputs is None else inputs
        digests = self.input_digests(spec, component) if inputs is None else [content_digest(sample) for sample in samples]
        for target in targets:
            feeds = [(digest, self._compute(spec, component, target, sample)) for digest, sample in zip(digests, samples)]
            self.inferences.recheck(spec.name, component, target, feeds)

    def run(self, spec: ModelSpec, component: Component, target: Target, inputs: Mapping[str, np.ndarray], *,
            keep: bool = True, digest: str | None = None) -> dict[str, np.ndarray]:
        """One inference, made once per session for the same component, target and input content, and
        shared by every test that needs it (parity, pipelines, drift, metrics); with ``keep`` kept across
        runs too (:class:`~pytest_awml.inference_store.InferenceStore`). Inputs drawn afresh every run
        (shape fuzzing) pass ``keep=False``: they would only fill the store. ``digest``: the inputs'
        :func:`~pytest_awml.digests.content_digest`, when the caller has it already."""
        digest = content_digest(inputs) if digest is None else digest
        stored = self.outputs_key(spec, component, target) if keep else None
        return self.inferences.run(spec.name, component, target, digest, self._compute(spec, component, target, inputs), stored)

    def _computes(self, spec: ModelSpec, component: Component, target: Target) -> list[Compute]:
        return [self._compute(spec, component, target, sample) for sample in self.inputs(spec, component)]

    def _compute(self, spec: ModelSpec, component: Component, target: Target, inputs: Mapping[str, np.ndarray]) -> Compute:
        """The inference itself, run only if the store must: opening a runner may build an engine."""
        return lambda: self.runner(spec, component, target).run(inputs)

    def outputs_key(self, spec: ModelSpec, component: Component, target: Target) -> OutputsKey:
        """What decides the component's outputs on ``target`` (:class:`~pytest_awml.stored_formats.OutputsKey`),
        its parts resolved here: the model, the backend, the file it runs, the machine."""
        def make() -> OutputsKey:
            backend = self.plan.backends.get(target.backend)
            fmt = backend.artifact_format(target.precision)
            loaded = self.model(spec)
            return OutputsKey.of(spec, component, target, model=loaded.model, weights_sha256=loaded.weights_sha256,
                                 backend=backend, artifact_sha256=self.artifact(spec, component, fmt).sha256 if fmt else None,
                                 versions=versions(), machine=machine_identity(self.options.physical(target.device)))

        return self._memo.get(key(_Slot.OUTPUTS_KEY, spec.name, component.name, target), make)

    # -- artifacts ----------------------------------------------------------------------------
    def artifact(self, spec: ModelSpec, component: Component, fmt: str) -> Artifact:
        return self._memo.get(key(_Slot.ARTIFACT, spec.name, component.name, fmt), lambda: self._build(spec, component, fmt))

    def _build(self, spec: ModelSpec, component: Component, fmt: str) -> Artifact:
        context = BuildContext(spec=spec, component=component, device=self.options.physical(self.options.device),
                               store=self.store, model=lambda: self.model(spec), inputs=lambda: self.inputs(spec, component),
                               artifact=lambda other: self.artifact(spec, component, other))
        artifact = self.plan.builders.get(fmt).build(context)
        if not artifact.reused:
            self.collector.built(artifact)
        return artifact

    def artifact_path_or_none(self, spec: ModelSpec, component: Component, fmt: str) -> Path | None:
        """The file, or None when it cannot be built (forensics go on without it)."""
        try:
            return self.artifact(spec, component, fmt).path
        except AwmlError:
            return None

    # -- runners and pipelines ------------------------------------------------------------------
    def runner(self, spec: ModelSpec, component: Component, target: Target) -> Runner:
        """The component's runner on ``target``, opened; closed when the session ends."""
        def make() -> Runner:
            source = RunnerSource(component=component.name, input_names=component.input_names,
                                  output_names=component.output_names, module=component.extract(self.model(spec).model),
                                  artifact=lambda fmt: self.artifact(spec, component, fmt).path,
                                  input_specs=component.inputs, output_specs=component.outputs)
            physical = replace(target, device=self.options.physical(target.device))
            runner = self.plan.backends.get(target.backend).create_runner(source, physical).open()
            self._open_runners.append(runner)
            return runner

        return self._memo.get(key(_Slot.RUNNER, spec.name, component.name, target), make)

    def pipeline(self, spec: ModelSpec, target: Target, name: str = "") -> Pipeline:
        """The spec's pipeline (``name`` ``"bundle"``: the bundle's) with every component on ``target``
        (one runner each, shared)."""
        def build() -> Pipeline:
            pipeline_spec = pipeline_of(spec, name)
            components = components_of(spec, name)
            runners = {c.name: self.runner(spec, c, target) for c in components}
            return pipeline_spec.build(self.model(spec).model, runners)

        return self._memo.get(key(_Slot.PIPELINE, spec.name, name, target), build)

    def pipeline_rounds(self, spec: ModelSpec, target: Target, name: str, settings: LatencySettings) -> "PipelineRounds":
        """The pipeline's latency rounds on ``target`` (on its first sample), run once per session: the pipeline
        latency test reads the whole rounds, and on a CPU each component latency test of a stage in
        ``stage_components`` reads its stage's (the network runs once per round for both)."""
        def run() -> PipelineRounds:
            pipeline = self.pipeline(spec, target, name)
            sample = self.model(spec).samples[0]
            timer, stage_times = SpanTimer(), []

            def infer():
                result = pipeline(sample)
                stage_times.append(result.stages_ms)  # read after the rounds: on CUDA, reading the events is not the call's work
                return result

            rounds = measure_shared(timer, infer, settings, span="pipeline")
            timed = stage_times[len(rounds.warmup_ms):]
            return PipelineRounds(rounds, tuple(timer.spans["pipeline"]),
                                  {stage: tuple(times[stage] for times in timed if stage in times) for stage in pipeline.stages})

        return self._memo.get(key(_Slot.PIPELINE_ROUNDS, spec.name, name, target), run)

    def stage_rounds(self, spec: ModelSpec, component: Component, target: Target) -> "StageRounds | None":
        """``component``'s rounds on ``target`` when they are a pipeline stage's (see :func:`timing_stage`), else None."""
        timing = timing_stage(spec, component, target)
        if timing is None:
            return None
        name, pipeline, stage = timing
        settings = self.options.latency(pipeline.latency)
        shared = self.pipeline_rounds(spec, target, name, settings)
        return StageRounds(shared.stages[stage], shared.rounds.rounds_cut, warmup_rounds(settings),
                           {"test": "test_pipeline_latency", "pipeline": name or "pipeline", "stage": stage})

    def pipeline_outputs(self, spec: ModelSpec, target: Target, name: str = "") -> list:
        """The pipeline's outputs on ``target``, one per sample, computed once and shared by the
        pipeline parity and metric tests (the reference's: ``target`` ``REFERENCE``). Its components'
        inferences go through :meth:`run`: an input a parity test already ran is not run again."""
        def run() -> list:
            pipeline_spec = pipeline_of(spec, name)
            components = components_of(spec, name)
            runners = {c.name: SharingRunner(self.runner(spec, c, target), lambda inputs, c=c: self.run(spec, c, target, inputs))
                       for c in components}
            pipeline = pipeline_spec.build(self.model(spec).model, runners)
            return [pipeline(sample).outputs for sample in self.model(spec).samples]

        return self._memo.get(key(_Slot.PIPELINE_OUTPUTS, spec.name, name, target), run)

    def pipeline_reference(self, spec: ModelSpec, name: str = "") -> list:
        """Reference pipeline outputs (every component on PyTorch CPU fp32), one per sample."""
        return self.pipeline_outputs(spec, REFERENCE, name)

    # -- latency --------------------------------------------------------------------------------
    def remember_p50(self, spec: ModelSpec, component: Component, target: Target, p50_ms: float) -> None:
        self._memo.put(key(_Slot.P50, spec.name, component.name, target.id), p50_ms)

    def p50(self, spec: ModelSpec, component: Component, target_id: str, settings: LatencySettings) -> float:
        """p50 of a component on a target: as measured earlier in this session, else measured now as
        ``test_latency`` measures it (a same-run ratio's baseline must not depend on test order): a CPU pipeline
        stage's rounds, or the compute rounds on the runner's clock (CUDA events: no synchronize in the span)."""
        def measure() -> float:
            target = Target.parse(target_id)
            stage = self.stage_rounds(spec, component, target)
            if stage is not None:
                return LatencyStats.from_ms(stage.ms).p50_ms
            runner = self.runner(spec, component, target)
            timer = timer_for(runner)
            compute = compute_of(runner, runner.prepare(self.inputs(spec, component)[0]), timer)
            return measure_shared(timer, compute, settings, span="compute").stats.p50_ms

        return self._memo.get(key(_Slot.P50, spec.name, component.name, target_id), measure)

    def baseline_median(self, test_name: str) -> float | None:
        """The median (ms) of ``test_name`` in ``--awml-latency-baseline``, if given and present."""
        path = self.options.latency_baseline
        if path is None:
            return None
        return self._memo.get(key(_Slot.BASELINE, path), lambda: baseline_medians(load_benchmarks(path))).get(test_name)

    # -- end of session -------------------------------------------------------------------------
    def close(self) -> None:
        """Close every runner this session opened, newest first, and drop every model, array and
        artifact, so that a long session frees them when it ends."""
        runners, self._open_runners = self._open_runners, []
        failures = []
        for runner in reversed(runners):
            try:
                runner.close()
            except Exception as exc:  # one runner's failure must not keep the others open
                log.warning("closing the %s runner failed: %s: %s", runner.target.id, type(exc).__name__, exc)
                failures.append(exc)
        self._memo.clear()
        if failures:
            raise failures[0]
