"""Figures the tests produce, carried on the test reports and gathered into the JSON report.

Tests attach records to ``item.user_properties``: pytest-xdist ships those from the workers to
the controller, so the controller sees every figure however the run is distributed.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_awml.artifacts import write_atomic

RECORD = "awml_record"
KINDS = ("artifacts", "parity", "latency", "drift", "shapes", "golden")


def attach(node, kind: str, record: dict[str, Any]) -> None:
    """Add one record of ``kind`` (one of :data:`KINDS`) to the running test's report."""
    if kind not in KINDS:
        raise ValueError(f"record kind {kind!r} is not one of {KINDS}")
    node.user_properties.append((RECORD, {"kind": kind, **record}))


@dataclass(eq=False)  # registered as a plugin object, which must stay hashable
class Results:
    """The controller's collection of records, in the order the tests finished."""

    artifacts: list[dict] = field(default_factory=list)
    parity: list[dict] = field(default_factory=list)
    latency: list[dict] = field(default_factory=list)
    drift: list[dict] = field(default_factory=list)
    shapes: list[dict] = field(default_factory=list)
    golden: list[dict] = field(default_factory=list)

    def pytest_runtest_logreport(self, report) -> None:
        if report.when != "teardown":  # user_properties ride on every phase; take them once
            return
        for name, value in report.user_properties:
            if name == RECORD and isinstance(value, dict):
                record = dict(value)
                getattr(self, record.pop("kind")).append(record)

    def as_json(self, run: dict) -> dict:
        return {"run": run, **{kind: getattr(self, kind) for kind in KINDS}}

    def write(self, path: Path, run: dict) -> None:
        write_atomic(path, json.dumps(self.as_json(run), indent=2, sort_keys=False, default=str).encode())


def run_info(options, specs, started: float) -> dict:
    from pytest_awml.workspace import package_version

    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 3),
        "device": options.device.torch,
        "precisions": [p.value for p in options.precisions],
        "seed": options.seed,
        "samples": options.samples,
        "checkpoint": str(options.checkpoint) if options.checkpoint else None,
        "weights": "checkpoint" if options.checkpoint else f"seeded (seed {options.seed})",
        "specs": [s.name for s in specs],
        "overrides": {"tolerances": options.tolerances.as_dict()} if options.tolerances else {},
        "golden": str(options.golden) if options.golden else None,
        "versions": {
            "python": platform.python_version(),
            **{name: package_version(name) for name in ("pytest-awml", "torch", "onnx", "onnxruntime", "numpy", "pytest", "pytest-benchmark")},
        },
        "host": platform.node(),
        "machine": platform.machine(),
    }
