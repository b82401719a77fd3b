"""The inference store (pytest_awml.inference_store) and what it stands on: typed memo keys under threads,
content and code digests, stored outputs and seeded weights, replays that are verified, per-test records."""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import threading
import time
from enum import Enum

import numpy as np
import pytest
import torch

import toy
from pytest_awml import stored_formats as stored_formats_module
from pytest_awml.artifacts import ArtifactStore, Kind
from pytest_awml.paths import sha256_file
from pytest_awml.device import REFERENCE, Target
from pytest_awml.digests import DIGEST_CHUNK, code_closure, code_digest, content_digest
from pytest_awml.errors import AwmlError, StoreMismatch
from pytest_awml.inference_store import CHECKED, StoreWarning
from pytest_awml.memo import Memo, key
from pytest_awml.produced import Collector
from pytest_awml.stored_formats import OUTPUT_PREFIX, OUTPUTS_FORMAT, WEIGHTS_FORMAT
from pytest_awml.workspace import Workspace

ORT = Target.parse("onnxruntime-cpu-fp32")
ENC = toy.SPEC.components[0]


class Slot(Enum):
    A = 1
    B = 2


# -- the memo -----------------------------------------------------------------------------------------
def test_memo_makes_once_and_keeps_deliberate_failures():
    memo, calls = Memo(), []
    assert memo.get(key(Slot.A, 1), lambda: calls.append(1) or 42) == 42 == memo.get(key(Slot.A, 1), lambda: calls.append(1) or 0)
    assert memo.get(key(Slot.B, 1), lambda: 7) == 7  # another slot, same parts: another value
    assert calls == [1]

    def fail():
        calls.append(2)
        raise AwmlError("no")

    for _ in range(2):
        with pytest.raises(AwmlError, match="no"):
            memo.get(key(Slot.A, "b"), fail)
    assert calls == [1, 2]  # raised again, not made again

    def flaky():
        calls.append(3)
        raise OSError("transient")

    for _ in range(2):
        with pytest.raises(OSError):
            memo.get(key(Slot.A, "c"), flaky)
    assert calls == [1, 2, 3, 3]
    memo.put(key(Slot.A, "c"), "set")
    assert memo.get(key(Slot.A, "c"), flaky) == "set"


