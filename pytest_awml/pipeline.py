"""Pipelines: a model's pre-processing → exported components → post-processing, built from runners.

The framework only knows the shape of a pipeline: it runs on a sample and returns its outputs with
its stage latencies. What the stages are and how two outputs compare (boxes, classes…) is the
spec's knowledge.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

from pytest_awml.device import Precision
from pytest_awml.runners.base import Runner
from pytest_awml.spec import LatencySettings

_MS = 1e3


@dataclass(frozen=True)
class PipelineResult:
    """One call's outputs and its stage latencies in ms (returned, never kept on the pipeline)."""

    outputs: Any
    stages_ms: Mapping[str, float]


class StageClock:
    """Times the stages of one call. Create one per call: it is the call's own state."""

    def __init__(self) -> None:
        self.stages_ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, runner: Runner | None = None) -> Iterator[None]:
        start = time.perf_counter()
        yield
        if runner is not None:
            runner.synchronize()  # device work queued in this stage belongs to it
        self.stages_ms[name] = self.stages_ms.get(name, 0.0) + (time.perf_counter() - start) * _MS


class Pipeline(ABC):
    """Re-entrant: everything a call needs lives in that call."""

    stages: tuple[str, ...] = ()

    @abstractmethod
    def __call__(self, sample: Any) -> PipelineResult: ...


@dataclass(frozen=True)
class Check:
    """One figure of a pipeline comparison against its limit (``value <= limit`` passes)."""

    output: str
    value: float
    limit: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.value <= self.limit

    def describe(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return f"{self.output}: {verdict} {self.value:.4g} (limit {self.limit:g}){' - ' + self.detail if self.detail else ''}"


@dataclass(frozen=True)
class PipelineSpec:
    """How a spec assembles and judges its end-to-end pipeline.

    ``build(model, runners)`` gets the model and one runner per component name. ``compare(refs,
    tests, precision)`` returns the :class:`Check` list for the outputs of every sample.
    """

    build: Callable[[Any, Mapping[str, Runner]], Pipeline]
    compare: Callable[[Sequence[Any], Sequence[Any], Precision], list[Check]]
    latency: LatencySettings = field(default_factory=LatencySettings)
