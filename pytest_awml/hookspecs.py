"""Hooks pytest-awml offers to other plugins and conftest files."""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_awml_add_backends(registry) -> None:
    """Register extra backends: call ``registry.register(MyBackend())``.

    ``registry`` is a :class:`pytest_awml.backends.BackendRegistry`; a backend is a
    :class:`pytest_awml.runners.Backend`. A backend that runs a new artifact format needs a builder
    for it (:func:`pytest_awml_add_builders`).
    """


@pytest.hookspec
def pytest_awml_add_builders(registry) -> None:
    """Register extra artifact formats: call ``registry.register(MyBuilder())``.

    ``registry`` is a :class:`pytest_awml.builders.BuilderRegistry`; a builder is a
    :class:`pytest_awml.builders.ArtifactBuilder` that names its ``format``.
    """
