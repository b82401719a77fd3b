"""The session's lazily built state: models, samples, reference outputs, artifacts, runners.

One ``Workspace`` lives per test session (the ``awml_workspace`` fixture). Each thing is built at
most once, on first use; an export that failed is remembered so that the tests depending on it
report that failure instead of exporting again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from exporters.onnx_export import export_onnx
from exporters.tensorrt_build import build_engine, engine_key_parts
from pytest_awml.artifacts import Artifact, ArtifactStore
from pytest_awml.cases import Plan
from pytest_awml.device import REFERENCE, Precision, Target
from pytest_awml.errors import AwmlError, BackendUnavailable, DataError
from pytest_awml.pipeline import Pipeline
from pytest_awml.runners.base import Runner, RunnerSource
from pytest_awml.checkpoints import load_into
from pytest_awml.budgets import baseline_medians, load_benchmarks
from pytest_awml.spec import Component, LatencySettings, ModelSpec, Tolerance, fingerprint
from pytest_awml.timing import measure_loop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    model: Any
    weights_sha256: str
    checkpoint: Path | None
    samples: tuple[Any, ...]


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


VERSIONED = ("torch", "onnx", "onnxruntime", "numpy")


def library_versions() -> dict[str, str]:
    """The versions that decide what a model computes; recorded with golden outputs."""
    return {name: package_version(name) for name in VERSIONED}


def state_dict_sha256(model) -> str:
    """Hash of every parameter and buffer: names, dtypes, shapes and bytes, in key order."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{array.dtype}:{tuple(array.shape)}".encode())
        digest.update(array.numpy().tobytes())
    return digest.hexdigest()