def test_memo_makes_a_value_once_for_threads_that_ask_together_and_others_meanwhile():
    """Another key is answered while a slow value is being made: the slow maker waits for that answer (an event,
    not a wall-clock bound, so that a loaded machine cannot decide the test), and would time out were it behind."""
    memo, made, started, released, waits = Memo(), [], threading.Event(), threading.Event(), []

    def slow():
        started.set()
        waits.append(released.wait(timeout=60))  # False: the other key's answer waited for this value
        made.append(1)
        return object()

    got = []
    threads = [threading.Thread(target=lambda: got.append(memo.get(key(Slot.A, "x"), slow))) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait()
    assert memo.get(key(Slot.B, "y"), lambda: 1) == 1
    released.set()
    for thread in threads:
        thread.join()
    assert waits == [True], "the other key was answered only after the slow value was made"
    assert made == [1] and len({id(v) for v in got}) == 1


# -- digests ------------------------------------------------------------------------------------------
def test_a_content_digest_is_of_the_content_whatever_its_layout_and_however_it_is_hashed():
    """Equal arrays, equal digests (a strided view and its copy; a buffer hashed in pieces on threads); a byte changed
    in the last piece, a dtype or a shape, another digest."""
    big = np.zeros(DIGEST_CHUNK // 4 * 3 + 5, np.float32)  # more than three pieces
    digest = content_digest({"x": big})
    assert content_digest({"x": big.copy()}) == digest
    changed = big.copy()
    changed[-1] = 1.0
    assert content_digest({"x": changed}) != digest
    assert content_digest({"x": big.view(np.int32)}) != digest
    assert content_digest({"x": big[:-5].reshape(3, -1)}) != content_digest({"x": big[:-5]})
    wide = np.arange(24, dtype=np.float64).reshape(4, 6)
    assert content_digest({"x": wide[:, ::2]}) == content_digest({"x": np.ascontiguousarray(wide[:, ::2])})
    assert content_digest({"x": wide}) != content_digest({"y": wide})


def test_the_code_digest_follows_the_import_closure_into_a_sibling_package(tmp_path, monkeypatch):
    """A spec whose model lives in ``lib/net.py`` (imported by ``specs/net_spec.py``): an edit there changes the digest;
    the standard library, installed packages and this plugin are not followed; files nobody imports do not count."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "__init__.py").write_text("")
    (tmp_path / "lib" / "ops.py").write_text("def twice(x):\n    return 2 * x\n")
    (tmp_path / "lib" / "net.py").write_text("import torch\nfrom lib.ops import twice\n\nclass Net(torch.nn.Module):\n"
                                             "    def forward(self, x):\n        return twice(x)\n")
    (tmp_path / "lib" / "unused.py").write_text("")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "net_spec.py").write_text("import json\nfrom pytest_awml.spec import ModelSpec\nfrom lib.net import Net\n\n"
                                                     "def build_model(checkpoint, seed):\n    return Net()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module_spec = importlib.util.spec_from_file_location("awml_user_spec_test", tmp_path / "specs" / "net_spec.py")
    spec_module = importlib.util.module_from_spec(module_spec)  # loaded by path, as spec_loader does: not in sys.modules
    module_spec.loader.exec_module(spec_module)
    try:
        files = code_closure([spec_module.build_model])
        assert {f.relative_to(tmp_path).as_posix() for f in files} == {"specs/net_spec.py", "lib/__init__.py", "lib/net.py", "lib/ops.py"}
        before = code_digest([spec_module.build_model])
        (tmp_path / "lib" / "ops.py").write_text("def twice(x):\n    return 3 * x\n")
        assert code_digest([spec_module.build_model]) != before
    finally:
        for name in [n for n in sys.modules if n == "lib" or n.startswith("lib.")]:
            del sys.modules[name]


# -- stored outputs and seeded weights ----------------------------------------------------------------
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

    def session(**changes):
        workspace = Workspace(toy.plan(tmp_path, specs=(spec,), **changes), ArtifactStore(tmp_path))
        with workspace.collector.collecting() as produced:
            loaded = workspace.model(spec)
        [artifact] = produced.builds
        assert (artifact.format, artifact.kind) == (WEIGHTS_FORMAT, Kind.WEIGHTS)
        return loaded, artifact

    built, artifact = session()
    assert not artifact.reused and calls == [None]
    again, artifact = session()
    assert artifact.reused and calls == [None, artifact.path]  # the architecture only
    assert again.weights_sha256 == built.weights_sha256  # the calibrated weights, not a fresh seeded model's
    _, artifact = session(seed=1)
    assert not artifact.reused and calls[-1] is None


def _session(tmp_path, **changes):
    """One session's ``outputs`` of the toy encoder on ONNX Runtime: (outputs, stored outputs, inferences)."""
    workspace = Workspace(toy.plan(tmp_path, **changes), ArtifactStore(tmp_path))
    try:
        with workspace.collector.collecting() as produced:
            outputs = workspace.outputs(toy.SPEC, ENC, ORT)
    finally:
        workspace.close()
    stored = [a for a in produced.builds if a.format == OUTPUTS_FORMAT]
    return outputs, stored, [i for i in produced.inferences if i.target == ORT.id]


def test_a_backend_s_outputs_are_replayed_only_while_nothing_that_decides_them_changed(tmp_path, monkeypatch):
    """Each input's outputs are stored under the file the backend runs, the code and versions that run it and the
    machine: a later session reads them back instead of running the backend (but for the one input it checks); a
    change in any of these runs it again; --awml-rerun-backends runs every input and compares it with the store."""
    first, stored, ran = _session(tmp_path)
    assert len(stored) == len(ran) == toy.options(tmp_path).samples and not any(a.reused for a in stored)
    assert all(a.kind == Kind.OUTPUTS for a in stored)
    again, stored, ran = _session(tmp_path)
    assert all(a.reused for a in stored) and [i.checked for i in ran] == ["same"]  # one input recomputed, as a check
    assert all(np.array_equal(a["y"], b["y"]) for a, b in zip(first, again))
    for name, changed in (("versions", lambda: {"onnxruntime": "0.0-another"}),
                          ("machine_identity", lambda device: {"cpu": "another CPU"})):
        monkeypatch.setattr(stored_formats_module, name, changed)
        _, stored, ran = _session(tmp_path)
        assert not any(a.reused for a in stored) and len(ran) == len(stored) and not any(i.checked for i in ran), name
    _, stored, ran = _session(tmp_path, rerun_backends=True)
    assert all(a.reused for a in stored) and [i.checked for i in ran] == ["same"] * len(first)


def _poison(path, change) -> None:
    """Rewrite a stored ``.npz`` with ``change`` applied to each array, and re-hash its manifest to match."""
    with np.load(path) as stored:
        arrays = {name: change(stored[name]) for name in stored.files}
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    manifest = path.parent / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "sha256": sha256_file(path)}))


