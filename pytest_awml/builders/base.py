"""What an artifact builder is, what it may use, and the registry of builders by format.

A builder owns its format's whole chain, like Polygraphy's loaders: what the file depends on (its
key), what it is made from (the model, or another artifact: an engine from the ONNX file) and how
it is written. Everything it may use arrives in a :class:`BuildContext` whose pieces are fetched,
and built, only when asked for. Storage is the :class:`~pytest_awml.artifacts.ArtifactStore`'s:
locking across xdist workers, reuse by content key, the manifest, the crash-safe rename.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_awml.artifacts import Artifact, ArtifactStore
from pytest_awml.device import Device
from pytest_awml.errors import BackendUnavailable
from pytest_awml.registry import Registry

if TYPE_CHECKING:
    from pytest_awml.models import LoadedModel
    from pytest_awml.spec import Component, ModelSpec


@dataclass(frozen=True)
class BuildContext:
    """One component's ingredients, each a callable so that a builder pays only for what it uses.

    ``device`` is the device this process runs targets on (device-bound formats build there);
    ``artifact(format)`` is another artifact of the same component, built first if need be.
    """

    spec: ModelSpec
    component: Component
    device: Device
    store: ArtifactStore
    model: Callable[[], LoadedModel]
    inputs: Callable[[], list[dict[str, np.ndarray]]]
    artifact: Callable[[str], Artifact]

    @property
    def label(self) -> str:
        """``spec/component``: how exporters name what they export in their errors."""
        return f"{self.spec.name}/{self.component.name}"


class ArtifactBuilder(ABC):
    """Makes the files of one format. ``build`` is the lifecycle; subclasses fill in its steps."""

    format: str

    def unavailable_reason(self, device: Device) -> str | None:
        """Why this format cannot be built here for a run on ``device`` (a missing library, a
        device-bound format without its device), or None."""
        return None

    def plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        """Why a graph carrying the TensorRT plugin ops ``plugins`` cannot be built into this format here,
        or None. ONNX files carry plugin nodes as they are; TensorRT builders override this."""
        return None

    @abstractmethod
    def filename(self, component: Component) -> str: ...

    @abstractmethod
    def key_parts(self, context: BuildContext) -> dict[str, Any]:
        """Everything the file depends on: a change to any part builds a new file."""

    @abstractmethod
    def write(self, context: BuildContext, path: Path) -> Mapping[str, Any] | None:
        """Write the file at ``path`` (a staging path; the store moves it into place); what it returns
        (build figures, warnings) is kept with the artifact and reported as its ``details``."""

    def verify(self, path: Path) -> str | None:
        """What is wrong with a stored file's content (checked before it is reused), or None.

        The manifest's hash proves the file is the one written with it, not that either is sound: a
        cache restored from elsewhere can carry both corrupted. Formats that can be checked cheaply
        without a device override this; the default trusts the hash."""
        return None

    def build(self, context: BuildContext) -> Artifact:
        """The artifact for ``context``: reused when one with the same key is stored, else written."""
        reason = self.unavailable_reason(context.device)
        if reason:
            raise BackendUnavailable(reason)
        return context.store.get_or_build(spec=context.spec.name, component=context.component.name, format=self.format,
                                          filename=self.filename(context.component), key_parts=self.key_parts(context),
                                          build=lambda path: self.write(context, path), verify=self.verify)


class BuilderRegistry(Registry[ArtifactBuilder]):
    kind = "artifact format"
    entry_type = ArtifactBuilder

    def name_of(self, entry: ArtifactBuilder) -> str:
        return entry.format
