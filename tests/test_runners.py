"""Runners (pytest_awml.runners): the open/close lifecycle, errors by name, no state from a call."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import toy
from pytest_awml.artifacts import ArtifactStore
from pytest_awml.device import REFERENCE, Target
from pytest_awml.errors import ArtifactError, BackendError, DataError
from pytest_awml.models import component_inputs, load
from pytest_awml.runners.base import Runner, RunnerSource
from pytest_awml.runners.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeRunner
from pytest_awml.runners.pytorch import PyTorchBackend
from pytest_awml.workspace import Workspace

ORT = Target.parse("onnxruntime-cpu-fp32")


class Counting(Runner):
    """A runner that counts its lifecycle calls."""

    def __init__(self) -> None:
        super().__init__(REFERENCE, ("y",))
        self.calls: list[str] = []

    def activate(self) -> None:
        self.calls.append("activate")

    def deactivate(self) -> None:
        self.calls.append("deactivate")

    def prepare(self, inputs):
        return inputs

    def execute(self, prepared):
        return prepared

    def fetch(self, raw):
        return dict(raw)


def test_open_and_close_run_once_each():
    runner = Counting()
    assert not runner.is_open
    assert runner.open() is runner and runner.open() is runner and runner.is_open
    runner.close()
    runner.close()
    assert runner.calls == ["activate", "deactivate"] and not runner.is_open
    with runner as same:
        assert same is runner and runner.is_open
    assert runner.calls == ["activate", "deactivate"] * 2


def test_concurrent_first_opens_activate_once():
    runner = Counting()
    threads = [threading.Thread(target=runner.open) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runner.calls == ["activate"]


def _source(tmp_path, artifact):
    component = toy.SPEC.components[0]
    return RunnerSource(component.name, component.input_names, component.output_names, component.extract(toy.build_model(None, 0)),
                        artifact=artifact, input_specs=component.inputs, output_specs=component.outputs)


def test_creating_a_runner_does_no_heavy_work(tmp_path):
    source = _source(tmp_path, tmp_path / "nowhere.onnx")  # a path only: nothing reads it before open()
    runner = OnnxRuntimeBackend().create_runner(source, ORT)
    assert not runner.is_open
    reference = PyTorchBackend().create_runner(source, REFERENCE)
    assert reference._module is None  # the device copy is made by open()


def _onnx(tmp_path):
    options = toy.options(tmp_path)
    workspace = Workspace(toy.plan(tmp_path), ArtifactStore(options.artifacts))
    return workspace.artifact(toy.SPEC, toy.SPEC.components[0], "onnx").path


def test_onnxruntime_session_lives_between_open_and_close(tmp_path):
    path = _onnx(tmp_path)
    runner = OnnxRuntimeBackend().create_runner(_source(tmp_path, path), ORT)
    feed = {"x": np.ones((4, 3), np.float32)}
    with runner:
        assert runner.session is not None
        first = runner.run(feed)
    assert runner._session is None and not runner.is_open
    second = runner.run(feed)  # used again: opens again, on first use
    assert runner.is_open and np.array_equal(first["y"], second["y"])
    runner.close()


def test_a_backend_that_runs_a_file_refuses_a_source_without_one(tmp_path):
    with pytest.raises(BackendError, match="runs a onnx file, and enc's runner source carries none: resolve the artifact"):
        OnnxRuntimeBackend().create_runner(_source(tmp_path, None), ORT)


def test_a_runner_keeps_nothing_from_a_call(tmp_path):
    runner = PyTorchBackend().create_runner(_source(tmp_path, None), REFERENCE).open()
    before = dict(vars(runner))
    runner.run({"x": np.ones((3, 3), np.float32)})
    assert vars(runner) == before


def test_deliberate_checks_raise_named_errors(tmp_path):
    reference = PyTorchBackend().create_runner(_source(tmp_path, None), REFERENCE)
    with pytest.raises(DataError, match=r"pytorch-cpu-fp32: 'x' axis 0 \(n\) is 9, outside the declared range \[2, 8\]"):
        reference.run({"x": np.ones((9, 3), np.float32)})
    with pytest.raises(DataError, match="input 'x' is missing"):
        reference.run({})
    two = PyTorchBackend().create_runner(RunnerSource("c", ("x",), ("a", "b"), torch.nn.Identity(), artifact=None), REFERENCE)
    with pytest.raises(BackendError, match="the module returned 1 outputs, the spec declares 2: a, b"):
        two.run({"x": np.ones(2, np.float32)})
    path = _onnx(tmp_path)
    wrong = OnnxRuntimeRunner(path, ORT, ("y", "extra"), ["CPUExecutionProvider"])
    with pytest.raises(ArtifactError, match=r"the ONNX graph has no output\(s\) \['extra'\]; it has \['y'\]"):
        wrong.open()


def test_the_session_cache_opens_what_it_hands_out_and_closes_it_at_the_end(tmp_path):
    options = toy.options(tmp_path)
    workspace = Workspace(toy.plan(tmp_path), ArtifactStore(options.artifacts))
    component = toy.SPEC.components[0]
    runners = [workspace.runner(toy.SPEC, component, target) for target in (REFERENCE, ORT)]
    assert all(r.is_open for r in runners) and workspace.runner(toy.SPEC, component, ORT) is runners[1]
    outputs = workspace.pipeline(toy.SPEC, ORT)(toy.make_samples(1, 0)[0]).outputs
    assert outputs.shape == (1, 1)
    workspace.close()
    assert not any(r.is_open for r in runners)
    loaded = load(toy.SPEC, options)
    assert len(component_inputs(loaded, component)) == options.samples


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("fp16", torch.float16)])
def test_run_tensors_answers_in_the_dtype_the_runner_computes(precision, dtype):
    """A pipeline's next stage reads the runner's own dtype: a float32 contract would cast a full-size canvas
    to float32 and back to half between two fp16 networks on every call. Inputs come in any float dtype."""
    torch.manual_seed(0)
    module = torch.nn.Linear(4, 3)
    target = Target.parse(f"pytorch-cpu-{precision}")  # fp16 on a CPU only for this runner-level check
    runner = PyTorchBackend().create_runner(RunnerSource("c", ("x",), ("y",), module, artifact=None), target)
    x = torch.randn(5, 4)
    with runner:
        out = runner.run_tensors({"x": x})["y"]
        again = runner.run_tensors({"x": x.to(dtype)})["y"]
    expected = module.to(dtype)(x.to(dtype)).detach()
    assert out.dtype == dtype and torch.equal(out, expected) and torch.equal(again, expected)


class Recorded(Runner):
    """A runner that records which of its doors a caller used, on any target (no device needed)."""

    def __init__(self, target: Target, stream=None) -> None:
        super().__init__(target, ("y",))
        self.calls: list[str] = []
        self._stream = stream

    def prepare(self, inputs):
        return inputs

    def execute(self, prepared):
        self.calls.append("run")
        return {"y": prepared["x"] * 2}

    def fetch(self, raw):
        return raw

    def run_tensors(self, inputs):
        self.calls.append("run_tensors")
        return {"y": inputs["x"] * 2}

    def cuda_stream(self):
        return self._stream


def test_a_sharing_runner_answers_host_calls_from_what_is_held_and_names_what_is_not():
    from pytest_awml.digests import content_digest
    from pytest_awml.runners.sharing import Held, Missing, SharingRunner

    inner, held = Recorded(ORT), Held()
    sharing = SharingRunner("enc", inner, held)
    x = {"x": np.arange(3, dtype=np.float32)}
    with pytest.raises(Missing) as info:
        sharing.run(x)
    assert info.value.component == "enc" and info.value.digest == content_digest(x) and inner.calls == []
    held.add(info.value.digest, {"y": np.full(3, 7.0, np.float32)})
    assert sharing.run(x)["y"].tolist() == [7.0] * 3 and held.read == {info.value.digest}
    assert sharing.run_tensors({"x": torch.from_numpy(x["x"])})["y"].tolist() == [7.0] * 3  # on a CPU: held too
    assert inner.calls == [] and sharing.cuda_stream() is None


def test_on_a_device_a_sharing_runner_is_its_inner_runner():
    """Pipeline parity on CUDA runs the branch its latency rounds time: the inner runner's own device call and
    stream (an asynchronous encoder gets the captured graph's padded rows), not a host round trip."""
    from pytest_awml.runners.sharing import Held, SharingRunner

    stream = object()
    inner = Recorded(Target.parse("pytorch-cuda0-fp32"), stream)
    sharing = SharingRunner("enc", inner, Held())
    assert sharing.cuda_stream() is stream
    x = torch.ones(3)
    assert torch.equal(sharing.run_tensors({"x": x})["y"], x * 2) and inner.calls == ["run_tensors"]
