"""The test matrix a set of specs expands to, with the ids CI filters rely on (see DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from pytest_awml.backends import BackendRegistry
from pytest_awml.device import REFERENCE, Target
from pytest_awml.options import AwmlOptions
from pytest_awml.spec import Component, ModelSpec


@dataclass(frozen=True)
class ExportCase:
    spec: ModelSpec
    component: Component
    format: str
    skip: str = ""

    @property
    def id(self) -> str:
        return f"{self.spec.name}/{self.component.name}/{self.format}"


@dataclass(frozen=True)
class TargetCase:
    """A component on one target: used by the parity and latency tests."""

    spec: ModelSpec
    component: Component
    target: Target
    skip: str = ""

    @property
    def id(self) -> str:
        return f"{self.spec.name}/{self.component.name}/{self.target.id}"


@dataclass(frozen=True)
class ComponentCase:
    """A component on its own (drift against golden outputs)."""

    spec: ModelSpec
    component: Component
    skip: str = ""

    @property
    def id(self) -> str:
        return f"{self.spec.name}/{self.component.name}"


@dataclass(frozen=True)
class BundleCase:
    spec: ModelSpec
    skip: str = ""

    @property
    def id(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class PipelineCase:
    """A spec's whole pipeline on one target."""

    spec: ModelSpec
    target: Target
    skip: str = ""

    @property
    def id(self) -> str:
        return f"{self.spec.name}/{self.target.id}"


@dataclass(frozen=True)
class Plan:
    """Everything one session verifies: the specs and the targets, resolved once at configure time."""

    options: AwmlOptions
    specs: tuple[ModelSpec, ...]
    backends: BackendRegistry
    targets: tuple[tuple[Target, str], ...]  # (target, skip reason or "")

    @classmethod
    def build(cls, options: AwmlOptions, specs: list[ModelSpec], backends: BackendRegistry) -> "Plan":
        names = options.backends or tuple(backends.default_names(options.device))
        targets = []
        for name in names:
            backend = backends.get(name)
            for precision in options.precisions:
                target = Target(name, options.device, precision)
                targets.append((target, backend.unavailable_reason(options.device, precision) or ""))
        return cls(options, tuple(specs), backends, tuple(targets))

    def export_cases(self) -> Iterator[ExportCase]:
        for spec in self.specs:
            for component in spec.components:
                formats: dict[str, str] = {}
                for target, skip in self.targets:
                    fmt = self.backends.get(target.backend).artifact_format(target.precision)
                    if fmt is not None:
                        formats[fmt] = skip if formats.get(fmt, skip) else ""
                for fmt, skip in formats.items():
                    yield ExportCase(spec, component, fmt, skip)

    def parity_cases(self) -> Iterator[TargetCase]:
        """Every target but the reference itself (PyTorch CPU fp32 against itself proves nothing)."""
        for spec in self.specs:
            for component in spec.components:
                for target, skip in self.targets:
                    if target == REFERENCE:
                        continue
                    if not skip and target.precision.value not in component.tolerances:
                        skip = f"the spec gives no {target.precision} tolerances for {component.name}"
                    yield TargetCase(spec, component, target, skip)

    def pipeline_parity_cases(self) -> Iterator[PipelineCase]:
        for spec in self.specs:
            if spec.pipeline is not None:
                for target, skip in self.targets:
                    if target != REFERENCE:
                        yield PipelineCase(spec, target, skip)

    def pipeline_latency_cases(self) -> Iterator[PipelineCase]:
        for spec in self.specs:
            if spec.pipeline is not None:
                for target, skip in self.targets:
                    yield PipelineCase(spec, target, skip)

    def drift_cases(self) -> Iterator[ComponentCase]:
        skip = "" if self.options.golden else "no golden folder: pass --awml-golden DIR (with --awml-update-golden once to create it)"
        for spec in self.specs:
            for component in spec.components:
                yield ComponentCase(spec, component, skip)

    def bundle_cases(self) -> Iterator[ComponentCase]:
        """Only with --awml-autoware: one per spec that can write a deployable bundle."""
        if self.options.autoware is not None:
            for spec in self.specs:
                if spec.bundle is not None:
                    yield BundleCase(spec)

    def shape_cases(self) -> Iterator[TargetCase]:
        """Parity at the profile's corners and at hypothesis-drawn sizes, for components with dynamic dims."""
        for case in self.parity_cases():
            if case.component.dynamic_dims:
                yield case

    def latency_cases(self) -> Iterator[TargetCase]:
        for spec in self.specs:
            for component in spec.components:
                for target, skip in self.targets:
                    yield TargetCase(spec, component, target, skip)


CASE_TYPES = (ExportCase, TargetCase, ComponentCase, PipelineCase, BundleCase)
