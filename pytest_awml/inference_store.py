"""Inferences made once and kept: the session's memo of outputs, the store across runs, and its checks.

One inference (a component, a target, an input's content) is computed once per session and shared by
every test that needs it; kept in the artifact store (:class:`~pytest_awml.stored_formats.StoredOutputs`),
it is read back by xdist workers and later runs instead of computed again. A replay is only as good as
its key (:class:`~pytest_awml.stored_formats.OutputsKey`), so replays are verified:

- every run recomputes one replayed input per component and target, the one checked longest ago (a
  ``checked`` mark in its folder: a few runs cover them all), and compares it bit for bit;
- before a parity failure blames a backend, every replayed input of both sides is recomputed;
- ``--awml-rerun-backends`` recomputes every backend inference, compares it with the stored one, reports
  each that differed (a warning, and ``checked: differed`` in the ledger) and replaces it.

A stored entry that differs fails the run with :class:`~pytest_awml.errors.StoreMismatch`, naming the entry
and how to clear it. Every inference computed outside the latency rounds goes to the run's ledger (the
report's ``inferences``, through :class:`~pytest_awml.produced.Collector`).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum, auto
from pathlib import Path
from typing import Any

from pytest_awml import progress
from pytest_awml.artifacts import ArtifactStore
from pytest_awml.device import REFERENCE, Target
from pytest_awml.digests import content_digest
from pytest_awml.errors import StoreMismatch
from pytest_awml.memo import Memo, key
from pytest_awml.paths import write_atomic
from pytest_awml.produced import Collector, Inference
from pytest_awml.provenance import timestamp
from pytest_awml.spec import Component, ModelSpec
from pytest_awml.stored_formats import Outputs, OutputsKey, SeededWeights, StoredOutputs, outputs_difference

log = logging.getLogger(__name__)

CHECKED = "checked"  # in a stored entry's folder: when a run last recomputed it and found it the same
Compute = Callable[[], Outputs]


class StoreWarning(UserWarning):
    """A stored inference differed from a rerun and was replaced (``--awml-rerun-backends``)."""


class _Slot(Enum):
    RUN = auto()
    DIGESTS = auto()
    CHECK = auto()  # one replayed input recomputed and compared (its mismatch kept, raised to every later caller)
    SERIES_CHECKED = auto()  # some replayed input of a series was (or is being) checked this session


Subject = tuple[str, str, Target]  # spec, component, target: one series of inferences


@dataclass(frozen=True)
class _Replay:
    """A stored entry read back this session: its file, and the outputs read from it (what a check compares)."""

    path: Path
    outputs: Outputs


class InferenceStore:
    """The session's inferences and the stored ones (``awml_inferences``)."""

    def __init__(self, artifacts: ArtifactStore, collector: Collector, *, rerun_backends: bool) -> None:
        self._artifacts = artifacts
        self._collector = collector
        self._rerun_backends = rerun_backends
        self._outputs = StoredOutputs()
        self._weights = SeededWeights()
        self._memo = Memo()
        self._lock = threading.Lock()
        self._replayed: dict[Subject, dict[str, _Replay]] = {}  # by input digest

    # -- inferences ------------------------------------------------------------------------------
    def input_digests(self, spec: str, component: str, inputs: Sequence[dict[str, Any]]) -> list[str]:
        """The content digest of each of the session's inputs of a component, hashed once for every target."""

        return self._memo.get(key(_Slot.DIGESTS, spec, component), lambda: [content_digest(sample) for sample in inputs])

    def run(self, spec: str, component: Component, target: Target, digest: str, compute: Compute,
            stored: OutputsKey | None) -> Outputs:
        """One inference, once per session; with a key (``stored``) kept across runs too. The first replay of a
        series in a session is recomputed and compared (see the module's docstring)."""
        subject = (spec, component.name, target)
        outputs = self._once(subject, component, digest, compute, stored)
        replay = self._replay_of(subject, digest)
        if replay is not None and (self._was_checked(subject, digest) or not self._any_checked(subject)):
            self._check(subject, digest, replay, compute)  # checks, or raises what its check found
        return outputs

    def outputs(self, spec: str, component: Component, target: Target, feeds: Sequence[tuple[str, Compute]],
                stored: OutputsKey) -> list[Outputs]:
        """The outputs of each ``(digest, compute)`` feed; of the inputs read back, the one checked longest ago is
        recomputed and compared (once per session)."""
        subject = (spec, component.name, target)
        outputs = []
        with progress.Task(f"outputs of {spec}/{component.name} on {target.id}", len(feeds)) as task:
            for digest, compute in feeds:
                outputs.append(self._once(subject, component, digest, compute, stored))
                task.step(len(outputs))
        replayed = [(self._last_checked(replay.path), index, digest, replay) for index, (digest, _) in enumerate(feeds)
                    if (replay := self._replay_of(subject, digest)) is not None]
        done = [entry for entry in replayed if self._was_checked(subject, entry[2])]
        for _, index, digest, replay in done or sorted(replayed, key=lambda entry: entry[:2])[:1]:  # raises what an earlier check found
            self._check(subject, digest, replay, feeds[index][1])
        return outputs

    def recheck(self, spec: str, component: Component, target: Target, feeds: Sequence[tuple[str, Compute]]) -> None:
        """Recompute every input of ``feeds`` read back from the store and not checked yet; raise one
        :class:`StoreMismatch` naming every entry that differs (before a parity failure blames a backend)."""
        subject = (spec, component.name, target)
        problems = []
        for digest, compute in feeds:
            replay = self._replay_of(subject, digest)
            if replay is not None:
                try:
                    self._check(subject, digest, replay, compute)
                except StoreMismatch as exc:
                    problems.append(str(exc))
        if problems:
            raise StoreMismatch("\n".join(problems))

    # -- seeded weights ----------------------------------------------------------------------------
    def seeded_weights(self, spec: ModelSpec, seed: int) -> tuple[Path, Any]:
        """The seeded model's weights kept across runs, and the model when this call built them (else None)."""
        artifact, model = self._weights.get_or_build(self._artifacts, spec, seed)
        self._collector.built(artifact)
        return artifact.path, model

    # -- the steps ---------------------------------------------------------------------------------
    def _once(self, subject: Subject, component: Component, digest: str, compute: Compute,
              stored: OutputsKey | None) -> Outputs:
        spec, name, target = subject
        return self._memo.get(key(_Slot.RUN, spec, name, target, digest), lambda: self._make(subject, component, digest, compute, stored))

    def _make(self, subject: Subject, component: Component, digest: str, compute: Compute,
              stored: OutputsKey | None) -> Outputs:
        if stored is None:
            return self._ledgered(subject, digest, compute)
        spec, _, target = subject
        if self._rerun_backends and target != REFERENCE:
            return self._rerun(subject, component, digest, compute, stored)
        artifact, computed = self._outputs.get_or_build(self._artifacts, spec, component, target, stored, digest,
                                                        lambda: self._ledgered(subject, digest, compute))
        self._collector.built(artifact)  # reused or built: the report says which, once per session
        if computed is not None:
            return computed
        replay = _Replay(artifact.path, self._outputs.read(artifact.path, component))
        with self._lock:
            self._replayed.setdefault(subject, {})[digest] = replay
        return replay.outputs

    def _rerun(self, subject: Subject, component: Component, digest: str, compute: Compute, stored: OutputsKey) -> Outputs:
        """``--awml-rerun-backends``: compute, compare with what is stored, replace it when it differs."""
        spec, _, target = subject
        fresh, seconds = self._timed(subject, digest, compute)
        differences: list[str] = []

        def refuse(path: Path) -> str | None:
            difference = outputs_difference(self._outputs.read(path, component), fresh)
            if difference and difference not in differences:
                differences.append(difference)
            return f"stored outputs differ from this run's: {difference}" if difference else None

        artifact, _ = self._outputs.get_or_build(self._artifacts, spec, component, target, stored, digest, lambda: fresh, refuse)
        self._collector.built(artifact)
        checked = "differed" if differences else ("same" if artifact.reused else "")
        self._inferred(subject, digest, seconds, checked, artifact.path if checked else None)
        if differences:
            message = (f"the stored outputs of {spec}/{component.name} on {target.id} for input {digest[:12]} differed from "
                       f"this run's ({differences[0]}): {artifact.path.parent} replaced")
            log.warning(message)
            warnings.warn(StoreWarning(message), stacklevel=2)
        return fresh

    def _check(self, subject: Subject, digest: str, replay: _Replay, compute: Compute) -> None:
        """Recompute one replayed input, once per session, and compare; a difference is kept and raised to every caller."""
        spec, component, target = subject

        def check() -> None:
            self._memo.put(key(_Slot.SERIES_CHECKED, *subject), True)
            fresh, seconds = self._timed(subject, digest, compute)
            difference = outputs_difference(replay.outputs, fresh)
            self._inferred(subject, digest, seconds, "differed" if difference else "same", replay.path)
            if difference:
                folder = replay.path.parent
                clear = (f"delete {folder} (or run with --awml-rerun-backends: it recomputes every stored backend "
                         "output and replaces those that differ)" if target != REFERENCE else
                         f"delete {folder} (or the whole artifacts folder)")
                raise StoreMismatch(f"the stored outputs of {spec}/{component} on {target.id} for input {digest[:12]} "
                                    f"differ from running it again ({difference}): the store entry {replay.path} is not what "
                                    f"this code computes (restored from elsewhere, or edited). Clear it: {clear}")
            write_atomic(replay.path.parent / CHECKED, timestamp().encode())

        self._memo.get(key(_Slot.CHECK, *subject, digest), check)

    def _ledgered(self, subject: Subject, digest: str, compute: Compute) -> Outputs:
        """``compute`` (one inference outside the latency rounds), timed into the run's ledger: the report's
        ``inferences`` say what a run computed, so ``benchmarks/main_job.py`` can hold its wall time to
        them and show that no input ran twice on a target."""
        outputs, seconds = self._timed(subject, digest, compute)
        self._inferred(subject, digest, seconds)
        return outputs

    def _timed(self, subject: Subject, digest: str, compute: Compute) -> tuple[Outputs, float]:
        """``compute()`` and the seconds it took, the one clock of every inference here; one that raises goes into
        the ledger as it is (it took that long), one that returns is recorded by the caller with what it found."""
        start = time.perf_counter()
        try:
            return compute(), time.perf_counter() - start
        except BaseException:
            self._inferred(subject, digest, time.perf_counter() - start)
            raise

    def _inferred(self, subject: Subject, digest: str, seconds: float, checked: str = "", path: Path | None = None) -> None:
        """One computed inference into the run's ledger (``checked``: what comparing it with a stored entry found)."""
        spec, component, target = subject
        self._collector.inferred(Inference(spec, component, target.id, digest, round(seconds, 6), checked,
                                           "" if path is None else str(path)))

    def _replay_of(self, subject: Subject, digest: str) -> _Replay | None:
        with self._lock:
            return self._replayed.get(subject, {}).get(digest)

    def _was_checked(self, subject: Subject, digest: str) -> bool:
        return self._memo.holds(key(_Slot.CHECK, *subject, digest))

    def _any_checked(self, subject: Subject) -> bool:
        return self._memo.holds(key(_Slot.SERIES_CHECKED, *subject))

    @staticmethod
    def _last_checked(path: Path) -> int:
        """When this entry was last found the same as a rerun (ns), -1 when never: the oldest is checked next."""
        try:
            return (path.parent / CHECKED).stat().st_mtime_ns
        except FileNotFoundError:
            return -1
