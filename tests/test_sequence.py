"""A stateful pipeline (pytest_awml.sequence) judged per frame and over the sequence, on the tiny model of seqtoy.py:
a faithful export passes; a state update off in one frame fails at that frame; an error within the per-frame
tolerance that accumulates in the memory fails the sequence gate alone."""

from __future__ import annotations

import itertools
from pathlib import Path
from unittest import mock

import numpy as np
import torch

import seqtoy
from pytest_awml.metric import metric_verdict
from pytest_awml.sequence import FRAME, SEQUENCE, first_failures, judge, roll

TESTS = Path(__file__).parent


def _rollouts(spec):
    """The reference (eager PyTorch) and the 'export' (the same modules with the export-only fault switched on):
    teacher-forced and free-running."""
    model = spec.build_model(None, 0)
    modules = {c.name: c.extract(model) for c in spec.components}
    frames = spec.sequence.make_frames(model, spec.sequence.frames, 0)

    def run(name, inputs, exported=False):
        with torch.no_grad(), mock.patch("torch.onnx.is_in_onnx_export", return_value=exported):
            out = modules[name](*(torch.from_numpy(np.asarray(inputs[i])) for i in spec.component(name).input_names))
        out = out if isinstance(out, tuple) else (out,)
        return {n: o.numpy() for n, o in zip(spec.component(name).output_names, out, strict=True)}

    def exported(name, inputs):
        return run(name, inputs, exported=True)

    reference = roll(spec.sequence, frames, run)
    return reference, roll(spec.sequence, frames, exported, reference), roll(spec.sequence, frames, exported)


def test_a_metric_an_error_in_the_state_moves_fails_its_delta():
    """What ``test_sequence_metric`` judges: the metric on each side's own state; a state update off at frame 2 by far
    more than the outputs' scale flips the labels the outputs give, and the accuracy moves."""
    spec = seqtoy.spec(eps=100.0, frame=2, judged=True)
    reference, _, free = _rollouts(spec)
    model = spec.build_model(None, 0)
    frames = spec.sequence.make_frames(model, spec.sequence.frames, 0)
    scores = [spec.sequence.metric.compute(side, frames) for side in (reference, free)]
    assert not metric_verdict(*scores, spec.sequence.metric.max_delta["fp32"]).passed
    faithful = seqtoy.spec(judged=True)
    assert metric_verdict(*(faithful.sequence.metric.compute(side, frames) for side in _rollouts(faithful)[::2]), 0.0).passed


def _judged(spec):
    reference, forced, free = _rollouts(spec)
    return judge(spec.sequence, {c.name: c for c in spec.components}, "fp32", reference, forced, free)


def test_a_faithful_state_update_passes_both_gates_at_every_frame():
    verdicts = _judged(seqtoy.spec())
    assert not first_failures(verdicts)
    frames = {(v.gate, v.frame) for v in verdicts}
    assert frames == {(g, k) for g in (FRAME, SEQUENCE) for k in range(seqtoy.FRAMES)}  # every frame, both gates


def test_a_state_update_off_in_one_frame_fails_the_frame_gate_at_that_frame():
    verdicts = _judged(seqtoy.spec(eps=10 * seqtoy.ATOL, frame=3))
    failed = [v for v in verdicts if v.gate == FRAME and not v.comparison.passed]
    assert {(v.frame, v.component, v.comparison.output) for v in failed} == {(3, "step", "memory_out")}
    assert first_failures(verdicts)[0].startswith("frame gate: first fails at frame 3")
    # on its own state the target carries the error on: every frame from 3 is off, none before
    carried = [v for v in verdicts if v.gate == SEQUENCE]
    assert [not v.comparison.passed for v in carried] == [k >= 3 for k in range(seqtoy.FRAMES)]


def test_an_error_within_tolerance_that_accumulates_fails_the_sequence_gate_alone():
    verdicts = _judged(seqtoy.spec(bias=0.6 * seqtoy.ATOL))
    assert all(v.comparison.passed for v in verdicts if v.gate == FRAME)  # each frame's own error is within tolerance
    drift = [v.comparison.max_abs for v in verdicts if v.gate == SEQUENCE]
    assert all(b > a for a, b in itertools.pairwise(drift))  # the memory's error grows frame after frame
    assert drift[0] < seqtoy.ATOL < drift[-1]
    found = first_failures(verdicts)
    assert len(found) == 1 and found[0].startswith("sequence gate: first fails at frame 1")