def to_numpy(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    raise DataError(f"an input is a {type(value).__name__}; make_inputs must return torch tensors or numpy arrays")


def load_model(spec: ModelSpec, options):
    """The spec's model in eval mode: seeded, or with ``--awml-checkpoint`` loaded strictly into it."""
    model = spec.build_model(options.checkpoint, options.seed)
    if options.checkpoint is not None:
        load_into(model, options.checkpoint, trust=options.trust_checkpoint, hints=spec.checkpoint_hints)
    return model.eval()


class Workspace:
    def __init__(self, plan: Plan, store: ArtifactStore) -> None:
        self.plan = plan
        self.store = store
        self._models: dict[str, LoadedModel] = {}
        self._inputs: dict[tuple[str, str], list[dict[str, np.ndarray]]] = {}
        self._references: dict[tuple[str, str], list[dict[str, np.ndarray]]] = {}
        self._artifacts: dict[tuple[str, str, str], Artifact | AwmlError] = {}
        self._runners: dict[tuple[str, str, Target], Runner] = {}
        self._pipelines: dict[tuple[str, Target], Pipeline] = {}
        self._new_builds: list[Artifact] = []
        self._latencies: dict[tuple[str, str, str], float] = {}
        self._baseline: dict[str, float] | None = None
        self._pipeline_references: dict[str, list] = {}

    # -- models and data --------------------------------------------------------------------
    def model(self, spec: ModelSpec) -> LoadedModel:
        if spec.name not in self._models:
            import torch

            options = self.plan.options
            torch.manual_seed(options.seed)
            model = load_model(spec, options)
            if options.data is not None:
                if spec.load_data is None:
                    raise DataError(f"spec {spec.name!r} cannot read data files (it declares no load_data); drop --awml-data")
                samples = tuple(spec.load_data(options.data, dict(options.data_options)))
            else:
                samples = tuple(spec.make_samples(options.samples, options.seed))
            if options.data is None and len(samples) != options.samples:
                raise DataError(f"spec {spec.name!r}: make_samples returned {len(samples)} samples, {options.samples} were asked for")
            self._models[spec.name] = LoadedModel(spec, model, state_dict_sha256(model), options.checkpoint, samples)
        return self._models[spec.name]

    def inputs(self, spec: ModelSpec, component: Component) -> list[dict[str, np.ndarray]]:
        """The component's named inputs for every sample, checked against its TensorSpecs."""
        key = (spec.name, component.name)
        if key not in self._inputs:
            import torch

            loaded = self.model(spec)
            result = []
            with torch.inference_mode():
                for index, sample in enumerate(loaded.samples):
                    named = {name: to_numpy(v) for name, v in component.make_inputs(loaded.model, sample).items()}
                    for tensor in component.inputs:
                        if tensor.name not in named:
                            raise DataError(f"{spec.name}/{component.name}: make_inputs gave no {tensor.name!r} for sample {index} (gave {sorted(named)})")
                        problem = tensor.shape_problem(tuple(named[tensor.name].shape))
                        if problem:
                            raise DataError(f"{spec.name}/{component.name}, sample {index}: {problem}")
                    result.append(named)
            self._inputs[key] = result
        return self._inputs[key]

    def reference(self, spec: ModelSpec, component: Component) -> list[dict[str, np.ndarray]]:
        """PyTorch CPU fp32 outputs of the very module that is exported."""
        key = (spec.name, component.name)
        if key not in self._references:
            runner = self.runner(spec, component, REFERENCE)
            self._references[key] = [runner.run(sample) for sample in self.inputs(spec, component)]
        return self._references[key]

    # -- artifacts ----------------------------------------------------------------------------
    def artifact(self, spec: ModelSpec, component: Component, fmt: str) -> Artifact:
        key = (spec.name, component.name, fmt)
        if key not in self._artifacts:
            try:
                self._artifacts[key] = self._build(spec, component, fmt)
                if not self._artifacts[key].reused:
                    self._new_builds.append(self._artifacts[key])
            except AwmlError as exc:
                self._artifacts[key] = exc
        found = self._artifacts[key]
        if isinstance(found, AwmlError):
            raise found
        return found

    def _build(self, spec: ModelSpec, component: Component, fmt: str) -> Artifact:
        if fmt.startswith("tensorrt-"):
            return self._build_engine(spec, component, Precision(fmt.split("-", 1)[1]))
        if fmt != "onnx":
            raise AwmlError(f"no exporter for format {fmt!r} in this version of pytest-awml")
        import torch

        loaded = self.model(spec)
        module = component.extract(loaded.model)
        example = tuple(torch.from_numpy(self.inputs(spec, component)[0][t.name]) for t in component.inputs)
        key_parts = {
            "spec": fingerprint(spec, component),
            "weights": loaded.weights_sha256,
            "torch": torch.__version__,
            "onnx": package_version("onnx"),
            "exporter": package_version("pytest-awml"),
        }
        metadata = {"spec": spec.name, "spec_hash": key_parts["spec"], "weights_sha256": loaded.weights_sha256}

        def build(path: Path) -> None:
            export_onnx(module, example, path, component=f"{spec.name}/{component.name}", inputs=component.inputs,
                        outputs=component.outputs, options=component.onnx, metadata=metadata)

        return self.store.get_or_build(spec=spec.name, component=component.name, format=fmt,
                                       filename=f"{component.name}.onnx", key_parts=key_parts, build=build)

    def _build_engine(self, spec: ModelSpec, component: Component, precision: Precision) -> Artifact:
        """A TensorRT engine from the component's ONNX artifact, keyed per TensorRT version and GPU model."""
        from pytest_awml.runners.tensorrt import options_for, tensorrt_unavailable

        reason = tensorrt_unavailable()
        if reason:
            raise BackendUnavailable(reason)
        import torch

        onnx = self.artifact(spec, component, "onnx")
        device = self.plan.options.physical(self.plan.options.device)
        options = options_for(precision)
        key_parts = engine_key_parts(onnx.sha256, options, package_version("tensorrt"), torch.cuda.get_device_name(device.torch))

        def build(path: Path) -> None:
            with torch.cuda.device(device.torch):
                build_engine(onnx.path, path, component=f"{spec.name}/{component.name}", inputs=component.inputs,
                             options=options, timing_cache=self.store.root / "tensorrt-timing.cache")

        return self.store.get_or_build(spec=spec.name, component=component.name, format=f"tensorrt-{precision.value}",
                                       filename=f"{component.name}.{precision.value}.engine", key_parts=key_parts, build=build)

    def drain_builds(self) -> list[Artifact]:
        """Artifacts this process built since the last call (to report who built what under xdist)."""
        built, self._new_builds = self._new_builds, []
        return built

    def onnx_path_or_none(self, spec: ModelSpec, component: Component) -> Path | None:
        """The component's ONNX file, or None when it cannot be exported (forensics still go on)."""
        try:
            return self.artifact(spec, component, "onnx").path
        except AwmlError:
            return None

    def tolerances(self, component: Component, precision) -> dict[str, Tolerance]:
        """The spec's tolerances at ``precision``, with this run's ``--awml-tolerance`` overrides applied."""
        overrides = self.plan.options.tolerances
        return {name: overrides.apply(name, component.tolerance(precision, name)) for name in component.output_names}

    # -- runners ------------------------------------------------------------------------------
    def runner(self, spec: ModelSpec, component: Component, target: Target) -> Runner:
        key = (spec.name, component.name, target)
        if key not in self._runners:
            loaded = self.model(spec)
            source = RunnerSource(
                component=component.name,
                input_names=component.input_names,
                output_names=component.output_names,
                module=component.extract(loaded.model),
                artifact=lambda fmt: self.artifact(spec, component, fmt).path,
                input_specs=component.inputs,
                output_specs=component.outputs,
            )
            physical = dataclasses.replace(target, device=self.plan.options.physical(target.device))
            self._runners[key] = self.plan.backends.get(target.backend).create_runner(source, physical)
        return self._runners[key]

    # -- latency --------------------------------------------------------------------------------
    def latency_settings(self, settings: LatencySettings) -> LatencySettings:
        """The spec's settings with ``--awml-rounds``/``--awml-warmup`` applied."""
        o = self.plan.options
        return dataclasses.replace(settings, rounds=o.rounds or settings.rounds,
                                   warmup_rounds=settings.warmup_rounds if o.warmup is None else o.warmup)

    def remember_latency(self, spec: ModelSpec, part: str, target: Target, p50_ms: float) -> None:
        self._latencies[(spec.name, part, target.id)] = p50_ms

    def component_p50(self, spec: ModelSpec, component: Component, target_id: str, settings: LatencySettings) -> float:
        """p50 of a component on a target: as measured earlier in this session, else measured now."""
        key = (spec.name, component.name, target_id)
        if key not in self._latencies:
            runner = self.runner(spec, component, Target.parse(target_id))
            prepared = runner.prepare(self.inputs(spec, component)[0])

            def once():
                runner.execute(prepared)
                runner.synchronize()

            self._latencies[key] = measure_loop(once, settings.rounds, settings.warmup_rounds).p50_ms
        return self._latencies[key]

    def baseline_median(self, test_name: str) -> float | None:
        """The median (ms) of ``test_name`` in ``--awml-latency-baseline``, if given and present."""
        path = self.plan.options.latency_baseline
        if path is None:
            return None
        if self._baseline is None:
            self._baseline = baseline_medians(load_benchmarks(path))
        return self._baseline.get(test_name)

    # -- pipelines ----------------------------------------------------------------------------
    def pipeline(self, spec: ModelSpec, target: Target) -> Pipeline:
        """The spec's pipeline with every component on ``target`` (one runner each, shared)."""
        key = (spec.name, target)
        if key not in self._pipelines:
            if spec.pipeline is None:
                raise AwmlError(f"spec {spec.name!r} declares no pipeline")
            runners = {c.name: self.runner(spec, c, target) for c in spec.components}
            self._pipelines[key] = spec.pipeline.build(self.model(spec).model, runners)
        return self._pipelines[key]

    def pipeline_reference(self, spec: ModelSpec) -> list:
        """Reference pipeline outputs (every component on PyTorch CPU fp32), one per sample."""
        if spec.name not in self._pipeline_references:
            pipeline = self.pipeline(spec, REFERENCE)
            self._pipeline_references[spec.name] = [pipeline(s).outputs for s in self.model(spec).samples]
        return self._pipeline_references[spec.name]

    def close(self) -> None:
        """Drop models, sessions and arrays so a long session frees them when the fixture ends."""
        for cache in (self._pipelines, self._pipeline_references, self._runners, self._references, self._inputs,
                      self._models, self._artifacts):
            cache.clear()
