"""pytest-awml's exception hierarchy, in one place.

``AwmlError`` and the errors exporters raise are defined in :mod:`exporters.errors` (the bottom
package, which must not import the plugin) and re-exported here, so that users catch everything
from ``pytest_awml.errors`` (or ``pytest_awml``). A deliberate check raises one of these; its
message says what went wrong and what to do, which is why the plugin shows it without a traceback.
"""

from __future__ import annotations

from exporters.errors import ArtifactError, AwmlError, BackendUnavailable, ExportError

__all__ = [
    "ArtifactError",
    "AwmlError",
    "BackendError",
    "BackendUnavailable",
    "CheckpointError",
    "DataError",
    "ExportError",
    "LatencyBudgetExceeded",
    "NothingCompared",
    "SpecError",
    "StoreMismatch",
    "ToleranceExceeded",
]


class SpecError(AwmlError):
    """A model spec is malformed or cannot be found; names the spec, the field and the fix."""

    def __init__(self, spec: str, field: str, problem: str, fix: str = "") -> None:
        self.spec, self.field, self.problem, self.fix = spec, field, problem, fix
        message = f"spec {spec!r}, field {field}: {problem}"
        super().__init__(f"{message}. Fix: {fix}" if fix else message)


class DataError(AwmlError):
    """Input data (a point cloud file, a sample, a feed) does not fit what the spec declares."""


class CheckpointError(AwmlError):
    """A checkpoint cannot be read, or does not fit the spec's model."""


class BackendError(AwmlError):
    """A runtime misbehaved on a valid input: a crash, a refused call, outputs of the wrong count
    or shape. The input was checked before, so the finding is about the runtime or the artifact."""


class StoreMismatch(ArtifactError):
    """Outputs replayed from the store differ from running the same inference again: the store entry is not
    what this code computes (restored from elsewhere, edited). Names the entry and how to clear it."""


class ToleranceExceeded(AwmlError):
    """A backend's outputs differ from the reference beyond the spec's tolerance."""


class NothingCompared(ToleranceExceeded):
    """A comparison or metric had fewer items (boxes, detections, classes) than the spec's minimum:
    it would pass having judged nothing, so it fails and says how to give it something to judge."""


class LatencyBudgetExceeded(AwmlError):
    """A latency budget (same-run ratio, stage share, or regression against a baseline) is broken."""
