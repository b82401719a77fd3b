"""Long work says how far it is (pytest_awml.progress), and the summary says where the run's time went."""

from __future__ import annotations

import logging

from pytest_awml import progress
from pytest_awml.records import ArtifactRecord, ArtifactRole, InferenceRecord, LatencyRecord, MeasuredIn, RecordIds
from pytest_awml.results import Results
from pytest_awml.summary import time_spent
from pytest_awml.timing import LatencyStats


def test_a_task_is_silent_when_short_and_says_how_far_when_long(monkeypatch, caplog):
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    with caplog.at_level(logging.INFO, logger=progress.LOGGER):
        with progress.Task("quick", 3) as task:
            for done in range(1, 4):
                now[0] += 0.5
                task.step(done)
        assert caplog.messages == []
        with progress.Task("outputs of s/c on t", 10) as task:
            for done in range(1, 11):
                now[0] += 2.0
                task.step(done)
        assert caplog.messages == ["outputs of s/c on t: 3 of 10 (6 s)", "outputs of s/c on t: 6 of 10 (12 s)",  # every 5 s at most
                                   "outputs of s/c on t: 9 of 10 (18 s)", "outputs of s/c on t: done in 20.0 s"]
        caplog.clear()
        with progress.Task("building s/c/onnx", announce=True):
            now[0] += 43.0
        assert caplog.messages == ["building s/c/onnx ...", "building s/c/onnx: done in 43.0 s"]


def test_the_summary_ends_with_where_the_time_went():
    results = Results()
    stats = LatencyStats(rounds=4, p50_ms=500.0, p90_ms=500.0, p95_ms=500.0, p99_ms=500.0, mean_ms=500.0, stddev_ms=0.0,
                         min_ms=500.0, max_ms=500.0)
    ids = RecordIds(test_id="t", spec="s", component="c", target="onnxruntime-cpu-fp32")
    for record in (
        ArtifactRecord(test_id="t", spec="s", component="c", format="onnx", reused=False, build_seconds=4.0, path="/a", sha256="0",
                       role=ArtifactRole.EXPORT),
        ArtifactRecord(test_id="t", spec="s", component="c", format="onnx", reused=False, build_seconds=4.0, path="/a", sha256="0",
                       role=ArtifactRole.EXPORT),  # the same file reported by a second test: counted once
        ArtifactRecord(test_id="t", spec="s", component="c", format="tensorrt-rtx-fp16", reused=False, build_seconds=2.0, path="/e",
                       sha256="1", role=ArtifactRole.EXPORT),
        ArtifactRecord(test_id="t", spec="s", component="c", format="onnx", reused=True, build_seconds=0.0, path="/r", sha256="2",
                       role=ArtifactRole.EXPORT),
        InferenceRecord(test_id="t", spec="s", component="c", target="pytorch-cpu-fp32", input="x", seconds=3.0),
        LatencyRecord(ids=ids, stats=stats, rounds_cut=False, warmup_rounds=1, warmup_total_ms=1000.0),
        LatencyRecord(ids=ids, stats=stats, rounds_cut=False, warmup_rounds=1,  # the pipeline's rounds, counted there
                      measured_in=MeasuredIn(test="test_pipeline_latency", pipeline="pipeline", stage="s")),
    ):
        results.add(record)
    assert time_spent(results, 20.0) == "time: export 4.0 s, build 2.0 s, inference 3.0 s, latency 3.0 s, other 8.0 s (wall 20.0 s)"


def test_a_build_is_announced_unless_quiet_and_the_summary_ends_with_the_time(run_awml, pytester):
    import shutil

    selected = ("--awml-spec=centerpoint-tiny", "-k", "test_export and pts_voxel_encoder/onnx]")
    run = run_awml(*selected)
    assert "pytest-awml: building centerpoint-tiny/pts_voxel_encoder/onnx ..." in run.text
    summary = run.text.split("= pytest-awml =")[-1].strip().splitlines()
    assert summary[-2].startswith("time: export ") and "other" in summary[-2]  # the last line is pytest's own count
    shutil.rmtree(pytester.path / ".awml")
    quiet = run_awml(*selected, "-q")
    assert quiet.result.ret == 0 and "building centerpoint-tiny" not in quiet.text
