"""The gate a latency test ends in: its rounds against ``--awml-latency-baseline`` (:mod:`pytest_awml.regression`),
the record completed with its rounds and that verdict, and the raise when a budget is broken."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pytest_awml import regression
from pytest_awml.budgets import DEFAULT_REGRESSION, budget_failure
from pytest_awml.errors import LatencyBudgetExceeded
from pytest_awml.latency_sources import baseline_of
from pytest_awml.limits import LatencySettings
from pytest_awml.records import LatencyRecord
from pytest_awml.timing import rounded_ms


def judge(request, workspace, settings: LatencySettings, median_ms: float, rounds: Sequence[float]) -> regression.Regression | None:
    """This test against ``--awml-latency-baseline`` (when the baseline has it; at the spec's threshold, else the
    default one), judged on both sides' rounds (:mod:`pytest_awml.regression`); None without a baseline."""
    baseline = baseline_of(workspace, request.node.name)
    if baseline is None:
        return None
    threshold = DEFAULT_REGRESSION if settings.regression is None else settings.regression
    return regression.judge(request.node.name, rounds, baseline.rounds_ms, threshold, median_ms, baseline.median_ms)


def with_rounds(record: LatencyRecord, rounds: Sequence[float], judged: regression.Regression | None) -> LatencyRecord:
    """``record`` with its rounds and its regression verdict (the report's ``rounds_ms``, ``regression``)."""
    return replace(record, rounds_ms=rounded_ms(rounds), regression=None if judged is None else judged.summary)


def gate(verdicts: list, judged: regression.Regression | None) -> None:
    """Raise if any budget is broken; a regression too thin to judge passes (its record and the summary say so)."""
    message = budget_failure([*verdicts, *([judged.as_verdict()] if judged is not None else [])])
    if message:
        raise LatencyBudgetExceeded(message)
