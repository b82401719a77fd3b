"""Golden reference outputs and the error history kept beside them.

``<golden>/<spec>/<component>.npz`` holds the inputs and PyTorch outputs of the seeded samples,
``<component>.json`` its metadata (hashes, library versions, seed, date, the npz's sha256).
Both are written atomically, under the set's lock (``<golden>/<spec>.lock``, bounded by
``--awml-lock-timeout``: two concurrent updates take turns, and a reader never sees one half of a
pair); a set whose pairs were made from different weights or seeds (two overlapping updates) is
refused as a whole; a golden file whose hash does not match its metadata, or whose metadata is unreadable, is
refused (and replaced by ``--awml-update-golden``); outputs holding NaN or Inf are never written, and
an update writes no component of a set when one of them would be refused (``refuse_partial_set``).
``<golden>/history.jsonl`` gets one line per output per run: the error budget's memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import statistics
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_awml.compare import OutputComparison, compare_outputs
from pytest_awml.errors import ArtifactError
from pytest_awml.limits import Tolerance, TrendSettings
from pytest_awml.locks import DEFAULT_TIMEOUT_S, held
from pytest_awml.paths import no_link, sha256_file, write_atomic, write_error
from pytest_awml.provenance import timestamp
from pytest_awml.results import KEY_FIGURES

FORMAT = 1
HISTORY = "history.jsonl"


@dataclass(frozen=True)
class Golden:
    inputs: list[dict[str, np.ndarray]]
    outputs: list[dict[str, np.ndarray]]
    meta: dict[str, Any]
    path: Path


@dataclass(frozen=True)
class Update:
    """What ``--awml-update-golden`` did to one component's golden outputs."""

    path: Path
    action: str  # "created" or "updated"
    old_vs_new_max_abs: dict[str, float]
    replaced: str = ""  # why an unreadable older file was replaced, if one was


def _pack(samples: Sequence[dict[str, np.ndarray]], prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}/{i}/{name}": value for i, sample in enumerate(samples) for name, value in sample.items()}


def _unpack(archive, prefix: str) -> list[dict[str, np.ndarray]]:
    samples: dict[int, dict[str, np.ndarray]] = {}
    for key in archive.files:
        head, index, name = key.split("/", 2)
        if head == prefix:
            samples.setdefault(int(index), {})[name] = archive[key]
    return [samples[i] for i in sorted(samples)]


def _non_finite(samples: Sequence[dict[str, np.ndarray]], prefix: str) -> list[str]:
    return [f"{prefix} {name} of sample {i}" for i, sample in enumerate(samples) for name, value in sample.items()
            if np.issubdtype(np.asarray(value).dtype, np.inexact) and not np.isfinite(value).all()]


def refuse_partial_set(spec: str, outputs: Mapping[str, Sequence[dict[str, np.ndarray]]]) -> None:
    """Raise unless every component's outputs (component -> samples) could be written: an update of a
    golden set is all or nothing. One refused component (NaN heads from a broken checkpoint) used to
    leave the others updated, a set made from two checkpoints that no drift test could trust."""
    bad = {component: found for component, samples in outputs.items() if (found := _non_finite(samples, "output"))}
    if bad:
        where = "; ".join(f"{component}: {', '.join(found[:2])}{' …' if len(found) > 2 else ''}" for component, found in bad.items())
        raise ArtifactError(f"the golden outputs of {spec} were not written, none of them: an update is all or nothing, and "
                            f"{', '.join(bad)} hold NaN or Inf ({where}). A reference must be finite: check the checkpoint "
                            "(--awml-checkpoint) and the data the model was given")


