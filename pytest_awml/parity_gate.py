"""The gate a parity or drift test ends in: record the comparisons, add them to the error history, judge them,
and only on a failure leave the evidence (the forensics folder) and raise.

What is judged and what is noted are kept apart: the verdict is the finding, so a history or a failure folder
that cannot be written (a full disk, a link in the folder) is said beside it, never instead of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pytest_awml import forensics, golden, localize, results
from pytest_awml.builders.onnx import FORMAT as ONNX
from pytest_awml.compare import parity_failure
from pytest_awml.device import REFERENCE, Target
from pytest_awml.divergence import Localization
from pytest_awml.errors import ArtifactError, AwmlError, ToleranceExceeded
from pytest_awml.limits import Tolerance
from pytest_awml.localize import Skipped
from pytest_awml.records import DriftRecord, ParityRecord

if TYPE_CHECKING:
    import pytest

    from pytest_awml.spec import Component, ModelSpec
    from pytest_awml.workspace import Workspace


@dataclass(frozen=True)
class Evidence:
    """Both sides of a comparison, as a person reproducing a failure needs them: the data, the
    names of the sides, the tolerances ``reproduce.sh`` replays with, and a note for the message."""

    inputs: Sequence[Mapping[str, np.ndarray]]
    reference: Sequence[Mapping[str, np.ndarray]]
    outputs: Sequence[Mapping[str, np.ndarray]]
    reference_name: str
    test_name: str
    replay_tolerances: Mapping[str, Tolerance]
    note: str = ""
    reference_target: Target = REFERENCE  # the side whose PyTorch module a failure's layers are read from
    localized: Localization | Skipped | None = None  # a failure's localization made by the test itself (drift's)


def gate(request: pytest.FixtureRequest, workspace: Workspace, spec: ModelSpec, component: Component, target: Target,
         records: Sequence[ParityRecord | DriftRecord], evidence: Evidence) -> None:
    """Record ``component``'s comparisons, add them to the history, judge them; on a failure name where it starts
    (:mod:`pytest_awml.localize`), leave the forensics and raise."""
    options = workspace.options
    comparisons = [r.comparison for r in records]
    found: Localization | Skipped | None = None
    if not all(c.passed for c in comparisons):  # where it starts, before the records go out
        found = evidence.localized or localize.first_divergence(
            workspace, spec, component, target, evidence.inputs, evidence.reference, evidence.outputs,
            evidence.replay_tolerances, evidence.reference_target)
        if found.first is not None:
            records = [r if r.comparison.passed else replace(r, first_divergence=found.first) for r in records]
    results.attach_comparisons(request.node, records)
    test_id = request.node.nodeid
    notes, unrecorded = [], ""
    if options.golden is not None:
        trend = component.trend if options.drift_trend else None
        try:
            notes = golden.track(golden.GoldenStore(options.golden, options.lock_timeout_s), test_id, comparisons, trend)
        except ArtifactError as exc:  # a full disk, a link in the golden folder: said beside the verdict, never instead of it
            unrecorded = f"\nThe error history was not updated: {exc}"
    message = parity_failure(comparisons, notes, subject=evidence.test_name, reference=evidence.reference_name,
                             samples=len(evidence.reference))
    if message is None:
        if unrecorded:
            raise ArtifactError(f"{evidence.test_name} is within tolerance of {evidence.reference_name}.{unrecorded}")
        return
    try:  # the parity verdict is the finding: a failure folder that cannot be written is noted, not raised instead
        folder = forensics.write_failure(options.artifacts, test_id, inputs=evidence.inputs, reference=evidence.reference,
                                         outputs=evidence.outputs, reference_name=evidence.reference_name,
                                         test_name=evidence.test_name, tolerances=evidence.replay_tolerances,
                                         onnx_path=onnx_or_none(workspace, spec, component),
                                         localization=found if isinstance(found, Localization) else None)
        request.node.user_properties.append(("awml.failure_folder", str(folder)))
        evidence_line = f"Inputs, outputs and reproduce.sh: {folder}"
    except ArtifactError as exc:
        evidence_line = f"No failure folder: {exc}"
    note = f"\n{evidence.note}" if evidence.note else ""
    where = f"\n{found.line()}" if found is not None else ""
    raise ToleranceExceeded(f"{message}{where}\n{evidence_line}{note}{unrecorded}")


def onnx_or_none(workspace: Workspace, spec: ModelSpec, component: Component) -> Path | None:
    """The component's ONNX graph for the failure folder, or None when it cannot be built (forensics go on without it)."""
    try:
        return workspace.artifact(spec, component, ONNX).path
    except AwmlError:
        return None
