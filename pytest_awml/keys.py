"""The plugin's typed stash keys, in a module that imports nothing of the plugin at run time, so
that hooks, fixtures and the collector can all reach the session's state without importing each
other (the types are for type checkers only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # named in the keys' type arguments, as strings (a run-time import would be a cycle): linters see no use
    from pytest_awml.cases import Plan  # noqa: F401
    from pytest_awml.results import Results  # noqa: F401
    from pytest_awml.run_report import Written  # noqa: F401
    from pytest_awml.terminal import TerminalNotes  # noqa: F401

PLAN = pytest.StashKey["Plan"]()
"""The resolved plan; present only when ``--awml-spec`` is given (the plugin is inert without)."""

RESULTS = pytest.StashKey["Results"]()
"""The records the tests attach, gathered for the JSON report and the terminal summary."""

STARTED = pytest.StashKey[float]()
"""When the run started (``time.time()``), for the report's ``run.started`` and ``duration_s``."""

NOTES = pytest.StashKey["list[TerminalNotes]"]()
"""The logging handlers that show lock waits and long work's progress on the terminal during a test (removed at unconfigure)."""

WRITTEN = pytest.StashKey["Written"]()
"""Where this run's JSON report went and what the summary should say about it (absent: none was written)."""