class GoldenStore:
    def __init__(self, root: Path, lock_timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.root = Path(root)
        self.lock_timeout_s = lock_timeout_s

    def paths(self, spec: str, component: str) -> tuple[Path, Path]:
        """The pair's files, each refused when it (or its folder) is a symbolic link: never followed."""
        folder = self.root / spec
        return no_link(folder / f"{component}.npz", self.root), no_link(folder / f"{component}.json", self.root)

    def _set_lock(self, spec: str, what: str):
        """The lock of one spec's golden set (its folder), held while a pair is read or written."""
        self.root.mkdir(parents=True, exist_ok=True)
        return held(self.root / f"{spec}.lock", f"{what} the golden outputs of {spec}", self.lock_timeout_s, self.root)

    def read(self, spec: str, component: str) -> Golden | None:
        """One component's golden pair, refused when its set mixes updates made from other weights or
        seeds: two overlapping ``--awml-update-golden`` runs write a set pair by pair, and a set half
        from each would make drift a false alarm (or hide one)."""
        with self._set_lock(spec, "reading"):
            found = self._read(spec, component)
            if found is not None:
                self._check_set(spec)
            return found

    def _check_set(self, spec: str) -> None:
        made: dict[tuple[Any, Any], list[str]] = {}  # (seed, weights) -> the components written with them
        for meta_path in sorted((self.root / spec).glob("*.json")):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue  # its own read says what is wrong with it
            if isinstance(meta, dict):
                made.setdefault((meta.get("seed"), meta.get("weights_sha256")), []).append(meta_path.stem)
        if len(made) > 1:
            parts = "; ".join(f"{', '.join(names)} from seed {seed}, weights {str(sha)[:12]}" for (seed, sha), names in made.items())
            raise ArtifactError(f"the golden set of {spec} mixes updates ({parts}): two --awml-update-golden runs overlapped, "
                                "or one updated only part of the set after the weights changed. Update the whole set in one run: "
                                f"pytest --awml-spec={spec} --awml-golden={self.root} --awml-update-golden -k test_drift")

    def _read(self, spec: str, component: str) -> Golden | None:
        data_path, meta_path = self.paths(spec, component)
        if not data_path.exists() or not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict):
                raise ValueError(f"a JSON {type(meta).__name__}, not an object")
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"golden metadata {meta_path} is unreadable ({exc}): rewrite it with --awml-update-golden") from None
        actual = sha256_file(data_path)
        if meta.get("sha256") != actual:
            raise ArtifactError(f"golden file {data_path} does not match its metadata (sha256 {actual[:12]}…): "
                                "it was changed or half-written; rewrite it with --awml-update-golden")
        try:
            with np.load(data_path, allow_pickle=False) as archive:
                return Golden(_unpack(archive, "input"), _unpack(archive, "output"), meta, data_path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise ArtifactError(f"golden file {data_path} is unreadable ({type(exc).__name__}: {exc}): "
                                "rewrite it with --awml-update-golden") from None

    def write(self, spec: str, component: str, inputs, outputs, meta: dict[str, Any]) -> Path:
        with self._set_lock(spec, "writing"):
            return self._write(spec, component, inputs, outputs, meta)

    def _write(self, spec: str, component: str, inputs, outputs, meta: dict[str, Any]) -> Path:
        bad = _non_finite(outputs, "output") + _non_finite(inputs, "input")
        if bad:
            raise ArtifactError(f"the golden outputs of {spec}/{component} were not written: {', '.join(bad[:3])}"
                                f"{' …' if len(bad) > 3 else ''} hold NaN or Inf. A reference must be finite: check the "
                                "checkpoint (--awml-checkpoint) and the data the model was given")
        data_path, meta_path = self.paths(spec, component)
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {**_pack(inputs, "input"), **_pack(outputs, "output")}
        np.savez_compressed(buffer, **arrays)
        payload = buffer.getvalue()
        # paths() checked both files and the folders up to the root: each write checks the file itself again
        write_atomic(data_path, payload, what=f"the golden outputs of {spec}/{component}")
        full = {**meta, "format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(), "created": timestamp()}
        write_atomic(meta_path, json.dumps(full, indent=2, sort_keys=True).encode(), what=f"the golden metadata of {spec}/{component}")
        return data_path

    def update(self, spec: str, component: str, inputs, outputs, meta: dict[str, Any],
               tolerances: Mapping[str, Tolerance]) -> Update:
        """(Re)write the golden outputs, measuring how far the new ones are from the old ones; the old
        pair is read and the new one written under one hold of the set's lock."""
        with self._set_lock(spec, "updating"):
            old, replaced = None, ""
            try:
                old = self._read(spec, component)
            except ArtifactError as exc:  # a corrupt golden file is replaced; say so
                replaced = str(exc)
            change = {}
            if old is not None and len(old.outputs) == len(outputs):
                change = {c.output: c.max_abs for c in compare_outputs(old.outputs, outputs, tolerances)}
            path = self._write(spec, component, inputs, outputs, meta)
        return Update(path, "updated" if old is not None else "created", change, replaced)

    # -- error history ---------------------------------------------------------------------------
    def append_history(self, records: Sequence[dict[str, Any]]) -> None:
        path = no_link(self.root / HISTORY, self.root)  # appended in place: a link would take the lines anywhere
        path.parent.mkdir(parents=True, exist_ok=True)
        with held(Path(f"{path}.lock"), "appending to the error history", self.lock_timeout_s, self.root):
            self._append(path, records)

    @staticmethod
    def _append(path: Path, records: Sequence[dict[str, Any]]) -> None:
        try:
            with open(path, "ab+") as handle:  # a run killed mid-line must not swallow this record
                handle.seek(0, 2)
                if handle.tell():
                    handle.seek(-1, 2)
                    if handle.read(1) != b"\n":
                        handle.write(b"\n")
            with open(path, "a") as handle:
                handle.write("".join(json.dumps(record, sort_keys=True) + "\n" for record in records))
        except OSError as exc:  # a full disk: the lines already there stay (a cut line is skipped when read)
            raise write_error(path.parent, "the error history", exc) from exc

    def history(self, test_id: str, output: str) -> list[dict[str, Any]]:
        path = self.root / HISTORY
        if not path.exists():
            return []
        found = []
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut by a killed run: the rest of the history still counts
            if record.get("test_id") == test_id and record.get("output") == output:
                found.append(record)
        return found


def trend_problem(previous: Sequence[float | None], current: float | None, trend: TrendSettings) -> str | None:
    """Why ``current`` breaks the trend budget over ``previous`` runs, or None."""
    values = [v for v in previous if v is not None][-trend.window:]
    if not values or current is None:
        return None
    baseline = statistics.median(values)
    limit = trend.factor * max(baseline, trend.floor)
    if current > limit:
        return (f"error grew to {current:.3g}, over {trend.factor:g}x its baseline {baseline:.3g} "
                f"(median of the last {len(values)} run(s); limit {limit:.3g})")
    return None


def track(store: GoldenStore, test_id: str, comparisons: Sequence[OutputComparison], trend: TrendSettings | None) -> list[str]:
    """The history step of a comparison: check the trend budget against the recorded runs (when
    ``trend`` is given, i.e. ``--awml-drift-trend``), then append this run. Returns one note per
    output whose error grew past the budget."""
    notes = []
    if trend is not None:
        for c in comparisons:
            previous = [h.get("max_abs") for h in store.history(test_id, c.output)]
            problem = trend_problem(previous, c.max_abs, trend)
            if problem:
                notes.append(f"{c.output}: trend budget broken: {problem}")
    now = timestamp()
    store.append_history([{"time": now, "test_id": test_id, "output": c.output, **{f: getattr(c, f) for f in KEY_FIGURES}}
                          for c in comparisons if c.passed or not c.problem])
    return notes


def version_changes(old: dict[str, str], new: dict[str, str]) -> dict[str, list[str]]:
    return {name: [old.get(name, "?"), value] for name, value in new.items() if old.get(name) not in (None, value)}
