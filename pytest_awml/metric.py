"""Task-metric parity: the quality a user sees (mAP, AP, accuracy) computed from each backend's
decoded outputs against ground truth, and judged as a *delta* to PyTorch CPU fp32's.

Tensor and box parity bound how far a backend's numbers move; the metric says whether that movement
costs the user anything. A spec declares a :class:`MetricSpec`; the metric itself is the spec's
knowledge (centre-distance AP for lidar boxes, COCO AP for image boxes, accuracy for classes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_awml.limits import Verdict


@dataclass(frozen=True)
class MetricResult:
    """One metric over a set of samples: its headline ``value``, what it is (``name``), over how many
    ground-truth items (``compared``), and its parts (per class, per threshold) in ``details``."""

    name: str
    value: float
    compared: int
    details: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricSpec:
    """``compute(outputs, samples)``: the pipeline's outputs for each sample (with its ground truth) →
    :class:`MetricResult`. ``max_delta[precision]``: how far the metric may move from the reference's;
    ``min_compared``: fewer ground-truth items than this and the metric says nothing."""

    compute: Callable[[Sequence[Any], Sequence[Any]], MetricResult]
    max_delta: Mapping[str, float]
    min_compared: int = 1

    def problems(self) -> list[str]:
        found = [f"max_delta[{p!r}] must be a finite number >= 0, got {d!r}" for p, d in self.max_delta.items()
                 if not (isinstance(d, (int, float)) and 0 <= d < math.inf)]
        if not self.max_delta:
            found.append("max_delta is empty: give at least {'fp32': ...}")
        if not isinstance(self.min_compared, int) or self.min_compared < 1:
            found.append(f"min_compared must be an int >= 1, got {self.min_compared!r}")
        return found


def metric_verdict(reference: MetricResult, test: MetricResult, max_delta: float) -> Verdict:
    """|test - reference| against ``max_delta``, over the ground truth both were scored on."""
    delta = abs(test.value - reference.value)
    return Verdict(f"{test.name} delta", delta, max_delta,
                   f"{test.name} {test.value:.4f} against the reference's {reference.value:.4f}", compared=test.compared)


def nothing_scored(reference: MetricResult, test: MetricResult, target: str) -> str | None:
    """Why a metric judged nothing, or None. A metric that is 0 on both sides (no prediction of either matched any
    ground truth: seeded weights find nothing) agrees by construction: its delta of 0 proves nothing, as a parity
    check over no values would (:class:`~pytest_awml.errors.NothingCompared`)."""
    if reference.value != 0 or test.value != 0:
        return None
    return (f"{test.name} is 0 for both PyTorch and {target} over {test.compared} ground-truth item(s): no prediction of "
            "either matched any, so their agreement proves nothing. Give the model objects it finds: --awml-checkpoint "
            "with trained weights (or a spec's bundled ones), or --awml-data with labelled scans")
