"""What one test's calls produced: the files built or read back, the data readers' notes, the inferences.

The session cache and the inference store make things on a test's behalf; the test's records of them
belong to that test. A function-scoped fixture (``suite.awml_produced``) opens a :class:`Produced` for
its test on the session's :class:`Collector` and receives it whole when the test ends, as
pytest-benchmark's ``benchmark`` fixture owns the statistics of its test. Nothing is left on the
session for a later test to drain: what is made while no test collects (a session fixture, a unit
test driving the cache directly without collecting) is not anybody's record.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pytest_awml.artifacts import Artifact


@dataclass(frozen=True)
class Inference:
    """One inference outside the latency rounds (the report's ``inferences`` ledger), and, when it
    recomputed a stored one, what the comparison found."""

    spec: str
    component: str
    target: str
    input: str  # the inputs' content digest
    seconds: float
    checked: str = ""  # "" (not a check), "same", or "differed" (the stored outputs were not these)
    store: str = ""  # the stored file it was checked against


@dataclass
class Produced:
    """One test's share: appended to by any thread while the test runs, read once when it ends."""

    builds: list[Artifact] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (spec, what its data reader warned about)
    inferences: list[Inference] = field(default_factory=list)


class Collector:
    """Hands what is produced to the test that is collecting now (one at a time per process, as pytest runs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: Produced | None = None

    @contextmanager
    def collecting(self) -> Iterator[Produced]:
        """A fresh :class:`Produced` that receives everything until the block ends, however it ends."""
        produced = Produced()
        with self._lock:
            self._open = produced
        try:
            yield produced
        finally:
            with self._lock:
                if self._open is produced:
                    self._open = None

    def built(self, artifact: Artifact) -> None:
        with self._lock:
            if self._open is not None:
                self._open.builds.append(artifact)

    def noted(self, spec: str, note: str) -> None:
        with self._lock:
            if self._open is not None:
                self._open.notes.append((spec, note))

    def inferred(self, inference: Inference) -> None:
        with self._lock:
            if self._open is not None:
                self._open.inferences.append(inference)
