"""The session cache (pytest_awml.workspace): each thing made once, deliberate failures remembered."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import toy
from pytest_awml.artifacts import ArtifactStore
from pytest_awml.builders import ArtifactBuilder
from pytest_awml.device import REFERENCE
from pytest_awml.errors import ExportError, SpecError
from pytest_awml.limits import LatencySettings
from pytest_awml.spec import FedBy, validate
from pytest_awml.workspace import Workspace
from pytest_awml import latency_sources, parity_gate


class Broken(ArtifactBuilder):
    format = "onnx"

    def __init__(self) -> None:
        self.calls = 0

    def filename(self, component):
        return "x"

    def key_parts(self, context):
        return {}

    def write(self, context, path):
        self.calls += 1
        raise ExportError(context.label, "export", "boom")


def test_a_failed_export_fails_every_test_that_needs_it_without_exporting_again(tmp_path):
    plan = toy.plan(tmp_path)
    broken = Broken()
    plan.builders.register(broken, replace=True)
    workspace = Workspace(plan, ArtifactStore(tmp_path))
    component = toy.SPEC.components[0]
    for _ in range(2):
        with pytest.raises(ExportError, match="boom"):
            workspace.artifact(toy.SPEC, component, "onnx")
    with workspace.collector.collecting() as produced:
        assert broken.calls == 1 and parity_gate.onnx_or_none(workspace, toy.SPEC, component) is None
    assert produced.builds == []


def test_a_same_run_baseline_is_measured_once_or_taken_from_a_test(tmp_path):
    workspace = Workspace(toy.plan(tmp_path), ArtifactStore(tmp_path))
    enc = toy.SPEC.components[0]
    settings = LatencySettings(rounds=2, warmup_rounds=0)
    measured = latency_sources.p50(workspace, toy.SPEC, enc, REFERENCE.id, settings)
    assert measured > 0 and latency_sources.p50(workspace, toy.SPEC, enc, REFERENCE.id, settings) == measured
    latency_sources.remember_p50(workspace, toy.SPEC, enc, REFERENCE, 123.0)
    assert latency_sources.p50(workspace, toy.SPEC, enc, REFERENCE.id, settings) == 123.0
    assert latency_sources.baseline_of(workspace, "test_latency[x]") is None  # no --awml-latency-baseline
    workspace.close()


def test_a_component_fed_by_another_reads_its_reference_outputs_and_never_runs_it_again(tmp_path):
    """The head's inputs come from the encoder's reference outputs, the very ones the encoder's parity reads: one
    inference per sample in the ledger, and the standalone ``make_inputs`` (which runs the encoder) is not called."""
    enc, head = toy.SPEC.components

    def standalone(model, sample):
        raise AssertionError("make_inputs ran: the encoder would run a second time")

    fed = dataclasses.replace(head, make_inputs=standalone,
                              fed_by=FedBy("enc", lambda model, sample, outputs: {"f": torch.from_numpy(outputs["y"][:1])}))
    spec = dataclasses.replace(toy.SPEC, components=(enc, fed))
    workspace = Workspace(toy.plan(tmp_path, specs=(spec,)), ArtifactStore(tmp_path))
    with workspace.collector.collecting() as produced:
        references = workspace.reference(spec, enc)
        inputs = workspace.inputs(spec, fed)
    model = workspace.model(spec).model
    with torch.no_grad():
        expected = [head.make_inputs(model, sample)["f"].numpy() for sample in workspace.model(spec).samples]
    assert len(inputs) == 2 and all(np.array_equal(i["f"], e) for i, e in zip(inputs, expected))
    assert all(np.array_equal(i["f"], r["y"][:1]) for i, r in zip(inputs, references))
    assert [(e.component, e.target) for e in produced.inferences] == [("enc", REFERENCE.id)] * 2


@pytest.mark.parametrize("upstream, problem", [("nope", "names 'nope', which is not a component beside it"),
                                               ("head", "leads back to 'head'")])
def test_fed_by_must_name_another_component_without_a_loop(upstream, problem):
    enc, head = toy.SPEC.components
    fed = dataclasses.replace(head, fed_by=FedBy(upstream, lambda model, sample, outputs: {}))
    with pytest.raises(SpecError, match=problem):
        validate(dataclasses.replace(toy.SPEC, components=(enc, fed)))
    looped = dataclasses.replace(enc, fed_by=FedBy("head", lambda model, sample, outputs: {}))
    with pytest.raises(SpecError, match="leads back to 'enc'"):
        validate(dataclasses.replace(toy.SPEC, components=(looped, dataclasses.replace(head, fed_by=FedBy("enc", lambda m, s, o: {})))))
