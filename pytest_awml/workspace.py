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
from collections.abc import Callable, Mapping
from dataclasses import replace
from enum import Enum, auto
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pytest_awml import models
from pytest_awml.artifacts import Artifact, ArtifactStore
from pytest_awml.builders import BuildContext, Ingredient
from pytest_awml.builders.base import Calibrated
from pytest_awml.cases import Plan
from pytest_awml.device import REFERENCE, Target
from pytest_awml.digests import content_digest
from pytest_awml.errors import AwmlError, SpecError
from pytest_awml.inference_store import Compute, InferenceStore
from pytest_awml.machine import machine_identity
from pytest_awml.memo import Key, Memo, key
from pytest_awml.models import LoadedModel, state_dict_sha256
from pytest_awml.options import AwmlOptions
from pytest_awml.pipeline import Pipeline, PipelineName
from pytest_awml.produced import Collector
from pytest_awml.provenance import versions
from pytest_awml.quantization import calibration_seed
from pytest_awml.runners.base import Runner, RunnerSource
from pytest_awml.spec import Component, ModelSpec
from pytest_awml.stored_formats import OutputsKey

__all__ = ["Workspace", "state_dict_sha256"]  # state_dict_sha256: its home is models.py

log = logging.getLogger(__name__)


class _Slot(Enum):
    """What the workspace's memo holds (its keys' namespaces)."""

    MODEL = auto()
    INPUTS = auto()
    CALIBRATION = auto()
    OUTPUTS_KEY = auto()
    ARTIFACT = auto()
    RUNNER = auto()
    PIPELINE = auto()


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

    def calibration(self, spec: ModelSpec, component: Component) -> Calibrated:
        """The component's int8 settings and its inputs for their calibration samples (``quantization``): seeded samples
        of the seed after the run's (not the samples scored), or the ``--awml-data`` files; made standalone
        (``make_inputs``: a component fed by another runs that one in PyTorch)."""
        settings = self.options.int8(component)

        def make() -> Calibrated:
            loaded = self.model(spec)
            if self.options.data is not None:
                samples, source = loaded.samples[: settings.samples], f"the --awml-data samples ({self.options.data})"
            else:
                seed = calibration_seed(self.options.seed)
                samples, source = tuple(spec.make_samples(settings.samples, seed)), f"seeded samples, seed {seed}"
            made = models.component_inputs(replace(loaded, samples=samples), component)
            return Calibrated(settings, made, f"{len(made)} {source}")

        return self._memo.get(key(_Slot.CALIBRATION, spec.name, component.name), make)

    def reference(self, spec: ModelSpec, component: Component) -> list[dict[str, np.ndarray]]:
        """PyTorch CPU fp32 outputs of the very module that is exported, for the session's inputs."""
        return self.outputs(spec, component, REFERENCE)

    def input_digests(self, spec: ModelSpec, component: Component) -> list[str]:
        """The content digest of each of the session's inputs (:meth:`InferenceStore.input_digests`)."""
        return self.inferences.input_digests(spec.name, component.name, self.inputs(spec, component))

    def outputs(self, spec: ModelSpec, component: Component, target: Target) -> list[dict[str, np.ndarray]]:
        """The component's outputs on ``target`` for the session's inputs (:meth:`InferenceStore.outputs`)."""
        # one digest per input, one compute per input: the same list of inputs on both sides
        feeds = list(zip(self.input_digests(spec, component), self._computes(spec, component, target), strict=True))
        return self.inferences.outputs(spec.name, component, target, feeds, self.outputs_key(spec, component, target))

    def recheck(self, spec: ModelSpec, component: Component, targets: tuple[Target, ...],
                inputs: list[dict[str, np.ndarray]] | None = None) -> None:
        """Recompute every input of ``component`` (the session's, or ``inputs``) the store replayed on ``targets``:
        raises :class:`~pytest_awml.errors.StoreMismatch` for those that differ (before a failure blames a backend)."""
        samples = self.inputs(spec, component) if inputs is None else inputs
        digests = self.input_digests(spec, component) if inputs is None else [content_digest(sample) for sample in samples]
        for target in targets:
            feeds = [(digest, self._compute(spec, component, target, sample)) for digest, sample in zip(digests, samples, strict=True)]
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
        """Resolve what the format's builder requires (after checking it can build here), then build."""
        builder, device = self.plan.builders.get(fmt), self.options.physical(self.options.device)
        builder.require_available(device)
        context = BuildContext(spec=spec, component=component, device=device, store=self.store,
                               loaded=self.model(spec) if Ingredient.MODEL in builder.requires else None,
                               inputs=self.inputs(spec, component) if Ingredient.INPUTS in builder.requires else (),
                               artifacts={other: self.artifact(spec, component, other) for other in builder.required_formats()},
                               calibration=self.calibration(spec, component) if Ingredient.CALIBRATION in builder.requires else None)
        artifact = builder.build(context)
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
        """The component's runner on ``target``, opened; closed when the session ends. The file its backend runs is
        built first and handed over as a path."""
        def make() -> Runner:
            backend = self.plan.backends.get(target.backend)
            fmt = backend.artifact_format(target.precision)
            source = RunnerSource(component=component.name, input_names=component.input_names,
                                  output_names=component.output_names, module=component.extract(self.model(spec).model),
                                  artifact=None if fmt is None else self.artifact(spec, component, fmt).path,
                                  input_specs=component.inputs, output_specs=component.outputs)
            physical = replace(target, device=self.options.physical(target.device))
            runner = backend.create_runner(source, physical).open()
            self._open_runners.append(runner)
            return runner

        return self._memo.get(key(_Slot.RUNNER, spec.name, component.name, target), make)

    def pipeline(self, spec: ModelSpec, target: Target, name: PipelineName = PipelineName.SPEC) -> Pipeline:
        """The spec's pipeline (or its bundle's) with every component on ``target`` (one runner each, shared)."""
        def build() -> Pipeline:
            runners = {c.name: self.runner(spec, c, target) for c in spec.components_of(name)}
            pipeline_spec = spec.pipeline_named(name)
            built = pipeline_spec.build(self.model(spec).model, runners)
            problems = pipeline_spec.stage_problems(built.stages)
            if problems:  # a typo would change how latency is measured, silently
                raise SpecError(spec.name, name.field, "; ".join(problems),
                                "name the stages as the pipeline's class declares them in its stages")
            return built

        return self._memo.get(key(_Slot.PIPELINE, spec.name, name, target), build)

    # -- what other modules compute ----------------------------------------------------------------
    def memoized(self, memo_key: Key, make: Callable[[], Any]) -> Any:
        """``make()``'s value under ``key``, made once per session (the latency sources' rounds, p50s, baselines; the
        pipeline outputs parity and metrics judge)."""
        return self._memo.get(memo_key, make)

    def remember(self, memo_key: Key, value: Any) -> None:
        """Keep ``value`` under ``key`` for the rest of the session, replacing what was there."""
        self._memo.put(memo_key, value)

    # -- end of session -------------------------------------------------------------------------
    def close(self) -> None:
        """Close every runner this session opened, newest first, and drop every model, array and
        artifact, so that a long session frees them when it ends."""
        runners, self._open_runners = self._open_runners, []
        failures = []
        for runner in reversed(runners):
            try:
                runner.close()
            except Exception as exc:  # noqa: BLE001  one runner's failure must not keep the others open
                log.warning("closing the %s runner failed: %s: %s", runner.target.id, type(exc).__name__, exc)
                failures.append(exc)
        self._memo.clear()
        if failures:
            raise failures[0]
