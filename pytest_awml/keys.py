"""The plugin's typed stash keys, in a module that imports nothing of the plugin at run time, so
that hooks, fixtures and the collector can all reach the session's state without importing each
other (the types are for type checkers only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_awml.cases import Plan
    from pytest_awml.results import Results
    from pytest_awml.terminal import TerminalNotes

PLAN = pytest.StashKey["Plan"]()
"""The resolved plan; present only when ``--awml-spec`` is given (the plugin is inert without)."""

RESULTS = pytest.StashKey["Results"]()
"""The records the tests attach, gathered for the JSON report and the terminal summary."""

STARTED = pytest.StashKey[float]()
"""When the run started (``time.time()``), for the report's ``run.started`` and ``duration_s``."""

NOTES = pytest.StashKey["TerminalNotes"]()
"""The logging handler that shows lock waits on the terminal during a test (removed at unconfigure)."""
