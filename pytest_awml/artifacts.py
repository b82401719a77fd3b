"""Content-addressed, crash-safe artifact storage.

An artifact lives at ``<root>/<spec>/<component>/<key>/<file>`` where ``key`` hashes everything the
file depends on. A build happens under a file lock (pytest-xdist workers wait for each other and
the second one reuses), writes into a temporary folder and renames into place; the manifest, written
last and also by rename, is the commit mark. A file without a manifest, whose hash no longer
matches it, or whose content its format's check refuses (a poisoned cache can carry a corrupt file
with a matching manifest) is not trusted: it is rebuilt and the run says so. Lock waits are bounded
and name the holder (:mod:`pytest_awml.locks`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from pytest_awml import progress
from pytest_awml.errors import ArtifactError
from pytest_awml.locks import DEFAULT_TIMEOUT_S, held
from pytest_awml.paths import WRITE_ERRNOS, no_link, sha256_file, write_atomic, write_error
from pytest_awml.provenance import timestamp

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class Kind(str, Enum):
    """What a stored file is: the report and the summary tell them apart by this, not by their details."""

    EXPORT = "export"  # a graph or an engine (builders.ArtifactBuilder)
    OUTPUTS = "outputs"  # one inference's outputs (stored_formats.StoredOutputs)
    WEIGHTS = "weights"  # a seeded model's weights (stored_formats.SeededWeights)


@dataclass(frozen=True)
class Artifact:
    spec: str
    component: str
    format: str
    path: Path
    sha256: str
    key: str
    reused: bool
    build_seconds: float
    rebuilt_reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)  # what the builder reported (kept in the manifest)
    kind: Kind = Kind.EXPORT


def content_key(parts: Mapping[str, Any]) -> str:
    """The key of an artifact: a hash of everything it depends on, in canonical JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


class ArtifactStore:
    """Builds each artifact once per content key, across runs and across xdist workers."""

    def __init__(self, root: Path, lock_timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.root = Path(root)
        self._lock_timeout_s = lock_timeout_s

    def get_or_build(
        self,
        *,
        spec: str,
        component: str,
        format: str,
        filename: str,
        key_parts: Mapping[str, Any],
        build: Callable[[Path], Mapping[str, Any] | None],
        verify: Callable[[Path], str | None] | None = None,
        kind: Kind = Kind.EXPORT,
    ) -> Artifact:
        """Return the artifact for ``key_parts``, calling ``build(path)`` only when none is trusted.

        What ``build`` returns (build time, engine layers, warnings…) is kept in the manifest and
        given back as ``details`` whether the file is built now or reused. ``verify(path)`` checks
        a stored file's content before it is reused (None: fine, else what is wrong with it)."""
        key = content_key({**key_parts, "format": format})
        folder = no_link(self.root / spec / component / key, self.root)  # a planted link would take reads and writes outside
        target = no_link(folder / filename)  # the folders up to the root were checked just above
        no_link(folder / MANIFEST)
        found, reason = self._trusted(folder, target, verify)
        if found:
            return Artifact(spec, component, format, target, found, key, True, 0.0, details=self._details(folder), kind=kind)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(folder.parent, f"the folder of {spec}/{component}/{format}", exc) from exc
        with held(Path(f"{folder}.lock"), f"building {spec}/{component}/{format}", self._lock_timeout_s, self.root):
            found, reason = self._trusted(folder, target, verify)  # another worker may have built it meanwhile
            if found:
                return Artifact(spec, component, format, target, found, key, True, 0.0, details=self._details(folder), kind=kind)
            if reason:
                log.warning("rebuilding %s/%s/%s: %s", spec, component, format, reason)
            for stale in folder.glob(".build-*"):  # left by a killed build; we hold the lock, so no one is using it
                shutil.rmtree(stale, ignore_errors=True)
            start = time.perf_counter()
            try:
                staging = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
            except OSError as exc:
                raise write_error(folder, f"{spec}/{component}/{format}", exc) from exc
            try:
                try:
                    # an export, an engine, seeded weights: announced (one opaque call, a minute on a full-size model);
                    # stored outputs say how far they are per series instead (inference_store)
                    with progress.Task(f"building {spec}/{component}/{format}", announce=True) if kind is not Kind.OUTPUTS \
                            else contextlib.nullcontext():
                        details = dict(build(staging / filename) or {})
                except OSError as exc:  # a full disk while the builder wrote: the stored entries stay as they were
                    if exc.errno not in WRITE_ERRNOS:
                        raise
                    raise write_error(folder, f"{spec}/{component}/{format}", exc) from exc
                built = staging / filename
                if not built.is_file():
                    raise ArtifactError(f"the builder of {spec}/{component}/{format} wrote no {filename}")
                digest = sha256_file(built)
                (folder / MANIFEST).unlink(missing_ok=True)  # uncommit before replacing the file
                os.replace(built, target)
                manifest = {"sha256": digest, "file": filename, "format": format, "key": key,
                            "key_parts": key_parts, "created": timestamp(), "details": details}
                write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            seconds = time.perf_counter() - start
            log.info("built %s/%s/%s in %.1f s", spec, component, format, seconds)
            return Artifact(spec, component, format, target, digest, key, False, seconds, reason, details, kind)

    @staticmethod
    def _details(folder: Path) -> dict[str, Any]:
        """The builder's report kept in a trusted manifest (read after ``_trusted`` accepted it)."""
        return dict(json.loads((folder / MANIFEST).read_text()).get("details") or {})

    @staticmethod
    def _trusted(folder: Path, target: Path, verify: Callable[[Path], str | None] | None = None) -> tuple[str, str]:
        """(sha256, "") when ``target`` is committed, intact and its content passes ``verify``,
        else ("", why it is not)."""
        manifest_path = folder / MANIFEST
        if not target.exists():
            return "", ("the manifest names a file that is gone" if manifest_path.exists() else "")
        if not manifest_path.exists():
            return "", "a file without a manifest was left by an interrupted build"
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            return "", f"the manifest is unreadable ({exc})"
        actual = sha256_file(target)
        if not isinstance(manifest, dict) or manifest.get("sha256") != actual:
            recorded = manifest.get("sha256") if isinstance(manifest, dict) else None
            return "", f"the file's sha256 {actual[:12]}… does not match the manifest's {str(recorded)[:12]}…"
        problem = verify(target) if verify is not None else None
        if problem:
            return "", f"its content is refused: {problem}"
        return actual, ""
