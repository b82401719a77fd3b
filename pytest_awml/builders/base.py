"""What an artifact builder is, what it may use, and the registry of builders by format.

A builder owns its format's whole chain, like Polygraphy's loaders: what the file depends on (its
key), what it is made from and how it is written. What it is made from it declares (``requires``: the
model, the inputs, other artifact formats: an engine requires the ONNX file); the caller resolves those
first and hands the values over in a :class:`BuildContext`, so a builder never calls back into whoever
asked for the file. Storage is the :class:`~pytest_awml.artifacts.ArtifactStore`'s:
locking across xdist workers, reuse by content key, the manifest, the crash-safe rename.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_awml.artifacts import Artifact, ArtifactStore
from pytest_awml.device import Device
from pytest_awml.errors import ArtifactError, BackendUnavailable
from pytest_awml.quantization import Int8Settings
from pytest_awml.registry import Registry

if TYPE_CHECKING:
    from pytest_awml.models import LoadedModel
    from pytest_awml.spec import Component, ModelSpec


class Ingredient(Enum):
    """What a builder may require beside other artifact formats (named by their format string)."""

    MODEL = "model"  # the loaded model (its weights' hash keys the file)
    INPUTS = "inputs"  # the component's inputs for the session's samples (an export's example)
    CALIBRATION = "int8-calibration"  # the component's int8 settings and its inputs for their calibration samples


@dataclass(frozen=True)
class Calibrated:
    """What an int8 graph is calibrated with: the settings in force, the inputs, and where they came from."""

    settings: Int8Settings
    inputs: Sequence[Mapping[str, np.ndarray]]
    source: str  # "seeded samples, seed N" or the --awml-data files: said in the artifact's details


@dataclass(frozen=True)
class BuildContext:
    """One component's ingredients, resolved by the caller before the build: the pieces the builder's
    ``requires`` names are set, the others left empty.

    ``device`` is the device this process runs targets on (device-bound formats build there);
    ``artifacts`` holds the other artifacts of the same component that the builder requires, by format;
    ``calibration`` the component's int8 settings (the run's overrides applied) and its inputs for their samples.
    """

    spec: ModelSpec
    component: Component
    device: Device
    store: ArtifactStore
    loaded: LoadedModel | None = None
    inputs: Sequence[Mapping[str, np.ndarray]] = ()
    artifacts: Mapping[str, Artifact] = field(default_factory=dict)
    calibration: Calibrated | None = None

    @property
    def model(self) -> LoadedModel:
        """The loaded model (a builder that requires ``Ingredient.MODEL``)."""
        if self.loaded is None:
            raise ArtifactError(f"{self.label}: the builder read the model without requiring it: add Ingredient.MODEL to its requires")
        return self.loaded

    @property
    def calibrated(self) -> Calibrated:
        """The int8 settings and calibration inputs (a builder that requires ``Ingredient.CALIBRATION``)."""
        if self.calibration is None:
            raise ArtifactError(f"{self.label}: the builder read calibration data without requiring it: add Ingredient.CALIBRATION to its requires")
        return self.calibration

    def artifact(self, fmt: str) -> Artifact:
        """The required artifact of format ``fmt``."""
        if fmt not in self.artifacts:
            raise ArtifactError(f"{self.label}: the builder read the {fmt} artifact without requiring it: add {fmt!r} to its requires")
        return self.artifacts[fmt]

    @property
    def label(self) -> str:
        """``spec/component``: how exporters name what they export in their errors."""
        return f"{self.spec.name}/{self.component.name}"


class ArtifactBuilder(ABC):
    """Makes the files of one format. ``build`` is the lifecycle; subclasses fill in its steps."""

    format: str
    requires: tuple[str | Ingredient, ...] = ()  # artifact formats (built first) and ingredients it is made from

    def required_formats(self) -> tuple[str, ...]:
        """The artifact formats this builder's file is made from, which the caller builds first."""
        return tuple(need for need in self.requires if not isinstance(need, Ingredient))

    def onnx_graph(self) -> str | None:
        """The format of the ONNX graph this file is, or is compiled from: the graph a failed parity test's layers
        are localized on (:mod:`pytest_awml.localize`); None for a file that is no graph and made from none."""
        return None

    def unavailable_reason(self, device: Device) -> str | None:
        """Why this format cannot be built here for a run on ``device`` (a missing library, a
        device-bound format without its device), or None."""
        return None

    def plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        """Why a graph carrying the TensorRT plugin ops ``plugins`` cannot be built into this format here,
        or None. ONNX files carry plugin nodes as they are; TensorRT builders override this."""
        return None

    def parser_plugins_unavailable(self, plugins: tuple[str, ...]) -> str | None:
        """Why a graph whose standard ops TensorRT's parser builds from its plugin library's creators ``plugins``
        (``Component.parser_plugins``) cannot be built into this format here, or None: only engines need them."""
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

    def require_available(self, device: Device) -> None:
        """Raise :class:`BackendUnavailable` when this format cannot be built here: a caller checks it before it
        resolves what the builder requires (no ONNX export for an engine that cannot be built)."""
        reason = self.unavailable_reason(device)
        if reason:
            raise BackendUnavailable(reason)

    def build(self, context: BuildContext) -> Artifact:
        """The artifact for ``context``: reused when one with the same key is stored, else written."""
        self.require_available(context.device)
        return context.store.get_or_build(spec=context.spec.name, component=context.component.name, format=self.format,
                                          filename=self.filename(context.component), key_parts=self.key_parts(context),
                                          build=lambda path: self.write(context, path), verify=self.verify)


class BuilderRegistry(Registry[ArtifactBuilder]):
    kind = "artifact format"
    entry_type = ArtifactBuilder

    def name_of(self, entry: ArtifactBuilder) -> str:
        return entry.format
