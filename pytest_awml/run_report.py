"""The JSON report's file (``--awml-report``): this run's records, written so that no run loses another's silently.

- ``--collect-only`` ran no test: it writes no report (an empty one would replace the last run's figures).
- An interrupted run (Ctrl-C) writes beside the report (``<name>.interrupted.json``): the last report whose run
  ended stays where CI reads it.
- A run that reports fewer tests than the report it replaces (``-k``, ``-x``, a narrower ``--awml-spec``…) keeps
  that one as ``<name>.previous.json`` and says so.
- Where the folder cannot be written, the report goes to the temporary folder, with a warning.

The run block says which it was: ``interrupted``, and the ``selection`` (``-k``, ``-m``, how many generated
tests were deselected and how many reported).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_awml.errors import ArtifactError
from pytest_awml.paths import write_atomic
from pytest_awml.results import Results

log = logging.getLogger(__name__)

INTERRUPTED_SUFFIX = ".interrupted.json"
PREVIOUS_SUFFIX = ".previous.json"


@dataclass(frozen=True)
class Written:
    """Where the report went (None: nowhere) and what the user should know about it."""

    path: Path | None
    notices: tuple[str, ...] = ()


def beside(path: Path, suffix: str) -> Path:
    """``report.json`` -> ``report<suffix>`` in the same folder."""
    return path.with_name(path.stem + suffix)


def test_ids(report: Mapping[str, Any]) -> set[str]:
    """Every test a report has a record of."""
    return {record["test_id"] for key, records in report.items() if key != "run" and isinstance(records, list)
            for record in records if isinstance(record, dict) and isinstance(record.get("test_id"), str)}


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("the report at %s could not be read (%s): it is kept as it is replaced", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def write(results: Results, path: Path, run: dict, *, interrupted: bool) -> Written:
    """Write ``results`` as this run's report (see the module's docstring for where and why)."""
    report = results.as_json(run)
    data = json.dumps(report, indent=2, sort_keys=False, default=str).encode()
    if interrupted:
        partial = beside(path, INTERRUPTED_SUFFIX)
        return _write(partial, data, [f"the run was interrupted: its partial report is at {partial}; {path} is left as "
                                      "the last run that ended wrote it"])
    previous = _read(path)
    if previous is None:
        return _write(path, data, [])
    missing = test_ids(previous) - test_ids(report)
    if previous and not missing:
        return _write(path, data, [])
    kept = beside(path, PREVIOUS_SUFFIX)
    try:
        os.replace(path, kept)
    except OSError as exc:  # the folder went read-only: _write falls back, and says so
        log.warning("could not keep the previous report as %s: %s", kept, exc)
        return _write(path, data, [])
    what = (f"it held records of {len(missing)} test(s) this run did not report, e.g. {min(missing)}" if missing
            else "it could not be read")
    return _write(path, data, [f"this run's report replaced {path}, which covered more ({what}): the previous one is "
                               f"kept at {kept}"])


def _write(path: Path, data: bytes, notices: list[str]) -> Written:
    """Write ``data`` to ``path``; where that fails (the folder went read-only or away during the run), to the
    temporary folder, with a warning: a run's figures are never lost."""
    try:
        write_atomic(path, data, what="the JSON report")  # a failed write leaves the previous report as it was
    except (OSError, ArtifactError) as exc:
        fallback = Path(tempfile.gettempdir()) / f"awml-report-{os.getpid()}.json"
        try:
            write_atomic(fallback, data, what="the JSON report")
            written, where = fallback, f"it is at {fallback}"
        except ArtifactError as again:  # the temporary folder full too: say so, end the run normally
            written, where = None, f"nor to {fallback} ({again})"
        problem = f"the JSON report could not be written to {path} ({getattr(exc, 'strerror', None) or exc}); {where}"
        log.warning("%s", problem)
        return Written(written, (*notices, problem))
    return Written(path, tuple(notices))
