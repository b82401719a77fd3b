"""The comparison never passes silently: every structural mismatch fails with a reason."""

import numpy as np
import pytest
import torch

from pytest_awml.compare import compare_output, compare_outputs
from pytest_awml.spec import Tolerance

TOL = Tolerance(atol=1e-3, rtol=1e-2)


def test_identical_outputs_pass_with_zero_error():
    a = np.linspace(-5, 5, 101, dtype=np.float32)
    c = compare_output("x", [a], [a.copy()], TOL)
    assert c.passed and c.max_abs == 0 and c.min_atol_to_pass == 0 and c.cosine == pytest.approx(1.0)


def test_error_figures_are_exact():
    ref = np.array([1.0, 2.0, 0.0, -4.0], dtype=np.float32)
    test = ref + np.array([0.0, 0.05, 0.002, -0.01], dtype=np.float32)
    c = compare_output("x", [ref], [test], TOL)
    assert c.max_abs == pytest.approx(0.05, rel=1e-5)
    assert c.max_rel == pytest.approx(0.025, rel=1e-5)  # 0.05 / 2; the zero reference is left out
    # |d| - rtol*|ref| per element: 0, 0.03, 0.002, -0.03 → the smallest atol that passes is 0.03
    assert c.min_atol_to_pass == pytest.approx(0.03, rel=1e-4)
    assert not c.passed and c.frac_out_of_tol == pytest.approx(0.5)


def test_min_atol_to_pass_really_passes():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=1000).astype(np.float32)
    test = ref + rng.normal(scale=1e-3, size=1000).astype(np.float32)
    c = compare_output("x", [ref], [test], TOL)
    assert compare_output("x", [ref], [test], Tolerance(c.min_atol_to_pass * 1.0001 + 1e-12, TOL.rtol)).passed
    if c.min_atol_to_pass > 0:
        assert not compare_output("x", [ref], [test], Tolerance(c.min_atol_to_pass * 0.99, TOL.rtol)).passed


def test_statistics_span_all_samples():
    ref = [np.zeros(4, np.float32), np.zeros(6, np.float32)]
    test = [np.zeros(4, np.float32), np.full(6, 0.5, np.float32)]
    c = compare_output("x", ref, test, TOL)
    assert c.elements == 10 and c.max_abs == 0.5 and c.frac_out_of_tol == pytest.approx(0.6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_fail_with_counts(bad):
    ref = np.ones(8, np.float32)
    test = ref.copy()
    test[[1, 5]] = bad
    c = compare_output("x", [ref], [test], TOL)
    assert not c.passed
    assert c.nonfinite_test == 2 and "2 in the test output" in c.problem


def test_nan_on_both_sides_is_not_equality():
    ref = np.array([np.nan, 1.0], np.float32)
    assert not compare_output("x", [ref], [ref.copy()], TOL).passed


def test_shape_mismatch_fails():
    c = compare_output("x", [np.zeros((2, 3), np.float32)], [np.zeros((3, 2), np.float32)], TOL)
    assert not c.passed and "shape" in c.problem


def test_dtype_mismatch_fails():
    c = compare_output("x", [np.zeros(3, np.float32)], [np.zeros(3, np.float16)], TOL)
    assert not c.passed and "dtype" in c.problem


def test_a_torch_tensor_on_one_side_is_an_error_not_a_zero_difference():
    ref = np.ones(3, np.float32)
    c = compare_output("x", [ref], [torch.ones(3)], TOL)
    assert not c.passed and "torch.Tensor" in c.problem and "not a numpy array" in c.problem


def test_missing_and_undeclared_outputs_fail():
    ref = [{"a": np.arange(2, dtype=np.float32), "b": np.zeros(2, np.float32)}]
    test = [{"a": np.arange(2, dtype=np.float32), "c": np.zeros(2, np.float32)}]
    results = {c.output: c for c in compare_outputs(ref, test, {"a": TOL, "b": TOL})}
    assert results["a"].passed
    assert not results["b"].passed and "missing in test sample 0" in results["b"].problem
    assert not results["c"].passed and "not declared" in results["c"].problem


def test_empty_outputs_fail():
    c = compare_output("x", [np.zeros(0, np.float32)], [np.zeros(0, np.float32)], TOL)
    assert not c.passed and "nothing was compared" in c.problem


def test_record_is_json_safe():
    import json

    c = compare_output("x", [np.zeros(0, np.float32)], [np.zeros(0, np.float32)], TOL)
    json.dumps(c.as_json(), allow_nan=False)


@pytest.mark.parametrize("value", [0.0, 3.5])
def test_outputs_constant_on_both_sides_never_pass(value):
    """All zero (a poisoned store, a dead model) on both sides agrees perfectly and judges nothing: a failure that says
    so; one side constant, or one element, is compared as usual."""
    c = compare_output("x", [np.full(4, value, np.float32)] * 2, [np.full(4, value, np.float32)] * 2, TOL)
    assert not c.passed and "constant on both sides" in c.problem
    assert compare_output("x", [np.full(4, value, np.float32)], [np.full(4, value, np.float32) + np.float32([0, 0, 0, 1e-4])], TOL).passed
    assert compare_output("x", [np.full(1, value, np.float32)], [np.full(1, value, np.float32)], TOL).passed


def test_label_flips_are_judged_beside_atol_over_every_row_of_every_sample():
    """Class scores per point: within atol everywhere, yet a point whose two best classes swap is a flip."""
    ref = [np.array([[0.6, 0.4], [0.2, 0.8]], np.float32), np.array([[0.51, 0.49]], np.float32)]
    test = [np.array([[0.6, 0.4], [0.2, 0.8]], np.float32), np.array([[0.49, 0.51]], np.float32)]
    strict = compare_output("p", ref, test, Tolerance(atol=0.05, max_label_flips=0.0))
    assert not strict.passed and strict.label_flips == pytest.approx(1 / 3) and strict.label_rows == 3
    assert "label flips 33.333% of 3 rows" in strict.describe() and strict.as_json()["label_flips"] == pytest.approx(1 / 3)
    assert compare_output("p", ref, test, Tolerance(atol=0.05, max_label_flips=0.34)).passed
    plain = compare_output("p", ref, test, Tolerance(atol=0.05))  # no budget: atol alone, and no label figures in the record
    assert plain.passed and plain.label_flips is None and "label_flips" not in plain.as_json()


def test_label_flip_figures_read_back_from_a_record():
    from pytest_awml.compare import OutputComparison

    ref = [np.array([[0.6, 0.4]], np.float32)]
    made = compare_output("p", ref, ref, Tolerance(atol=0.05, max_label_flips=0.0))
    assert OutputComparison.from_json(made.as_json()).label_flips == 0.0
