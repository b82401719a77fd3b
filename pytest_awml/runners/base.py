"""The runner interface every backend implements, and the backend that makes runners.

A runner holds what it runs on (a session, an engine, a module) and nothing from any call: inputs
go in, outputs come out, timings are returned by the caller's timer. One runner may serve several
threads.

Lifecycle, like Polygraphy's ``activate``/``deactivate``: constructing a runner is cheap and
touches no file; ``open()`` does the heavy work (reading the artifact, creating the session,
deserializing the engine, copying the module to the device) and ``close()`` releases it; ``with
runner:`` does both. What a runner runs is resolved before it is made (as Polygraphy's loaders compose):
its backend is given the artifact's path, already built, never a way back to whoever built it. The session
cache opens every runner it hands out and closes them all when the session ends. A runner used before
``open()`` opens itself on first use, so that a runner wrapping another one (a third-party backend that only
forwards ``prepare``/``execute``/``fetch``) keeps working.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from exporters.signature import TensorSpec
from pytest_awml.device import Device, Precision, Target
from pytest_awml.errors import BackendError, DataError
from pytest_awml.shapes import feed_problem

_Handle = TypeVar("_Handle")


@dataclass(frozen=True)
class RunnerSource:
    """What a backend may build a runner from: the PyTorch module, or the file of the artifact format the
    backend runs (``Backend.artifact_format``), built before the runner is made; None for a backend that runs
    the module."""

    component: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    module: Any
    artifact: Path | None
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
        self.output_names = tuple(output_names)
        self.input_specs = tuple(input_specs)
        self._lifecycle = threading.Lock()
        self._is_open = False

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> Runner:
        """Acquire what the runner runs on (once; later calls return at once). Returns the runner."""
        if not self._is_open:
            with self._lifecycle:  # two threads' first calls must not create two sessions
                if not self._is_open:
                    self.activate()
                    self._is_open = True
        return self

    def close(self) -> None:
        """Release what ``open`` acquired; a closed runner opens again if it is used again."""
        with self._lifecycle:
            if self._is_open:
                self._is_open = False
                self.deactivate()

    def activate(self) -> None:
        """The heavy work of ``open``; runners that hold nothing leave it empty."""

    def deactivate(self) -> None:
        """Drop every reference ``activate`` made, so that sessions, contexts and buffers are freed."""

    def opened(self, handle: _Handle | None, what: str) -> _Handle:
        """``handle`` (a session, a context, a stream that ``activate`` made), checked: None means a call reached
        the runtime before ``open()`` or after ``close()``, a caller's bug named here rather than an AttributeError
        on None deep in a call."""
        if handle is None:
            raise BackendError(f"{self.target.id}: {type(self).__name__} has no {what}: it was called before open() or after "
                               "close(); open the runner first (prepare() or `with runner:` does)")
        return handle

    def __enter__(self) -> Runner:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- calls ----------------------------------------------------------------------------------
    def check(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Refuse inputs outside the declared shapes before a runtime sees them.

        ONNX Runtime would run a pillar count above the profile's max, TensorRT would fail deep
        inside; either way the answer would not be about the deployed model. Named error instead.
        """
        problem = feed_problem(self.input_specs, inputs)
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

    def run_tensors(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Device-resident call for pipelines: torch tensors on the runner's device in (floating ones in any
        float dtype: the runner casts them to its own), torch tensors on it out, so that the stages around the
        model never copy to the host.

        Outputs come in the dtype the runner computed them in (float16 from a half module or engine, float32
        otherwise): a stage that fills the next network's input from them (a canvas) makes it in that dtype, and
        a caller that needs float32 casts what it reads. A float32 contract would cast a full-size feature map
        to float32 and back to half between two fp16 networks on every call.

        This fallback goes through ``run`` (a host round trip) and serves any runtime; runners that can
        read and write device memory (PyTorch, ONNX Runtime's CUDA providers, TensorRT) override it.
        """
        import torch

        outputs = self.run({name: tensor.detach().cpu().numpy() for name, tensor in inputs.items()})
        device = torch.device(self.target.device.torch)
        return {name: torch.from_numpy(value).to(device) for name, value in outputs.items()}


class Backend(ABC):
    """A kind of runner: says whether it can run here, names the artifact format it runs, and
    makes (unopened) runners.

    ``listed_when_unavailable``: include the backend in the default selection even where it
    cannot run, so that its tests show as skipped with the reason instead of silently absent.
    ``runs_on``: the device types it is made for; on those it is listed by default whether or not it
    can run (a GPU run must show the CUDA provider it lacks, not drop it).
    ``on_request_only``: never in the default selection; runs when ``--awml-backends`` or a deploy config names it (a
    variant of another backend's build, such as TensorRT's strongly typed networks).
    """

    name: str
    listed_when_unavailable: bool = False
    runs_on: tuple[str, ...] = ()
    on_request_only: bool = False

    @abstractmethod
    def unavailable_reason(self, device: Device, precision: Precision) -> str | None:
        """None when this backend can run on ``device`` at ``precision``, else why not."""

    @abstractmethod
    def artifact_format(self, precision: Precision) -> str | None:
        """The artifact format this backend runs (``onnx``…), or None when it runs the module.

        A format needs a builder registered under that name (:mod:`pytest_awml.builders`)."""

    @abstractmethod
    def create_runner(self, source: RunnerSource, target: Target) -> Runner:
        """A runner for ``target``; cheap: the heavy work belongs in the runner's ``activate``."""

    def artifact_of(self, source: RunnerSource, target: Target) -> Path:
        """The file this backend runs for ``target``: ``source.artifact``, which the caller resolved for
        ``artifact_format(target.precision)``."""
        if source.artifact is None:
            raise BackendError(f"{self.name} runs a {self.artifact_format(target.precision)} file, and {source.component}'s "
                               "runner source carries none: resolve the artifact before making the runner")
        return source.artifact

    def plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        """Why this backend cannot run a component whose graph carries the TensorRT plugin ops ``plugins``,
        or None. Only TensorRT backends have them; the others say so."""
        if not plugins:
            return None
        return (f"{self.name} has no kernel for the TensorRT plugin op(s) {', '.join(plugins)} this graph carries: "
                "a TensorRT backend whose plugin registry holds them runs it")

    def parser_plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        """Why this backend cannot run a graph whose standard ops TensorRT builds from its plugin library's creators
        ``plugins``, or None: other backends run the standard ops themselves."""
        return None
