"""The session cache: every model, input set, reference, artifact, runner and pipeline a test
session needs, made once on first use and released when the session ends (``awml_workspace``).

Nothing is decided here: models and inputs come from :mod:`pytest_awml.models`, artifacts from the
builder registered for their format (:mod:`pytest_awml.builders`), runners from the target's
backend, pipelines from the spec. A deliberate failure is remembered like a value: an export that
failed fails every test that needs it with the same error, without exporting again.
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping

import numpy as np

from pytest_awml import models
from pytest_awml.artifacts import Artifact, ArtifactStore
from pytest_awml.builders import BuildContext, Ingredient
from pytest_awml.cases import Plan
from pytest_awml.checkpoints import read_state_dict
from pytest_awml.device import REFERENCE, Target
from pytest_awml.digests import DIGEST_CHUNK, content_digest
from pytest_awml.errors import AwmlError, BackendError
from pytest_awml.models import LoadedModel, state_dict_sha256
from pytest_awml.options import AwmlOptions
from pytest_awml.pipeline import Pipeline, PipelineName
from pytest_awml.runners.base import Runner, RunnerSource
from pytest_awml.runners.sharing import Held, Missing, SharingRunner
from pytest_awml.machine import machine_identity
from pytest_awml.provenance import versions
from pytest_awml.spec import Component, ModelSpec, fingerprint, source_hash

# state_dict_sha256: its home is models.py; content_digest and DIGEST_CHUNK: digests.py
__all__ = ["DIGEST_CHUNK", "Memo", "Workspace", "content_digest", "state_dict_sha256"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Failed:
    error: AwmlError


class Memo:
    """Values by key, each made once. An :class:`AwmlError` raised while making one is kept and
    raised again to every later caller; any other exception is not kept (it may be transient)."""

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key not in self._values:
            try:
                self._values[key] = make()
            except AwmlError as exc:
                self._values[key] = _Failed(exc)
        value = self._values[key]
        if isinstance(value, _Failed):
            raise value.error
        return value

    def put(self, key: Hashable, value: Any) -> None:
        self._values[key] = value

    def clear(self) -> None:
        self._values.clear()


REFERENCE_FORMAT = "reference-outputs"  # kept across runs, one file per input
WEIGHTS_FORMAT = "seeded-weights"  # kept across runs
OUTPUTS_FORMAT = "backend-outputs"  # kept across runs, one file per input (--awml-rerun-backends: not replayed)
OUTPUT_PREFIX = "output/"  # array names in a stored inference's .npz


def outputs_problem(path: Path, names: tuple[str, ...]) -> str | None:
    """What is wrong with stored outputs (unreadable, an array missing or cut), or None: a cache restored
    from elsewhere can carry a corrupt file under a manifest that matches it."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            missing = [name for name in names if OUTPUT_PREFIX + name not in stored.files]
            if missing:
                return f"no array {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}"
            for key in stored.files:
                stored[key]  # reading checks the zip's CRC: a cut or flipped file fails here
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        return f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    return None


