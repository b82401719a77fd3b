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
def run_awml(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Run the plugin in a subprocess (a fresh torch per run) in ``pytester``'s folder."""
    # When the project's own tests run under xdist, its variables would make pytest-benchmark in the
    # child think it is an xdist worker too and switch itself off.
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str, default_backends: bool = False) -> AwmlRun:
        """``default_backends=False`` pins the backends to pytorch,onnxruntime so that outcome counts do
        not depend on what else (TensorRT, onnxruntime-gpu) this machine has."""
        if not default_backends and not any(a.startswith("--awml-backends") for a in args):
            args = (*args, "--awml-backends=pytorch,onnxruntime")
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", *args)
        return AwmlRun(result, pytester.path / ".awml" / "artifacts" / "awml-report.json")

    return run
