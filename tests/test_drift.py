"""CI gating end to end: golden outputs, drift, forensics replayed by Polygraphy, the trend budget,
tolerance overrides. Each run is a pytest subprocess on centerpoint-tiny."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import pytest

PERTURBED = """
import dataclasses
import torch
from model_specs.centerpoint.spec import TINY_SPEC


def build(checkpoint, seed):
    model = TINY_SPEC.build_model(checkpoint, seed)
    with torch.no_grad():
        model.pts_bbox_head.task_heads[0].heatmap[1].weight[0, 0, 0, 0] += 0.05  # one weight of one head
    return model


SPEC = dataclasses.replace(TINY_SPEC, build_model=build)
"""


def test_golden_then_drift_then_forensics(run_awml, pytester):
    golden = pytester.path / "golden"
    created = run_awml("--awml-spec=centerpoint-tiny", f"--awml-golden={golden}", "--awml-update-golden", "-k", "test_drift")
    created.result.assert_outcomes(passed=2)
    assert [g["action"] for g in created.report["golden"]] == ["created", "created"]
    assert "golden centerpoint-tiny/pts_voxel_encoder: created" in created.text
    meta = json.loads((golden / "centerpoint-tiny" / "pts_backbone_neck_head.json").read_text())
    assert meta["seed"] == 0 and meta["versions"]["torch"] and meta["weights_sha256"] and meta["spec_hash"]

    same = run_awml("--awml-spec=centerpoint-tiny", f"--awml-golden={golden}", "-k", "test_drift")
    same.result.assert_outcomes(passed=2)
    assert all(r["max_abs"] == 0 for r in same.report["drift"])  # same machine, same torch: bit-identical

    pytester.makepyfile(perturbed=PERTURBED)
    junit = pytester.path / "junit.xml"
    drifted = run_awml("--awml-spec=perturbed.py", f"--awml-golden={golden}", "-k", "test_drift", f"--junitxml={junit}")
    drifted.result.assert_outcomes(passed=1, failed=1)
    assert "ToleranceExceeded: pytorch-cpu-fp32 today differs from golden" in drifted.text
    assert "heatmap: FAILED max_abs=" in drifted.text
    # the one weight changed is named: today's model against the golden layers kept with the golden outputs
    assert "first divergence: pts_bbox_head.task_heads.0.heatmap.1: max abs" in drifted.text
    assert next(r for r in drifted.report["drift"] if r["output"] == "heatmap")["first_divergence"]["module"] == \
        "pts_bbox_head.task_heads.0.heatmap.1"
    failure = pytester.path / ".awml" / "artifacts" / "failures" / "test_drift_centerpoint-tiny_pts_backbone_neck_head"
    assert f"Inputs, outputs and reproduce.sh: {failure}" in drifted.text
    assert {p.name for p in failure.iterdir()} >= {"inputs.npz", "reference.npz", "outputs.npz", "inputs.json",
                                                    "reference.json", "outputs.json", "model.onnx", "reproduce.sh"}
    record = next(r for r in drifted.report["drift"] if r["output"] == "heatmap")
    assert not record["passed"] and record["weights_changed"] and record["max_abs"] > 0.01
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).iter("property")}
    assert float(props["awml.heatmap.max_abs"]) == pytest.approx(record["max_abs"], rel=1e-6)
    assert props["awml.failure_folder"] == str(failure)

    replay = subprocess.run(["bash", str(failure / "reproduce.sh")], capture_output=True, text=True, timeout=300)
    assert replay.returncode != 0, replay.stdout[-2000:]
    assert "FAILED | Output: 'heatmap'" in replay.stdout + replay.stderr
    assert "PASSED | Output: 'reg'" in replay.stdout + replay.stderr  # the replay singles out the drifted output


def test_trend_budget_fails_growth_under_the_tolerance(run_awml, pytester):
    golden = pytester.path / "golden"
    golden.mkdir()
    test_id = "awml::test_parity[centerpoint-tiny/pts_voxel_encoder/onnxruntime-cpu-fp32]"
    (golden / "history.jsonl").write_text("".join(json.dumps({"test_id": test_id, "output": "pillar_features", "max_abs": 1e-9}) + "\n" for _ in range(3)))
    run = run_awml("--awml-spec=centerpoint-tiny", f"--awml-golden={golden}", "--awml-drift-trend", "-k", "test_parity and voxel")
    run.result.assert_outcomes(failed=1)
    assert "pillar_features: trend budget broken: error grew to" in run.text and "over 2x its baseline 1e-09" in run.text
    lines = (golden / "history.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1])["max_abs"] > 1e-6  # the run still joined the history


def test_tolerance_overrides_are_applied_and_reported(run_awml):
    strict = run_awml("--awml-spec=centerpoint-tiny", "--awml-tolerance=0", "-k", "test_parity")
    strict.result.assert_outcomes(failed=2)
    assert strict.report["run"]["overrides"] == {"tolerances": {"*": [0.0, 0.0]}}
    assert all(r["atol"] == 0 for r in strict.report["parity"])
    loose = run_awml("--awml-spec=centerpoint-tiny", "--awml-tolerance=pillar_features=1e-3,0", "-k", "test_parity and voxel")
    loose.result.assert_outcomes(passed=1)
    assert loose.report["parity"][0]["atol"] == 1e-3
