"""The root of pytest-awml's exception hierarchy.

It lives here, in the bottom package, so that exporters can raise it without importing the
plugin; ``pytest_awml.errors`` adds the plugin-level subclasses and re-exports all of them.
"""

from __future__ import annotations


class AwmlError(Exception):
    """Base of every error pytest-awml raises on purpose: the message says what to do."""


class ExportError(AwmlError):
    """An export step failed; the message names the component and the step."""

    def __init__(self, component: str, step: str, detail: str) -> None:
        self.component = component
        self.step = step
        self.detail = detail
        super().__init__(f"exporting {component!r} failed at step {step!r}: {detail}")


class BackendUnavailable(AwmlError):
    """A backend cannot run here (library missing, no such device, unsupported precision)."""


class ArtifactError(AwmlError):
    """An artifact on disk cannot be trusted or written."""
