"""Is a test's latency regressed against a baseline run, beyond its threshold and beyond the noise?

A median that moved past the threshold is not enough: two runs of the same code, 3 rounds each on a loaded
machine, differ by 18 % (issue 30). A test is judged REGRESSED only when its current rounds are slower than
the baseline's rounds *scaled by the threshold* with :data:`CONFIDENCE`, by a one-sided Mann-Whitney U
rank test (``scipy.stats.mannwhitneyu``): H0 "the current rounds are no slower than baseline × (1 +
threshold)", rejected at ``p < ALPHA``, and the median ratio past the threshold too.

Why a rank test and not a bootstrap interval of the median ratio: latency tests run few rounds (3 to 20),
where a bootstrap's percentile interval is too narrow (it resamples the same handful of values) and its
coverage is unknown, while the rank test's p-value is exact for small samples and assumes nothing about the
distribution (latency rounds are skewed: a few slow outliers), only that a slowdown shifts the rounds'
scale. Its exactness also says how many rounds can judge at all: with ``n`` rounds on each side the
smallest p-value is ``1 / C(2n, n)`` (every current round slower than every baseline round), so fewer than
:func:`min_rounds` rounds can never reach the confidence, and such a test is "not judged", saying so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pytest_awml.limits import Verdict

ALPHA = 0.05
"""The rank test's level: a REGRESSED verdict needs ``p < ALPHA`` (one-sided)."""
CONFIDENCE = 1.0 - ALPHA
"""How sure a REGRESSED verdict is that the test slowed past its threshold."""


def min_rounds(alpha: float = ALPHA) -> int:
    """The fewest rounds per side whose best possible one-sided p-value is below ``alpha``."""
    n = 1
    while 1.0 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n


def spread(ms: Sequence[float]) -> float | None:
    """The rounds' interquartile range over their median (None for fewer than two rounds)."""
    if len(ms) < 2:
        return None
    q1, median, q3 = np.percentile(np.asarray(ms, dtype=np.float64), (25, 50, 75))
    return float((q3 - q1) / median) if median > 0 else None


@dataclass(frozen=True)
class Regression:
    """One test's judgement against its baseline. ``judged`` False: too few rounds (or none kept) to judge,
    ``reason`` says which; ``p_value`` is the rank test's, None when not judged."""

    name: str
    median_ms: float
    baseline_median_ms: float
    threshold: float
    rounds: int
    baseline_rounds: int
    p_value: float | None
    reason: str | None = None

    @property
    def change(self) -> float:
        return self.median_ms / self.baseline_median_ms - 1.0 if self.baseline_median_ms > 0 else math.inf

    @property
    def judged(self) -> bool:
        return self.p_value is not None

    @property
    def regressed(self) -> bool:
        return self.p_value is not None and self.change > self.threshold and self.p_value < ALPHA

    @property
    def verdict(self) -> str:
        if not self.judged:
            return f"not judged: {self.reason}"
        return "REGRESSED" if self.regressed else "ok"

    @property
    def detail(self) -> str:
        head = (f"median {self.median_ms:.3f} ms ({self.rounds} rounds) vs baseline {self.baseline_median_ms:.3f} ms "
                f"({self.baseline_rounds} rounds): {self.change:+.1%} (threshold +{self.threshold:.0%})")
        if not self.judged:
            return f"not judged: {self.reason}; {head}"
        return (f"{head}; slower than baseline x {1 + self.threshold:g} with p = {self.p_value:.3g} "
                f"(Mann-Whitney U, one-sided; REGRESSED needs p < {ALPHA:g} and the median past the threshold)")

    @property
    def summary(self) -> str:
        """The verdict, then why: the report's ``regression``."""
        return self.detail if not self.judged else f"{self.verdict}: {self.detail}"

    def as_verdict(self) -> Verdict:
        """A :class:`Verdict` that fails only when regressed (not judged passes, and its detail says why)."""
        return Verdict(f"regression {self.name}", 1.0 if self.regressed else 0.0, 0.5, self.detail)


def judge(name: str, current_ms: Sequence[float] | None, baseline_ms: Sequence[float] | None, threshold: float,
          current_median_ms: float, baseline_median_ms: float) -> Regression:
    """Judge ``current_ms`` against ``baseline_ms`` (each round's ms; None when a file kept no rounds)."""
    rounds, base_rounds = len(current_ms or ()), len(baseline_ms or ())

    def made(p_value: float | None, reason: str | None = None) -> Regression:
        return Regression(name, current_median_ms, baseline_median_ms, threshold, rounds, base_rounds, p_value, reason)

    if current_ms is None or baseline_ms is None:
        side = "the baseline" if baseline_ms is None else "the current run"
        return made(None, f"{side} kept no per-round times (rerun it with this plugin, or pytest-benchmark's --benchmark-save-data)")
    need = min_rounds()
    if min(rounds, base_rounds) < need:
        return made(None, f"{min(rounds, base_rounds)} rounds, need {need} on each side to reach {CONFIDENCE:.0%} confidence "
                          "(raise --awml-rounds or the spec's LatencySettings.rounds)")
    from scipy.stats import mannwhitneyu  # imported on use: a run without a baseline never loads scipy

    scaled = np.asarray(baseline_ms, dtype=np.float64) * (1.0 + threshold)
    return made(float(mannwhitneyu(np.asarray(current_ms, dtype=np.float64), scaled, alternative="greater").pvalue))
