"""What the tests record and the reports read: one frozen dataclass per record, producers and readers alike.

A test builds a record (:mod:`pytest_awml.suite`), :func:`pytest_awml.results.attach` ships its JSON on the
test's report (pytest-xdist carries plain data only, from the workers to the controller), and the controller
reads it back into the same type (:class:`pytest_awml.results.Results`) for the terminal summary and the JSON
report. The JSON keys and their order are the report's contract (``docs/design.md``): add fields, never rename
or drop one. How a record becomes JSON and is read back is :mod:`pytest_awml.record_json`'s (``optional`` and
``flat`` fields).
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pytest_awml.artifacts import Artifact, Kind
from pytest_awml.compare import OutputComparison
from pytest_awml.divergence import Divergence
from pytest_awml.limits import Verdict
from pytest_awml.produced import Inference
from pytest_awml.record_json import flat, optional, to_json
from pytest_awml.timing import LatencyStats


class Record:
    """A record of the JSON report's list ``KIND``; ``TYPE`` tells two record types of one kind apart on the wire."""

    KIND: ClassVar[str]
    TYPE: ClassVar[str]

    def as_json(self) -> dict[str, Any]:
        return to_json(self)


@dataclass(frozen=True, kw_only=True)
class RecordIds:
    """What every record starts with: the test id, the spec, the component (``pipeline``, ``bundle``… for a part
    that is not one) and, for a case on a target, the target, its backend, device and precision, and under xdist
    the worker and the GPU it really ran on."""

    test_id: str
    spec: str
    component: str | None = optional()
    target: str | None = optional()
    backend: str | None = optional()
    device: str | None = optional()
    precision: str | None = optional()
    reference: str | None = optional()  # a deploy config scenario's reference target, when it is not PyTorch CPU fp32
    worker: str | None = optional()
    gpu: str | None = optional()


class ArtifactRole(enum.Enum):
    """Why a file was kept: the summary shows each role its own way (an inference per component and target)."""

    EXPORT = "export"  # a graph or engine a builder made (an intermediate such as an RTX fp16 graph too)
    INFERENCE = "inference"  # one input's stored outputs, of the reference or of a backend
    WEIGHTS = "weights"  # a spec's seeded weights
    BUNDLE = "bundle"  # a file of the deployable bundle (--awml-autoware)


_ROLE_OF_KIND = {Kind.EXPORT: ArtifactRole.EXPORT, Kind.OUTPUTS: ArtifactRole.INFERENCE, Kind.WEIGHTS: ArtifactRole.WEIGHTS}


@dataclass(frozen=True, kw_only=True)
class ArtifactRecord(Record):
    """A file the run built or reused. ``built_by``: the test that built it when that is not its own test_export;
    ``weights_sha256``: the weights it was exported from; ``tested_as``: the tested graph a bundle file is."""

    KIND: ClassVar[str] = "artifacts"
    TYPE: ClassVar[str] = "artifact"

    test_id: str
    built_by: str | None = optional()
    spec: str
    component: str
    format: str
    path: str
    sha256: str
    key: str | None = optional()  # the content key it is stored under (a bundle file has none)
    reused: bool
    build_seconds: float
    size_bytes: int | None = None
    rebuilt_reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)  # what the builder reported (free-form, per builder)
    weights_sha256: str | None = optional()
    tested_as: str | None = None
    role: ArtifactRole

    @classmethod
    def of(cls, artifact: Artifact, *, test_id: str, role: ArtifactRole | None = None, built_by: str | None = None,
           weights_sha256: str | None = None) -> ArtifactRecord:
        """The record of a file in the artifact store; its role is the stored file's kind unless given (a bundle's)."""
        role = _ROLE_OF_KIND[artifact.kind] if role is None else role
        return cls(test_id=test_id, built_by=built_by, spec=artifact.spec, component=artifact.component,
                   format=artifact.format, path=str(artifact.path), sha256=artifact.sha256, key=artifact.key,
                   reused=artifact.reused, build_seconds=round(artifact.build_seconds, 3),
                   size_bytes=artifact.path.stat().st_size if artifact.path.exists() else None,
                   rebuilt_reason=artifact.rebuilt_reason, details=dict(artifact.details), weights_sha256=weights_sha256,
                   role=role)


@dataclass(frozen=True, kw_only=True)
class ParityRecord(Record):
    """One output's comparison with its reference (the parity and shape tests')."""

    KIND: ClassVar[str] = "parity"
    TYPE: ClassVar[str] = "comparison"

    ids: RecordIds = flat()
    comparison: OutputComparison = flat()
    # a deploy config's scalar tolerance, judged beside the spec's per-output ones (which gate: tolerance_gate "spec")
    deploy_tolerance: float | None = optional()
    within_deploy_tolerance: bool | None = optional()
    tolerance_gate: str | None = optional()
    # a failed output's first diverging module (pytest_awml.localize): module, onnx_nodes, max_abs, input_max_abs...
    first_divergence: Divergence | None = optional()


