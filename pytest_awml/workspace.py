"""The session cache: every model, input set, reference, artifact, runner and pipeline a test
session needs, made once on first use and released when the session ends (``awml_workspace``).

Nothing is decided here: models and inputs come from :mod:`pytest_awml.models`, artifacts from the
builder registered for their format (:mod:`pytest_awml.builders`), runners from the target's
backend, pipelines from the spec. A deliberate failure is remembered like a value: an export that
failed fails every test that needs it with the same error, without exporting again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
import zipfile
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pytest_awml import models
from pytest_awml.artifacts import Artifact, ArtifactStore
from pytest_awml.budgets import baseline_medians, load_benchmarks
from pytest_awml.builders import BuildContext
from pytest_awml.cases import BUNDLE, Plan
from pytest_awml.checkpoints import read_state_dict
from pytest_awml.device import REFERENCE, Target
from pytest_awml.errors import AwmlError, SpecError
from pytest_awml.limits import LatencySettings
from pytest_awml.machine import machine_identity
from pytest_awml.models import LoadedModel, state_dict_sha256
from pytest_awml.options import AwmlOptions
from pytest_awml.pipeline import Pipeline, PipelineSpec
from pytest_awml.provenance import versions
from pytest_awml.runners.base import Runner, RunnerSource
from pytest_awml.spec import Component, ModelSpec, fingerprint, source_hash
from pytest_awml.timing import LatencyStats, Rounds, SpanTimer, compute_of, measure_shared, timer_for, warmup_rounds

__all__ = ["Memo", "Workspace", "state_dict_sha256"]  # state_dict_sha256: its home is models.py

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


DIGEST_CHUNK = 16 << 20  # bytes: an array's buffer is hashed in chunks of this size, side by side


def content_digest(arrays: Mapping[str, Any]) -> str:
    """A hash of named arrays (or of named digests): equal content, equal digest, whoever made it.

    Each array's buffer is read in place (``tobytes()`` would copy a 266 MB canvas first) in fixed
    ``DIGEST_CHUNK`` pieces hashed on a thread each (hashlib lets go of the GIL while it hashes): the digest
    is the hash of the pieces' hashes, the same on any machine, and a full-size canvas takes 0.08 s instead
    of 0.14 s on two cores."""
    digest = hashlib.sha1()
    for name in sorted(arrays):
        value = arrays[name]
        if isinstance(value, str):
            digest.update(f"{name}={value};".encode())
            continue
        array = np.ascontiguousarray(value)
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        buffer = array.reshape(-1).view(np.uint8).data  # bytes of any fixed-size dtype (datetimes have no buffer format)
        pieces = [buffer[start:start + DIGEST_CHUNK] for start in range(0, len(buffer), DIGEST_CHUNK)]
        if len(pieces) > 1:
            with ThreadPoolExecutor(min(len(pieces), os.cpu_count() or 1)) as pool:
                hashed = list(pool.map(lambda piece: hashlib.sha1(piece).digest(), pieces))
        else:
            hashed = [hashlib.sha1(piece).digest() for piece in pieces]
        digest.update(b"".join(hashed))
    return digest.hexdigest()


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
        if pipeline is None:
            continue
        stage = pipeline.stage_of(component.name)
        if stage is not None and component in components_of(spec, name):
            return name, pipeline, stage
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
                                           key_parts={"spec": fingerprint(spec), "code": self._package_code(spec.build_model),
                                                      "seed": self.options.seed, "torch": torch.__version__, "numpy": np.__version__},
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
                for sample, digest in zip(self.inputs(spec, component), self.input_digests(spec, component), strict=True)]

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
            arrays: dict[str, Any] = {OUTPUT_PREFIX + name: value for name, value in computed[0].items()}  # no clash with savez's arguments
            np.savez(path, **arrays)
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
        context = BuildContext(spec=spec, component=component, device=self.options.physical(self.options.device),
                               store=self.store, model=lambda: self.model(spec), inputs=lambda: self.inputs(spec, component),
                               artifact=lambda other: self.artifact(spec, component, other))
        artifact = self.plan.builders.get(fmt).build(context)
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

        return self._memo.get(("runner", spec.name, component.name, target), make)

    def pipeline(self, spec: ModelSpec, target: Target, name: str = "") -> Pipeline:
        """The spec's pipeline (``name`` ``"bundle"``: the bundle's) with every component on ``target``
        (one runner each, shared)."""
        def build() -> Pipeline:
            pipeline_spec = pipeline_of(spec, name)
            components = components_of(spec, name)
            runners = {c.name: self.runner(spec, c, target) for c in components}
            built = pipeline_spec.build(self.model(spec).model, runners)
            problems = pipeline_spec.stage_problems(built.stages)
            if problems:  # a typo would change how latency is measured, silently
                raise SpecError(spec.name, "bundle_pipeline" if name else "pipeline", "; ".join(problems),
                                "name the stages as the pipeline's class declares them in its stages")
            return built

        return self._memo.get(("pipeline", spec.name, name, target), build)

    def pipeline_rounds(self, spec: ModelSpec, target: Target, name: str, settings: LatencySettings) -> PipelineRounds:
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

        return self._memo.get(("pipeline-rounds", spec.name, name, target), run)

    def stage_rounds(self, spec: ModelSpec, component: Component, target: Target) -> StageRounds | None:
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
            runners = {c.name: SharingRunner(self.runner(spec, c, target), functools.partial(self.run, spec, c, target))
                       for c in components}
            pipeline = pipeline_spec.build(self.model(spec).model, runners)
            return [pipeline(sample).outputs for sample in self.model(spec).samples]

        return self._memo.get(("pipeline_outputs", spec.name, name, target), run)

    def pipeline_reference(self, spec: ModelSpec, name: str = "") -> list:
        """Reference pipeline outputs (every component on PyTorch CPU fp32), one per sample."""
        return self.pipeline_outputs(spec, REFERENCE, name)

    # -- latency --------------------------------------------------------------------------------
    def remember_p50(self, spec: ModelSpec, component: Component, target: Target, p50_ms: float) -> None:
        self._memo.put(("p50", spec.name, component.name, target.id), p50_ms)

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

        return self._memo.get(("p50", spec.name, component.name, target_id), measure)

    def baseline_median(self, test_name: str) -> float | None:
        """The median (ms) of ``test_name`` in ``--awml-latency-baseline``, if given and present."""
        path = self.options.latency_baseline
        if path is None:
            return None
        return self._memo.get(("baseline", path), lambda: baseline_medians(load_benchmarks(path))).get(test_name)

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
