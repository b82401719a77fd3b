"""Latency budgets that hold on noisy machines: same-run ratios, stage shares, and per-test
regression thresholds against a saved pytest-benchmark run. Each is judged as a
:class:`~pytest_awml.limits.Verdict` whose ``detail`` is the sentence a failure shows."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_awml.errors import AwmlError
from pytest_awml.limits import Verdict

MS_PER_S = 1e3
DEFAULT_REGRESSION = 0.10
"""The regression threshold of a test whose spec sets none (``LatencySettings.regression``): a 10 %
slower median is past the run-to-run noise of a quiet machine."""


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


def budget_failure(verdicts: Sequence[Verdict]) -> str | None:
    """The message of a broken budget (every broken one, a line each), or None when all hold."""
    broken = [v for v in verdicts if not v.passed]
    return "latency budget broken:\n  " + "\n  ".join(v.detail for v in broken) if broken else None


def load_benchmarks(path: Path) -> dict:
    """A pytest-benchmark JSON file (``--benchmark-json`` or an autosave)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise AwmlError(f"{path} is not a readable pytest-benchmark JSON file: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise AwmlError(f"{path} has no 'benchmarks' list: pass a --benchmark-json or .benchmarks/ autosave file")
    for index, bench in enumerate(data["benchmarks"]):
        name = bench.get("name") if isinstance(bench, dict) else None
        stats = bench.get("stats") if isinstance(bench, dict) else None
        median = stats.get("median") if isinstance(stats, dict) else None
        if not isinstance(name, str) or isinstance(median, bool) or not isinstance(median, (int, float)):
            raise AwmlError(f"{path}: benchmark {index} ({name or 'no name'}) has no name or no numeric stats.median: "
                            "the file is not pytest-benchmark's output (or was edited); regenerate it with --benchmark-json")
    return data


def median_ms(bench: Mapping) -> float:
    """A pytest-benchmark record's median, in ms."""
    return bench["stats"]["median"] * MS_PER_S


def baseline_medians(data: Mapping) -> dict[str, float]:
    """Test name (``test_latency[...]``) → its median in ms, as the plugin measured it (the span
    timer's ``p50_ms`` in ``extra_info``: CUDA events on a GPU), else pytest-benchmark's own median.
    A regression is judged on the same clock on both sides."""
    return {b["name"]: b.get("extra_info", {}).get("p50_ms") or median_ms(b) for b in data["benchmarks"]}
