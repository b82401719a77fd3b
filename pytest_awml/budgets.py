"""Latency budgets that hold on noisy machines: same-run ratios, stage shares, and per-test
regression thresholds against a saved pytest-benchmark run. Each is judged as a
:class:`~pytest_awml.limits.Verdict` whose ``detail`` is the sentence a failure shows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeGuard

from pytest_awml.errors import AwmlError
from pytest_awml.json_input import REASON, read_json
from pytest_awml.limits import Verdict

MS_PER_S = 1e3
DEFAULT_REGRESSION = 0.10
"""The regression threshold of a test whose spec sets none (``LatencySettings.regression``): a 10 %
slower median is past the run-to-run noise of a quiet machine."""
EXTRA_FIGURES = ("p50_ms", "p99_ms", "regression_threshold")
"""The figures the plugin keeps in a benchmark's ``extra_info`` that a reader of the file computes with."""
ROUNDS_KEY = "rounds_ms"
"""``extra_info``'s list of each timed round's ms (the plugin's clock): what a regression is judged on."""


def ratio_verdict(target: str, target_p50: float, baseline: str, baseline_p50: float, max_ratio: float) -> Verdict:
    ratio = target_p50 / baseline_p50 if baseline_p50 > 0 else float("inf")
    return Verdict(f"ratio {target}/{baseline}", ratio, max_ratio,
                   f"p50 {target} {target_p50:.3f} ms is {ratio:.2f}x {baseline}'s {baseline_p50:.3f} ms (budget {max_ratio:g}x)")


def share_verdict(stage: str, stage_p50: float, total_p50: float, max_share: float) -> Verdict:
    share = stage_p50 / total_p50 if total_p50 > 0 else float("inf")
    return Verdict(f"share {stage}", share, max_share,
                   f"stage {stage} p50 {stage_p50:.3f} ms is {share:.1%} of the pipeline's {total_p50:.3f} ms (budget {max_share:.1%})")


def budget_failure(verdicts: Sequence[Verdict]) -> str | None:
    """The message of a broken budget (every broken one, a line each), or None when all hold."""
    broken = [v for v in verdicts if not v.passed]
    return "latency budget broken:\n  " + "\n  ".join(v.detail for v in broken) if broken else None


def load_benchmarks(path: Path) -> dict:
    """A pytest-benchmark JSON file (``--benchmark-json`` or an autosave), every figure read later
    checked here: a file that is not one, or was edited into nonsense, is an :class:`AwmlError` naming
    the benchmark and the field (bad input), never an exception deeper in a reader."""
    data = read_json(path, f"{path} is not a readable pytest-benchmark JSON file: {REASON}")
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise AwmlError(f"{path} has no 'benchmarks' list: pass a --benchmark-json or .benchmarks/ autosave file")
    if not isinstance(data.get("machine_info", {}), dict):
        raise AwmlError(f"{path}: machine_info is not an object: the file is not pytest-benchmark's output (or was edited)")
    seen: set[str] = set()
    for index, bench in enumerate(data["benchmarks"]):
        name = bench.get("name") if isinstance(bench, dict) else None
        stats = bench.get("stats") if isinstance(bench, dict) else None
        median = stats.get("median") if isinstance(stats, dict) else None
        if not isinstance(name, str) or not is_real(median):
            raise AwmlError(f"{path}: benchmark {index} ({name or 'no name'}) has no name or no numeric stats.median: "
                            "the file is not pytest-benchmark's output (or was edited); regenerate it with --benchmark-json")
        problem = _figures_problem(bench, median)
        if problem:
            raise AwmlError(f"{path}: benchmark {index} ({name}): {problem}: a timing cannot be that; "
                            "the file was edited or damaged, regenerate it with --benchmark-json")
        if name in seen:
            raise AwmlError(f"{path}: the test {name} is listed twice: which one is the run's is unknowable; "
                            "pass each run's own --benchmark-json file")
        seen.add(name)
    return data


def is_real(value: object) -> TypeGuard[float]:
    """A JSON number (an int or a float, not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _figures_problem(bench: dict, median: float) -> str | None:
    """What is wrong with a benchmark's median and the figures the plugin keeps in ``extra_info``."""
    if not math.isfinite(median) or median <= 0:
        return f"stats.median is {median}, not a positive finite number of seconds"
    extra = bench.get("extra_info", {})
    if not isinstance(extra, dict):
        return "extra_info is not an object"
    figures = {key: extra.get(key) for key in EXTRA_FIGURES}
    stages = extra.get("stages") or {}
    if not isinstance(stages, dict) or not all(isinstance(s, dict) for s in stages.values()):
        return "extra_info.stages is not an object of stages"
    figures.update({f"stages.{stage}.p50_ms": s.get("p50_ms") for stage, s in stages.items()})
    for key, value in figures.items():
        if value is not None and not (is_real(value) and math.isfinite(value) and value >= 0):
            return f"extra_info.{key} is {value!r}, not a finite number >= 0"
    rounds = extra.get(ROUNDS_KEY)
    if rounds is not None and not (isinstance(rounds, list) and rounds
                                   and all(is_real(v) and math.isfinite(v) and v >= 0 for v in rounds)):
        return f"extra_info.{ROUNDS_KEY} is {str(rounds)[:60]}, not a list of finite numbers >= 0 (ms per round)"
    return None


def median_ms(bench: Mapping) -> float:
    """A pytest-benchmark record's median, in ms."""
    return bench["stats"]["median"] * MS_PER_S


def baseline_medians(data: Mapping) -> dict[str, float]:
    """Test name (``test_latency[...]``) → its median in ms, as the plugin measured it (the span
    timer's ``p50_ms`` in ``extra_info``: CUDA events on a GPU), else pytest-benchmark's own median.
    A regression is judged on the same clock on both sides."""
    return {b["name"]: b.get("extra_info", {}).get("p50_ms") or median_ms(b) for b in data["benchmarks"]}


def rounds_ms(bench: Mapping) -> list[float] | None:
    """Each timed round's ms of a benchmark record: the plugin's ``extra_info.rounds_ms`` (its own clock), else
    pytest-benchmark's ``data`` (``--benchmark-save-data``, seconds); None when the file kept neither."""
    kept = bench.get("extra_info", {}).get(ROUNDS_KEY)
    if kept is not None:
        return [float(v) for v in kept]
    data = bench.get("stats", {}).get("data")
    if isinstance(data, list) and data and all(is_real(v) and math.isfinite(v) and v > 0 for v in data):
        return [float(v) * MS_PER_S for v in data]
    return None
