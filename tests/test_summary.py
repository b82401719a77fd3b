"""The terminal summary (pytest_awml.summary): per output error table, latencies, artifacts, golden, drift."""

from __future__ import annotations

import dataclasses

from pytest_awml.compare import OutputComparison
from pytest_awml.records import (ArtifactRecord, ArtifactRole, DriftRecord, GoldenRecord, LatencyRecord, ParityRecord, Record,
                                 RecordIds, ShapesRecord, ShapeTry)
from pytest_awml.results import Results
from pytest_awml.summary import lines
from pytest_awml.timing import LatencyStats

IDS = RecordIds(test_id="t", spec="toy", component="enc", target="onnxruntime-cpu-fp32")
PARITY = ParityRecord(ids=IDS, comparison=OutputComparison(output="y", passed=True, atol=1e-5, rtol=1e-5, max_abs=1e-6, max_rel=2e-6,
                                                           min_atol_to_pass=0.0))
STATS = LatencyStats(rounds=5, p50_ms=1.25, p90_ms=2.0, p95_ms=2.5, p99_ms=3.0, mean_ms=1.5, stddev_ms=0.1, min_ms=1.0, max_ms=3.0)
LATENCY = LatencyRecord(ids=IDS, stats=STATS, rounds_cut=False, warmup_rounds=1)


def _results(*records: Record) -> Results:
    results = Results()
    for record in records:
        results.add(record)
    return results


def test_the_latency_table_lists_every_timed_target_and_a_large_max_rel_is_explained():
    """Issue 30: the latency table listed PyTorch only (other targets' p50 hid in the parity rows), and a passing
    output's large max_rel went unexplained."""
    failed = dataclasses.replace(PARITY.comparison, output="w", passed=False, problem="shape (2,) differs")
    near_zero = dataclasses.replace(PARITY.comparison, output="v", max_rel=0.07)  # 7000 x rtol, and passing
    results = _results(PARITY, ParityRecord(ids=IDS, comparison=failed), ParityRecord(ids=IDS, comparison=near_zero), LATENCY,
                       dataclasses.replace(LATENCY, ids=dataclasses.replace(IDS, target="pytorch-cpu-fp32"),
                                           stats=dataclasses.replace(STATS, p50_ms=9.5), regression="not judged: 3 rounds, need 4"))
    out = lines(results, "report.json")
    assert out[0].startswith("spec/component") and set(out[1]) == {"-"} and "p50" not in out[0]
    assert "toy/enc" in out[2] and "onnxruntime-cpu-fp32" in out[2] and out[2].rstrip().endswith("yes") and "*" not in out[2]
    assert out[3].rstrip().endswith("NO") and out[4].strip() == "^ shape (2,) differs"
    assert " 0.07* " in out[5] and out[6].startswith("* max_rel is |error| / |reference| at its worst element")
    assert "latency: spec/component" in out[8]
    assert "onnxruntime-cpu-fp32" in out[9] and "1.25" in out[9] and "pytorch-cpu-fp32" in out[10] and "9.50" in out[10]
    assert out[11].strip() == "^ against --awml-latency-baseline: not judged: 3 rounds, need 4"
    assert out[-1] == "JSON report: report.json"


def test_shape_fuzzing_has_its_line():
    tries = (ShapeTry(sizes={"n": 1}, passed=True), ShapeTry(sizes={"n": 9}, passed=False, error="boom"))
    record = ShapesRecord(ids=IDS, profile="ci", examples=2, tried=tries, refused=("0 refused", "max + 1 refused"))
    assert lines(_results(record), None) == [
        "", "shapes toy/enc onnxruntime-cpu-fp32: 2 size(s) tried (ci profile), 1 failed; 2 out-of-range size(s) refused by name"]


def test_artifacts_golden_drift_and_placement():
    results = _results(
        ArtifactRecord(test_id="t", spec="toy", component="enc", format="onnx", reused=False, build_seconds=1.26, path="/a/enc.onnx",
                       sha256="0", rebuilt_reason="a file without a manifest", role=ArtifactRole.EXPORT),
        GoldenRecord(ids=IDS, action="updated", path="/g/enc.npz", old_vs_new_max_abs={"y": 0.5, "z": None}),
        DriftRecord(ids=IDS, golden="/g", version_changes={}, weights_changed=False,
                    comparison=OutputComparison(output="y", passed=False, atol=1e-5, rtol=0.0, max_abs=0.5)),
        dataclasses.replace(LATENCY, ids=dataclasses.replace(IDS, worker="gw1", gpu="cuda:1")))
    out = "\n".join(lines(results, None))
    assert "artifact toy/enc/onnx: built in 1.3 s (rebuilt: a file without a manifest): /a/enc.onnx" in out
    assert "golden toy/enc: updated /g/enc.npz (old vs new max_abs: y 0.5)" in out
    assert "drift toy/enc y: max_abs 0.5 > atol 1e-05" in out
    assert "xdist placement: gw1 -> cuda:1" in out and "JSON report" not in out


def test_stored_inferences_are_told_apart_by_their_role_not_their_details():
    stored = [ArtifactRecord(test_id="t", spec="toy", component="enc", format="backend-outputs", reused=i > 0, build_seconds=0.5,
                             path=f"/o/{i}.npz", sha256=str(i), details={"target": "onnxruntime-cpu-fp32"}, role=ArtifactRole.INFERENCE)
              for i in range(3)]
    export = dataclasses.replace(stored[0], format="onnx", path="/a/enc.onnx", details={"input": "not an inference"},
                                 role=ArtifactRole.EXPORT)
    out = lines(_results(*stored, export), None)
    assert out == ["artifact toy/enc/onnx: built in 0.5 s: /a/enc.onnx",
                   "outputs toy/enc onnxruntime-cpu-fp32 (backend-outputs), 3 inputs (3 for t): 2 reused, 1 computed in 0.5 s"]
    fed = [dataclasses.replace(a, test_id=f"awml::{kind}[toy/x]") for a, kind in zip(stored, ("test_parity", "test_parity",
                                                                                             "test_pipeline_parity"), strict=True)]
    assert lines(_results(*fed), None) == [
        "outputs toy/enc onnxruntime-cpu-fp32 (backend-outputs), 3 inputs (2 for test_parity, 1 for test_pipeline_parity; "
        "test_pipeline_parity's are fed this target's own upstream outputs): 2 reused, 1 computed in 0.5 s"]


def test_an_empty_run_says_nothing_but_the_report():
    assert lines(Results(), "r.json") == ["JSON report: r.json"]


def test_a_stored_file_s_role_is_its_kind(tmp_path):
    """An artifact record's role comes from the stored file's typed kind (the store's formats are not exports), never from
    its format's name or its details."""
    from pytest_awml.artifacts import Artifact, Kind

    made = {kind: ArtifactRecord.of(Artifact("toy", "enc", "any-format", tmp_path / "f", "0", "key", True, 0.0,
                                             details={"input": "x"}, kind=kind), test_id="t") for kind in Kind}
    assert {kind: record.role for kind, record in made.items()} == {
        Kind.EXPORT: ArtifactRole.EXPORT, Kind.OUTPUTS: ArtifactRole.INFERENCE, Kind.WEIGHTS: ArtifactRole.WEIGHTS}

