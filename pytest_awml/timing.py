"""Latency measurement on top of pytest-benchmark, with the percentiles it does not report."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

PERCENTILES = (50, 90, 95, 99)
_MS = 1e3


@dataclass(frozen=True)
class LatencyStats:
    """Per-round latencies summarized, in milliseconds."""

    rounds: int
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    stddev_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def from_seconds(cls, seconds) -> "LatencyStats":
        ms = np.asarray(list(seconds), dtype=np.float64) * _MS
        if ms.size == 0:
            raise ValueError("no timings to summarize")
        p50, p90, p95, p99 = np.percentile(ms, PERCENTILES)
        return cls(int(ms.size), float(p50), float(p90), float(p95), float(p99), float(ms.mean()),
                   float(ms.std(ddof=1)) if ms.size > 1 else 0.0, float(ms.min()), float(ms.max()))

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def benchmark_pedantic(benchmark, target: Callable[..., Any], args: tuple, rounds: int, warmup_rounds: int) -> LatencyStats | None:
    """Time ``target(*args)`` with ``benchmark.pedantic``; None when pytest-benchmark is disabled.

    One call per round (``iterations=1``), so each round is one inference and percentiles mean
    what they say. The stats are also written to ``benchmark.extra_info`` so that they land in
    pytest-benchmark's JSON.
    """
    benchmark.pedantic(target, args=args, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
    if benchmark.disabled or benchmark.stats is None:
        return None
    stats = LatencyStats.from_seconds(benchmark.stats.stats.data)
    benchmark.extra_info.update(stats.as_dict())
    return stats
