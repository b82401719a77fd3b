"""Figures the tests produce, carried on the test reports and gathered into the JSON report.

Tests attach records (:mod:`pytest_awml.records`) to ``item.user_properties``: pytest-xdist ships
those from the workers to the controller, so the controller sees every figure however the run is
distributed. Every record starts with :func:`record_ids`; the JSON report's fields are a contract
(``docs/design.md``): add fields freely, never rename or drop one. :mod:`pytest_awml.run_report`
writes the collection to the JSON file.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_awml.cases import MARKER, MODULE_ID
from pytest_awml.limits import Verdict
from pytest_awml.provenance import timestamp, versions
from pytest_awml.record_json import from_json
from pytest_awml.records import BY_TYPE, KINDS, TYPE_KEY, CheckRecord, DriftRecord, ParityRecord, Record, RecordIds, SkippedTest

if TYPE_CHECKING:
    from pytest_awml.cases import Case
    from pytest_awml.compare import OutputComparison
    from pytest_awml.deploy_config import DeployConfig
    from pytest_awml.options import AwmlOptions

RECORD = "awml_record"
KEY_FIGURES = ("max_abs", "p99_abs", "min_atol_to_pass")
"""A comparison's figures that CI dashboards show (junitxml properties) and the error history keeps."""
R = TypeVar("R", bound=Record)


def record_ids(case: Case, test_id: str, options: AwmlOptions, component: str | None = None) -> RecordIds:
    """The ids a case's records start with (``component`` names a part that is not one: ``pipeline``, ``bundle``)."""
    name = component or (case.component.name if case.component is not None else None)
    target = case.target
    if target is None:
        return RecordIds(test_id=test_id, spec=case.spec.name, component=name)
    worker = options.worker or None
    return RecordIds(test_id=test_id, spec=case.spec.name, component=name, target=target.id, backend=target.backend,
                     reference=case.reference.id if case.reference is not None else None,
                     device=target.device.id, precision=target.precision.value, worker=worker,
                     gpu=options.physical(target.device).torch if worker else None)


def attach(node, record: Record) -> None:
    """Add ``record`` to the running test's report, as JSON tagged with its type (xdist ships plain data)."""
    node.user_properties.append((RECORD, {TYPE_KEY: record.TYPE, **record.as_json()}))


def deploy_tolerance(deploy: DeployConfig | None, comparisons: Sequence[OutputComparison]) -> dict[str, Any]:
    """A deploy config's scalar tolerance judged on a test's outputs (the largest max abs error), as the
    :class:`~pytest_awml.records.ParityRecord` fields that report it beside the spec's per-output tolerances, which
    gate: ``tolerance_gate`` says so in every parity record that carries it."""
    if deploy is None or deploy.tolerance is None:
        return {}
    worst = max((c.max_abs for c in comparisons if c.max_abs == c.max_abs), default=float("nan"))
    return {"deploy_tolerance": deploy.tolerance, "within_deploy_tolerance": bool(worst <= deploy.tolerance),
            "tolerance_gate": "spec"}


def attach_comparisons(node, records: Sequence[ParityRecord | DriftRecord]) -> None:
    """One record per output, and its key figures as junitxml properties (``awml.<output>.max_abs``…)."""
    for record in records:
        attach(node, record)
        comparison = record.comparison
        for figure in KEY_FIGURES:
            node.user_properties.append((f"awml.{comparison.output}.{figure}", getattr(comparison, figure)))


def attach_verdicts(node, ids: RecordIds, verdicts: Sequence[Verdict]) -> None:
    """Pipeline checks as parity records (:class:`~pytest_awml.records.CheckRecord`) and junitxml properties
    (``awml.<output>``)."""
    for v in verdicts:
        attach(node, CheckRecord.of(ids, v))
        node.user_properties.append((f"awml.{v.name}", v.value))


def _skip_reason(report) -> str:
    """pytest's reason for a skip (its ``longrepr`` is (file, line, "Skipped: reason") for a skip)."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


@dataclass(eq=False)  # registered as a plugin object, which must stay hashable
class Results:
    """The controller's collection of records, per kind (:data:`~pytest_awml.records.KINDS`), in the order the
    tests finished."""

    records: dict[str, list[Record]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    verified: int = 0  # generated tests that ran (passed or failed)
    skipped_count: int = 0  # generated tests that were skipped
    deselected: int = 0  # generated tests -k, -m or a plugin deselected

    def add(self, record: Record) -> None:
        self.records[record.KIND].append(record)

    def of(self, cls: type[R]) -> list[R]:
        """The records of type ``cls`` (a kind may hold two: parity's comparisons and pipeline checks)."""
        return [r for r in self.records[cls.KIND] if isinstance(r, cls)]

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        self.deselected += sum(1 for item in items if item.get_closest_marker(MARKER) is not None)

    def selection(self, config: pytest.Config) -> dict:
        """The report's ``run.selection``: what chose this run's tests, and how many it reported."""
        return {"keyword": config.option.keyword, "markexpr": config.option.markexpr, "deselected": self.deselected,
                "ran": self.verified, "skipped": self.skipped_count}

    def pytest_runtest_logreport(self, report) -> None:
        if report.nodeid.startswith(f"{MODULE_ID}::"):
            if report.skipped:
                self.skipped_count += 1
                self.add(SkippedTest(test_id=report.nodeid, reason=_skip_reason(report)))
            elif report.when == "call":
                self.verified += 1
        if report.when != "teardown":  # user_properties ride on every phase; take them once
            return
        for name, value in report.user_properties:
            if name == RECORD and isinstance(value, dict):
                data = dict(value)
                self.add(from_json(BY_TYPE[data.pop(TYPE_KEY)], data))

    @property
    def verified_nothing(self) -> bool:
        """Generated tests ran and every one of them was skipped."""
        return self.skipped_count > 0 and self.verified == 0

    def as_json(self, run: dict) -> dict:
        return {"run": run, **{kind: [r.as_json() for r in records] for kind, records in self.records.items()}}


def weights_of(options: AwmlOptions, spec) -> str:
    """What a spec's model holds in this run, as the header says it."""
    if options.checkpoint:
        return f"checkpoint {options.checkpoint}"
    if spec.default_weights:
        return f"no checkpoint given: {spec.default_weights}"
    return f"no checkpoint given: seeded weights (seed {options.seed})"


def run_info(options: AwmlOptions, specs, started: float) -> dict:
    """The report's ``run``: when, where, with what (versions, device, seed) and which overrides."""
    return {
        "started": timestamp(started),
        "duration_s": round(time.time() - started, 3),
        "device": options.device.torch,
        "precisions": [p.value for p in options.precisions],
        "seed": options.seed,
        "samples": options.samples,
        "checkpoint": str(options.checkpoint) if options.checkpoint else None,
        "weights": "checkpoint" if options.checkpoint else ("bundled" if specs and all(s.default_weights for s in specs)
                                                             else f"seeded (seed {options.seed})"),
        "weights_by_spec": {s.name: weights_of(options, s) for s in specs},
        "specs": [s.name for s in specs],
        "overrides": {"tolerances": options.tolerances.as_dict()} if options.tolerances else {},
        "facts": {s.name: [fact.as_record() for fact in s.facts] for s in specs},
        "deploy_config": options.deploy.as_record() if options.deploy is not None else None,
        "golden": str(options.golden) if options.golden else None,
        "versions": {"python": platform.python_version(), **versions()},
        "host": platform.node(),
        "machine": platform.machine(),
    }
