"""The failure folder (pytest_awml.forensics): what a person gets to reproduce a failure without pytest."""

from __future__ import annotations

import numpy as np

from pytest_awml.forensics import folder_for, write_failure
from pytest_awml.limits import Tolerance

INPUTS = [{"x": np.arange(4, dtype=np.float32)}]
REFERENCE = [{"y": np.ones(2, np.float32), "z": np.zeros(1, np.float32)}]
OUTPUTS = [{"y": np.full(2, 1.5, np.float32), "z": np.zeros(1, np.float32)}]


def test_folder_names_are_safe_and_stable(tmp_path):
    assert folder_for(tmp_path, "awml::test_parity[spec/comp/onnxruntime-cpu-fp32]") == \
        tmp_path / "failures" / "test_parity_spec_comp_onnxruntime-cpu-fp32"


def _write(tmp_path, onnx_path):
    return write_failure(tmp_path, "awml::test_parity[s/c/t]", inputs=INPUTS, reference=REFERENCE, outputs=OUTPUTS,
                         reference_name="pytorch-cpu-fp32", test_name="onnxruntime-cpu-fp32",
                         tolerances={"y": Tolerance(1e-3, 1e-4), "z": Tolerance(0.5)}, onnx_path=onnx_path)


def test_the_folder_holds_both_sides_and_a_replay(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"graph")
    folder = _write(tmp_path, onnx)
    assert {p.name for p in folder.iterdir()} == {"inputs.npz", "reference.npz", "outputs.npz", "inputs.json", "reference.json",
                                                  "outputs.json", "model.onnx", "reproduce.sh"}
    with np.load(folder / "outputs.npz") as saved:
        assert np.array_equal(saved["0/y"], OUTPUTS[0]["y"])
    script = (folder / "reproduce.sh").read_text()
    assert "--atol y:0.001 z:0.5 --rtol y:0.0001 z:0" in script and "polygraphy run model.onnx --onnxrt" in script
    assert (folder / "reproduce.sh").stat().st_mode & 0o111


def test_without_a_model_there_is_no_replay_and_old_folders_are_replaced(tmp_path):
    folder = _write(tmp_path, tmp_path / "missing.onnx")
    (folder / "stale.txt").write_text("from an older failure")
    again = _write(tmp_path, None)
    assert again == folder and not (folder / "stale.txt").exists() and not (folder / "reproduce.sh").exists()
    assert (folder / "inputs.npz").exists()