SPEC_FILE = """import sys
sys.path.insert(0, {tests!r})
import seqtoy
SPEC = seqtoy.spec(eps={eps!r}, frame={frame!r}, judged={judged!r})
"""


def test_the_plugin_runs_a_sequence_and_records_every_frame(run_awml, pytester):
    pytester.makepyfile(seqspec=SPEC_FILE.format(tests=str(TESTS), eps=0.0, frame=-1, judged=True))
    run = run_awml("--awml-spec=seqspec.py", "--awml-samples=1", "-k", "sequence", "-v")
    run.result.assert_outcomes(passed=5)  # parity, decoded parity and metric on onnxruntime; latency on pytorch and onnxruntime
    for test in ("test_sequence_parity", "test_sequence_latency", "test_sequence_pipeline_parity", "test_sequence_metric"):
        run.result.stdout.fnmatch_lines([f"*{test}?seqtoy/onnxruntime-cpu-fp32? PASSED*"])
    records = run.report["sequence"]
    assert {(r["gate"], r["frame"]) for r in records} == {(g, k) for g in ("frame", "sequence") for k in range(seqtoy.FRAMES)}
    assert all(r["passed"] and r["frames"] == seqtoy.FRAMES for r in records)
    run.result.stdout.fnmatch_lines(["sequence: spec*gate*worst output*per frame",
                                     "seqtoy*onnxruntime-cpu-fp32*frame *ok", "seqtoy*onnxruntime-cpu-fp32*sequence*step.memory_out*ok"])
    latency = next(r for r in run.report["latency"] if r["test_id"].endswith("[seqtoy/onnxruntime-cpu-fp32]"))
    assert latency["component"] == "sequence" and set(latency["spans"]) == {"enc", "step"} and latency["rounds"] == 12
    # SequenceSpec.compare and .metric, each side on its own state: parity records and a metric record
    (check,) = [r for r in run.report["parity"] if "test_sequence_pipeline_parity" in r["test_id"]]
    assert check["component"] == "sequence" and check["output"] == "y" and check["passed"]
    (metric,) = run.report["metrics"]
    assert metric["metric"] == "accuracy" and metric["compared"] == seqtoy.FRAMES and metric["delta"] == 0.0 and metric["passed"]


def test_the_plugin_fails_an_export_whose_state_update_is_off_in_one_frame(run_awml, pytester):
    pytester.makepyfile(seqspec=SPEC_FILE.format(tests=str(TESTS), eps=10 * seqtoy.ATOL, frame=2, judged=True))
    run = run_awml("--awml-spec=seqspec.py", "--awml-samples=1", "-k", "test_sequence_parity or test_sequence_pipeline_parity")
    run.result.assert_outcomes(failed=2)  # the memory, and the decoded outputs it moves on the target's own state
    assert "frame gate: first fails at frame 2" in run.text and "step.memory_out: FAILED" in run.text
    assert "the onnxruntime-cpu-fp32 sequence's decoded outputs" in run.text
    run.result.stdout.fnmatch_lines(["seqtoy*onnxruntime-cpu-fp32*frame*step.memory_out*FAILED"])
    failed = {(r["gate"], r["frame"]) for r in run.report["sequence"] if not r["passed"]}
    assert ("frame", 2) in failed and not any(k < 2 for _, k in failed)


def test_with_data_a_sequence_runs_on_the_frames_its_spec_makes_from_the_samples():
    """``SequenceSpec.from_samples``: with --awml-data the frames come from the loaded samples, not from make_frames;
    without data (or without from_samples) from make_frames and the run's seed."""
    import dataclasses
    from types import SimpleNamespace

    from pytest_awml.memo import Memo
    from pytest_awml.sequence_suite import _frames

    spec = seqtoy.spec()
    real = seqtoy.make_frames(None, 3, 7)
    with_samples = dataclasses.replace(spec, sequence=dataclasses.replace(spec.sequence, from_samples=lambda model, samples: samples))

    def frames(used, data):
        workspace = SimpleNamespace(memo=Memo(), options=SimpleNamespace(data=data, seed=0),
                                    model=lambda _: SimpleNamespace(model=None, samples=real))
        return _frames(workspace, used)

    made = frames(with_samples, Path("scene.pkl"))
    assert len(made) == 3 and all(np.array_equal(made[k]["enc"]["raw"], real[k]["enc"]["raw"]) for k in range(3))
    for used, data in ((with_samples, None), (spec, Path("scene.pkl"))):
        assert len(frames(used, data)) == spec.sequence.frames  # make_frames's count: the data not asked for, or not usable
