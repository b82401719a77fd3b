"""Rows written in rank order (pytest_awml.reorder): a near tie's swap is put back and counted, never hidden; a row
that matches no misplaced reference row, or more moved rows than the share allows, still fails."""

from __future__ import annotations

import numpy as np

from pytest_awml.compare import OutputComparison, compare_output
from pytest_awml.limits import Tolerance
from pytest_awml.reorder import realign

TOL = Tolerance(atol=1e-3, rtol=1e-3, max_reordered_rows=0.1)


def _memory(rows: int = 40, width: int = 8, seed: int = 0) -> np.ndarray:
    """[1, rows, width]: every row a different query's values (far apart)."""
    return np.random.default_rng(seed).normal(0, 10, (1, rows, width)).astype(np.float32)


def _swapped(values: np.ndarray, *pairs: tuple[int, int]) -> np.ndarray:
    out = values.copy()
    for a, b in pairs:
        out[:, [a, b]] = out[:, [b, a]]
    return out + np.float32(1e-4)  # a backend's own small error on every value


def test_a_swap_of_two_rows_is_put_back_and_counted():
    ref = _memory()
    test = _swapped(ref, (30, 31))
    assert not compare_output("m", [ref], [test], Tolerance(atol=1e-3, rtol=1e-3)).passed  # elementwise: two queries apart
    made = compare_output("m", [ref], [test], TOL)
    assert made.passed and made.rows == 40 and made.reordered_rows == 2 / 40 and made.max_abs < 2e-4
    assert "rows reordered 5.000% of 40" in made.describe()


def test_a_row_no_misplaced_reference_row_matches_fails():
    ref = _memory()
    test = _swapped(ref, (30, 31))
    test[0, 12] += 0.5  # a wrong value in another row: nothing to swap it with
    made = compare_output("m", [ref], [test], TOL)
    assert not made.passed and 0.49 < made.max_abs < 0.51 and made.reordered_rows == 2 / 40


def test_another_query_selected_is_no_swap():
    ref = _memory()
    test = ref.copy()
    test[0, 39] = _memory(seed=1)[0, 0]  # the last kept row is a different query (membership changed)
    test[0, [37, 38]] = test[0, [38, 37]]
    made = compare_output("m", [ref], [test], TOL)
    assert not made.passed and made.reordered_rows == 2 / 40  # the swap matched; the stranger did not


def test_more_rows_out_of_place_than_the_share_fails_unmatched():
    ref = _memory()
    test = _swapped(ref, (1, 2), (5, 6), (9, 10))  # 6 of 40 rows: 15 % > 10 %
    made = compare_output("m", [ref], [test], TOL)
    assert not made.passed and made.reordered_rows == 0.0 and made.max_abs > 1.0


def test_rows_along_another_axis_and_the_json_round_trip():
    ref = np.moveaxis(_memory(), 1, 2).copy()  # [1, width, rows]
    test = ref.copy()
    test[:, :, [3, 4]] = test[:, :, [4, 3]]
    tol = Tolerance(atol=1e-3, rtol=1e-3, max_reordered_rows=0.1, row_axis=2)
    assert realign(ref, test, tol).moved == 2
    made = compare_output("m", [ref], [test], tol)
    assert made.passed and OutputComparison.from_json(made.as_json()) == made
    plain = compare_output("m", [ref], [ref], Tolerance(atol=1e-3))
    assert "reordered_rows" not in plain.as_json() and plain.reordered_rows is None


def test_the_widest_of_two_tolerances_keeps_the_reorder_budget():
    assert Tolerance(1e-3).widest(TOL).max_reordered_rows == 0.1


def test_a_cut_s_newcomer_is_set_aside_and_counted_up_to_its_share():
    """A selection's last row holding another query matches no reference row: with max_unmatched_rows it is left out
    of the figures and counted; one row more than the share, or no share, and it fails as a wrong value."""
    ref = _memory()
    test = _swapped(ref, (30, 31))
    test[0, 39] = _memory(seed=1)[0, 0]  # another query selected at the cut
    tol = Tolerance(atol=1e-3, rtol=1e-3, max_reordered_rows=0.1, max_unmatched_rows=0.05)  # 2 of 40 rows
    made = compare_output("m", [ref], [test], tol)
    assert made.passed and made.unmatched_rows == 1 / 40 and made.reordered_rows == 2 / 40 and made.max_abs < 2e-4
    assert "rows set aside, matching none 2.500%" in made.describe()
    test[0, 37:39] += 5.0  # two more wrong rows: three unmatched, over the share of two
    assert not compare_output("m", [ref], [test], tol).passed
    assert not compare_output("m", [ref], [_swapped(ref, (30, 31)) + (np.arange(40) == 39)[None, :, None]], TOL).passed
