"""Artifacts across processes end to end: xdist workers build each artifact once, and a build killed
midway leaves nothing trusted and is rebuilt cleanly. Each run is a pytest subprocess on centerpoint-tiny."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import onnx


def test_xdist_builds_each_artifact_once(run_awml, pytester):
    run = run_awml("--awml-spec=centerpoint-tiny", "-n", "2")
    run.result.assert_outcomes(passed=7, skipped=8)  # latency tests skip under xdist: pytest-benchmark is off there
    built = [(a["component"], a["format"], a["details"].get("input")) for a in run.report["artifacts"] if not a["reused"]]
    # each inference too: the reference's and ONNX Runtime's outputs for an input are made by one worker, read by the other
    assert len(built) == len(set(built))
    assert {(c, f) for c, f, _ in built} == {(c, f) for c in ("pts_backbone_neck_head", "pts_voxel_encoder")
                                            for f in ("backend-outputs", "onnx", "reference-outputs")}
    shared = {(a["component"], a["format"], a["details"].get("input")) for a in run.report["artifacts"] if a["reused"]}
    assert shared <= set(built), "a worker read an inference no worker of this run made"
    backend = [a for a in run.report["artifacts"] if a["format"] == "backend-outputs"]
    assert {a["details"]["target"] for a in backend} == {"onnxruntime-cpu-fp32"}
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
