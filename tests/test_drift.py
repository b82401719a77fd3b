"""CI gating end to end: golden outputs, drift, forensics replayed by Polygraphy, trend, overrides,
xdist, and a build killed midway. Each run is a pytest subprocess on centerpoint-tiny."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import onnx
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


def test_shape_fuzzing_covers_corners_and_refuses_out_of_range(run_awml):
    run = run_awml("--awml-spec=centerpoint-tiny", "--awml-hypothesis-profile=ci", "-k", "test_shapes", "-v")
    run.result.assert_outcomes(passed=1)
    assert "test_shapes[centerpoint-tiny/pts_voxel_encoder/onnxruntime-cpu-fp32] PASSED" in run.text
    record = run.report["shapes"][0]
    sizes = [t["sizes"]["num_voxels"] for t in record["tried"]]
    assert sizes[:3] == [100, 3000, 12000] and len(sizes) > 3 and all(100 <= s <= 12000 for s in sizes)
    assert all(t["passed"] for t in record["tried"])
    assert len(record["refused"]) == 4
    assert "'input_features' axis 0 (num_voxels) is 0, outside the declared range [100, 12000]" in record["refused"][0]
    assert "is 12001, outside" in record["refused"][2]


def test_xdist_builds_each_artifact_once(run_awml):
    run = run_awml("--awml-spec=centerpoint-tiny", "-n", "2")
    run.result.assert_outcomes(passed=6, skipped=8)  # latency tests skip under xdist: pytest-benchmark is off there
    built = [a["component"] for a in run.report["artifacts"] if not a["reused"]]
    assert sorted(built) == ["pts_backbone_neck_head", "pts_voxel_encoder"]
    assert "pytest-benchmark is disabled here" in run.text or run.result.ret == 0


SLOW = """
import dataclasses, os, time
from model_specs.centerpoint.spec import TINY_SPEC
from model_specs.centerpoint.model import VoxelEncoderExport


class Slow(VoxelEncoderExport):
    def forward(self, input_features):
        if os.environ.get("AWML_TEST_SLOW_EXPORT"):
            time.sleep(120)
        return super().forward(input_features)


SPEC = dataclasses.replace(TINY_SPEC, components=(dataclasses.replace(TINY_SPEC.components[0], extract=Slow), TINY_SPEC.components[1]))
"""


def test_a_build_killed_midway_is_rebuilt_cleanly(run_awml, pytester):
    pytester.makepyfile(slow_spec=SLOW)
    env = {**os.environ, "AWML_TEST_SLOW_EXPORT": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--awml-spec=slow_spec.py", "-k", "test_export"],
                            cwd=pytester.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    folder = pytester.path / ".awml" / "artifacts" / "centerpoint-tiny" / "pts_voxel_encoder"
    deadline = time.monotonic() + 120
    while not list(folder.glob("*/.build-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert list(folder.glob("*/.build-*")), "the export never started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(folder.glob("*/pts_voxel_encoder.onnx")) and not list(folder.glob("*/manifest.json"))

    again = run_awml("--awml-spec=slow_spec.py", "-k", "test_export")
    again.result.assert_outcomes(passed=2)
    record = next(a for a in again.report["artifacts"] if a["component"] == "pts_voxel_encoder")
    assert not record["reused"]
    assert not list(folder.glob("*/.build-*"))  # the killed build's leftovers are gone
    onnx.checker.check_model(record["path"], full_check=True)
