"""The runners a session opened, closed together when it ends.

A runner holds what its backend acquired (an ONNX Runtime session, a TensorRT engine and its context, a CUDA
stream): whoever opens it must close it, and one runner that fails to close must not keep the others open.
The workspace resolves what a runner is made from (:class:`~pytest_awml.runners.base.RunnerSource`) and asks
this pool to open it; the pool only keeps the opened ones and releases them, newest first.
"""

from __future__ import annotations

import logging
import threading

from pytest_awml.device import Target
from pytest_awml.runners.base import Backend, Runner, RunnerSource

log = logging.getLogger(__name__)


class RunnerPool:
    """Opened runners, in the order they were opened; safe under the threads that open them."""

    def __init__(self) -> None:
        self._open: list[Runner] = []
        self._lock = threading.Lock()

    def open(self, backend: Backend, source: RunnerSource, target: Target) -> Runner:
        """``backend``'s runner for ``source`` on ``target``, opened (its file read, its engine deserialized) and kept."""
        runner = backend.create_runner(source, target).open()
        with self._lock:
            self._open.append(runner)
        return runner

    def close(self) -> None:
        """Close every runner, newest first; log each failure and raise the first once all were tried."""
        with self._lock:
            runners, self._open = self._open, []
        failures = []
        for runner in reversed(runners):
            try:
                runner.close()
            except Exception as exc:  # noqa: BLE001  one runner's failure must not keep the others open
                log.warning("closing the %s runner failed: %s: %s", runner.target.id, type(exc).__name__, exc)
                failures.append(exc)
        if failures:
            raise failures[0]
