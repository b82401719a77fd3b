"""Where parity is judged: a backend's outputs against the reference, per output, and the verdict.

``compare_outputs`` computes every figure; ``parity_failure`` and ``differs`` turn figures into
the one message a failed parity, drift, shape or pipeline test raises (pure functions: the tests
record, keep history and write forensics around them).

Both sides must be NumPy arrays: the framework this replaces once reported a difference of
exactly 0 because one side held torch tensors; here a non-array is an error, never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from pytest_awml.errors import ToleranceExceeded
from pytest_awml.limits import Tolerance, Verdict
from pytest_awml.reorder import realign

# Percentile reported beside the maximum: robust to one outlier, still sensitive to a broken region.
P99 = 99.0
_NOT_FIGURES = ("output", "passed", "problem")
_OPTIONAL_FIGURES = ("label_flips", "label_rows", "max_label_flips", "reordered_rows", "rows", "max_reordered_rows", "unmatched_rows",
                     "max_unmatched_rows")


@dataclass(frozen=True)
class OutputComparison:
    """Every figure about one output across all samples. ``problem`` explains a structural fail."""

    output: str
    passed: bool
    atol: float
    rtol: float
    max_abs: float = float("nan")
    mean_abs: float = float("nan")
    p99_abs: float = float("nan")
    max_rel: float = float("nan")
    frac_out_of_tol: float = float("nan")
    cosine: float = float("nan")
    min_atol_to_pass: float = float("nan")
    elements: int = 0
    nonfinite_ref: int = 0
    nonfinite_test: int = 0
    ref_max_abs: float = float("nan")
    problem: str = ""
    # only for an output whose tolerance sets max_label_flips (class scores per row): the share of rows whose argmax
    # differs from the reference's, over how many rows, and its limit; left out of the JSON otherwise
    label_flips: float | None = None
    label_rows: int | None = None
    max_label_flips: float | None = None
    # only for an output whose tolerance sets max_reordered_rows (rows a model writes in rank order): the share of
    # rows matched to another row of the reference (pytest_awml.reorder), over how many rows, and its limit
    reordered_rows: float | None = None
    rows: int | None = None
    max_reordered_rows: float | None = None
    # the share of rows that matched no reference row and were set aside (a selection's cut let another item in)
    unmatched_rows: float | None = None
    max_unmatched_rows: float | None = None

    def as_json(self) -> dict:
        # JSON has no NaN/Inf: a figure that could not be computed is null. ``compared``: what every parity
        # record says, here the number of elements the figures are over.
        record = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()
                  if not (k in _OPTIONAL_FIGURES and v is None)}
        return {**record, "compared": self.elements}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutputComparison:
        """Read back from :meth:`as_json` (a null figure is NaN again)."""
        values: dict[str, Any] = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        read: dict[str, Any] = {k: (math.nan if v is None and k not in (*_NOT_FIGURES, *_OPTIONAL_FIGURES) else v) for k, v in values.items()}
        return cls(**read)

    def describe(self) -> str:
        if self.problem:
            return f"{self.output}: {self.problem}"
        verdict = "ok" if self.passed else "FAILED"
        flips = ("" if self.label_flips is None else
                 f"; label flips {self.label_flips:.3%} of {self.label_rows} rows (limit {self.max_label_flips:.3%})")
        if self.reordered_rows is not None:
            flips += f"; rows reordered {self.reordered_rows:.3%} of {self.rows} (limit {float(self.max_reordered_rows or 0):.3%})"
        if self.unmatched_rows:
            flips += f"; rows set aside, matching none {self.unmatched_rows:.3%} (limit {float(self.max_unmatched_rows or 0):.3%})"
        return (
            f"{self.output}: {verdict} max_abs={self.max_abs:.3g} p99_abs={self.p99_abs:.3g} "
            f"max_rel={self.max_rel:.3g} out_of_tol={self.frac_out_of_tol:.3%} cos={self.cosine:.6f} "
            f"(atol={self.atol:g}, rtol={self.rtol:g}; min atol to pass={self.min_atol_to_pass:.3g}{flips})"
        )


def compare_output(name: str, refs: Sequence[np.ndarray], tests: Sequence[np.ndarray], tol: Tolerance) -> OutputComparison:
    """Compare one output over all samples (``refs[i]`` against ``tests[i]``)."""
    base: dict[str, Any] = {"output": name, "atol": float(tol.atol), "rtol": float(tol.rtol)}
    if len(refs) != len(tests):
        return OutputComparison(passed=False, problem=f"{len(refs)} reference samples but {len(tests)} test samples", **base)
    for i, (ref, test) in enumerate(zip(refs, tests, strict=True)):
        for side, value in (("reference", ref), ("test", test)):
            if not isinstance(value, np.ndarray):
                kind = f"{type(value).__module__}.{type(value).__name__}"
                return OutputComparison(passed=False, problem=f"sample {i}: the {side} output is a {kind}, not a numpy array", **base)
        if ref.shape != test.shape:
            return OutputComparison(passed=False, problem=f"sample {i}: shape {test.shape} differs from the reference's {ref.shape}", **base)
        if ref.dtype != test.dtype:
            return OutputComparison(passed=False, problem=f"sample {i}: dtype {test.dtype} differs from the reference's {ref.dtype}", **base)
    moved = rows = unmatched = 0
    by_rank = tol.max_reordered_rows is not None or tol.max_unmatched_rows is not None
    if by_rank:  # rows in rank order: a near tie's swap put back, a cut's newcomer set aside, before anything is judged
        realigned = [realign(r, t, tol) for r, t in zip(refs, tests, strict=True)]
        tests = [a.test for a in realigned]
        moved, rows = sum(a.moved for a in realigned), sum(a.rows for a in realigned)
        unmatched = sum(a.set_aside for a in realigned)
    reordered = moved / rows if rows else (0.0 if by_rank else None)
    newcomers = unmatched / rows if rows else (0.0 if by_rank else None)
    ref = np.concatenate([r.astype(np.float64).ravel() for r in refs]) if refs else np.zeros(0)
    test = np.concatenate([t.astype(np.float64).ravel() for t in tests]) if tests else np.zeros(0)
    if ref.size == 0:
        return OutputComparison(passed=False, problem="the output is empty on both sides: nothing was compared", **base)
    bad_ref, bad_test = int((~np.isfinite(ref)).sum()), int((~np.isfinite(test)).sum())
    diff = np.abs(test - ref)
    mag = np.abs(ref)
    finite = np.isfinite(diff)
    scaled = tol.rtol * mag
    out = ~(diff <= tol.atol + scaled)  # NaN compares False, so non-finite elements count as out of tolerance
    nonzero = mag > np.finfo(np.float32).tiny
    # Outputs are 15 M elements and more (a full-size head): when every difference is finite (the usual case) the
    # figures read the arrays themselves, not boolean-indexed copies of them; the figures are the same.
    everywhere = bool(finite.all())
    fd, ref_f, test_f = (diff, ref, test) if everywhere else (diff[finite], ref[finite], test[finite])
    excess = diff - scaled if everywhere else (diff - scaled)[finite]
    relative = np.divide(diff, mag, out=np.zeros_like(diff), where=nonzero & finite)  # 0 where not compared: max is >= 0
    norm = float(np.linalg.norm(ref_f) * np.linalg.norm(test_f))
    cosine = float(np.dot(ref_f, test_f) / norm) if norm > 0 else (1.0 if not fd.any() else 0.0)
    finite_mag = mag if everywhere else mag[np.isfinite(mag)]
    problem = ""
    if bad_ref or bad_test:
        problem = f"non-finite values: {bad_ref} in the reference, {bad_test} in the test output (of {ref.size})"
    elif not out.any() and degenerate(ref) and degenerate(test):  # agreeing constants judge nothing (differing ones fail as usual)
        problem = (f"constant on both sides (every element {ref[0]:g} in the reference, {test[0]:g} in the test output, "
                   f"{ref.size} elements): equal constants (all zero) cannot tell a working backend from a broken model or "
                   "store; feed inputs that make the output vary (more --awml-samples, trained weights)")
    labels = label_flips(refs, tests) if tol.max_label_flips is not None else None
    flipped = labels is not None and labels[0] > float(tol.max_label_flips or 0.0)
    flipped = flipped or (reordered is not None and reordered > float(tol.max_reordered_rows or 0.0))
    flipped = flipped or (newcomers is not None and newcomers > float(tol.max_unmatched_rows or 0.0))
    return OutputComparison(
        passed=not out.any() and not problem and not flipped,
        max_abs=float(fd.max()) if fd.size else float("nan"),
        mean_abs=float(fd.mean()) if fd.size else float("nan"),
        p99_abs=float(np.percentile(fd, P99)) if fd.size else float("nan"),
        max_rel=float(relative.max()),
        frac_out_of_tol=float(out.mean()),
        cosine=cosine,
        min_atol_to_pass=float(max(0.0, excess.max())) if fd.size else float("nan"),
        elements=int(ref.size),
        nonfinite_ref=bad_ref,
        nonfinite_test=bad_test,
        ref_max_abs=float(finite_mag.max()) if finite_mag.size else float("nan"),
        problem=problem,
        label_flips=labels[0] if labels is not None else None,
        label_rows=labels[1] if labels is not None else None,
        max_label_flips=tol.max_label_flips,
        reordered_rows=reordered,
        rows=rows if by_rank else None,
        max_reordered_rows=tol.max_reordered_rows,
        unmatched_rows=newcomers,
        max_unmatched_rows=tol.max_unmatched_rows,
        **base,
    )


def label_flips(refs: Sequence[np.ndarray], tests: Sequence[np.ndarray]) -> tuple[float, int]:
    """(share of rows whose argmax over the last axis differs, rows): class scores per point or pixel."""
    flips = rows = 0
    for ref, test in zip(refs, tests, strict=True):
        if ref.ndim == 0 or ref.shape[-1] == 0:
            continue
        flips += int((ref.argmax(axis=-1) != test.argmax(axis=-1)).sum())
        rows += int(ref.size // ref.shape[-1])
    return (flips / rows if rows else 0.0), rows


def degenerate(values: np.ndarray) -> bool:
    """Every element the same (all zero, say), over more than one: such an output judges nothing."""
    return values.size > 1 and bool(values.min() == values.max())


def compare_outputs(
    refs: Sequence[Mapping[str, np.ndarray]],
    tests: Sequence[Mapping[str, np.ndarray]],
    tolerances: Mapping[str, Tolerance],
) -> list[OutputComparison]:
    """Compare every output named in ``tolerances``; an output missing on either side fails."""
    results = []
    for name, tol in tolerances.items():
        missing = [
            f"{side} sample {i}" for side, samples in (("reference", refs), ("test", tests))
            for i, sample in enumerate(samples) if name not in sample
        ]
        if missing:
            results.append(OutputComparison(name, False, float(tol.atol), float(tol.rtol), problem=f"missing in {', '.join(missing)}"))
            continue
        results.append(compare_output(name, [r[name] for r in refs], [t[name] for t in tests], tol))
    extra = sorted({k for t in tests for k in t} - set(tolerances))
    for name in extra:
        results.append(OutputComparison(name, False, float("nan"), float("nan"), problem="output not declared by the spec"))
    return results


def differs(subject: str, reference: str, where: str, problems: Sequence[str]) -> str:
    """The one wording of a ``ToleranceExceeded``: who differs from what, where, and each problem."""
    return f"{subject} differs from {reference} {where}:\n  " + "\n  ".join(problems)


def parity_failure(comparisons: Sequence[OutputComparison], notes: Sequence[str], *, subject: str, reference: str,
                   samples: int) -> str | None:
    """The verdict on a comparison: None when every output passed and no note (a broken trend
    budget) stands against it, else the message naming each failed output and note."""
    problems = [c.describe() for c in comparisons if not c.passed] + list(notes)
    if not problems:
        return None
    return differs(subject, reference, f"on {len(problems)} of {len(comparisons)} output(s) over {samples} sample(s)", problems)


def require_passed(verdicts: Sequence[Verdict], subject: str, reference: str, over: str) -> None:
    """Raise :class:`ToleranceExceeded` naming each failed check of a decoded comparison (boxes, classes…); ``over``:
    what the checks were over, e.g. '3 sample(s)'."""
    failed = [v.describe() for v in verdicts if not v.passed]
    if failed:
        raise ToleranceExceeded(differs(subject, reference, f"on {len(failed)} of {len(verdicts)} check(s) over {over}", failed))
