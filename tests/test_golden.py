"""Golden store, error history and its trend budget: unit level."""

import numpy as np
import pytest

from pytest_awml.errors import ArtifactError
from pytest_awml.compare import compare_output
from pytest_awml.golden import GoldenStore, track, trend_problem, version_changes
from pytest_awml.spec import Tolerance, TrendSettings


def test_golden_round_trip_and_tamper_detection(tmp_path):
    store = GoldenStore(tmp_path)
    inputs = [{"x": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"x": np.ones((4, 3), np.float32)}]
    outputs = [{"y": np.full(2, 0.5, np.float32), "z": np.zeros(1, np.float32)}, {"y": np.ones(4, np.float32), "z": np.ones(1, np.float32)}]
    assert store.read("s", "c") is None
    path = store.write("s", "c", inputs, outputs, {"seed": 0, "versions": {"torch": "1"}})
    golden = store.read("s", "c")
    assert golden.path == path and golden.meta["seed"] == 0 and golden.meta["sha256"]
    for got, want in zip(golden.inputs + golden.outputs, inputs + outputs):
        assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match="does not match its metadata.*--awml-update-golden"):
        store.read("s", "c")


def test_update_creates_then_measures_the_change(tmp_path):
    store = GoldenStore(tmp_path)
    inputs, outputs = [{"x": np.zeros(2, np.float32)}], [{"y": np.zeros(2, np.float32)}]
    created = store.update("s", "c", inputs, outputs, {"seed": 0}, {"y": Tolerance(0.1)})
    assert created.action == "created" and created.old_vs_new_max_abs == {} and not created.replaced
    updated = store.update("s", "c", inputs, [{"y": np.full(2, 0.25, np.float32)}], {"seed": 0}, {"y": Tolerance(0.1)})
    assert updated.action == "updated" and updated.old_vs_new_max_abs == {"y": 0.25} and updated.path == created.path
    created.path.write_bytes(b"corrupt")
    replaced = store.update("s", "c", inputs, outputs, {"seed": 0}, {"y": Tolerance(0.1)})
    assert replaced.action == "created" and "does not match its metadata" in replaced.replaced


def test_history_and_its_trend_budget(tmp_path):
    store = GoldenStore(tmp_path)
    ref = np.array([0.0, 1.0], np.float32)  # not constant: outputs constant on both sides never pass (compare.degenerate)
    ok = compare_output("y", [ref], [ref + np.float32(1e-3)], Tolerance(1.0))
    assert track(store, "t", [ok], None) == []
    assert track(store, "t", [ok], TrendSettings(factor=2.0, floor=1e-6, window=3)) == []
    grown = compare_output("y", [ref], [ref + np.float32(5e-3)], Tolerance(1.0))
    notes = track(store, "t", [grown], TrendSettings(factor=2.0, floor=1e-6, window=3))
    assert len(notes) == 1 and notes[0].startswith("y: trend budget broken: error grew to 0.005")
    assert [h["max_abs"] for h in store.history("t", "y")] == pytest.approx([1e-3, 1e-3, 5e-3], rel=1e-4)  # float32 steps
    assert set(store.history("t", "y")[0]) == {"time", "test_id", "output", "max_abs", "p99_abs", "min_atol_to_pass"}


def test_history_survives_a_cut_line(tmp_path):
    store = GoldenStore(tmp_path)
    store.append_history([{"test_id": "t", "output": "y", "max_abs": 1.0}, {"test_id": "u", "output": "y", "max_abs": 9.0}])
    with open(tmp_path / "history.jsonl", "a") as handle:
        handle.write('{"test_id": "t", "outp')  # a run killed mid-write
    store.append_history([{"test_id": "t", "output": "y", "max_abs": 2.0}])
    assert [h["max_abs"] for h in store.history("t", "y")] == [1.0, 2.0]


def test_trend_budget():
    trend = TrendSettings(factor=2.0, floor=1e-6, window=3)
    assert trend_problem([], 5.0, trend) is None
    assert trend_problem([1e-4, 1e-4, 1e-4], 1.9e-4, trend) is None
    problem = trend_problem([1e-4, 1e-4, 1e-4], 2.1e-4, trend)
    assert "over 2x its baseline 0.0001" in problem and "last 3 run(s)" in problem
    assert trend_problem([0.0, 0.0], 1.5e-6, trend) is None  # bit-exact baseline: the floor applies
    assert trend_problem([0.0, 0.0], 3e-6, trend) is not None
    assert trend_problem([9.0, 1e-4, 1e-4, 1e-4], 1.5e-4, trend) is None  # only the last `window` count


def test_version_changes():
    assert version_changes({"torch": "2.12", "onnx": "1.20"}, {"torch": "2.13", "onnx": "1.20", "new": "1"}) == {"torch": ["2.12", "2.13"]}

