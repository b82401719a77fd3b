"""The session cache: every model, input set, artifact, runner and pipeline a test session needs,
made once on first use and released when the session ends (``awml_workspace``).

Nothing is decided here: models and inputs come from :mod:`pytest_awml.models`, artifacts from the
builder registered for their format (:mod:`pytest_awml.builders`), runners from the target's backend
(kept open by :mod:`pytest_awml.runners.pool`), pipelines from the spec (``ModelSpec.build_pipeline``),
inferences and seeded weights from the inference store (:mod:`pytest_awml.inference_store`, given the
runner and the key resolved here). A deliberate failure is
remembered like a value: an export that failed fails every test that needs it with the same error,
without exporting again. What a test's calls produce goes to the test collecting it
(:mod:`pytest_awml.produced`), never onto this object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from enum import Enum, auto
from functools import partial

import numpy as np

from pytest_awml import models
from pytest_awml.artifacts import Artifact, ArtifactStore
from pytest_awml.builders import BuildContext, Ingredient
from pytest_awml.builders.base import Calibrated
from pytest_awml.cases import Plan
from pytest_awml.device import REFERENCE, Target
from pytest_awml.digests import content_digest
from pytest_awml.inference_store import Compute, InferenceStore
from pytest_awml.memo import Memo, key
from pytest_awml.models import LoadedModel
from pytest_awml.options import AwmlOptions
from pytest_awml.pipeline import Pipeline, PipelineName
from pytest_awml.produced import Collector
from pytest_awml.runners.base import Runner, RunnerSource
from pytest_awml.runners.pool import RunnerPool
from pytest_awml.spec import Component, ModelSpec
from pytest_awml.stored_formats import OutputsKey


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
        # the session memo, lent to the modules that compute for a session (latency rounds, p50s, baselines, pipeline
        # outputs): what their ``make`` asks of this workspace is then a call from their own module, not back up through it
        self.memo = Memo()
        self._runners = RunnerPool()

    @property
    def options(self) -> AwmlOptions:
        return self.plan.options

    # -- models and data --------------------------------------------------------------------
    def model(self, spec: ModelSpec) -> LoadedModel:
        return self.memo.get(key(_Slot.MODEL, spec.name), lambda: self._load(spec))

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

        return self.memo.get(key(_Slot.INPUTS, spec.name, component.name), make)

    def calibration(self, spec: ModelSpec, component: Component) -> Calibrated:
        """The component's int8 calibration (:func:`models.calibrated`), made once per session."""
        return self.memo.get(key(_Slot.CALIBRATION, spec.name, component.name),
                             lambda: models.calibrated(self.model(spec), spec, component, self.options))

    def reference(self, spec: ModelSpec, component: Component) -> list[dict[str, np.ndarray]]:
        """PyTorch CPU fp32 outputs of the very module that is exported, for the session's inputs."""
        return self.outputs(spec, component, REFERENCE)

    def outputs(self, spec: ModelSpec, component: Component, target: Target) -> list[dict[str, np.ndarray]]:
        """The component's outputs on ``target`` for the session's inputs (:meth:`InferenceStore.outputs`)."""
        return self.inferences.outputs(spec.name, component, target, self._feeds(spec, component, target),
                                       self.outputs_key(spec, component, target))

    def recheck(self, spec: ModelSpec, component: Component, targets: tuple[Target, ...],
                inputs: list[dict[str, np.ndarray]] | None = None) -> None:
        """Recompute every input of ``component`` (the session's, or ``inputs``) the store replayed on ``targets``:
        raises :class:`~pytest_awml.errors.StoreMismatch` for those that differ (before a failure blames a backend)."""
        for target in targets:
            self.inferences.recheck(spec.name, component, target, self._feeds(spec, component, target, inputs))

    def _feeds(self, spec: ModelSpec, component: Component, target: Target,
               inputs: list[dict[str, np.ndarray]] | None = None) -> list[tuple[str, Compute]]:
        """One (digest, compute) per input, the same list on every side: the session's inputs (digests hashed once
        for every target, :meth:`InferenceStore.input_digests`), or ``inputs``."""
        samples = self.inputs(spec, component) if inputs is None else inputs
        digests = (self.inferences.input_digests(spec.name, component.name, samples) if inputs is None
                   else [content_digest(sample) for sample in samples])
        return [(digest, self._compute(spec, component, target, sample)) for digest, sample in zip(digests, samples, strict=True)]

    def run(self, spec: ModelSpec, component: Component, target: Target, inputs: Mapping[str, np.ndarray], *,
            keep: bool = True, digest: str | None = None) -> dict[str, np.ndarray]:
        """One inference, once per session for the same component, target and input content (shared by parity, pipelines,
        drift, metrics); with ``keep`` kept across runs too: inputs drawn afresh every run (shape fuzzing) would only
        fill the store. ``digest``: the inputs' :func:`~pytest_awml.digests.content_digest`, when the caller has it."""
        digest = content_digest(inputs) if digest is None else digest
        stored = self.outputs_key(spec, component, target) if keep else None
        return self.inferences.run(spec.name, component, target, digest, self._compute(spec, component, target, inputs), stored)

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
                                 device=self.options.physical(target.device))

        return self.memo.get(key(_Slot.OUTPUTS_KEY, spec.name, component.name, target), make)

    # -- artifacts ----------------------------------------------------------------------------
    def artifact(self, spec: ModelSpec, component: Component, fmt: str) -> Artifact:
        return self.memo.get(key(_Slot.ARTIFACT, spec.name, component.name, fmt), lambda: self._build(spec, component, fmt))

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
            return self._runners.open(backend, source, replace(target, device=self.options.physical(target.device)))

        return self.memo.get(key(_Slot.RUNNER, spec.name, component.name, target), make)

    def pipeline(self, spec: ModelSpec, target: Target, name: PipelineName = PipelineName.SPEC) -> Pipeline:
        """The spec's pipeline (or its bundle's) with every component on ``target`` (one runner each, shared)."""
        def build() -> Pipeline:
            runners = {c.name: self.runner(spec, c, target) for c in spec.components_of(name)}
            return spec.build_pipeline(name, self.model(spec).model, runners)

        return self.memo.get(key(_Slot.PIPELINE, spec.name, name, target), build)

    # -- end of session -------------------------------------------------------------------------
    def close(self) -> None:
        """Close every runner this session opened, newest first, and drop every model, array and
        artifact, so that a long session frees them when it ends."""
        try:
            self._runners.close()
        finally:
            self.memo.clear()
