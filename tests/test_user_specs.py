"""A model the project has never seen, specified by a user, through a file and through an entry point."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-spec.md"


def _example() -> str:
    """The spec printed in docs/writing-a-spec.md: the doc's example is what this test runs."""
    return re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)


EXPECTED = ["test_export[tinyseg/net/onnx]", "test_parity[tinyseg/net/onnxruntime-cpu-fp32]",
            "test_shapes[tinyseg/net/onnxruntime-cpu-fp32]", "test_latency[tinyseg/net/pytorch-cpu-fp32]",
            "test_latency[tinyseg/net/onnxruntime-cpu-fp32]"]


def test_a_user_spec_file_runs_the_whole_suite(run_awml, pytester):
    pytester.makepyfile(tinyseg_spec=_example())
    run = run_awml("--awml-spec=tinyseg_spec.py", "--awml-hypothesis-profile=ci", "-v")
    run.result.assert_outcomes(passed=5, skipped=1)  # test_drift: no golden folder
    for test_id in EXPECTED:
        assert f"{test_id} PASSED" in run.text
    outputs = {r["output"] for r in run.report["parity"]}
    assert outputs == {"logits", "depth"}
    sizes = [t["sizes"] for t in run.report["shapes"][0]["tried"]]
    assert sizes[:3] == [{"height": 32, "width": 32}, {"height": 64, "width": 96}, {"height": 128, "width": 160}]


def test_a_user_package_entry_point(run_awml, pytester, monkeypatch):
    site = pytester.mkdir("site")
    (site / "my_specs.py").write_text(_example())
    info = site / "my_package-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pytest_awml.specs]\ntinyseg = my_specs:SPEC\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    run = run_awml("--awml-spec=tinyseg", "-k", "test_parity", "-v")
    run.result.assert_outcomes(passed=1)  # incl. the two pipeline kinds tinyseg has no case for
    assert "test_parity[tinyseg/net/onnxruntime-cpu-fp32] PASSED" in run.text


def test_two_specs_in_one_run(run_awml):
    run = run_awml("--awml-spec=centerpoint-tiny", "--awml-spec=yolox-tiny", "--awml-spec=calibration-tiny", "-k", "test_parity")
    run.result.assert_outcomes(passed=4)
    assert {r["spec"] for r in run.report["parity"]} == {"centerpoint-tiny", "yolox-tiny", "calibration-tiny"}
