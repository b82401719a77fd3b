"""Latency budgets that hold on noisy machines: same-run ratios, stage shares, and per-test
regression thresholds against a saved pytest-benchmark run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from pytest_awml.errors import AwmlError


@dataclass(frozen=True)
class Verdict:
    budget: str
    value: float
    limit: float
    message: str

    @property
    def passed(self) -> bool:
        return self.value <= self.limit


def ratio_verdict(target: str, target_p50: float, baseline: str, baseline_p50: float, max_ratio: float) -> Verdict:
    ratio = target_p50 / baseline_p50 if baseline_p50 > 0 else float("inf")
    return Verdict(f"ratio {target}/{baseline}", ratio, max_ratio,
                   f"p50 {target} {target_p50:.3f} ms is {ratio:.2f}x {baseline}'s {baseline_p50:.3f} ms (budget {max_ratio:g}x)")


def share_verdict(stage: str, stage_p50: float, total_p50: float, max_share: float) -> Verdict:
    share = stage_p50 / total_p50 if total_p50 > 0 else float("inf")
    return Verdict(f"share {stage}", share, max_share,
                   f"stage {stage} p50 {stage_p50:.3f} ms is {share:.1%} of the pipeline's {total_p50:.3f} ms (budget {max_share:.1%})")


def regression_verdict(name: str, median_ms: float, baseline_median_ms: float, threshold: float) -> Verdict:
    change = median_ms / baseline_median_ms - 1.0 if baseline_median_ms > 0 else float("inf")
    return Verdict(f"regression {name}", change, threshold,
                   f"median {median_ms:.3f} ms vs baseline {baseline_median_ms:.3f} ms: {change:+.1%} (threshold +{threshold:.0%})")


def load_benchmarks(path: Path) -> dict:
    """A pytest-benchmark JSON file (``--benchmark-json`` or an autosave)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise AwmlError(f"{path} is not a readable pytest-benchmark JSON file: {exc}") from None
    if "benchmarks" not in data:
        raise AwmlError(f"{path} has no 'benchmarks' key: pass a --benchmark-json or .benchmarks/ autosave file")
    return data


def baseline_medians(data: Mapping) -> dict[str, float]:
    """Test name (``test_latency[...]``) → median in ms."""
    return {b["name"]: b["stats"]["median"] * 1e3 for b in data["benchmarks"]}
