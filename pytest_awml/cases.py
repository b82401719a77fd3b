"""How specs become test ids, in one place.

1. ``--awml-spec`` makes the plugin add the suite module (:data:`SUITE`) to the collection, under
   the fixed node id ``awml`` (:data:`MODULE_ID`) wherever it is installed.
2. Each test there is marked ``@pytest.mark.awml_cases(kind)``; ``pytest_generate_tests``
   parametrizes its ``awml_case`` argument with :func:`parameters` — one :class:`Case` per
   spec × component × format or target that the :class:`Plan` yields for that kind. A case that
   cannot run here (backend unavailable, no tolerance at that precision, no golden folder) is
   still generated, marked skip with the reason, so that its absence shows.
3. ``Case.id`` is the part in brackets. The ids are a contract (CI filters and dashboards):
   ``test_export[<spec>/<component>/<format>]``, ``test_parity|test_latency|test_shapes[<spec>/
   <component>/<target>]``, ``test_pipeline_parity|test_pipeline_latency[<spec>/<target>]``,
   ``test_metric[<spec>/<target>]``, ``test_drift[<spec>/<component>]``, ``test_bundle[<spec>]``,
   ``test_sequence_parity|test_sequence_latency[<spec>/<target>]`` (a stateful pipeline: ``ModelSpec.sequence``),
   ``test_sequence_pipeline_parity|test_sequence_metric[<spec>/<target>]`` (its ``compare``, its ``metric``); ``<target>`` is
   ``<backend>-<device>-<precision>`` (``onnxruntime-cpu-fp32``). A deploy config's scenario whose reference is not
   PyTorch CPU fp32 adds ``test_parity[<spec>/<component>/<target>@<reference target>]``.
4. A kind with no case at all (a spec without pipeline or dynamic dims, no ``--awml-autoware``) is not
   collected (the plugin's ``pytest_pycollect_makeitem``): neither a "got empty parameter set" skip nor a
   "deselected" count for tests nobody asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_awml.device import REFERENCE, Precision, Target, absent_reason
from pytest_awml.spec import Component, ModelSpec, PipelineName

if TYPE_CHECKING:
    from pytest_awml.backends import BackendRegistry
    from pytest_awml.builders import BuilderRegistry
    from pytest_awml.options import AwmlOptions

SUITE = Path(__file__).with_name("suite.py")
MODULE_ID = "awml"
MARKER = "awml_cases"
ARGUMENT = "awml_case"
REFERENCE_SEPARATOR = "@"  # test_parity[<spec>/<component>/<target>@<reference target>]: a scenario's own reference
ONNX_FORMATS = ("onnx", "onnx-fp16", "onnx-int8")  # what a deploy config's export.mode "onnx" keeps (no engines)
ONNXRUNTIME = "onnxruntime"  # the backend int8 sensitivity runs its variants on (ONNX Runtime's CPU provider)


@dataclass(frozen=True)
class Case:
    """One generated test: a spec, and as the kind needs, a component, a target, an artifact format."""

    spec: ModelSpec
    component: Component | None = None
    target: Target | None = None
    format: str | None = None
    skip: str = ""
    pipeline: PipelineName = PipelineName.SPEC  # a pipeline test's: the spec's, or its bundle's
    reference: Target | None = None  # a deploy config's scenario reference other than PyTorch CPU fp32 (REFERENCE)

    @property
    def id(self) -> str:
        parts = [self.spec.name] + ([self.pipeline.value] if self.pipeline.value else [])
        if self.component is not None:
            parts.append(self.component.name)
        if self.format is not None:
            parts.append(self.format)
        elif self.target is not None:
            parts.append(self.target.id + (f"{REFERENCE_SEPARATOR}{self.reference.id}" if self.reference is not None else ""))
        return "/".join(parts)


@dataclass(frozen=True)
class Plan:
    """Everything one session verifies: the specs and the targets, resolved once at configure time."""

    options: AwmlOptions
    specs: tuple[ModelSpec, ...]
    backends: BackendRegistry
    builders: BuilderRegistry
    targets: tuple[tuple[Target, str], ...]  # (target, skip reason or "")

    @classmethod
    def build(cls, options: AwmlOptions, specs: Sequence[ModelSpec], backends: BackendRegistry,
              builders: BuilderRegistry) -> Plan:
        """Resolve the targets; a backend or a format that is not registered stops the run here."""
        names = options.backends or tuple(backends.default_names(options.device))
        targets = []
        deploy = options.deploy
        for name in names:
            backend = backends.get(name)
            engine = backend.artifact_format(options.precisions[0]) not in (None, *ONNX_FORMATS)
            if engine and deploy is not None and deploy.export_mode == "onnx":
                continue  # the deploy config exports ONNX only: no engine targets
            # a deploy config's precision policy is an engine precision: it joins the engine backends' targets
            for precision in dict.fromkeys((*options.precisions, *(deploy.precisions if engine and deploy is not None else ()))):
                fmt = backend.artifact_format(precision)
                if fmt is not None:
                    builders.get(fmt)
                target = Target(name, options.device, precision)
                targets.append((target, backend.unavailable_reason(options.device, precision) or ""))
        return cls(options, tuple(specs), backends, builders, tuple(targets))

    def cases(self, kind: str) -> list[Case]:
        """The cases of one test kind (the ``awml_cases`` marker's argument), in collection order."""
        return list(KINDS[kind](self))

    def _components(self) -> Iterator[tuple[ModelSpec, Component]]:
        """Every spec's components, and with ``--awml-autoware`` the graphs its bundle ships."""
        for spec in self.specs:
            for component in spec.components + (spec.bundle_components if self.options.autoware is not None else ()):
                yield spec, component

    def _export(self) -> Iterator[Case]:
        """One per component and format a target runs; skipped when the format cannot be built here.

        Building is judged apart from running: TensorRT-RTX builds engines on a CPU that cannot run them.
        """
        for spec, component in self._components():
            formats = dict.fromkeys(fmt for target, _ in self.targets
                                    if (fmt := self.backends.get(target.backend).artifact_format(target.precision)) is not None)
            for fmt in formats:
                builder = self.builders.get(fmt)
                skip = (builder.unavailable_reason(self.options.device) or builder.plugins_unavailable(component.plugins)
                        or builder.parser_plugins_unavailable(component.parser_plugins))
                yield Case(spec, component, format=fmt, skip=skip or "")

    def _parity(self) -> Iterator[Case]:
        """Every target but the reference itself (PyTorch CPU fp32 against itself proves nothing), and with a
        deploy config its verification scenarios: each against its own reference (:meth:`_scenarios`)."""
        seen: set[tuple[str, str, Target, Target | None]] = set()
        for spec, component in self._components():
            for target, skip in self.targets:
                if target == REFERENCE:
                    continue
                seen.add((spec.name, component.name, target, None))
                yield self._parity_case(spec, component, target, skip)
        for case in self._scenarios():
            assert case.component is not None and case.target is not None  # _parity_case gives every case both
            key = (case.spec.name, case.component.name, case.target, case.reference)
            if key not in seen:
                seen.add(key)
                yield case

    def _parity_case(self, spec: ModelSpec, component: Component, target: Target, skip: str, reference: Target | None = None) -> Case:
        if not skip and target.precision.value not in component.tolerances:
            skip = f"the spec gives no {target.precision} tolerances for {component.name}"
        return Case(spec, component, target, skip=skip or self._plugins_skip(target, component), reference=reference)

    def _scenarios(self) -> Iterator[Case]:
        """A deploy config's verification scenarios, on the components it describes: one against PyTorch CPU fp32
        is the ordinary parity test of its target; one against another backend (ONNX Runtime CUDA → TensorRT) is a
        test of its own, ``<target>@<reference target>``. A side that cannot run here skips with its reason."""
        deploy = self.options.deploy
        if deploy is None:
            return
        for spec in self.specs:
            described = {spec.deploy_components[c.name] for c in deploy.components if c.name in spec.deploy_components}
            for scenario in deploy.scenarios:
                test, ref = (Target(e.backend, e.device, e.precision) for e in (scenario.test, scenario.reference))
                skip = self._target_skip(test) or (self._target_skip(ref) if ref != REFERENCE else "")
                for component in spec.components:
                    if component.name in described:
                        yield self._parity_case(spec, component, test, skip, None if ref == REFERENCE else ref)

    def _target_skip(self, target: Target) -> str:
        """Why ``target`` cannot run here ("" when it can): an unregistered backend stops the run (a usage error)."""
        return absent_reason(target.device) or self.backends.get(target.backend).unavailable_reason(target.device, target.precision) or ""

    def _shapes(self) -> Iterator[Case]:
        """Parity at the profile's corners and at drawn sizes against PyTorch CPU fp32: components with dynamic dims."""
        return (case for case in self._parity() if case.component is not None and case.component.dynamic_dims and case.reference is None)

    def _latency(self) -> Iterator[Case]:
        for spec, component in self._components():
            for target, skip in self.targets:
                yield Case(spec, component, target, skip=skip or self._plugins_skip(target, component))

    def _plugins_skip(self, target: Target, component: Component) -> str:
        backend = self.backends.get(target.backend)
        return backend.plugins_unavailable(component.plugins) or backend.parser_plugins_unavailable(component.parser_plugins) or ""

    def _pipeline_parity(self) -> Iterator[Case]:
        return (case for case in self._pipeline_latency() if case.target != REFERENCE)

    def _pipeline_latency(self) -> Iterator[Case]:
        for spec in self.specs:
            for name, _ in spec.pipelines():
                if name is PipelineName.SPEC or self.options.autoware is not None:
                    for target, skip in self.targets:
                        yield Case(spec, target=target, skip=skip, pipeline=name)

    def _metric(self) -> Iterator[Case]:
        """Every target's task metric against the reference's, for specs that declare one; with a deploy config
        whose evaluation is on, its evaluation backends are the targets."""
        deploy = self.options.deploy
        if deploy is not None and deploy.evaluation:
            for spec in self.specs:
                if spec.metric is None:
                    continue
                for endpoint in deploy.evaluation:
                    target = Target(endpoint.backend, endpoint.device, endpoint.precision)
                    if target != REFERENCE:
                        missing = target.precision.value not in spec.metric.max_delta
                        yield Case(spec, target=target, skip=self._target_skip(target) or
                                   (f"the spec gives no {target.precision} metric limit" if missing else ""))
            return
        for case in self._pipeline_parity():
            case_target = case.target
            if case.pipeline is PipelineName.SPEC and case.spec.metric is not None and case_target is not None:
                missing = case_target.precision.value not in case.spec.metric.max_delta
                yield dataclasses.replace(case, skip=case.skip or (f"the spec gives no {case_target.precision} metric limit" if missing else ""))

    def _int8_sensitivity(self) -> Iterator[Case]:
        """Only with --awml-int8-sensitivity: every component on each int8 target ONNX Runtime runs on the CPU (where
        every layer's variant can be run), skipped where that target cannot run."""
        if not self.options.int8_sensitivity:
            return
        for spec, component in self._components():
            for target, skip in self.targets:
                if target.precision is Precision.INT8 and target.backend == ONNXRUNTIME and not target.device.is_cuda:
                    yield Case(spec, component, target, skip=skip)

    def _drift(self) -> Iterator[Case]:
        skip = "" if self.options.golden else "no golden folder: pass --awml-golden=DIR (with --awml-update-golden once to create it)"
        for spec, component in self._components():
            yield Case(spec, component, skip=skip)

    def _sequence_latency(self) -> Iterator[Case]:
        """Specs with a stateful pipeline (``ModelSpec.sequence``): one per target, the reference's too."""
        for spec in self.specs:
            if spec.sequence is not None:
                for target, skip in self.targets:
                    yield Case(spec, target=target, skip=skip)

    def _sequence_parity(self) -> Iterator[Case]:
        """A stateful pipeline on every target but the reference, without a sequence bound at its precision skipped."""
        for case in self._sequence_latency():
            sequence, target = case.spec.sequence, case.target
            if target is None or sequence is None or target == REFERENCE:
                continue
            precision = target.precision.value
            lacking = [c.name for c in case.spec.components if c.name in sequence.order and precision not in c.tolerances]
            missing = (f"the spec gives no {precision} sequence drift bound" if precision not in sequence.drift else
                       f"the spec gives no {precision} tolerances for {', '.join(lacking)}" if lacking else "")
            yield dataclasses.replace(case, skip=case.skip or missing)

    def _sequence_pipeline_parity(self) -> Iterator[Case]:
        """A stateful pipeline's decoded outputs, for specs whose sequence compares them: where its parity runs (and skipped
        where it skips: no bound at the precision)."""
        return (case for case in self._sequence_parity() if case.spec.sequence is not None and case.spec.sequence.compare is not None)

    def _sequence_metric(self) -> Iterator[Case]:
        """A stateful pipeline's task metric on every target but the reference, without a limit at its precision skipped."""
        for case in self._sequence_latency():
            sequence, target = case.spec.sequence, case.target
            if target is None or target == REFERENCE or sequence is None or sequence.metric is None:
                continue
            missing = target.precision.value not in sequence.metric.max_delta
            yield dataclasses.replace(case, skip=case.skip or (f"the spec gives no {target.precision} sequence metric limit" if missing else ""))

    def _bundle(self) -> Iterator[Case]:
        """Only with --awml-autoware: one per spec that can write a deployable bundle."""
        if self.options.autoware is not None:
            for spec in self.specs:
                if spec.bundle is not None:
                    yield Case(spec)


KINDS: dict[str, Callable[[Plan], Iterator[Case]]] = {
    "export": Plan._export,
    "parity": Plan._parity,
    "shapes": Plan._shapes,
    "latency": Plan._latency,
    "pipeline_parity": Plan._pipeline_parity,
    "pipeline_latency": Plan._pipeline_latency,
    "metric": Plan._metric,
    "drift": Plan._drift,
    "int8_sensitivity": Plan._int8_sensitivity,
    "bundle": Plan._bundle,
    "sequence_parity": Plan._sequence_parity,
    "sequence_latency": Plan._sequence_latency,
    "sequence_pipeline_parity": Plan._sequence_pipeline_parity,
    "sequence_metric": Plan._sequence_metric,
}
"""Test kind (the ``awml_cases`` marker's argument) → the plan's cases of that kind."""


def parameters(plan: Plan, kind: str) -> list:
    """``pytest.param`` per case of ``kind``: the id, and a skip mark with the reason where it cannot run."""
    return [pytest.param(case, id=case.id, marks=[pytest.mark.skip(reason=case.skip)] if case.skip else [])
            for case in plan.cases(kind)]

