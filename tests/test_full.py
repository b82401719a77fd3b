"""Full-size runs of every shipped spec (opt-in: ``pytest -m full``; minutes each on a 2-core CPU)."""

import pytest

pytestmark = pytest.mark.full


@pytest.mark.parametrize("spec", ["centerpoint", "yolox", "yolox-dynamic", "calibration"])
def test_full_size_spec_passes_on_cpu(run_awml, spec):
    run = run_awml(f"--awml-spec={spec}", "--awml-hypothesis-profile=ci")
    outcomes = run.result.parseoutcomes()
    assert run.result.ret == 0 and outcomes.get("failed", 0) == 0 and outcomes["passed"] >= 5, run.text[-3000:]


def test_a_forced_full_size_centerpoint_failure_is_localized(run_awml, pytester):
    """The full-size backbone, neck and head with a tolerance nothing meets: the failure names a module of it and
    says what localizing took (benchmarks/localize_cost.py breaks the time down)."""
    import json

    run = run_awml("--awml-spec=centerpoint", "--awml-tolerance=1e-9,0", "--awml-samples=1",
                   "-k", "test_parity and pts_backbone_neck_head")
    assert run.result.parseoutcomes().get("failed") == 1 and "first divergence: pts_" in run.text, run.text[-3000:]
    folder = pytester.path / ".awml" / "artifacts" / "failures" / "test_parity_centerpoint_pts_backbone_neck_head_onnxruntime-cpu-fp32"
    table = json.loads((folder / "layers.json").read_text())
    assert table["first_divergence"]["module"].startswith("pts_") and table["seconds"] > 0
    print(f"localizing took {table['seconds']} s over {len(table['layers'])} module calls")
