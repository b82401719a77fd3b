"""A runner that answers a pipeline's host calls from inferences the session already holds, and names the
ones it lacks instead of computing them: the caller computes those (once, stored, in the ledger) and runs the
pipeline's frame again. Nothing here reaches back into the caller; like a build system's dynamic
dependencies (Bazel's Skyframe restarts a function whose dependency is missing), the missing value is
reported, resolved outside, and the work is redone with it.

On a device the pipeline's own path is the one that ships and is timed (on CUDA, a lidar pipeline's encoder
runs asynchronously on the padded rows of a captured CUDA graph): there a sharing runner is its inner runner, so that
pipeline parity verifies that very path; its inputs (padded rows, device tensors) are nothing a parity test
of the component computed anyway.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from pytest_awml.digests import content_digest
from pytest_awml.runners.base import Runner

__all__ = ["Held", "Missing", "SharingRunner"]


class Held(Mapping[str, Mapping[str, np.ndarray]]):
    """The outputs a caller resolved for one component (content digest → outputs), and which of them a pass read:
    a frame that runs again must read the one resolved for it, or its stages before the component are not
    deterministic and passes would never end."""

    def __init__(self) -> None:
        self._values: dict[str, Mapping[str, np.ndarray]] = {}
        self.read: set[str] = set()

    def add(self, digest: str, outputs: Mapping[str, np.ndarray]) -> None:
        self._values[digest] = outputs

    def __getitem__(self, digest: str) -> Mapping[str, np.ndarray]:
        value = self._values[digest]
        self.read.add(digest)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class Missing(Exception):
    """A host call whose outputs the session does not hold yet: ``digest`` of ``inputs`` for ``component``.
    Not an error: the caller resolves it and runs the frame again."""

    def __init__(self, component: str, inputs: Mapping[str, np.ndarray], digest: str) -> None:
        super().__init__(f"{component}: no outputs held for input {digest}")
        self.component, self.inputs, self.digest = component, dict(inputs), digest


class SharingRunner(Runner):
    """``inner``'s outputs by input content: host calls read ``known`` (content digest → outputs) and raise
    :class:`Missing` for any other input; device calls (``run_tensors`` on a CUDA target) and ``cuda_stream`` are
    ``inner``'s own, so a pipeline takes the branch it takes on the bare runner. For parity and metrics, never for
    latency (a held answer takes no time)."""

    def __init__(self, component: str, inner: Runner, known: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        super().__init__(inner.target, inner.output_names, inner.input_specs)
        self.component, self._inner, self._known = component, inner, known

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        return inputs

    def execute(self, prepared: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        digest = content_digest(prepared)
        if digest not in self._known:
            raise Missing(self.component, prepared, digest)
        return dict(self._known[digest])

    def fetch(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return raw

    def run_tensors(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if self.target.device.is_cuda:
            return self._inner.run_tensors(inputs)
        return super().run_tensors(inputs)

    def synchronize(self) -> None:
        self._inner.synchronize()

    def cuda_stream(self):
        return self._inner.cuda_stream()
