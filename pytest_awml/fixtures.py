"""Session fixtures: they own the artifact store and the workspace built on it.

Registered by the plugin only when ``--awml-spec`` is given.
"""

from __future__ import annotations

import pytest

from pytest_awml.artifacts import ArtifactStore


@pytest.fixture(scope="session")
def awml_plan(request):
    """The resolved plan: options, specs, backends and targets of this run."""
    from pytest_awml.plugin import PLAN

    return request.config.stash[PLAN]


@pytest.fixture(scope="session")
def awml_workspace(awml_plan):
    """Models, samples, references, artifacts and runners, each built once per session."""
    from pytest_awml.workspace import Workspace

    workspace = Workspace(awml_plan, ArtifactStore(awml_plan.options.artifacts))
    yield workspace
    workspace.close()
