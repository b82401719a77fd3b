"""Hooks pytest-awml offers to other plugins and conftest files."""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_awml_add_backends(registry) -> None:
    """Register extra backends: call ``registry.register(MyBackend())``.

    ``registry`` is a :class:`pytest_awml.backends.BackendRegistry`; a backend is a
    :class:`pytest_awml.runners.Backend`.
    """
