"""Session fixtures: the plan, the collector of per-test records, the inference store, and the session
cache built on them.

Registered by the plugin only when ``--awml-spec`` is given; unregistered at unconfigure.
"""

from __future__ import annotations

import pytest

from pytest_awml.artifacts import ArtifactStore
from pytest_awml.cases import Plan
from pytest_awml.inference_store import InferenceStore
from pytest_awml.keys import PLAN
from pytest_awml.produced import Collector
from pytest_awml.workspace import Workspace


@pytest.fixture(scope="session")
def awml_plan(request: pytest.FixtureRequest) -> Plan:
    """The resolved plan: options, specs, backends, builders and targets of this run."""
    return request.config.stash[PLAN]


@pytest.fixture(scope="session")
def awml_artifacts(awml_plan: Plan) -> ArtifactStore:
    """The artifact store every kept file goes through: exports, stored outputs, seeded weights."""
    return ArtifactStore(awml_plan.options.artifacts, awml_plan.options.lock_timeout_s)


@pytest.fixture(scope="session")
def awml_collector() -> Collector:
    """Hands what the session makes to the test collecting it (``suite.awml_produced``)."""
    return Collector()


@pytest.fixture(scope="session")
def awml_inferences(awml_plan: Plan, awml_artifacts: ArtifactStore, awml_collector: Collector) -> InferenceStore:
    """Inferences once per session, kept across runs, replays verified. Under xdist the workers share
    them through the artifact store, as they share exports."""
    return InferenceStore(awml_artifacts, awml_collector, rerun_backends=awml_plan.options.rerun_backends)


@pytest.fixture(scope="session")
def awml_workspace(awml_plan: Plan, awml_artifacts: ArtifactStore, awml_inferences: InferenceStore, awml_collector: Collector):
    """Models, samples, artifacts, runners and pipelines, each built once per session; the runners are
    closed when the session ends."""
    workspace = Workspace(awml_plan, awml_artifacts, awml_inferences, awml_collector)
    yield workspace
    workspace.close()


class NoBenchmark:
    """Registered only where pytest-benchmark is not loaded (``-p no:benchmark``, not installed): its
    ``benchmark`` fixture as a skip that says why, instead of pytest's "fixture not found" error."""

    @pytest.fixture
    def benchmark(self):
        pytest.skip("pytest-benchmark is not loaded (-p no:benchmark, or not installed): no latency measured")
