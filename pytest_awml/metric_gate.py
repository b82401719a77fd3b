"""The gate a task-metric test ends in (``test_metric`` of a pipeline, ``test_sequence_metric`` of a stateful one):
the delta to the reference's metric judged, recorded (``metrics``) whether it passed or not, a metric that scored
nothing on either side skipped with the reason, too little ground truth a :class:`NothingCompared`, a delta past the
limit a :class:`ToleranceExceeded`."""

from __future__ import annotations

import pytest

from pytest_awml import results
from pytest_awml.compare import differs
from pytest_awml.device import REFERENCE, Target
from pytest_awml.errors import ToleranceExceeded
from pytest_awml.limits import require_compared
from pytest_awml.metric import MetricResult, MetricSpec, metric_verdict, nothing_scored
from pytest_awml.records import MetricRecord, RecordIds


def judge_metric(node: pytest.Item, ids: RecordIds, metric: MetricSpec, reference: MetricResult, score: MetricResult,
                 target: Target, *, subject: str, thin: str, over: str, remedy: str) -> None:
    """``score`` (the target's) against ``reference`` within ``metric.max_delta`` at the target's precision. The
    messages name the score as ``subject`` when it fails ('the <target> pipeline's mAP') and as ``thin`` when it is
    over too little ground truth, say what it was over (``over``: '3 sample(s)') and what to give it (``remedy``)."""
    limit = metric.max_delta[target.precision.value]
    verdict = metric_verdict(reference, score, limit)
    vacuous = nothing_scored(reference, score, target.id)
    results.attach(node, MetricRecord(ids=ids, metric=score.name, value=score.value, reference_value=reference.value,
                                      delta=verdict.value, max_delta=limit, compared=score.compared,
                                      details=dict(score.details), reference_details=dict(reference.details),
                                      passed=verdict.passed, not_judged=vacuous))
    node.user_properties.append((f"awml.{score.name}", score.value))
    if vacuous is not None:  # the test judged nothing: said as its outcome (skipped with the reason), never a silent pass
        pytest.skip(f"not judged: {vacuous}")
    require_compared([verdict], metric.min_compared, thin, remedy)
    if not verdict.passed:
        raise ToleranceExceeded(differs(subject, REFERENCE.id, f"over {over}", [verdict.describe()]))