@dataclass(frozen=True, kw_only=True)
class CheckRecord(Record):
    """One check of a pipeline's outputs (a :class:`~pytest_awml.limits.Verdict`), as a parity record: the
    figure under ``max_abs``, its limit under ``atol``."""

    KIND: ClassVar[str] = "parity"
    TYPE: ClassVar[str] = "check"

    ids: RecordIds = flat()
    output: str
    max_abs: float | None
    atol: float | None
    rtol: float
    passed: bool
    problem: str
    compared: int | None

    @classmethod
    def of(cls, ids: RecordIds, verdict: Verdict) -> CheckRecord:
        return cls(ids=ids, output=verdict.name, max_abs=verdict.value, atol=verdict.limit, rtol=0.0, passed=verdict.passed,
                   problem="" if verdict.passed else verdict.detail, compared=verdict.compared)


@dataclass(frozen=True, kw_only=True)
class DriftRecord(Record):
    """One output of today's model against its golden outputs, and what changed since they were made."""

    KIND: ClassVar[str] = "drift"
    TYPE: ClassVar[str] = "drift"

    ids: RecordIds = flat()
    golden: str
    version_changes: Mapping[str, Sequence[str]]  # library: [then, now]
    weights_changed: bool
    comparison: OutputComparison = flat()
    first_divergence: Divergence | None = optional()  # where today's model starts to differ (pytest_awml.golden_layers)


@dataclass(frozen=True, kw_only=True)
class MeasuredIn:
    """Where a component's latency was read: a stage of a pipeline's rounds, timed by another test."""

    test: str
    pipeline: str
    stage: str


@dataclass(frozen=True, kw_only=True)
class LatencyRecord(Record):
    """A latency test's statistics (ms). A component's carries its clock and spans (compute, copies…) and, when
    its rounds are a pipeline stage's, ``measured_in``; a pipeline's carries the stage breakdown and its overhead
    over the networks alone (``components_p50_ms``, ``ratio_to_components``). ``warmup_total_ms``: what the
    rounds before timing took, for the rounds this test ran itself. ``rounds_ms``: each timed round, what a
    regression is judged on; ``regression``: the verdict against ``--awml-latency-baseline`` (REGRESSED, ok or
    not judged, with both sides' medians, rounds and the rank test's p-value)."""

    KIND: ClassVar[str] = "latency"
    TYPE: ClassVar[str] = "latency"

    ids: RecordIds = flat()
    stats: LatencyStats = flat()
    components_p50_ms: float | None = optional()
    ratio_to_components: float | None = optional()
    clock: str | None = optional()
    spans: Mapping[str, LatencyStats] | None = optional()
    stages: Mapping[str, LatencyStats] | None = optional()
    rounds_cut: bool
    warmup_rounds: int
    warmup_total_ms: float | None = optional()
    measured_in: MeasuredIn | None = optional()
    rounds_ms: tuple[float, ...] | None = optional()
    regression: str | None = optional()

    def benchmark_info(self) -> dict[str, Any]:
        """How and where the rounds were timed, for pytest-benchmark's ``extra_info``: these fields as the record's
        JSON writes them (left out while None), without writing the whole record."""
        how = {"clock": self.clock, "spans": self.spans, "stages": self.stages, "rounds_cut": self.rounds_cut,
               "measured_in": self.measured_in}
        return {name: to_json(value) for name, value in how.items() if value is not None}


@dataclass(frozen=True, kw_only=True)
class ShapeTry:
    """One size shape fuzzing ran: its verdict, the output nearest to failing, or the runtime's error."""

    sizes: Mapping[str, int]
    passed: bool
    error: str | None = optional()
    worst_output: str | None = optional()
    min_atol_to_pass: float | None = optional()
    first_divergence: Divergence | None = optional()  # where a failed size's outputs start to differ (pytest_awml.localize)


@dataclass(frozen=True, kw_only=True)
class ShapesRecord(Record):
    """What shape fuzzing tried (hypothesis ``profile``) and what the runners refused, by their messages."""

    KIND: ClassVar[str] = "shapes"
    TYPE: ClassVar[str] = "shapes"

    ids: RecordIds = flat()
    profile: str
    examples: int
    tried: tuple[ShapeTry, ...]
    refused: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class GoldenRecord(Record):
    """Golden outputs written (``action``: created or replaced), with how far the old ones were from the new."""

    KIND: ClassVar[str] = "golden"
    TYPE: ClassVar[str] = "golden"

    ids: RecordIds = flat()
    path: str
    action: str
    old_vs_new_max_abs: Mapping[str, float | None]


