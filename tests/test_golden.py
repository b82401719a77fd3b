"""Golden store, error trend, tolerance overrides: unit level."""

import numpy as np
import pytest

from pytest_awml.errors import ArtifactError, AwmlError
from pytest_awml.golden import GoldenStore, trend_problem, version_changes
from pytest_awml.options import ToleranceOverrides
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


def test_tolerance_overrides():
    overrides = ToleranceOverrides.parse(["0", "heatmap=1e-4,1e-3"])
    assert overrides.apply("heatmap", Tolerance(1, 1)) == Tolerance(1e-4, 1e-3)
    assert overrides.apply("reg", Tolerance(1, 1)) == Tolerance(0, 0)
    assert overrides.as_dict() == {"heatmap": [1e-4, 1e-3], "*": [0.0, 0.0]}
    assert not ToleranceOverrides.parse([]) and ToleranceOverrides.parse([]).apply("x", Tolerance(1)) == Tolerance(1)
    for bad in ("abc", "heatmap=1,2,3", "x=-1", "nan"):
        with pytest.raises(AwmlError, match="ATOL"):
            ToleranceOverrides.parse([bad])
