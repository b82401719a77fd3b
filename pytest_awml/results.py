"""Figures the tests produce, carried on the test reports and gathered into the JSON report.

Tests attach records to ``item.user_properties``: pytest-xdist ships those from the workers to
the controller, so the controller sees every figure however the run is distributed. Every record
starts with :func:`record_ids`; the JSON report's fields are a contract (``docs/design.md``):
add fields freely, never rename or drop one.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pytest_awml.artifacts import write_atomic
from pytest_awml.cases import MODULE_ID
from pytest_awml.errors import ArtifactError
from pytest_awml.limits import Verdict
from pytest_awml.provenance import timestamp, versions

if TYPE_CHECKING:
    from pytest_awml.cases import Case
    from pytest_awml.compare import OutputComparison
    from pytest_awml.deploy_config import DeployConfig
    from pytest_awml.options import AwmlOptions

log = logging.getLogger(__name__)

RECORD = "awml_record"
KINDS = ("artifacts", "parity", "latency", "drift", "shapes", "golden", "data", "metrics", "inferences")
KEY_FIGURES = ("max_abs", "p99_abs", "min_atol_to_pass")
"""A comparison's figures that CI dashboards show (junitxml properties) and the error history keeps."""


def record_ids(case: Case, test_id: str, options: AwmlOptions, component: str | None = None) -> dict[str, Any]:
    """What every record starts with: the test id, the spec, the component (``component`` names a
    part that is not one, ``pipeline`` or ``bundle``) and, for a case on a target, the target, its
    backend, device and precision, and under xdist the worker and the GPU it really ran on."""
    ids: dict[str, Any] = {"test_id": test_id, "spec": case.spec.name}
    name = component or (case.component.name if case.component is not None else None)
    if name is not None:
        ids["component"] = name
    target = case.target
    if target is not None:
        ids.update(target=target.id, backend=target.backend, device=target.device.id, precision=target.precision.value)
        if case.reference is not None:
            ids["reference"] = case.reference.id
        if options.worker:
            ids.update(worker=options.worker, gpu=options.physical(target.device).torch)
    return ids


def deploy_tolerance(deploy: DeployConfig | None, comparisons: Sequence[OutputComparison]) -> dict[str, Any]:
    """A deploy config's scalar tolerance judged on a test's outputs (the largest max abs error), reported beside the
    spec's per-output tolerances, which gate: ``tolerance_gate`` says so in every parity record that carries it."""
    if deploy is None or deploy.tolerance is None:
        return {}
    worst = max((c.max_abs for c in comparisons if c.max_abs == c.max_abs), default=float("nan"))
    return {"deploy_tolerance": deploy.tolerance, "within_deploy_tolerance": bool(worst <= deploy.tolerance),
            "tolerance_gate": "spec"}


def attach(node, kind: str, record: dict[str, Any]) -> None:
    """Add one record of ``kind`` (one of :data:`KINDS`) to the running test's report."""
    if kind not in KINDS:
        raise ValueError(f"record kind {kind!r} is not one of {KINDS}")
    node.user_properties.append((RECORD, {"kind": kind, **record}))


def attach_comparisons(node, kind: str, ids: dict[str, Any], comparisons: Sequence[OutputComparison]) -> None:
    """One record per output, and its key figures as junitxml properties (``awml.<output>.max_abs``…)."""
    for comparison in comparisons:
        attach(node, kind, {**ids, **comparison.as_record()})
        for figure in KEY_FIGURES:
            node.user_properties.append((f"awml.{comparison.output}.{figure}", getattr(comparison, figure)))


def attach_verdicts(node, kind: str, ids: dict[str, Any], verdicts: Sequence[Verdict]) -> None:
    """Pipeline checks as parity records (the figure under ``max_abs``, its limit under ``atol``)
    and junitxml properties (``awml.<output>``)."""
    for v in verdicts:
        attach(node, kind, {**ids, "output": v.name, "max_abs": v.value, "atol": v.limit, "rtol": 0.0,
                            "passed": v.passed, "problem": "" if v.passed else v.detail, "compared": v.compared})
        node.user_properties.append((f"awml.{v.name}", v.value))


@dataclass(eq=False)  # registered as a plugin object, which must stay hashable
class Results:
    """The controller's collection of records, in the order the tests finished."""

    artifacts: list[dict] = field(default_factory=list)
    parity: list[dict] = field(default_factory=list)
    latency: list[dict] = field(default_factory=list)
    drift: list[dict] = field(default_factory=list)
    shapes: list[dict] = field(default_factory=list)
    golden: list[dict] = field(default_factory=list)
    data: list[dict] = field(default_factory=list)  # what the data readers changed in the input (DataWarning notes)
    metrics: list[dict] = field(default_factory=list)
    inferences: list[dict] = field(default_factory=list)
    verified: int = 0  # generated tests that ran (passed or failed)
    skipped: int = 0  # generated tests that were skipped
    written: Path | None = None  # where the JSON report went
    write_problem: str = ""  # why it did not go where it was asked to

    def pytest_runtest_logreport(self, report) -> None:
        if report.nodeid.startswith(f"{MODULE_ID}::"):
            if report.skipped:
                self.skipped += 1
            elif report.when == "call":
                self.verified += 1
        if report.when != "teardown":  # user_properties ride on every phase; take them once
            return
        for name, value in report.user_properties:
            if name == RECORD and isinstance(value, dict):
                record = dict(value)
                self.of_kind(record.pop("kind")).append(record)

    @property
    def verified_nothing(self) -> bool:
        """Generated tests ran and every one of them was skipped."""
        return self.skipped > 0 and self.verified == 0

    def of_kind(self, kind: str) -> list[dict]:
        return {"artifacts": self.artifacts, "parity": self.parity, "latency": self.latency, "drift": self.drift,
                "shapes": self.shapes, "golden": self.golden, "data": self.data, "metrics": self.metrics,
                "inferences": self.inferences}[kind]

    def as_json(self, run: dict) -> dict:
        return {"run": run, **{kind: self.of_kind(kind) for kind in KINDS}}

    def write(self, path: Path, run: dict) -> Path:
        """Write the JSON report to ``path``; where that fails (the folder went read-only or away
        during the run), to the temporary folder, with a warning: a run's figures are never lost."""
        data = json.dumps(self.as_json(run), indent=2, sort_keys=False, default=str).encode()
        try:
            write_atomic(path, data, what="the JSON report")  # a failed write leaves the previous report as it was
            self.written = path
        except (OSError, ArtifactError) as exc:
            fallback = Path(tempfile.gettempdir()) / f"awml-report-{os.getpid()}.json"
            try:
                write_atomic(fallback, data, what="the JSON report")
                self.written, where = fallback, f"it is at {fallback}"
            except ArtifactError as again:  # the temporary folder full too: say so, end the run normally
                where = f"nor to {fallback} ({again})"
            self.write_problem = f"the JSON report could not be written to {path} ({getattr(exc, 'strerror', None) or exc}); {where}"
            log.warning("%s", self.write_problem)
        return self.written


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
