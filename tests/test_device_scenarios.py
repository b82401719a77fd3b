"""A deploy config's verification scenarios with a CUDA side run as parity tests against the scenario's own
reference, and the report says which tolerance gated. Runs only where CUDA is (the GPU machine); the same
config's test ids are checked without a GPU in tests/test_deploy_config.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: run on the GPU machine")

CONFIG = Path(__file__).parent / "data" / "configs" / "awml" / "deploy_centerpoint_tiny.py"
SCENARIOS = """
verification['scenarios']['both'] = [
    dict(ref_backend='pytorch', ref_device='cpu', test_backend='onnx', test_device='cpu'),
    dict(ref_backend='onnx', ref_device='cpu', test_backend='pytorch', test_device='cuda'),
]
evaluation['backends']['tensorrt']['enabled'] = False
"""
CHAINED = "centerpoint-tiny/{component}/pytorch-cuda0-fp32@onnxruntime-cpu-fp32"


def test_a_cuda_scenario_runs_against_its_own_reference(pytester):
    (pytester.path / "deploy.py").write_text(CONFIG.read_text() + SCENARIOS)
    report = pytester.path / "report.json"
    checkpoint = Path(__file__).parents[1] / "model_specs" / "centerpoint" / "weights" / "centerpoint-tiny.pt"
    result = pytester.runpytest("-p", "no:cacheprovider", "--awml-spec=centerpoint-tiny", "--awml-deploy-config=deploy.py",
                                f"--awml-checkpoint={checkpoint}", "--awml-device=cuda", "--awml-backends=pytorch,onnxruntime",
                                f"--awml-artifacts={pytester.path / 'art'}", f"--awml-report={report}", "-k", "test_parity and pytorch and onnxruntime", "-rs")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out[-4000:]
    records = json.loads(report.read_text())["parity"]
    for component in ("pts_voxel_encoder", "pts_backbone_neck_head"):
        test_id = f"test_parity[{CHAINED.format(component=component)}]"
        chained = [r for r in records if r["test_id"].endswith(test_id)]
        assert chained, f"{test_id} not in the report: {sorted({r['test_id'] for r in records})}"
        for record in chained:  # one per output
            assert record["passed"] is True and record["compared"] > 0
            assert record["tolerance_gate"] == "spec" and record["deploy_tolerance"] == 1.0
            assert record["within_deploy_tolerance"] is True
