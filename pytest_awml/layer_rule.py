"""One graph tensor judged against the reference's value of it: the component's tolerance scaled to the tensor's
range (:class:`LayerRule`), the figures kept of it (:class:`Judged`), and :class:`PairJudge`, which judges each
(reference tensor, graph tensor) pair once however many modules ask.

A module's output is its last child's and its input its first child's, so a parent asks for pairs its children
already had judged; a full-size backbone's tensors are hundreds of MB each, and judging them again for every
container around them (and holding them meanwhile) is what made localizing it take minutes and many GB. Judging
walks a tensor in slices of :data:`SLICE` elements, so its float64 working arrays stay a few tens of MB whatever the
tensor's size.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pytest_awml.limits import Tolerance

SLICE = 1 << 22  # elements judged at a time: ~32 MB per float64 working array


@dataclass(frozen=True)
class Judged:
    """A module's tensors judged: the max abs difference over finite elements, the reference's range, elements
    non-finite on one side only, the verdict, and the share of the tolerance used (1: at the limit)."""

    max_abs: float
    span: float
    nonfinite: int
    within: bool
    used: float

    @property
    def distance(self) -> float:
        """How far apart the two tensors are, for pairing a reference tensor with the nearest graph tensor."""
        return float("inf") if self.nonfinite else self.max_abs

    @classmethod
    def of_all(cls, judged: Sequence[Judged]) -> Judged | None:
        if not judged:
            return None
        return cls(max(j.max_abs for j in judged), max(j.span for j in judged), sum(j.nonfinite for j in judged),
                   all(j.within for j in judged), max(j.used for j in judged))


def _flat(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).reshape(-1)  # a view where it can be (a memory map stays one)


def _span(flat: np.ndarray) -> float:
    """The largest finite |value| (the tensor's range): max and -min, no working array, unless a slice holds an
    Inf or NaN."""
    span = 0.0
    for start in range(0, flat.size, SLICE):
        part = flat[start:start + SLICE]
        if not part.size:
            continue
        top = max(float(part.max()), -float(part.min()))
        if not np.isfinite(top):  # an Inf or NaN in this slice: the largest of the others
            part = np.abs(part[np.isfinite(part)])
            top = float(part.max()) if part.size else 0.0
        span = max(span, top)
    return span


@dataclass
class _Work:
    """The working arrays of one judgment, made once and reused for every slice (a fresh one per slice has the
    kernel map new pages each time)."""

    diff: np.ndarray
    allowed: np.ndarray
    flags: np.ndarray

    @classmethod
    def of(cls, size: int, kind: np.dtype) -> _Work:
        return cls(np.empty(size, kind), np.empty(size, kind), np.empty(size, bool))


@dataclass(frozen=True)
class LayerRule:
    """A component's tolerance as a layer's: ``atol`` per unit of the tensor's range (the tightest any output
    allows for its own range), ``rtol`` as the component's tightest."""

    atol_ratio: float
    rtol: float

    @classmethod
    def of(cls, tolerances: Mapping[str, Tolerance], reference: Mapping[str, np.ndarray]) -> LayerRule:
        ratios, rtols = [], []
        for name, tol in tolerances.items():
            rtols.append(float(tol.rtol))
            if name in reference:
                span = _span(_flat(reference[name]))
                if span > 0:
                    ratios.append(float(tol.atol) / span)
        return cls(min(ratios) if ratios else 0.0, min(rtols) if rtols else 0.0)

    def judge(self, ref: np.ndarray, test: np.ndarray) -> Judged:
        """One graph tensor against the reference's value of it (equal infinities and NaNs agree).

        Computed in the wider of the two types (float32 for the float32 reference and a float32 or float16 graph): a
        difference of two float32 values is exact to float32's precision, and float64 working arrays would double a
        full-size tensor's time; a slice with no Inf or NaN (nearly all) takes the short path."""
        ref_flat, test_flat = _flat(ref), _flat(test)
        kind = np.result_type(ref_flat.dtype, test_flat.dtype, np.float32)
        span = _span(ref_flat)
        work = _Work.of(min(SLICE, ref_flat.size), kind)
        slices = [self._slice(ref_flat[start:start + SLICE], test_flat[start:start + SLICE], self.atol_ratio * span, work)
                  for start in range(0, ref_flat.size, SLICE)]
        bad = sum(part.nonfinite for part in slices)
        return Judged(max((part.max_abs for part in slices), default=0.0), span, bad,
                      bad == 0 and all(part.within for part in slices), max((part.used for part in slices), default=0.0))

    def _slice(self, r: np.ndarray, t: np.ndarray, base: float, work: _Work) -> Judged:
        """One slice's figures (``base``: the atol its tensor's range allows; ``span`` is left 0)."""
        size = r.size
        diff, allowed, flags = work.diff[:size], work.allowed[:size], work.flags[:size]
        with np.errstate(invalid="ignore"):  # Inf - Inf is NaN here, and set right below
            np.subtract(t, r, out=diff, dtype=diff.dtype)
        np.abs(diff, out=diff)
        bad = 0
        if not np.isfinite(diff, out=flags).all():
            r = np.asarray(r, dtype=diff.dtype)
            diff[(r == t) | (np.isnan(r) & np.isnan(t))] = 0.0  # equal infinities and NaNs agree
            finite = np.isfinite(diff)
            bad = int(size - np.count_nonzero(finite))
            r = np.where(np.isfinite(r), r, 0).astype(diff.dtype)
        np.abs(r, out=allowed, dtype=allowed.dtype)
        allowed *= self.rtol
        allowed += base
        within = bool(np.less_equal(diff, allowed, out=flags).all())
        if bad:
            diff, allowed = diff[finite], allowed[finite]
        if not diff.size:
            return Judged(0.0, 0.0, bad, within, 0.0)
        worst = float(diff.max())
        if base > 0:  # every element allowed something: the share in place
            used = float(np.divide(diff, allowed, out=diff).max())
        else:
            used = float(np.divide(diff, allowed, out=np.where(diff > 0, np.inf, 0).astype(diff.dtype), where=allowed > 0).max())
        return Judged(worst, 0.0, bad, within, used)


class PairJudge:
    """Judges (reference tensor, graph tensor) pairs, each once: a reference tensor is named by a key its caller
    gives (one that names no other tensor while this judge lives), a graph tensor by its name in ``values``.
    ``comparisons`` counts the pairs actually compared (what localizing costs), ``asked`` the pairs asked for."""

    def __init__(self, rule: LayerRule, values: Mapping[str, np.ndarray]) -> None:
        self.rule = rule
        self.values = values
        self._judged: dict[tuple[Hashable, str], Judged] = {}
        self.comparisons = 0
        self.asked = 0

    def __call__(self, key: Hashable, ref: np.ndarray, name: str) -> Judged:
        self.asked += 1
        found = self._judged.get((key, name))
        if found is None:
            self.comparisons += 1
            found = self._judged[(key, name)] = self.rule.judge(ref, self.values[name])  # a memory map is dropped after
        return found
