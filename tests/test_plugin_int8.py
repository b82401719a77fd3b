"""int8 end to end on the trained tiny specs (default CI): the QDQ graph made and read by TensorRT-RTX's parser, the
engine built on the CPU, and the gates that fit int8 (boxes, classes, the metric delta at the spec's int8 limit)."""

from __future__ import annotations

import pytest

from exporters.tensorrt_build import TENSORRT_RTX

TINY = ("centerpoint-tiny", "yolox-tiny", "calibration-tiny")
METRICS = {"centerpoint-tiny": "mAP", "yolox-tiny": "bbox_mAP", "calibration-tiny": "accuracy"}


def test_int8_on_the_tiny_specs_is_judged_by_boxes_and_metric(run_awml):
    specs = [arg for name in TINY for arg in ("--awml-spec", name)]
    run = run_awml(*specs, "--awml-precision=int8", "--awml-backends=onnxruntime,tensorrt-rtx",
                   "-k", "test_export or test_parity or test_pipeline_parity or test_metric")
    assert run.result.ret == 0, run.text[-3000:]
    report = run.report
    metrics = {m["spec"]: m for m in report["metrics"]}
    assert set(metrics) == set(TINY)
    for spec, record in metrics.items():
        assert record["target"] == "onnxruntime-cpu-int8" and record["metric"] == METRICS[spec] and record["passed"]
        assert record["delta"] <= record["max_delta"] < 1  # the spec's int8 limit, not a blank cheque
    graphs = [a for a in report["artifacts"] if a["format"] == "onnx-int8" and a["role"] == "export"]
    assert {a["spec"] for a in graphs} == set(TINY)
    for graph in graphs:
        details = graph["details"]
        assert details["quantizer"].startswith("onnxruntime ") and details["calibration_method"] == "minmax"
        assert details["calibrated_on"].startswith("8 seeded samples, seed 1") and details["quantized_nodes"] > 0
        if TENSORRT_RTX.unavailable() is None:
            assert details["tensorrt_rtx_parse"]["parsed"] and details["tensorrt_rtx_parse"]["rejected"] == []
    # tensor errors are reported (int8 moves them by tenths), boxes and classes are judged within the int8 limits
    parity = [p for p in report["parity"] if p.get("precision") == "int8"]
    assert any(p.get("max_abs", 0) > 0.01 for p in parity)
    assert any(p["spec"] == "centerpoint-tiny" and p.get("output") == "boxes.centre_m" for p in parity)
    if TENSORRT_RTX.unavailable() is None:
        engines = [a for a in report["artifacts"] if a["format"] == "tensorrt-rtx-int8" and a["role"] == "export"]
        assert {a["spec"] for a in engines} == set(TINY)
        for engine in engines:
            coverage = engine["details"]["coverage"]
            assert coverage["rejected"] == [] and coverage["onnx_ops"]["QuantizeLinear"] > 0 and engine["size_bytes"] > 0


@pytest.mark.skipif(TENSORRT_RTX.unavailable() is not None, reason="TensorRT-RTX not importable")
def test_rtx_int8_engines_say_why_they_do_not_run_on_the_cpu(run_awml):
    run = run_awml("--awml-spec", "calibration-tiny", "--awml-precision=int8", "--awml-backends=tensorrt-rtx", "-k", "test_parity",
                   "-rs")
    assert "TensorRT-RTX engines run on CUDA devices only" in run.text
