"""The session cache (pytest_awml.workspace): each thing made once, deliberate failures remembered."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import toy
from pytest_awml.artifacts import ArtifactStore
from pytest_awml.builders import ArtifactBuilder
from pytest_awml.device import REFERENCE, Target
from pytest_awml.errors import AwmlError, ExportError, SpecError
from pytest_awml.limits import LatencySettings
from pytest_awml.spec import FedBy, validate
from pytest_awml import latency_sources, workspace as workspace_module
from pytest_awml.workspace import OUTPUTS_FORMAT, Memo, Workspace


def test_memo_makes_once_and_keeps_deliberate_failures():
    memo, calls = Memo(), []
    assert memo.get("a", lambda: calls.append(1) or 42) == 42 == memo.get("a", lambda: calls.append(1) or 0)
    assert calls == [1]

    def fail():
        calls.append(2)
        raise AwmlError("no")

    for _ in range(2):
        with pytest.raises(AwmlError, match="no"):
            memo.get("b", fail)
    assert calls == [1, 2]  # raised again, not made again

    def flaky():
        calls.append(3)
        raise OSError("transient")

    for _ in range(2):
        with pytest.raises(OSError):
            memo.get("c", flaky)
    assert calls == [1, 2, 3, 3]
    memo.put("c", "set")
    assert memo.get("c", flaky) == "set"


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
    assert broken.calls == 1 and workspace.artifact_path_or_none(toy.SPEC, component, "onnx") is None
    assert workspace.drain_builds() == []


def test_a_same_run_baseline_is_measured_once_or_taken_from_a_test(tmp_path):
    workspace = Workspace(toy.plan(tmp_path), ArtifactStore(tmp_path))
    enc = toy.SPEC.components[0]
    settings = LatencySettings(rounds=2, warmup_rounds=0)
    measured = latency_sources.p50(workspace, toy.SPEC, enc, REFERENCE.id, settings)
    assert measured > 0 and latency_sources.p50(workspace, toy.SPEC, enc, REFERENCE.id, settings) == measured
    latency_sources.remember_p50(workspace, toy.SPEC, enc, REFERENCE, 123.0)
    assert latency_sources.p50(workspace, toy.SPEC, enc, REFERENCE.id, settings) == 123.0
    assert latency_sources.baseline_median(workspace, "test_latency[x]") is None  # no --awml-latency-baseline
    workspace.close()


def test_seeded_weights_are_built_once_and_reused_by_a_later_session(tmp_path, monkeypatch):
    """A seeded model's calibration can cost a forward pass: a later session builds only the architecture
    (build_model with the stored file, as for a checkpoint) and loads the same weights; another seed builds anew."""
    calls = []

    def build_model(checkpoint, seed):
        calls.append(checkpoint)
        model = toy.build_model(checkpoint, seed)
        if checkpoint is None:  # the "calibration": only a build without a file does it
            with torch.no_grad():
                model.head.bias.add_(1.0)
        return model

    spec = dataclasses.replace(toy.SPEC, build_model=build_model)
    first = Workspace(toy.plan(tmp_path, specs=(spec,)), ArtifactStore(tmp_path))
    built = first.model(spec)
    [artifact] = first.drain_builds()
    assert (artifact.format, artifact.reused) == ("seeded-weights", False) and calls == [None]
    later = Workspace(toy.plan(tmp_path, specs=(spec,)), ArtifactStore(tmp_path))
    again = later.model(spec)
    assert later.drain_builds()[0].reused and calls == [None, artifact.path]  # the architecture only
    assert again.weights_sha256 == built.weights_sha256  # the calibrated weights, not a fresh seeded model's
    other = Workspace(toy.plan(tmp_path, specs=(spec,), seed=1), ArtifactStore(tmp_path))
    other.model(spec)
    assert not other.drain_builds()[0].reused and calls[-1] is None


def test_a_backend_s_outputs_are_replayed_only_while_nothing_that_decides_them_changed(tmp_path, monkeypatch):
    """Each input's outputs are stored under the file the backend runs, the code and versions that run it and the
    machine: a later session reads them back instead of running the backend; a change in any of these, or
    --awml-rerun-backends, runs it again."""
    target = Target.parse("onnxruntime-cpu-fp32")
    enc = toy.SPEC.components[0]

    def session(**changes):
        workspace = Workspace(toy.plan(tmp_path, **changes), ArtifactStore(tmp_path))
        outputs = workspace.outputs(toy.SPEC, enc, target)
        stored = [a for a in workspace.drain_builds() if a.format == OUTPUTS_FORMAT]
        ran = [i for i in workspace.drain_inferences() if i["target"] == target.id]
        workspace.close()
        return outputs, stored, ran

    first, stored, ran = session()
    assert len(stored) == len(ran) == toy.options(tmp_path).samples and not any(a.reused for a in stored)
    again, stored, ran = session()
    assert all(a.reused for a in stored) and ran == []
    assert all(np.array_equal(a["y"], b["y"]) for a, b in zip(first, again))
    for name, changed in (("versions", lambda: {"onnxruntime": "0.0-another"}),
                          ("machine_identity", lambda device: {"cpu": "another CPU"})):
        monkeypatch.setattr(workspace_module, name, changed)
        _, stored, ran = session()
        assert not any(a.reused for a in stored) and len(ran) == len(stored), name
    _, stored, ran = session(rerun_backends=True)
    assert stored == [] and len(ran) == len(first)


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
    references = workspace.reference(spec, enc)
    inputs = workspace.inputs(spec, fed)
    model = workspace.model(spec).model
    with torch.no_grad():
        expected = [head.make_inputs(model, sample)["f"].numpy() for sample in workspace.model(spec).samples]
    assert len(inputs) == 2 and all(np.array_equal(i["f"], e) for i, e in zip(inputs, expected))
    assert all(np.array_equal(i["f"], r["y"][:1]) for i, r in zip(inputs, references))
    assert [(e["component"], e["target"]) for e in workspace.drain_inferences()] == [("enc", REFERENCE.id)] * 2


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


def test_a_content_digest_is_of_the_content_whatever_its_layout_and_however_it_is_hashed():
    """Equal arrays, equal digests (a strided view and its copy; a buffer hashed in pieces on threads); a byte changed
    in the last piece, a dtype or a shape, another digest."""
    big = np.zeros(workspace_module.DIGEST_CHUNK // 4 * 3 + 5, np.float32)  # more than three pieces
    digest = workspace_module.content_digest({"x": big})
    assert workspace_module.content_digest({"x": big.copy()}) == digest
    changed = big.copy()
    changed[-1] = 1.0
    assert workspace_module.content_digest({"x": changed}) != digest
    assert workspace_module.content_digest({"x": big.view(np.int32)}) != digest
    assert workspace_module.content_digest({"x": big[:-5].reshape(3, -1)}) != workspace_module.content_digest({"x": big[:-5]})
    wide = np.arange(24, dtype=np.float64).reshape(4, 6)
    assert workspace_module.content_digest({"x": wide[:, ::2]}) == workspace_module.content_digest({"x": np.ascontiguousarray(wide[:, ::2])})
    assert workspace_module.content_digest({"x": wide}) != workspace_module.content_digest({"y": wide})
