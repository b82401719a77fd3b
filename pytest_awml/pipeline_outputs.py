"""A pipeline's outputs for its parity and metric tests: computed once per session and target, with every host
inference going through the session's one door (:meth:`~pytest_awml.workspace.Workspace.run`), so that an input a
component's parity test already ran is not run again, and its device calls on the runners' own path (the one its
latency rounds time).

A pipeline calls its runners from inside its own code; a runner that had to ask the session for an inference would be
a callback up into the caller. Instead each host call is answered from what the session already holds
(:class:`~pytest_awml.runners.sharing.Held`); a call the session does not hold yet stops the frame
(:class:`~pytest_awml.runners.sharing.Missing`), is resolved here, and the frame runs again until it runs through.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, auto
from typing import TYPE_CHECKING, Any

from pytest_awml.device import REFERENCE, Target
from pytest_awml.errors import BackendError
from pytest_awml.memo import key
from pytest_awml.pipeline import Pipeline, PipelineName
from pytest_awml.runners.sharing import Held, Missing, SharingRunner
from pytest_awml.spec import ModelSpec

if TYPE_CHECKING:
    from pytest_awml.workspace import Workspace

__all__ = ["outputs", "reference"]


class _Slot(Enum):
    """What this module keeps in the workspace's memo."""

    OUTPUTS = auto()


def outputs(workspace: Workspace, spec: ModelSpec, target: Target, name: PipelineName = PipelineName.SPEC) -> list:
    """The pipeline's outputs on ``target``, one per sample, computed once and shared by the pipeline parity and metric
    tests (the reference's: ``target`` ``REFERENCE``)."""
    def compute() -> list:
        held = {c.name: Held() for c in spec.components_of(name)}
        runners = {c.name: SharingRunner(c.name, workspace.runner(spec, c, target), held[c.name]) for c in spec.components_of(name)}
        pipeline = spec.pipeline_named(name).build(workspace.model(spec).model, runners)
        return [_frame(workspace, spec, target, pipeline, held, sample) for sample in workspace.model(spec).samples]

    return workspace.memo.get(key(_Slot.OUTPUTS, spec.name, name, target), compute)


def reference(workspace: Workspace, spec: ModelSpec, name: PipelineName = PipelineName.SPEC) -> list:
    """Reference pipeline outputs (every component on PyTorch CPU fp32), one per sample."""
    return outputs(workspace, spec, REFERENCE, name)


def _frame(workspace: Workspace, spec: ModelSpec, target: Target, pipeline: Pipeline, held: Mapping[str, Held], sample: Any) -> Any:
    """One sample through a pipeline of sharing runners: each pass that stops at an input the session does not hold yet
    is resolved through the workspace and the frame runs again, until it runs through."""
    resolved = None
    while True:
        for answers in held.values():
            answers.read.clear()
        try:
            return pipeline(sample).outputs
        except Missing as missing:
            if resolved is not None and resolved[1] not in held[resolved[0]].read:
                raise BackendError(f"{spec.name}: the {target.id} pipeline fed {resolved[0]} other inputs when it ran the same "
                                   "sample again: its stages before that component are not deterministic") from None
            found = workspace.run(spec, spec.component(missing.component), target, missing.inputs, digest=missing.digest)
            held[missing.component].add(missing.digest, found)
            resolved = (missing.component, missing.digest)
