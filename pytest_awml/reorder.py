"""Rows a model selects by rank, matched across a near tie before they are compared.

A head that keeps its top-k queries (StreamPETR's memory queue: the ``topk_proposals`` most confident queries in
front) writes them in score order. Where two scores are nearer than a backend's error, the backend writes the two rows
the other way round: every value is right, in another row. An elementwise bound then sees the distance between two
queries (metres of reference point) and fails a faithful export; a bound widened to pass it judges nothing.
``Tolerance.max_reordered_rows`` says an output's slices along ``row_axis`` are such rows: a row out of tolerance
may be matched to another out-of-tolerance row of the reference that it agrees with within the same bound, and the
share of rows so moved is held to the limit. A row with no such partner (another query selected, a wrong value)
stays where it is and fails as before, unless ``max_unmatched_rows`` allows a share of such rows: a selection's cut
(the k-th and the k+1-th query nearer than the error) lets another query in. Those rows are set aside (compared to
themselves) and counted; their share is held to that limit.

The matching is an assignment problem over the rows out of place (at most the limit's share of them: more fail
unmatched), solved by SciPy's ``linear_sum_assignment`` on each pair's largest excess over the bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from pytest_awml.limits import Tolerance


@dataclass(frozen=True)
class Realigned:
    """A test sample with its moved rows put back where the reference has them, and how many rows moved of how many.
    ``source[i]``: the test row now at row ``i`` (the identity where nothing moved); ``set_aside``: how many rows matched
    no row of the reference and were replaced by the reference's (within ``max_unmatched_rows``)."""

    test: np.ndarray
    moved: int
    rows: int
    source: np.ndarray
    set_aside: int


def _excess(test_rows: np.ndarray, ref_rows: np.ndarray, tol: Tolerance) -> np.ndarray:
    """[len(test_rows), len(ref_rows)]: each pair's largest ``|t - r| - (atol + rtol |r|)`` (<= 0: the pair agrees);
    a non-finite difference is +inf."""
    diff = np.abs(test_rows[:, None, :] - ref_rows[None, :, :]) - (tol.atol + tol.rtol * np.abs(ref_rows))[None, :, :]
    worst = diff.max(axis=2, initial=-math.inf)
    return np.where(np.isnan(worst), math.inf, worst)


def realign(ref: np.ndarray, test: np.ndarray, tol: Tolerance) -> Realigned:
    """``test`` with each row that is out of tolerance where it stands, but within it at another out-of-tolerance
    row of ``ref``, moved there, and the rows still out of tolerance set aside when they are within
    ``max_unmatched_rows``'s share (same shape and dtype as ``test``). Rows are the slices along ``tol.row_axis``."""
    axis = tol.row_axis
    count = ref.shape[axis]
    r = np.moveaxis(ref, axis, 0).reshape(count, -1).astype(np.float64)
    t = np.moveaxis(test, axis, 0).reshape(count, -1).astype(np.float64)
    within = np.all(np.abs(t - r) <= tol.atol + tol.rtol * np.abs(r), axis=1)
    misplaced = np.flatnonzero(~within)
    limit = math.floor((float(tol.max_reordered_rows or 0.0) + float(tol.max_unmatched_rows or 0.0)) * count)
    source = np.arange(count)
    accepted: list[tuple[int, int]] = []
    # a swap needs two rows (and leave to move); more rows out of place than may move or be set aside fail unmatched
    if 2 <= misplaced.size <= limit and tol.max_reordered_rows:
        cost = _excess(t[misplaced], r[misplaced], tol)
        taken, to = linear_sum_assignment(np.where(np.isfinite(cost), cost, np.finfo(np.float64).max))
        accepted = [(misplaced[i], misplaced[j]) for i, j in zip(taken, to, strict=True) if cost[i, j] <= 0]
        for row, place in accepted:
            source[place] = row
    moved = np.take(test, source, axis=axis) if accepted else test
    unmatched = np.setdiff1d(misplaced, [place for _, place in accepted])
    if not 0 < unmatched.size <= math.floor(float(tol.max_unmatched_rows or 0.0) * count):
        return Realigned(moved, len(accepted), count, source, 0)
    out = np.moveaxis(moved.copy(), axis, 0)  # a selection's newcomers: the reference's rows, left out of every figure
    out[unmatched] = np.moveaxis(ref, axis, 0)[unmatched].astype(test.dtype)
    return Realigned(np.moveaxis(out, 0, axis), len(accepted), count, source, int(unmatched.size))