class Workspace:
    def __init__(self, plan: Plan, store: ArtifactStore) -> None:
        self.plan = plan
        self.store = store
        self._memo = Memo()
        self._open_runners: list[Runner] = []
        self._new_builds: list[Artifact] = []
        self._new_notes: list[tuple[str, str]] = []
        self._inferences: list[dict] = []

    @property
    def options(self) -> AwmlOptions:
        return self.plan.options

    # -- models and data --------------------------------------------------------------------
    def model(self, spec: ModelSpec) -> LoadedModel:
        return self._memo.get(("model", spec.name), lambda: self._load(spec))

    def _load(self, spec: ModelSpec) -> LoadedModel:
        loaded = models.load(spec, self.options, lambda: self._seeded_weights(spec))
        self._new_notes.extend((spec.name, note) for note in loaded.notes)
        return loaded

    def _seeded_weights(self, spec: ModelSpec) -> tuple[Path, Any]:
        """The seeded model's weights as an artifact kept across runs, keyed by the spec (its declared fields), all
        the code of its top-level package, the seed, and the torch and NumPy versions (their random streams make
        the weights and the scenes a spec tunes them on)."""
        import torch

        built = []  # the model, when this call builds the file

        def write(path: Path) -> dict:
            start = time.perf_counter()
            built.append(spec.build_model(None, self.options.seed))
            torch.save(built[0].state_dict(), path)
            return {"seed": self.options.seed, "seconds": round(time.perf_counter() - start, 3)}

        def problem(path: Path) -> str | None:
            try:
                read_state_dict(path)
            except AwmlError as exc:
                return str(exc)
            return None

        artifact = self.store.get_or_build(spec=spec.name, component="model", format=WEIGHTS_FORMAT, filename="seeded.pt",
                                           key_parts={"spec": fingerprint(spec), "code": self._package_code(spec.build_model), "seed": self.options.seed,
                                                      "torch": torch.__version__, "numpy": np.__version__},
                                           build=write, verify=problem)
        self._new_builds.append(artifact)
        return artifact.path, (built[0] if built else None)

    def drain_notes(self) -> list[tuple[str, str]]:
        """(spec, note) for what the data readers warned about since the last call (for the report)."""
        notes, self._new_notes = self._new_notes, []
        return notes

    def inputs(self, spec: ModelSpec, component: Component) -> list[dict[str, np.ndarray]]:
        """The component's inputs for the session's samples; a component ``fed_by`` another is fed that one's
        reference outputs (:meth:`reference`: computed once, stored, in the ledger), not a second run of it."""
        def make() -> list[dict[str, np.ndarray]]:
            if component.fed_by is None:
                return models.component_inputs(self.model(spec), component)
            upstream = self.reference(spec, spec.component(component.fed_by.component))
            return models.component_inputs(self.model(spec), component, upstream)

        return self._memo.get(("inputs", spec.name, component.name), make)

    def reference(self, spec: ModelSpec, component: Component) -> list[dict[str, np.ndarray]]:
        """PyTorch CPU fp32 outputs of the very module that is exported, for the session's inputs."""
        return self.outputs(spec, component, REFERENCE)

    def input_digests(self, spec: ModelSpec, component: Component) -> list[str]:
        """The :func:`content_digest` of each of the session's inputs, hashed once for every target (a full-size
        canvas is 266 MB: 0.14 s a hash)."""
        return self._memo.get(("input digests", spec.name, component.name),
                              lambda: [content_digest(sample) for sample in self.inputs(spec, component)])

    def outputs(self, spec: ModelSpec, component: Component, target: Target) -> list[dict[str, np.ndarray]]:
        """The component's outputs on ``target`` for the session's inputs (see :meth:`run`)."""
        return [self.run(spec, component, target, sample, digest=digest)
                for sample, digest in zip(self.inputs(spec, component), self.input_digests(spec, component))]

    def run(self, spec: ModelSpec, component: Component, target: Target, inputs: Mapping[str, np.ndarray], *,
            keep: bool = True, digest: str | None = None) -> dict[str, np.ndarray]:
        """One inference, made once per session for the same component, target and input content, and
        shared by every test that needs it (parity, pipelines, drift, metrics). With ``keep`` it is kept in
        the store too (:meth:`_kept`): xdist workers and later runs read it instead of computing it again.
        Inputs drawn afresh every run (shape fuzzing) pass ``keep=False``: they would only fill the store.
        ``digest``: the inputs' :func:`content_digest`, when the caller has it already (the same feed on two targets)."""
        digest = content_digest(inputs) if digest is None else digest

        def compute() -> dict[str, np.ndarray]:
            return self.ledgered(spec, component, target, digest, lambda: self.runner(spec, component, target).run(inputs))

        rerun = target != REFERENCE and self.options.rerun_backends
        return self._memo.get(("run", spec.name, component.name, target, digest),
                              lambda: compute() if rerun or not keep else self._kept(spec, component, target, digest, compute))

    def _kept(self, spec: ModelSpec, component: Component, target: Target, digest: str,
              compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """One inference's outputs as an artifact keyed by everything that decides them (:meth:`_outputs_key`) and
        the input's digest: read back when stored (reported ``reused``), else computed and stored.

        Replaying a backend's stored outputs is sound for the same reason a build cache is: the key holds the
        file it runs (its hash), the runtime's and the plugin's code and versions, the machine (CPU model; GPU,
        driver and CUDA) and the input, so running it again would compute these outputs again. Any change to
        one of them misses and runs the backend; ``--awml-rerun-backends`` runs every backend regardless."""
        computed: list[dict[str, np.ndarray]] = []

        def write(path: Path) -> dict:
            computed.append(compute())
            np.savez(path, **{OUTPUT_PREFIX + name: value for name, value in computed[0].items()})  # no name clashes with savez's own arguments
            return {"target": target.id, "input": digest}

        artifact = self.store.get_or_build(spec=spec.name, component=component.name,
                                           format=REFERENCE_FORMAT if target == REFERENCE else OUTPUTS_FORMAT,
                                           filename=f"{component.name}.{target.id}.npz",
                                           key_parts={**self._outputs_key(spec, component, target), "inputs": digest},
                                           build=write, verify=lambda path: outputs_problem(path, component.output_names))
        self._new_builds.append(artifact)  # reused or built: the report says which, once per session
        if computed:
            return computed[0]
        with np.load(artifact.path, allow_pickle=False) as stored:
            return {name: stored[OUTPUT_PREFIX + name] for name in component.output_names}

    def _package_code(self, obj: Callable) -> str:
        """The hash of all the code of the top-level package that defines ``obj`` (:func:`source_hash`), read once per
        session and package: the model's, this plugin's and a backend's (often this plugin again) key stored files."""
        package = (getattr(obj, "__module__", "") or "").split(".")[0]
        return self._memo.get(("package code", package), lambda: source_hash(obj, whole_package=True))

    def _outputs_key(self, spec: ModelSpec, component: Component, target: Target) -> dict[str, str]:
        """What decides a component's outputs on ``target`` beside the input: the spec and all its model code, the
        weights, the target, the file the backend runs, the code that runs it (this plugin's, and all of the backend's
        top-level package when that is another), the libraries' versions and the machine."""
        def make() -> dict[str, str]:
            backend = self.plan.backends.get(target.backend)
            key = {"spec": fingerprint(spec, component), "model_code": self._package_code(spec.build_model),
                   "weights": self.model(spec).weights_sha256, "target": target.id, "plugin_code": self._package_code(Workspace),
                   "backend_code": self._package_code(type(backend)), "versions": json.dumps(versions(), sort_keys=True),
                   "machine": json.dumps(machine_identity(self.options.physical(target.device)), sort_keys=True)}
            fmt = backend.artifact_format(target.precision)
            if fmt is not None:
                key["artifact"] = self.artifact(spec, component, fmt).sha256
            return key

        return self._memo.get(("outputs key", spec.name, component.name, target), make)

    def ledgered(self, spec: ModelSpec, component: Component, target: Target, digest: str, call: Callable[[], Any]) -> Any:
        """``call`` (one inference outside the latency rounds), timed into the run's ledger: the report's
        ``inferences`` say what a run computed, so ``benchmarks/main_job.py`` can hold its wall time to
        them and show that no input ran twice on a target."""
        start = time.perf_counter()
        try:
            return call()
        finally:
            self._inferences.append({"spec": spec.name, "component": component.name, "target": target.id, "input": digest,
                                     "seconds": round(time.perf_counter() - start, 6)})

    def drain_inferences(self) -> list[dict]:
        """The ledger's entries since the last call (the running test's)."""
        done, self._inferences = self._inferences, []
        return done

    # -- artifacts ----------------------------------------------------------------------------
    def artifact(self, spec: ModelSpec, component: Component, fmt: str) -> Artifact:
        return self._memo.get(("artifact", spec.name, component.name, fmt), lambda: self._build(spec, component, fmt))

    def _build(self, spec: ModelSpec, component: Component, fmt: str) -> Artifact:
        """Resolve what the format's builder requires (after checking it can build here), then build."""
        builder, device = self.plan.builders.get(fmt), self.options.physical(self.options.device)
        builder.require_available(device)
        context = BuildContext(spec=spec, component=component, device=device, store=self.store,
                               loaded=self.model(spec) if Ingredient.MODEL in builder.requires else None,
                               inputs=self.inputs(spec, component) if Ingredient.INPUTS in builder.requires else (),
                               artifacts={other: self.artifact(spec, component, other) for other in builder.required_formats()})
        artifact = builder.build(context)
        if not artifact.reused:
            self._new_builds.append(artifact)
        return artifact

    def artifact_path_or_none(self, spec: ModelSpec, component: Component, fmt: str) -> Path | None:
        """The file, or None when it cannot be built (forensics go on without it)."""
        try:
            return self.artifact(spec, component, fmt).path
        except AwmlError:
            return None

    def drain_builds(self) -> list[Artifact]:
        """Artifacts this process built since the last call (to report who built what under xdist)."""
        built, self._new_builds = self._new_builds, []
        return built

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

        return self._memo.get(("runner", spec.name, component.name, target), make)

    def pipeline(self, spec: ModelSpec, target: Target, name: PipelineName = PipelineName.SPEC) -> Pipeline:
        """The spec's pipeline (or its bundle's) with every component on ``target`` (one runner each, shared)."""
        def build() -> Pipeline:
            runners = {c.name: self.runner(spec, c, target) for c in spec.components_of(name)}
            return spec.pipeline_named(name).build(self.model(spec).model, runners)

        return self._memo.get(("pipeline", spec.name, name, target), build)

    def pipeline_outputs(self, spec: ModelSpec, target: Target, name: PipelineName = PipelineName.SPEC) -> list:
        """The pipeline's outputs on ``target``, one per sample, computed once and shared by the pipeline parity and
        metric tests (the reference's: ``target`` ``REFERENCE``). Its host calls are answered by :meth:`run` (an input
        a parity test already ran is not run again), resolved between passes over a frame (:mod:`~pytest_awml.runners.sharing`);
        its device calls are its runners' own, the path its latency rounds time."""
        def outputs() -> list:
            held = {c.name: Held() for c in spec.components_of(name)}
            runners = {c.name: SharingRunner(c.name, self.runner(spec, c, target), held[c.name]) for c in spec.components_of(name)}
            pipeline = spec.pipeline_named(name).build(self.model(spec).model, runners)
            return [self._frame(spec, target, pipeline, held, sample) for sample in self.model(spec).samples]

        return self._memo.get(("pipeline_outputs", spec.name, name, target), outputs)

    def _frame(self, spec: ModelSpec, target: Target, pipeline: Pipeline, held: Mapping[str, Held], sample: Any) -> Any:
        """One sample through a pipeline of sharing runners: each pass that stops at an input the session does not hold
        yet is resolved through :meth:`run` and the frame runs again, until it runs through."""
        resolved = None
        while True:
            for answers in held.values():
                answers.read.clear()
            try:
                return pipeline(sample).outputs
            except Missing as missing:
                if resolved is not None and resolved[1] not in held[resolved[0]].read:
                    raise BackendError(f"{spec.name}: the {target.id} pipeline fed {resolved[0]} other inputs when it ran the same "
                                       "sample again: its stages before that component are not deterministic") from None
                outputs = self.run(spec, spec.component(missing.component), target, missing.inputs, digest=missing.digest)
                held[missing.component].add(missing.digest, outputs)
                resolved = (missing.component, missing.digest)

    def pipeline_reference(self, spec: ModelSpec, name: PipelineName = PipelineName.SPEC) -> list:
        """Reference pipeline outputs (every component on PyTorch CPU fp32), one per sample."""
        return self.pipeline_outputs(spec, REFERENCE, name)

    # -- what other modules compute ----------------------------------------------------------------
    def memoized(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """``make()``'s value under ``key``, made once per session (the latency sources' rounds, p50s, baselines)."""
        return self._memo.get(key, make)

    def remember(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` under ``key`` for the rest of the session, replacing what was there."""
        self._memo.put(key, value)

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