@dataclass(frozen=True, kw_only=True)
class DataNote(Record):
    """What a data reader changed in the input (a scan cut to the model's limit…), from --awml-data ``data``."""

    KIND: ClassVar[str] = "data"
    TYPE: ClassVar[str] = "data"

    test_id: str
    spec: str
    data: str
    note: str


@dataclass(frozen=True, kw_only=True)
class MetricRecord(Record):
    """The task metric of a target's decoded outputs and of the reference's, and the verdict on their delta
    (``not_judged``: why there is none, as a metric of 0 on both sides)."""

    KIND: ClassVar[str] = "metrics"
    TYPE: ClassVar[str] = "metric"

    ids: RecordIds = flat()
    metric: str
    value: float
    reference_value: float
    delta: float
    max_delta: float
    compared: int
    details: Mapping[str, float]
    reference_details: Mapping[str, float]
    passed: bool
    not_judged: str | None = optional()  # why the metric judged nothing (0 on both sides); the test is skipped with it


@dataclass(frozen=True, kw_only=True)
class InferenceRecord(Record):
    """One inference a test computed outside latency rounds (the run's ledger), timed."""

    KIND: ClassVar[str] = "inferences"
    TYPE: ClassVar[str] = "inference"

    test_id: str
    spec: str
    component: str
    target: str
    input: str  # the input's content digest
    seconds: float
    checked: str | None = optional()  # a recomputation of a stored input: "same" or "differed"
    store: str | None = optional()  # the stored file it was checked against

    @classmethod
    def of(cls, inference: Inference, *, test_id: str) -> InferenceRecord:
        return cls(test_id=test_id, spec=inference.spec, component=inference.component, target=inference.target,
                   input=inference.input, seconds=inference.seconds, checked=inference.checked or None,
                   store=inference.store or None)


@dataclass(frozen=True, kw_only=True)
class SkippedTest(Record):
    """A generated test that was skipped, and pytest's reason (the controller records it from the report)."""

    KIND: ClassVar[str] = "skipped"
    TYPE: ClassVar[str] = "skipped"

    test_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class LayerRow:
    """One layer kept float, the rest int8: the metric delta to the reference's, how much of the all-int8 delta
    (``recovered``) and of the summed relative head error (``heads_recovered``) it wins back, and each output's largest
    error relative to that output's largest reference value."""

    node: str
    op: str
    metric_delta: float | None = optional()
    recovered: float | None = optional()
    heads_recovered: float | None = optional()
    heads: Mapping[str, float]


@dataclass(frozen=True, kw_only=True)
class Int8SensitivityRecord(Record):
    """``--awml-int8-sensitivity``: a component's layers ranked by what quantizing each costs (costliest first), the
    all-int8 figures, and ``keep_float``, the smallest set kept float that brings the metric delta within ``max_delta``
    (empty: all-int8 is within it; absent: no set is, or the spec has no metric)."""

    KIND: ClassVar[str] = "int8_sensitivity"
    TYPE: ClassVar[str] = "int8_sensitivity"

    ids: RecordIds = flat()
    calibration_method: str
    calibration_samples: int
    ranked_by: str  # "metric" (all int8 is over the limit) or "heads"
    all_int8: LayerRow
    layers: tuple[LayerRow, ...]
    max_delta: float | None = optional()
    keep_float: tuple[str, ...] | None = optional()
    keep_float_delta: float | None = optional()


@dataclass(frozen=True, kw_only=True)
class SequenceRecord(Record):
    """One output of a stateful pipeline at one frame (:mod:`pytest_awml.sequence`): ``gate`` ``frame`` (the target fed
    the reference's state: the frame's own error) or ``sequence`` (the target on its own state: the error after
    ``frame`` + 1 frames); ``component`` is the component whose output it is."""

    KIND: ClassVar[str] = "sequence"
    TYPE: ClassVar[str] = "sequence"

    ids: RecordIds = flat()
    gate: str
    frame: int
    frames: int
    comparison: OutputComparison = flat()


RECORD_TYPES: tuple[type[Record], ...] = (ArtifactRecord, ParityRecord, CheckRecord, LatencyRecord, DriftRecord,
                                         ShapesRecord, GoldenRecord, DataNote, MetricRecord, InferenceRecord, SkippedTest,
                                         Int8SensitivityRecord, SequenceRecord)
KINDS: tuple[str, ...] = tuple(dict.fromkeys(t.KIND for t in RECORD_TYPES))
"""The JSON report's lists, in its order (``run`` first)."""
TYPE_KEY = "type"
"""The key that tags a record's JSON with its type on the wire (a test's user_properties), never in the report."""
BY_TYPE: Mapping[str, type[Record]] = types.MappingProxyType({t.TYPE: t for t in RECORD_TYPES})