def test_each_run_checks_the_input_checked_longest_ago_so_a_few_runs_cover_them_all(tmp_path):
    _, stored, _ = _session(tmp_path)
    checked = []
    for _ in range(len(stored)):
        _, _, ran = _session(tmp_path)
        [check] = [i for i in ran if i.checked]
        checked.append(check.store)
    assert sorted(checked) == sorted(str(a.path) for a in stored)  # every entry, once each
    assert all((a.path.parent / CHECKED).is_file() for a in stored)


def test_a_replayed_entry_that_a_rerun_does_not_give_fails_naming_it_and_rerun_backends_replaces_it(tmp_path):
    """A stored entry offset and re-hashed (a poisoned cache): the run's check fails with StoreMismatch naming the
    file and the fix; --awml-rerun-backends reports each entry that differed, replaces it, and the next run passes."""
    first, stored, _ = _session(tmp_path)
    for artifact in stored:
        _poison(artifact.path, lambda a: a + 1)
    with pytest.raises(StoreMismatch) as info:
        _session(tmp_path)
    assert str(stored[0].path.parent) in str(info.value) and "--awml-rerun-backends" in str(info.value)
    assert "max abs difference 1" in str(info.value)
    with pytest.warns(StoreWarning, match="differed") as caught:
        rerun, replaced, ran = _session(tmp_path, rerun_backends=True)
    assert len(caught) == len(stored) and [i.checked for i in ran] == ["differed"] * len(stored)
    assert all(not a.reused and "differ from this run's" in a.rebuilt_reason for a in replaced)
    again, _, ran = _session(tmp_path)
    assert [i.checked for i in ran] == ["same"]
    assert all(np.array_equal(a["y"], b["y"]) for a, b in zip(first, again))


def test_before_a_parity_failure_blames_a_backend_every_replayed_input_is_recomputed(tmp_path):
    """The entry this run's rotation does not check is poisoned: parity would fail on it; ``recheck`` recomputes
    every replayed input of both sides and fails naming the entry instead."""
    _, stored, _ = _session(tmp_path)
    for _ in stored:  # every entry checked once: the next run checks the oldest, the first
        _session(tmp_path)
    newest = max(stored, key=lambda a: (a.path.parent / CHECKED).stat().st_mtime_ns)
    _poison(newest.path, lambda a: a + 1)
    workspace = Workspace(toy.plan(tmp_path), ArtifactStore(tmp_path))
    outputs = workspace.outputs(toy.SPEC, ENC, ORT)  # the rotation's check passes: it is another entry
    assert any(not np.array_equal(o["y"], r["y"]) for o, r in zip(outputs, workspace.reference(toy.SPEC, ENC)))
    with pytest.raises(StoreMismatch, match=str(newest.path.parent)):
        workspace.recheck(toy.SPEC, ENC, (REFERENCE, ORT))
    with pytest.raises(StoreMismatch, match=str(newest.path.parent)):  # by the inputs given (drift: the golden ones)
        workspace.recheck(toy.SPEC, ENC, (ORT,), [dict(sample) for sample in workspace.inputs(toy.SPEC, ENC)])
    workspace.close()


