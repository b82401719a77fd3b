"""Shapes: whether a feed fits the declared tensors, and the sizes a component's dynamic dims
span (profile corners, out-of-range sizes, hypothesis strategies, random feeds)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exporters.signature import Dim, TensorSpec
from pytest_awml.errors import DataError
from pytest_awml.lazy import LazyMapping

CORNERS = ("min", "opt", "max")
# Bounded so that a CI run stays in minutes even for 96 000-pillar inputs; ``ci`` is derandomized
# (the same examples every run: no flaky merges) and has no per-example deadline.
PROFILES = {"ci": {"max_examples": 6, "derandomize": True}, "dev": {"max_examples": 15, "derandomize": False}}


def feed_problem(tensors: Sequence[TensorSpec], feed: Mapping[str, Any]) -> str | None:
    """Why ``feed`` does not fit ``tensors`` (a missing name, a rank, a size outside a Dim's
    range), or None. The one check for samples from ``make_inputs`` and for what a runner is fed."""
    for tensor in tensors:
        if tensor.name not in feed:
            return f"input {tensor.name!r} is missing (got {sorted(feed)})"
        problem = tensor.shape_problem(tuple(np.shape(feed[tensor.name])))
        if problem:
            return problem
    return None


def corner_sizes(dims: Sequence[Dim]) -> dict[str, dict[str, int]]:
    return {corner: {d.name: getattr(d, corner) for d in dims} for corner in CORNERS}


def out_of_range_sizes(dims: Sequence[Dim]) -> list[dict[str, int]]:
    """For each dim: 0 (nothing, e.g. no pillar) and max + 1; the other dims at opt."""
    cases = []
    for d in dims:
        base = {o.name: o.opt for o in dims}
        cases.append({**base, d.name: 0})
        cases.append({**base, d.name: d.max + 1})
    return cases


def sizes_strategy(dims: Sequence[Dim]):
    """A hypothesis strategy of ``{dim name: size}`` within each dim's [min, max]."""
    from hypothesis import strategies as st

    return st.fixed_dictionaries({d.name: st.integers(min_value=d.min, max_value=d.max) for d in dims})


def shape_for(tensor: TensorSpec, sizes: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(sizes[d.name] if isinstance(d, Dim) else d for d in tensor.shape)


def random_feed(tensors: Sequence[TensorSpec], sizes: Mapping[str, int], seed: int) -> dict[str, np.ndarray]:
    """Seeded standard-normal inputs of the given sizes (shape tests probe shapes, not realism). float32 and
    float64 are drawn in their own dtype: a float32 draw is 3.5 x faster than a float64 one cast (a 96 000-pillar
    feed: 0.3 s against 1.06 s)."""
    rng = np.random.default_rng(seed)
    return {t.name: _standard_normal(rng, shape_for(t, sizes), np.dtype(t.dtype)) for t in tensors}


class RandomFeed(LazyMapping):
    """:func:`random_feed`'s arrays, drawn on first read, and named by their recipe (``recipe``: the tensors' names,
    shapes and dtypes, the seed, NumPy's version) rather than by their content: a run that finds both sides' outputs
    of a shape-fuzzing feed stored never draws it (a 96 000-pillar feed is 0.3 s to draw and 0.03 s to hash). The
    recipe decides the arrays: NumPy's version is in it because its generators' streams may change between
    releases, and the drawing code is the plugin's, whose hash keys every stored output."""

    def __init__(self, tensors: Sequence[TensorSpec], sizes: Mapping[str, int], seed: int) -> None:
        tensors, sizes = tuple(tensors), dict(sizes)
        super().__init__((t.name for t in tensors), lambda: random_feed(tensors, sizes, seed))
        self.recipe = {"random_feed": json.dumps({"tensors": [[t.name, list(shape_for(t, sizes)), np.dtype(t.dtype).str] for t in tensors],
                                                  "seed": seed, "numpy": np.__version__})}

    @property
    def drawn(self) -> bool:
        return self.made


def _standard_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype in (np.dtype(np.float32), np.dtype(np.float64)):
        return rng.standard_normal(shape, dtype=dtype)
    return rng.standard_normal(shape).astype(dtype)


def zero_feed(tensors: Sequence[TensorSpec], sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Zeros of the given sizes: for feeds whose shape alone is judged (refused sizes), none is drawn."""
    return {t.name: np.zeros(shape_for(t, sizes), dtype=t.dtype) for t in tensors}


def hypothesis_settings(profile: str, database_dir: Path, most: int | None = None):
    """The profile's settings; ``most`` (``Component.shape_draws``) caps its examples."""
    from hypothesis import HealthCheck, settings
    from hypothesis.database import DirectoryBasedExampleDatabase

    options: dict[str, Any] = dict(PROFILES[profile])
    if most is not None:
        options["max_examples"] = min(options["max_examples"], most)
    database = None if options["derandomize"] else DirectoryBasedExampleDatabase(str(database_dir))
    return settings(deadline=None, database=database, suppress_health_check=list(HealthCheck), **options)


def plan_output_shapes(input_specs: Sequence[TensorSpec], output_specs: Sequence[TensorSpec],
                       input_shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Output shapes implied by concrete input shapes: dynamic dims are bound by name from the inputs.

    Used to allocate output buffers before ``execute_async_v3`` and checked against TensorRT's own
    ``get_tensor_shape`` at run time, so a spec that mis-declares an output fails loudly.
    """
    bound: dict[str, int] = {}
    for spec in input_specs:
        shape = input_shapes[spec.name]
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, Dim) and bound.setdefault(dim.name, shape[axis]) != shape[axis]:
                raise DataError(f"dim {dim.name!r} is {bound[dim.name]} in one input and {shape[axis]} in {spec.name!r}")
    return {spec.name: tuple(bound[d.name] if isinstance(d, Dim) else d for d in spec.shape) for spec in output_specs}
