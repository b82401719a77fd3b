"""Session fixtures: the plan, and the session cache built on it.

Registered by the plugin only when ``--awml-spec`` is given; unregistered at unconfigure.
"""

from __future__ import annotations

import pytest

from pytest_awml.artifacts import ArtifactStore
from pytest_awml.cases import Plan
from pytest_awml.keys import PLAN
from pytest_awml.workspace import Workspace


@pytest.fixture(scope="session")
def awml_plan(request: pytest.FixtureRequest) -> Plan:
    """The resolved plan: options, specs, backends, builders and targets of this run."""
    return request.config.stash[PLAN]


@pytest.fixture(scope="session")
def awml_workspace(awml_plan: Plan):
    """Models, samples, references, artifacts, runners and pipelines, each built once per session;
    the runners are closed when the session ends. Under xdist the workers share inferences through the
    artifact store, as they share exports."""
    workspace = Workspace(awml_plan, ArtifactStore(awml_plan.options.artifacts, awml_plan.options.lock_timeout_s))
    yield workspace
    workspace.close()


class NoBenchmark:
    """Registered only where pytest-benchmark is not loaded (``-p no:benchmark``, not installed): its
    ``benchmark`` fixture as a skip that says why, instead of pytest's "fixture not found" error."""

    @pytest.fixture
    def benchmark(self):
        pytest.skip("pytest-benchmark is not loaded (-p no:benchmark, or not installed): no latency measured")