def test_records_go_to_the_test_collecting_them_even_when_it_is_interrupted():
    collector = Collector()
    collector.noted("toy", "before anyone collects")  # nobody's
    with pytest.raises(KeyboardInterrupt):
        with collector.collecting() as produced:
            collector.noted("toy", "mine")
            raise KeyboardInterrupt
    collector.noted("toy", "after")
    assert produced.notes == [("toy", "mine")]
    with collector.collecting() as later:
        pass
    assert later.notes == []


def test_stored_outputs_are_an_npz_of_the_declared_outputs(tmp_path):
    _, stored, _ = _session(tmp_path)
    with np.load(stored[0].path) as arrays:
        assert arrays.files == [OUTPUT_PREFIX + "y"]


SIBLING_NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, image):
        return {forward}
'''

SIBLING_SPEC = '''
import numpy as np
import torch

from lib.net import Net
from pytest_awml.spec import Component, ModelSpec, TensorSpec, Tolerance


def build_model(checkpoint, seed):
    torch.manual_seed(seed)
    return Net().eval()


def make_samples(count, seed):
    rng = np.random.default_rng(seed)
    return [rng.random((3, 16, 16), dtype=np.float32) for _ in range(count)]


SPEC = ModelSpec(name="sibling", build_model=build_model, make_samples=make_samples, components=(
    Component(name="net", extract=lambda model: model, make_inputs=lambda model, sample: {"image": torch.from_numpy(sample)[None]},
              inputs=(TensorSpec("image", (1, 3, 16, 16)),), outputs=(TensorSpec("out", (1, 4, 16, 16)),),
              tolerances={"fp32": {"*": Tolerance(atol=1e-5, rtol=1e-4)}}),
))
'''


def test_a_model_in_a_sibling_package_edited_between_runs_is_exported_and_run_again(run_awml, pytester):
    """``specs/net_spec.py`` imports its model from ``lib/net.py``: editing the forward there between two runs
    re-exports and recomputes every output (a replay would pass drift on the old model), and drift sees it."""
    pytester.mkpydir("lib")
    net = pytester.path / "lib" / "net.py"
    net.write_text(SIBLING_NET.format(forward="self.conv(image)"))
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "net_spec.py").write_text(SIBLING_SPEC)
    args = ("--awml-spec=specs/net_spec.py", "--awml-golden=golden", "-k", "test_drift or test_parity or test_export")
    first = run_awml(*args, "--awml-update-golden")
    first.result.assert_outcomes(passed=3)
    net.write_text(SIBLING_NET.format(forward="self.conv(image) * 2"))
    second = run_awml(*args)
    second.result.assert_outcomes(passed=2, failed=1)
    assert "test_drift[sibling/net] FAILED" in second.text or "FAILED" in second.text and "test_drift" in second.text
    kept = {(a["format"], a["reused"]) for a in second.report["artifacts"]}
    assert ("onnx", True) not in kept and ("reference-outputs", True) not in kept and ("backend-outputs", True) not in kept
    assert ("onnx", False) in kept and ("reference-outputs", False) in kept


def test_an_interrupted_test_ends_the_run_with_pytest_s_own_summary_not_a_teardown_traceback(run_awml, pytester):
    """Ctrl-C inside a test (here: while the model is built) reaches the per-test records' teardown at session end: it
    reads nothing from the ended test but its node (the old drain read ``node.funcargs``, which pytest may have
    dropped by then: issue 30's AttributeError), attaches what was collected and raises nothing of its own."""
    spec = SIBLING_SPEC.replace("from lib.net import Net\n", "").replace(
        "    torch.manual_seed(seed)\n    return Net().eval()", "    raise KeyboardInterrupt")
    pytester.makepyfile(interrupted_spec=spec)
    run = run_awml("--awml-spec=interrupted_spec.py", "-k", "test_parity")
    assert run.result.ret == pytest.ExitCode.INTERRUPTED
    assert "KeyboardInterrupt" in run.text and "AttributeError" not in run.text and "INTERNALERROR" not in run.text
