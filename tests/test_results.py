"""Records and the JSON report (pytest_awml.results): one record builder, the collector, the run block."""

from __future__ import annotations

import dataclasses
import types

import numpy as np

import toy
from pytest_awml.cases import Case
from pytest_awml.compare import compare_output
from pytest_awml.device import Device, Precision, Target
from pytest_awml.limits import Tolerance, Verdict
from pytest_awml.options import ToleranceOverrides
from pytest_awml.record_json import to_json
from pytest_awml.records import KINDS, LatencyRecord, ParityRecord, RecordIds
from pytest_awml.results import RECORD, Results, attach_comparisons, attach_verdicts, record_ids, run_info
from pytest_awml.results import attach as results_attach
from pytest_awml.timing import LatencyStats

TARGET = Target("onnxruntime", Device.parse("cpu"), Precision.FP32)


def _node():
    return types.SimpleNamespace(user_properties=[])


def test_record_ids_for_each_kind_of_case(tmp_path):
    options = toy.options(tmp_path)
    spec, comp = toy.SPEC, toy.SPEC.components[0]
    assert to_json(record_ids(Case(spec, comp, format="onnx"), "t", options)) == {"test_id": "t", "spec": "toy", "component": "enc"}
    assert to_json(record_ids(Case(spec, comp, TARGET), "t", options)) == {
        "test_id": "t", "spec": "toy", "component": "enc", "target": "onnxruntime-cpu-fp32", "backend": "onnxruntime",
        "device": "cpu", "precision": "fp32"}
    assert record_ids(Case(spec, target=TARGET), "t", options, component="pipeline").component == "pipeline"
    assert to_json(record_ids(Case(spec), "t", options, component="bundle")) == {"test_id": "t", "spec": "toy", "component": "bundle"}


def test_record_ids_say_where_an_xdist_worker_ran(tmp_path):
    options = toy.options(tmp_path, device=Device.parse("cuda"), worker="gw1", gpu=Device.parse("cuda:1"))
    cuda = dataclasses.replace(TARGET, device=Device.parse("cuda:0"))
    ids = record_ids(Case(toy.SPEC, toy.SPEC.components[0], cuda), "t", options)
    assert ids.device == "cuda0" and ids.worker == "gw1" and ids.gpu == "cuda:1"


IDS = RecordIds(test_id="t", spec="toy")


def test_attach_tags_the_type_and_adds_junit_figures():
    node = _node()
    comparison = compare_output("y", [np.ones(3, np.float32)], [np.ones(3, np.float32)], Tolerance(1e-3))
    attach_comparisons(node, [ParityRecord(ids=IDS, comparison=comparison)])
    name, record = node.user_properties[0]
    assert name == RECORD and record["type"] == "comparison" and record["output"] == "y" and record["max_abs"] == 0
    assert [p[0] for p in node.user_properties[1:]] == ["awml.y.max_abs", "awml.y.p99_abs", "awml.y.min_atol_to_pass"]


def test_pipeline_verdicts_become_parity_records():
    node = _node()
    attach_verdicts(node, IDS, [Verdict("boxes.score", 0.5, 0.1, "why", compared=7), Verdict("flips", 0.0, 0.0)])
    records = [value for name, value in node.user_properties if name == RECORD]
    assert records[0] == {"type": "check", "test_id": "t", "spec": "toy", "output": "boxes.score", "max_abs": 0.5, "atol": 0.1, "rtol": 0.0,
                          "passed": False, "problem": "why", "compared": 7}
    assert records[1]["passed"] and records[1]["problem"] == ""
    assert ("awml.boxes.score", 0.5) in node.user_properties


def test_the_collector_takes_records_once_per_test(tmp_path):
    results = Results()
    stats = LatencyStats.from_ms([1.0, 2.0])
    latency = LatencyRecord(ids=IDS, stats=stats, spans={"compute": stats}, rounds_cut=False, warmup_rounds=1)
    node = _node()
    results_attach(node, latency)
    properties = [*node.user_properties, ("awml.y.max_abs", 0.1)]
    for when in ("setup", "call", "teardown"):
        results.pytest_runtest_logreport(types.SimpleNamespace(when=when, user_properties=properties, skipped=False,
                                                               nodeid="awml::test_latency[toy/enc/pytorch-cpu-fp32]"))
    read = results.of(LatencyRecord)  # read back as its type, to the report's figures (rounded)
    assert [r.as_json() for r in read] == [latency.as_json()] and results.records["parity"] == []
    assert isinstance(read[0].spans["compute"], LatencyStats) and read[0].stats.rounds == 2
    assert (results.verified, results.skipped_count) == (1, 0)  # one test ran: counted once, at its call
    report = results.as_json({"seed": 0})
    assert list(report) == ["run", *KINDS] and report["latency"] == [latency.as_json()]
    assert KINDS == ("artifacts", "parity", "latency", "drift", "shapes", "golden", "data", "metrics", "inferences", "skipped",
                     "int8_sensitivity", "sequence")


def test_skipped_tests_and_their_reasons_are_recorded():
    results = Results()
    for nodeid, longrepr in (("awml::test_drift[toy/enc]", ("suite.py", 3, "Skipped: no golden folder")), ("mine::test_x", ("f", 1, "Skipped: x"))):
        results.pytest_runtest_logreport(types.SimpleNamespace(when="setup", user_properties=[], skipped=True, nodeid=nodeid,
                                                               longrepr=longrepr))
    assert results.as_json({})["skipped"] == [{"test_id": "awml::test_drift[toy/enc]", "reason": "no golden folder"}]
    assert results.skipped_count == 1 and results.verified_nothing


def test_run_info_has_the_contract_fields(tmp_path):
    options = toy.options(tmp_path, tolerances=ToleranceOverrides.parse(["0"]))
    run = run_info(options, [toy.SPEC], started=0.0)
    assert {"started", "duration_s", "device", "precisions", "seed", "samples", "checkpoint", "weights", "specs", "overrides",
            "golden", "versions", "host", "machine"} <= set(run)
    assert run["overrides"] == {"tolerances": {"*": [0.0, 0.0]}} and run["specs"] == ["toy"] and run["weights"] == "seeded (seed 0)"
    assert {"python", "pytest-awml", "torch", "onnx", "onnxruntime", "numpy", "pytest", "pytest-benchmark"} <= set(run["versions"])
