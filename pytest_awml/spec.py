"""The declarative schema a model spec is written in, and its validation.

A spec says *what* to export and *how close* every backend must stay to PyTorch; the plugin
derives the tests from it. All types are frozen dataclasses; ``validate`` runs at load time and
raises :class:`SpecError` naming the spec, the field and the fix. A spec's components, and the checks of
each, are in :mod:`pytest_awml.component`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from exporters.onnx_export import OnnxOptions
from exporters.signature import Dim, TensorSpec
from pytest_awml.component import Component, FedBy, check_component
from pytest_awml.digests import code_digest
from pytest_awml.errors import SpecError
from pytest_awml.facts import ConfigFact
from pytest_awml.limits import LatencyRatio, LatencySettings, Tolerance, TrendSettings
from pytest_awml.metric import MetricSpec
from pytest_awml.pipeline import Pipeline, PipelineName, PipelineSpec
from pytest_awml.runners.base import Runner
from pytest_awml.sequence import Feed, SequenceSpec

__all__ = [  # what a spec is written with, from wherever it lives (Component, FedBy: component.py)
    "Component",
    "Dim",
    "FedBy",
    "Feed",
    "LatencyRatio",
    "LatencySettings",
    "ModelSpec",
    "OnnxOptions",
    "PipelineName",
    "PipelineSpec",
    "SequenceSpec",
    "TensorSpec",
    "Tolerance",
    "TrendSettings",
    "fingerprint",
    "validate",
]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class ModelSpec:
    """A model and the components a deployment exports from it.

    ``build_model(checkpoint, seed)`` returns the model in eval mode: loaded from ``checkpoint`` when
    one is given, else with weights seeded from ``seed``. ``make_samples(count, seed)`` returns
    ``count`` seeded samples (whatever ``Component.make_inputs`` takes). ``params`` holds the
    declarative knobs that shape the model; they are hashed into every artifact's key.
    ``pipeline`` (optional) assembles the end-to-end pipeline; ``load_data(path, options)``
    (optional) reads real samples for ``--awml-data``. ``checks`` are the spec's own consistency
    rules (each returns problems as sentences), run at load time: e.g. a TensorRT profile's max
    pillars must equal the voxelizer's max, which AWML only guards by comments.

    ``metric`` scores the pipeline's outputs against the samples' ground truth; every backend's score
    must stay within ``metric.max_delta`` of the reference's (``test_metric``).

    ``default_weights`` says what the model holds without ``--awml-checkpoint`` when it is not
    seeded (bundled trained weights, and what they were trained on): the run's header and report say it.

    With ``--awml-checkpoint`` the plugin calls ``build_model(path, seed)`` for the architecture
    (the spec may skip seed-only work) and loads the weights itself (``pytest_awml.checkpoints``:
    weights only, strict); ``checkpoint_hints(mismatch)`` turns a misfit into advice.
    ``configure(path)`` returns the spec rebuilt from a training config (``--awml-config``), with ``facts``: the
    values the config decided and the file of its ``_base_`` chain that set each (the report's ``run.facts``).
    ``deploy_components`` maps a deploy config's component names (``--awml-deploy-config``; an mmdeploy config's
    one graph is ``end2end``) to this spec's components: which graph is which is model knowledge, declared here.

    The deployable bundle (``--awml-autoware DIR``): ``bundle_components`` are the graphs as they ship
    (another convention, another profile than the tested components may have); with the option they join
    the run and get every gate a component gets (export, parity, shapes, latency) under their own names;
    ``bundle_pipeline`` runs them end to end as the deployment does (``test_pipeline_*[<spec>/bundle/…]``).
    ``bundle(model, folder, graphs, schema)`` writes the bundle from ``graphs`` (bundle component name →
    the ONNX file the run tested) and raises :class:`~pytest_awml.errors.ArtifactError` when the files
    disagree, or break the consumer's schema at ``schema`` (``--awml-autoware-schema``) when given.
    """

    name: str
    build_model: Callable[[Path | None, int], Any]
    make_samples: Callable[[int, int], Sequence[Any]]
    components: tuple[Component, ...]
    description: str = ""
    sample_kind: str = "samples"
    params: Mapping[str, Any] = field(default_factory=dict)
    pipeline: PipelineSpec | None = None
    load_data: Callable[[Path, Mapping[str, str]], Sequence[Any]] | None = None
    data_options: Mapping[str, str] = field(default_factory=dict)  # --awml-data-option keys load_data reads → their meaning
    checks: tuple[Callable[[ModelSpec], list[str]], ...] = ()
    checkpoint_hints: Callable[[Any], list[str]] | None = None
    configure: Callable[[Path], ModelSpec] | None = None
    bundle: Callable[[Any, Path, Mapping[str, Path], Path | None], list[Path]] | None = None
    bundle_components: tuple[Component, ...] = ()
    bundle_pipeline: PipelineSpec | None = None
    default_weights: str = ""  # what build_model loads without a checkpoint, said in the header; "": seeded
    metric: MetricSpec | None = None  # the task metric of the pipeline's outputs (test_metric)
    deploy_components: Mapping[str, str] = field(default_factory=dict)  # a deploy config's component name → this spec's
    facts: tuple[ConfigFact, ...] = ()  # what the configs decided (configure, --awml-deploy-config), with the file of each
    sequence: SequenceSpec | None = None  # a stateful pipeline over frames (pytest_awml.sequence): test_sequence_*

    def __post_init__(self) -> None:
        object.__setattr__(self, "deploy_components", MappingProxyType(dict(self.deploy_components)))
        object.__setattr__(self, "facts", tuple(self.facts))
        object.__setattr__(self, "components", tuple(self.components))
        object.__setattr__(self, "bundle_components", tuple(self.bundle_components))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "checks", tuple(self.checks))

    def component(self, name: str) -> Component:
        for comp in self.components + self.bundle_components:
            if comp.name == name:
                return comp
        raise KeyError(f"spec {self.name!r} has no component {name!r}")

    def pipeline_named(self, name: PipelineName = PipelineName.SPEC) -> PipelineSpec:
        """The spec's pipeline, or its bundle's."""
        found = self.bundle_pipeline if name is PipelineName.BUNDLE else self.pipeline
        if found is None:
            field_name = name.field
            raise SpecError(self.name, field_name, "is None, and a test asked for it", f"declare {field_name}=PipelineSpec(...)")
        return found

    def build_pipeline(self, name: PipelineName, model: Any, runners: Mapping[str, Runner]) -> Pipeline:
        """The named pipeline built on ``runners`` (one per component it runs), its stages checked: a stage that
        ``stage_components`` or ``latency.stage_shares`` names and the built pipeline does not time would change how
        latency is measured, silently, so it is a :class:`SpecError` (known only once ``build`` made the pipeline)."""
        pipeline_spec = self.pipeline_named(name)
        built = pipeline_spec.build(model, runners)
        problems = pipeline_spec.stage_problems(built.stages)
        if problems:
            raise SpecError(self.name, name.field, "; ".join(problems), "name the stages as the pipeline's class declares them in its stages")
        return built

    def components_of(self, name: PipelineName = PipelineName.SPEC) -> tuple[Component, ...]:
        """The components the named pipeline runs: the spec's, or the bundle's as they ship."""
        return self.bundle_components if name is PipelineName.BUNDLE else self.components

    def pipelines(self) -> tuple[tuple[PipelineName, PipelineSpec], ...]:
        """The pipelines the spec declares, its own first."""
        found = ((PipelineName.SPEC, self.pipeline), (PipelineName.BUNDLE, self.bundle_pipeline))
        return tuple((name, pipeline) for name, pipeline in found if pipeline is not None)

    def stage_running(self, component: Component) -> tuple[PipelineName, str] | None:
        """(pipeline, stage) when a stage of that pipeline runs ``component`` alone (its ``stage_components``), else None."""
        for name, pipeline in self.pipelines():
            stage = pipeline.stage_of(component.name)
            if stage is not None and component in self.components_of(name):
                return name, stage
        return None


def validate(spec: Any, origin: str = "") -> ModelSpec:
    """Check every field of ``spec``; raise :class:`SpecError` on the first bad one."""
    label = getattr(spec, "name", None) or origin or "<unnamed>"
    if not isinstance(spec, ModelSpec):
        raise SpecError(str(label), "<spec>", f"expected a ModelSpec, got {type(spec).__name__}",
                        "build the spec with pytest_awml.spec.ModelSpec(...)")

    def fail(fieldname: str, problem: str, fix: str) -> None:
        raise SpecError(str(label), fieldname, problem, fix)

    if not isinstance(spec.name, str) or not _NAME.match(spec.name):
        fail("name", f"{spec.name!r} is not a valid name", "use lower-case letters, digits, '-', '_' or '.'")
    for attr in ("build_model", "make_samples"):
        if not callable(getattr(spec, attr)):
            fail(attr, "is not callable", f"pass a function for {attr}")
    if not spec.components:
        fail("components", "is empty", "declare at least one Component")
    for attr in ("pipeline", "bundle_pipeline"):
        pipeline = getattr(spec, attr)
        if pipeline is not None:
            if not isinstance(pipeline, PipelineSpec):
                fail(attr, f"is a {type(pipeline).__name__}", "use pytest_awml.pipeline.PipelineSpec(...)")
            problems = pipeline.latency.problems()
            if problems:
                fail(f"{attr}.latency", "; ".join(problems), "correct the latency settings")

    if spec.metric is not None:
        if not isinstance(spec.metric, MetricSpec):
            fail("metric", f"is a {type(spec.metric).__name__}", "use pytest_awml.metric.MetricSpec(...)")
        if spec.pipeline is None:
            fail("metric", "needs a pipeline: the metric scores the pipeline's outputs", "declare pipeline=PipelineSpec(...)")
        problems = spec.metric.problems()
        if problems:
            fail("metric", "; ".join(problems), "correct the metric settings")
    if (spec.bundle_components or spec.bundle_pipeline is not None) and spec.bundle is None:
        fail("bundle", "is None but bundle_components or bundle_pipeline are declared", "pass the function that writes the bundle")
    if spec.load_data is not None and not callable(spec.load_data):
        fail("load_data", "is not callable", "pass a function (path, options) -> samples")
    seen: set[str] = set()
    for i, comp in enumerate(spec.components + spec.bundle_components):
        where = f"components[{i}]"
        if not isinstance(comp, Component):
            fail(where, f"is a {type(comp).__name__}, not a Component", "use pytest_awml.spec.Component(...)")
        where = f"components[{comp.name!r}]"
        if not isinstance(comp.name, str) or not _NAME.match(comp.name):
            fail(f"components[{i}].name", f"{comp.name!r} is not a valid name", "use lower-case letters, digits, '-', '_'")
        if comp.name in seen:
            fail(f"{where}.name", "is used twice", "give every component its own name")
        seen.add(comp.name)
        check_component(fail, where, comp, spec.components if any(c is comp for c in spec.components) else spec.bundle_components)
    component_names = {c.name for c in spec.components}
    for deployed, mapped in spec.deploy_components.items():
        if mapped not in component_names:
            fail(f"deploy_components[{deployed!r}]", f"names {mapped!r}, which is not a component",
                 f"map it to one of {', '.join(sorted(component_names))}")
    for name, pipeline in spec.pipelines():
        problems = pipeline.problems([c.name for c in spec.components_of(name) if isinstance(c, Component)])
        if problems:
            fail(f"{name.field}.stage_components", "; ".join(problems), "map each stage name to the component it runs")
    if spec.sequence is not None:
        if not isinstance(spec.sequence, SequenceSpec):
            fail("sequence", f"is a {type(spec.sequence).__name__}", "use pytest_awml.sequence.SequenceSpec(...)")
        problems = spec.sequence.problems({c.name: c for c in spec.components})
        if problems:
            fail("sequence", "; ".join(problems), "declare the sequence over the spec's components and their tensors")
    for check in spec.checks:
        try:
            problems = check(spec)
        except Exception as exc:  # noqa: BLE001  a check that cannot even run is a spec problem too
            problems = [f"the check raised {type(exc).__name__}: {exc}"]
        if problems:
            fail(f"checks[{getattr(check, '__name__', check)}]", "; ".join(problems),
                 "make the declared shapes agree with the model's configuration")
    return spec


def fingerprint(spec: ModelSpec, component: Component | None = None) -> str:
    """A stable hash of what a spec declares, plus all the source code its model is built from.

    Artifacts are keyed on it, so editing the model's code or any declared field re-exports.
    Callables count by their qualified name; code by the import closure of the spec's ``build_model``
    and the component's ``extract`` (:func:`~pytest_awml.digests.code_digest`: a model in a sibling
    package counts, not only the spec's folder).
    """
    # facts say where values came from (file paths): the values themselves are in the spec's fields
    payload = {"spec": _plain(spec, skip=("components", "facts")), "code": code_digest([spec.build_model])}
    if component is not None:
        payload["component"] = _plain(component, skip=("int8",))  # the int8 graph keys its settings; the export does not
        payload["component_code"] = code_digest([component.extract])
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def _plain(value: Any, skip: tuple[str, ...] = ()) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in skip}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value
