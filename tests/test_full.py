"""Full-size runs of every shipped spec (opt-in: ``pytest -m full``; minutes each on a 2-core CPU)."""

import pytest

pytestmark = pytest.mark.full


@pytest.mark.parametrize("spec", ["centerpoint", "yolox", "yolox-dynamic", "calibration"])
def test_full_size_spec_passes_on_cpu(run_awml, spec):
    run = run_awml(f"--awml-spec={spec}", "--awml-hypothesis-profile=ci")
    outcomes = run.result.parseoutcomes()
    assert run.result.ret == 0 and outcomes.get("failed", 0) == 0 and outcomes["passed"] >= 5, run.text[-3000:]
