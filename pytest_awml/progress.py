"""Progress of long work: what an export, an engine build, a series of inferences or latency rounds is doing, and
how far it is, while it runs.

A cold run spent minutes behind motionless dots (reference outputs 97 s, seeded-weight calibration 47 s, an
export 43 s; issue 30). A :class:`Task` says nothing for work done within :data:`AFTER_S`; past it, a line at
most every :data:`EVERY_S` with how far it is, and one when it ends with its time. A build (an export, an engine,
seeded weights) is announced when it starts: it is one opaque call, and a build is rare (a stored one is reused).
The lines go to the ``pytest_awml.progress`` logger; :mod:`pytest_awml.terminal` shows them as they happen
(through pytest's terminal reporter, or an xdist worker's stderr), unless ``-q`` asked for quiet.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType

LOGGER = "pytest_awml.progress"
log = logging.getLogger(LOGGER)
AFTER_S = 3.0
"""Work done within this many seconds says nothing: a line per short step would be noise."""
EVERY_S = 5.0
"""At most one line this often per task."""


class Task:
    """One piece of long work (``what``: "outputs of <spec>/<component> on onnxruntime-cpu-fp32"),
    in ``total`` steps (None: one opaque call). ``announce``: say when it starts (a build)."""

    def __init__(self, what: str, total: int | None = None, *, announce: bool = False) -> None:
        self.what, self.total, self.announce = what, total, announce
        self._start = self._last = 0.0

    def __enter__(self) -> Task:
        self._start = self._last = time.monotonic()
        if self.announce:
            log.info("%s ...", self.what)
        return self

    def step(self, done: int) -> None:
        """``done`` steps of ``total`` are finished: a line if the task is long and the last line is old."""
        now = time.monotonic()
        if now - self._start >= AFTER_S and now - self._last >= EVERY_S:
            self._last = now
            log.info("%s: %d of %s (%.0f s)", self.what, done, self.total if self.total is not None else "?", now - self._start)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        seconds = time.monotonic() - self._start
        if kind is None and (self.announce or seconds >= AFTER_S):
            log.info("%s: done in %.1f s", self.what, seconds)
