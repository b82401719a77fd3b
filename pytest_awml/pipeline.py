"""Pipelines: a model's pre-processing → exported components → post-processing, built from runners.

The framework only knows the shape of a pipeline: it runs on a sample and returns its outputs with
its stage latencies. What the stages are and how two outputs compare (boxes, classes…) is the
spec's knowledge, declared in a :class:`PipelineSpec`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from pytest_awml import timing
from pytest_awml.device import Precision
from pytest_awml.lazy import LazyMapping
from pytest_awml.limits import LatencySettings, Verdict

if TYPE_CHECKING:  # only named in annotations: a spec module need not load the runners
    import torch

    from pytest_awml.runners.base import Runner

__all__ = ["Check", "Pipeline", "PipelineName", "PipelineResult", "PipelineSpec", "StageClock"]

_NS_PER_MS = 1e6

Check = Verdict
"""A pipeline comparator's figure against its limit: ``Check(output, value, limit, detail="")``."""


class PipelineName(Enum):
    """Which of a spec's pipelines: its own (``ModelSpec.pipeline``) or its deployable bundle's
    (``ModelSpec.bundle_pipeline``). The value is the part a test id gets (none for the spec's own)."""

    SPEC = ""
    BUNDLE = "bundle"

    @property
    def record_component(self) -> str:
        """The ``component`` of a pipeline test's records: ``pipeline``, or ``bundle.pipeline``."""
        return f"{self.value}.pipeline" if self.value else "pipeline"

    @property
    def field(self) -> str:
        """The ``ModelSpec`` field that declares it, for messages: ``pipeline`` or ``bundle_pipeline``."""
        return f"{self.value}_pipeline" if self.value else "pipeline"

    @property
    def label(self) -> str:
        """How a record that points at the pipeline names it (``measured_in``): ``pipeline`` or ``bundle``."""
        return self.value or "pipeline"


@dataclass(frozen=True)
class PipelineResult:
    """One call's outputs and its stage latencies in ms (returned, never kept on the pipeline)."""

    outputs: Any
    stages_ms: Mapping[str, float]


class StageClock:
    """Times the stages of one call. Create one per call: it is the call's own state.

    On a CUDA ``device`` each stage is bracketed by CUDA events on the current stream (device time of
    the work the stage queued, no synchronize between stages); ``stages_ms`` waits for the last event.
    A stage starts at the event that ended the one before it: a boundary costs one event record (a launch,
    ~11 us of host on a slow one) instead of two, and the stages add up to the call; work queued between
    two stages counts in the second. On the CPU (or ``device`` None) stages are host-timed, synchronizing
    ``runner`` when one is named.
    """

    def __init__(self, device: torch.device | None = None) -> None:
        self._device = device if device is not None and device.type == "cuda" else None
        self._host: dict[str, float] = {}
        self._events: list[tuple[str, Any, Any]] = []

    @contextmanager
    def stage(self, name: str, runner: Runner | None = None) -> Iterator[None]:
        if self._device is not None:
            start = self._events[-1][2] if self._events else self._record()
            yield
            self._events.append((name, start, self._record()))
            return
        start_ns = timing.now_ns()
        yield
        if runner is not None:
            runner.synchronize()  # device work queued in this stage belongs to it
        self._host[name] = self._host.get(name, 0.0) + (timing.now_ns() - start_ns) / _NS_PER_MS

    def _record(self):
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self._device))
        return event

    @property
    def stages_ms(self) -> Mapping[str, float]:
        """Each stage's ms. On CUDA a mapping that waits for the last event and reads the events when a value is first
        read: a caller timing the call reads it after its own clock stops (reading clocks is not the pipeline's work)."""
        if not self._events:
            return dict(self._host)
        host, events = dict(self._host), tuple(self._events)

        def read() -> dict[str, float]:
            events[-1][2].synchronize()
            found = dict(host)
            for name, start, end in events:
                found[name] = found.get(name, 0.0) + start.elapsed_time(end)
            return found

        return LazyMapping([*host, *(name for name, _, _ in events)], read)


class Pipeline(ABC):
    """Safe to call from several threads: what a call measures lives in that call. A pipeline may keep device
    state across calls, as the deployment does (sweeps already uploaded, captured CUDA graphs), behind its own lock."""

    stages: tuple[str, ...] = ()

    @abstractmethod
    def __call__(self, sample: Any) -> PipelineResult: ...


@dataclass(frozen=True)
class PipelineSpec:
    """How a spec assembles and judges its end-to-end pipeline.

    ``build(model, runners)`` gets the model and one runner per component name. ``compare(refs,
    tests, precision)`` returns the :class:`Check` list for the outputs of every sample; a check's
    ``compared`` says over how many items (matched boxes…) its figure is. ``min_compared``: a check over
    fewer items judged nothing (no box on either side passes every box limit), so the test fails.

    ``stage_components`` names the stages that call one component's runner on that component's own input and
    nothing else (stage → component). On a CPU such a stage's rounds are that component's latency, so
    ``test_latency`` reads them from the pipeline's rounds instead of running the network again (on a GPU a
    stage also holds the runner's dtype casts, and components are timed alone).
    """

    build: Callable[[Any, Mapping[str, Runner]], Pipeline]
    compare: Callable[[Sequence[Any], Sequence[Any], Precision], list[Verdict]]
    latency: LatencySettings = field(default_factory=LatencySettings)
    min_compared: int = 1
    stage_components: Mapping[str, str] = field(default_factory=dict)

    def problems(self, components: Sequence[str]) -> list[str]:
        """What the declaration alone shows wrong in ``stage_components`` (``components``: the names of the components
        this pipeline runs): a typo would not fail, it would silently time the component alone, or not at all."""
        found = []
        for stage, component in self.stage_components.items():
            if not isinstance(stage, str) or not stage:
                found.append(f"stage_components has a stage named {stage!r}: name it as the pipeline's stages does")
            if component not in components:
                found.append(f"stage_components[{stage!r}] names {component!r}, which this pipeline does not run "
                             f"(its components: {', '.join(components)})")
        claimed = list(self.stage_components.values())
        found += [f"stage_components gives {c!r} to {claimed.count(c)} stages: a component's rounds are one stage's"
                  for c in sorted(set(claimed)) if claimed.count(c) > 1]
        return found

    def stage_problems(self, stages: Sequence[str]) -> list[str]:
        """Stages named in ``stage_components`` or ``latency.stage_shares`` that the built pipeline (its ``stages``)
        does not time: known only once the spec's ``build`` made it."""
        named = [("stage_components", stage) for stage in self.stage_components]
        named += [("latency.stage_shares", stage) for stage in self.latency.stage_shares]
        return [f"{where} names the stage {stage!r}, which the pipeline does not time (its stages: {', '.join(stages)})"
                for where, stage in named if stage not in stages]

    def stage_of(self, component: str) -> str | None:
        """The stage whose rounds time ``component``, if one does."""
        return next((stage for stage, name in self.stage_components.items() if name == component), None)
