"""Latency measurement on top of pytest-benchmark: percentiles, CUDA events, copy/compute split.

pytest-benchmark times the host: on a GPU it would time kernel launches, not kernels. Here every
timed call is bracketed by a span timer: on CUDA, events on the runner's stream (read after a
synchronize); on the CPU, ``perf_counter_ns``. The figures come from those spans; pytest-benchmark
drives the rounds and saves its own JSON (``--benchmark-json``, autosave) for ``awml-report``.
Copies are timed apart from compute, as trtexec defines them (latency = H2D + compute + D2H).
Timings are returned, never kept on a runner.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from pytest_awml import progress

PERCENTILES = (50, 90, 95, 99)
REPORT_DECIMALS = 4  # milliseconds in the JSON report: 0.1 us, finer than any clock's noise
_MS = 1e3
_NS_PER_MS = 1e6


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
    def from_ms(cls, values) -> LatencyStats:
        ms = np.asarray(list(values), dtype=np.float64)
        if ms.size == 0:
            raise ValueError("no timings to summarize")
        p50, p90, p95, p99 = np.percentile(ms, PERCENTILES)
        return cls(int(ms.size), float(p50), float(p90), float(p95), float(p99), float(ms.mean()),
                   float(ms.std(ddof=1)) if ms.size > 1 else 0.0, float(ms.min()), float(ms.max()))

    def as_json(self) -> dict:
        """The report's figures, rounded to :data:`REPORT_DECIMALS`."""
        return {k: (round(v, REPORT_DECIMALS) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LatencyStats:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def now_ns() -> int:
    """The host clock every CPU span and pipeline stage reads, looked up at each call: the one seam a test drives
    by hand (``tests/test_latency.py``), so that a verdict on timings there cannot turn on the machine's load."""
    return time.perf_counter_ns()


class SpanTimer:
    """Host-side span timer (:func:`now_ns`). One per measurement: it holds that measurement."""

    clock = "perf_counter_ns"

    def __init__(self) -> None:
        self.spans: dict[str, list[float]] = defaultdict(list)

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        start = now_ns()
        yield
        self.spans[name].append((now_ns() - start) / _NS_PER_MS)

    def clear(self) -> None:
        self.spans.clear()

    def stats(self) -> dict[str, LatencyStats]:
        return {name: LatencyStats.from_ms(values) for name, values in self.spans.items() if values}


class CudaSpanTimer(SpanTimer):
    """CUDA events recorded on ``stream`` around the span; the span ends with a synchronize."""

    clock = "cuda_events"

    def __init__(self, stream) -> None:
        super().__init__()
        self._stream = stream

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(self._stream)
        yield
        end.record(self._stream)
        end.synchronize()
        self.spans[name].append(start.elapsed_time(end))


def timer_for(runner) -> SpanTimer:
    stream = runner.cuda_stream()
    return CudaSpanTimer(stream) if stream is not None else SpanTimer()


def plan_rounds(settings, probe_ms: float, rounds: int) -> tuple[int, bool]:
    """Rounds that fit ``settings.max_time_s`` given one round's duration; (rounds, whether cut)."""
    fit = int(settings.max_time_s * _MS / max(probe_ms, 1e-6))
    return (max(1, min(rounds, fit)), fit < rounds)


@dataclass(frozen=True)
class Rounds:
    """The timed rounds of one latency test: the timed span's statistics, the last round's result, and what each
    warm-up round took (not in the statistics; reported, so that a run's time can be held to its rounds)."""

    stats: LatencyStats
    rounds_cut: bool
    last: Any
    warmup_ms: tuple[float, ...]


def warmup_rounds(settings) -> int:
    """Rounds run before timing: at least one, the probe that sizes the timed rounds."""
    return max(1, settings.warmup_rounds)


def warmup_total_ms(warmup: Sequence[float]) -> float:
    """The report's ``warmup_total_ms``: what the warm-up rounds took together (their times are in no statistic)."""
    return round(float(sum(warmup)), REPORT_DECIMALS)


def _spanned(timer: SpanTimer, target: Callable[[], Any], span: str, task: progress.Task | None = None) -> Callable[[], Any]:
    """``target`` timed into ``timer``'s ``span`` at every call; ``task`` told of each round outside the span."""
    def timed():
        with timer.span(span):
            result = target()
        if task is not None:
            task.step(len(timer.spans[span]))
        return result

    return timed


def _warm_up(timer: SpanTimer, timed: Callable[[], Any], settings, span: str) -> tuple[int, bool, tuple[float, ...]]:
    """Warm-up rounds, the last one a probe that fits the timed rounds to ``settings.max_time_s``; the spans
    the warm-up added are dropped. Returns (timed rounds, whether cut, each warm-up round's ms)."""
    for _ in range(warmup_rounds(settings)):
        timed()
    warmup = tuple(timer.spans[span])
    timer.clear()
    return (*plan_rounds(settings, warmup[-1], settings.rounds), warmup)


def measure(benchmark, timer: SpanTimer, target: Callable[[], Any], settings, span: str, what: str = "a test") -> Rounds | None:
    """The one latency sequence: warm-up rounds, a probe (the last warm-up) that fits the rounds to
    ``settings.max_time_s``, then the timed rounds, driven by ``benchmark.pedantic`` and read from
    ``timer``'s ``span``. Spans the target adds to ``timer`` in warm-up are dropped with it.
    None when pytest-benchmark is disabled (``--benchmark-disable``, xdist): nothing was timed.
    """
    with progress.Task(f"latency rounds of {what}", settings.rounds) as task:
        timed = _spanned(timer, target, span, task)
        rounds, cut, warmup = _warm_up(timer, timed, settings, span)
        last = benchmark.pedantic(timed, rounds=rounds, warmup_rounds=0, iterations=1)
    if benchmark.disabled:
        return None
    return Rounds(LatencyStats.from_ms(timer.spans[span]), cut, last, warmup)


def measure_shared(timer: SpanTimer, target: Callable[[], Any], settings, span: str, what: str = "a test") -> Rounds:
    """:func:`measure`'s sequence in a plain loop, for rounds that several tests read (a pipeline's rounds are
    its stages' components' latency on a CPU): each test gives them to its own pytest-benchmark record with
    :func:`record_rounds`."""
    with progress.Task(f"latency rounds of {what}", settings.rounds) as task:
        timed = _spanned(timer, target, span, task)
        rounds, cut, warmup = _warm_up(timer, timed, settings, span)
        last = None
        for _ in range(rounds):
            last = timed()
    return Rounds(LatencyStats.from_ms(timer.spans[span]), cut, last, warmup)


def rounded_ms(ms: Sequence[float]) -> tuple[float, ...]:
    """Rounds' ms as the reports keep them (``rounds_ms``), to :data:`REPORT_DECIMALS`."""
    return tuple(round(float(v), REPORT_DECIMALS) for v in ms)


def record_rounds(benchmark, ms: Sequence[float]) -> None:
    """Give ``benchmark`` (the test's pytest-benchmark fixture) rounds timed elsewhere, in milliseconds, as its
    own: its table, its JSON and ``awml-report`` then show what the plugin judged.

    pytest-benchmark has no public call for rounds it did not time itself. This does what its ``pedantic``
    does with each round (``_make_stats`` with one iteration, then ``update`` in seconds) and marks the fixture
    used; ``tests/test_latency.py`` pins it against the installed pytest-benchmark."""
    benchmark._mode = "rounds timed by pytest-awml"
    stats = benchmark._make_stats(1)
    for value in ms:
        stats.update(value / _MS)


@dataclass(frozen=True)
class Measurement:
    """What one component latency test measured: compute rounds, and the spans' breakdown."""

    stats: LatencyStats
    spans: Mapping[str, LatencyStats]
    clock: str
    rounds_cut: bool
    warmup_ms: tuple[float, ...]
    rounds_ms: tuple[float, ...]  # each timed round's compute, in order: what a regression is judged on


def compute_of(runner, prepared, timer: SpanTimer) -> Callable[[], Any]:
    """One timed compute call of ``runner`` on ``prepared``. CUDA events on the runner's stream bracket its work
    and the span waits for the end event; a synchronize inside the span would add the host's wake-up to a
    sub-millisecond network (H200, tiny encoder: +39 %). A host clock needs it: the call must be done."""
    on_events = isinstance(timer, CudaSpanTimer)

    def compute():
        out = runner.execute(prepared)
        if not on_events:
            runner.synchronize()
        return out

    return compute


def measure_component(benchmark, runner, inputs, settings, what: str = "a component") -> Measurement | None:
    """Time ``runner.execute`` on prepared ``inputs`` (None when pytest-benchmark is disabled).

    The timed target is compute only; H2D (``prepare``) and D2H (``fetch``) are timed in their
    own rounds afterwards so that the timed region holds no copy and no allocation.
    """
    prepared = runner.prepare(inputs)
    timer = timer_for(runner)
    rounds = measure(benchmark, timer, compute_of(runner, prepared, timer), settings, span="compute", what=what)
    if rounds is None:
        return None
    copies = timer_for(runner)
    for _ in range(rounds.stats.rounds):
        with copies.span("h2d"):
            runner.prepare(inputs)
            runner.synchronize()
        with copies.span("d2h"):
            runner.fetch(rounds.last)
    return Measurement(rounds.stats, {**timer.stats(), **copies.stats()}, timer.clock, rounds.rounds_cut, rounds.warmup_ms,
                       tuple(timer.spans["compute"]))


@dataclass(frozen=True)
class PipelineRounds:
    """A pipeline's timed rounds: the whole call's statistics and each stage's milliseconds per round."""

    rounds: Rounds
    total: tuple[float, ...]  # ms of each timed round, whole call
    stages: Mapping[str, tuple[float, ...]]


def measure_pipeline(pipeline, sample, settings, what: str = "a pipeline") -> PipelineRounds:
    """``pipeline``'s rounds on ``sample`` (:func:`measure_shared`), with each stage's ms per timed round. A stage's
    times are read after the rounds: on CUDA, reading a call's events is not the call's work."""
    timer, stage_times = SpanTimer(), []

    def infer():
        result = pipeline(sample)
        stage_times.append(result.stages_ms)
        return result

    rounds = measure_shared(timer, infer, settings, span="pipeline", what=what)
    timed = stage_times[len(rounds.warmup_ms):]
    return PipelineRounds(rounds, tuple(timer.spans["pipeline"]),
                          {stage: tuple(times[stage] for times in timed if stage in times) for stage in pipeline.stages})
