"""The bounds a spec declares, and the one verdict of a figure against its bound.

Kept apart from :mod:`pytest_awml.spec` so that :mod:`pytest_awml.pipeline` can use them while
the spec imports the pipeline's types: the arrows run spec → pipeline → limits, never back.
All are re-exported by :mod:`pytest_awml.spec`, where specs import them from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from pytest_awml.errors import NothingCompared


@dataclass(frozen=True)
class Tolerance:
    """Elementwise bound ``|test - ref| <= atol + rtol * |ref|``.

    ``max_label_flips`` (optional) says the output's last axis holds class scores per row (a point, a pixel): the
    share of rows whose argmax differs from the reference's may be at most this, judged beside the elementwise
    bound. A per-point segmentation's probabilities can move within atol and still change a point's label where
    two classes are near equal; the flips are what the user sees.

    ``max_reordered_rows`` (optional, a share in [0, 1]) says the output's slices along ``row_axis`` are rows a
    model writes in rank order (a top-k selection): a row out of tolerance may match another misplaced row of the
    reference within this bound, and at most this share of rows may so move (:mod:`pytest_awml.reorder`).
    ``max_unmatched_rows`` (optional, a share): rows that match no reference row at all (a selection's cut let
    another item in), left out of the figures and counted, at most this share of them."""

    atol: float
    rtol: float = 0.0
    max_label_flips: float | None = None
    max_reordered_rows: float | None = None
    row_axis: int = 1  # the axis after the batch
    max_unmatched_rows: float | None = None

    def problems(self) -> list[str]:
        bad = [n for n in ("atol", "rtol") if not (isinstance(getattr(self, n), (int, float)) and 0 <= getattr(self, n) < math.inf)]
        found = [f"{n} must be a finite number >= 0, got {getattr(self, n)!r}" for n in bad]
        flips = self.max_label_flips
        if flips is not None and not (isinstance(flips, (int, float)) and 0 <= flips <= 1):
            found.append(f"max_label_flips must be a share in [0, 1], got {flips!r}")
        for name in ("max_reordered_rows", "max_unmatched_rows"):
            rows = getattr(self, name)
            if rows is not None and not (isinstance(rows, (int, float)) and 0 <= rows <= 1):
                found.append(f"{name} must be a share in [0, 1], got {rows!r}")
        if not isinstance(self.row_axis, int) or isinstance(self.row_axis, bool) or self.row_axis < 0:
            found.append(f"row_axis must be an int >= 0, got {self.row_axis!r}")
        return found

    def widest(self, other: Tolerance) -> Tolerance:
        """The looser of the two on each term (a replay must allow for both runtimes' error)."""
        flips = [f for f in (self.max_label_flips, other.max_label_flips) if f is not None]
        rows = [r for r in (self.max_reordered_rows, other.max_reordered_rows) if r is not None]
        unmatched = [r for r in (self.max_unmatched_rows, other.max_unmatched_rows) if r is not None]
        return Tolerance(max(self.atol, other.atol), max(self.rtol, other.rtol), max(flips) if flips else None,
                         max(rows) if rows else None, self.row_axis, max(unmatched) if unmatched else None)


@dataclass(frozen=True)
class LatencyRatio:
    """A budget measured within one run: ``target``'s p50 <= ``max_ratio`` x ``baseline``'s p50.

    Targets are test-id targets (``onnxruntime-cpu-fp32``). Ratios hold on noisy machines where
    absolute times do not.
    """

    target: str
    baseline: str
    max_ratio: float


@dataclass(frozen=True)
class LatencySettings:
    """How a component is timed and what its latency may not exceed.

    ``rounds``/``warmup_rounds`` feed ``benchmark.pedantic``; ``max_time_s`` bounds a test's timing
    (rounds are cut to fit, and the cut is reported). ``regression`` is this test's threshold
    against a saved pytest-benchmark baseline (``0.10`` = the median may grow 10 %), where
    pytest-benchmark itself only has one global ``--benchmark-compare-fail``. ``ratios`` are
    same-run budgets; ``stage_shares`` (pipelines) cap a stage's share of the pipeline's p50.
    """

    rounds: int = 20
    warmup_rounds: int = 3
    max_time_s: float = 120.0
    regression: float | None = None
    ratios: tuple[LatencyRatio, ...] = ()
    stage_shares: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratios", tuple(self.ratios))
        object.__setattr__(self, "stage_shares", MappingProxyType(dict(self.stage_shares)))

    def problems(self) -> list[str]:
        found = []
        if not isinstance(self.rounds, int) or self.rounds < 1:
            found.append(f"rounds must be an int >= 1, got {self.rounds!r}")
        if not isinstance(self.warmup_rounds, int) or self.warmup_rounds < 0:
            found.append(f"warmup_rounds must be an int >= 0, got {self.warmup_rounds!r}")
        if not (isinstance(self.max_time_s, (int, float)) and self.max_time_s > 0):
            found.append(f"max_time_s must be > 0, got {self.max_time_s!r}")
        if self.regression is not None and not (isinstance(self.regression, (int, float)) and self.regression >= 0):
            found.append(f"regression must be a fraction >= 0 (0.1 = 10 %), got {self.regression!r}")
        for ratio in self.ratios:
            if not isinstance(ratio, LatencyRatio) or not ratio.max_ratio > 0:
                found.append(f"ratios: {ratio!r} is not a LatencyRatio with max_ratio > 0")
        for stage, share in self.stage_shares.items():
            if not (isinstance(share, (int, float)) and 0 < share <= 1):
                found.append(f"stage_shares[{stage!r}] must be in (0, 1], got {share!r}")
        return found


@dataclass(frozen=True)
class TrendSettings:
    """Error-budget trend: fail when an error grows past ``factor`` x its recorded baseline.

    The baseline is the median of the last ``window`` recorded runs; ``floor`` keeps a baseline of
    exactly 0 (bit-identical runs) from turning any rounding change into a failure.
    """

    factor: float = 2.0
    floor: float = 1e-6
    window: int = 10

    def problems(self) -> list[str]:
        found = []
        if not (isinstance(self.factor, (int, float)) and self.factor >= 1):
            found.append(f"factor must be >= 1, got {self.factor!r}")
        if not (isinstance(self.floor, (int, float)) and self.floor >= 0):
            found.append(f"floor must be >= 0, got {self.floor!r}")
        if not isinstance(self.window, int) or self.window < 1:
            found.append(f"window must be an int >= 1, got {self.window!r}")
        return found


@dataclass(frozen=True)
class Verdict:
    """One figure against its limit; it passes when ``value <= limit``.

    The same type judges a pipeline comparison (``name`` is the compared output, e.g.
    ``boxes.centre_m``) and a latency budget (``name`` is the budget, e.g. ``share postprocess``).
    ``detail`` says what the figure is, or for budgets the whole sentence a failure shows.
    """

    name: str
    value: float
    limit: float
    detail: str = ""
    compared: int | None = None  # how many items the figure is over (matched boxes, cells); None: not a count

    @property
    def passed(self) -> bool:
        return self.value <= self.limit

    @property
    def output(self) -> str:
        """``name``, under the word pipeline comparators and reports use for it."""
        return self.name

    def describe(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        over = f", over {self.compared}" if self.compared is not None else ""
        return f"{self.name}: {verdict} {self.value:.4g} (limit {self.limit:g}{over}){' - ' + self.detail if self.detail else ''}"


def require_compared(verdicts: Iterable[Verdict], minimum: int, what: str, remedy: str) -> None:
    """A verdict over fewer items than the spec's minimum judged nothing: raise :class:`NothingCompared`, saying what
    to give it (``remedy``: the inputs that would hold objects)."""
    thin = [v for v in verdicts if v.compared is not None and v.compared < minimum]
    if thin:
        counts = ", ".join(f"{v.name} over {v.compared}" for v in thin)
        raise NothingCompared(f"{what} compared too little to judge ({counts}; the spec's minimum is {minimum}): it would pass "
                              f"on nothing. Give it objects to find: --awml-checkpoint with trained weights, {remedy}")
