"""The runner interface every backend implements.

A runner holds what it was built with (a session, a module) and nothing from any call: inputs go
in, outputs come out, timings are returned by the caller's timer. One runner may serve several
threads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from exporters.signature import TensorSpec
from pytest_awml.device import Device, Precision, Target
from pytest_awml.errors import DataError


@dataclass(frozen=True)
class RunnerSource:
    """What a backend may build a runner from: the PyTorch module, or an artifact file.

    ``artifact`` is a callable so that a backend asks for (and so triggers the build of) only the
    artifact format it needs.
    """

    component: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    module: Any
    artifact: Callable[[str], Path]
    input_specs: tuple[TensorSpec, ...] = ()
    output_specs: tuple[TensorSpec, ...] = ()


class Runner(ABC):
    """Runs one component. ``run`` = ``fetch(execute(prepare(inputs)))``.

    ``prepare`` moves NumPy inputs to the backend's native form (device tensors, OrtValues) so that
    ``execute``, the part a benchmark times, does no conversion. ``fetch`` brings outputs back as
    NumPy arrays keyed by output name: both sides of a comparison are always NumPy.
    """

    def __init__(self, target: Target, output_names: tuple[str, ...], input_specs: tuple[TensorSpec, ...] = ()) -> None:
        self.target = target
        self.output_names = output_names
        self.input_specs = input_specs

    def check(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Refuse inputs outside the declared shapes before a runtime sees them.

        ONNX Runtime would run a pillar count above the profile's max, TensorRT would fail deep
        inside; either way the answer would not be about the deployed model. Named error instead.
        """
        for spec in self.input_specs:
            if spec.name not in inputs:
                raise DataError(f"{self.target.id}: input {spec.name!r} is missing (got {sorted(inputs)})")
            problem = spec.shape_problem(tuple(np.shape(inputs[spec.name])))
            if problem:
                raise DataError(f"{self.target.id}: {problem}")

    @abstractmethod
    def prepare(self, inputs: Mapping[str, np.ndarray]) -> Any: ...

    @abstractmethod
    def execute(self, prepared: Any) -> Any: ...

    @abstractmethod
    def fetch(self, raw: Any) -> dict[str, np.ndarray]: ...

    def synchronize(self) -> None:
        """Wait for queued device work; a no-op on synchronous backends."""

    def cuda_stream(self):
        """The torch CUDA stream this runner's work is queued on, for CUDA-event timing; None on
        the CPU and for runtimes that keep their own streams (those are timed on the host)."""
        return None

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check(inputs)
        return self.fetch(self.execute(self.prepare(inputs)))


class Backend(ABC):
    """A kind of runner: says whether it can run here and builds runners.

    ``listed_when_unavailable``: include the backend in the default selection even where it
    cannot run, so that its tests show as skipped with the reason instead of silently absent.
    """

    name: str
    listed_when_unavailable: bool = False

    @abstractmethod
    def unavailable_reason(self, device: Device, precision: Precision) -> str | None:
        """None when this backend can run on ``device`` at ``precision``, else why not."""

    @abstractmethod
    def artifact_format(self, precision: Precision) -> str | None:
        """The artifact format this backend runs (``onnx``…), or None when it runs the module."""

    @abstractmethod
    def create_runner(self, source: RunnerSource, target: Target) -> Runner: ...
