"""Root conftest: helpers for the project's own tests.

Keep it free of ``pytest_plugins`` and of side effects: in an editable install this file sits
above ``pytest_awml/suite.py``, so pytest also loads it when a user runs ``pytest --awml-spec``
from another folder. pytester is enabled through ``-p pytester`` in pyproject.toml instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


class AwmlRun:
    """One ``pytest --awml-spec`` run in a pytester folder, with its JSON report parsed."""

    def __init__(self, result: pytest.RunResult, report: Path) -> None:
        self.result = result
        self.report = json.loads(report.read_text()) if report.exists() else None
        self.text = result.stdout.str() + result.stderr.str()


@pytest.fixture
def run_awml(pytester: pytest.Pytester):
    """Run the plugin in a subprocess (a fresh torch per run) in ``pytester``'s folder."""

    def run(*args: str) -> AwmlRun:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", *args)
        return AwmlRun(result, pytester.path / ".awml" / "artifacts" / "awml-report.json")

    return run
