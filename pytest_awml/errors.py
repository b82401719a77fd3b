"""pytest-awml's exception hierarchy, in one place.

``AwmlError`` and the errors exporters raise are defined in :mod:`exporters.errors` (the bottom
package) and re-exported here, so users catch everything from ``pytest_awml.errors``.
"""

from __future__ import annotations

from exporters.errors import ArtifactError, AwmlError, BackendUnavailable, ExportError

__all__ = [
    "AwmlError",
    "ArtifactError",
    "BackendUnavailable",
    "BackendError",
    "DataError",
    "LatencyBudgetExceeded",
    "ExportError",
    "SpecError",
    "ToleranceExceeded",
]


class SpecError(AwmlError):
    """A model spec is malformed or cannot be found; names the spec, the field and the fix."""

    def __init__(self, spec: str, field: str, problem: str, fix: str = "") -> None:
        self.spec, self.field, self.problem, self.fix = spec, field, problem, fix
        message = f"spec {spec!r}, field {field}: {problem}"
        super().__init__(f"{message}. Fix: {fix}" if fix else message)


class DataError(AwmlError):
    """Input data (a point cloud file, a sample) does not fit what the spec declares."""


class ToleranceExceeded(AwmlError):
    """A backend's outputs differ from the reference beyond the spec's tolerance."""


class LatencyBudgetExceeded(AwmlError):
    """A latency budget (same-run ratio, stage share, or regression against a baseline) is broken."""


class BackendError(AwmlError):
    """A runtime failed while running a valid input (a crash inside ONNX Runtime, TensorRT…)."""
