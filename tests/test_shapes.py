"""Shapes (pytest_awml.shapes): feed checks, profile corners, out-of-range sizes, drawn sizes, feeds."""

from __future__ import annotations

import numpy as np
from hypothesis import given

from pytest_awml.shapes import (PROFILES, RandomFeed, corner_sizes, feed_problem, hypothesis_settings, out_of_range_sizes, random_feed, zero_feed,
                                shape_for, sizes_strategy)
from pytest_awml.spec import Dim, TensorSpec
from pytest_awml.digests import content_digest

N, M = Dim("n", 2, 4, 8), Dim("m", 1, 1, 3)
X = TensorSpec("x", (N, 3, M))
Y = TensorSpec("y", (N,), dtype="int64")


def test_feed_problem_names_the_tensor():
    assert feed_problem([X, Y], {"x": np.zeros((5, 3, 2)), "y": np.zeros(5)}) is None
    assert feed_problem([X, Y], {"x": np.zeros((5, 3, 2))}) == "input 'y' is missing (got ['x'])"
    assert "'x' axis 0 (n) is 9, outside the declared range [2, 8]" in feed_problem([X], {"x": np.zeros((9, 3, 1))})
    assert "'x' axis 1 is 4, the spec says 3" in feed_problem([X], {"x": np.zeros((2, 4, 1))})
    assert "'x' has rank 2" in feed_problem([X], {"x": np.zeros((2, 3))})


def test_corners_and_out_of_range_sizes():
    assert corner_sizes([N, M]) == {"min": {"n": 2, "m": 1}, "opt": {"n": 4, "m": 1}, "max": {"n": 8, "m": 3}}
    assert out_of_range_sizes([N, M]) == [{"n": 0, "m": 1}, {"n": 9, "m": 1}, {"n": 4, "m": 0}, {"n": 4, "m": 4}]


def test_random_feeds_are_seeded_and_typed():
    sizes = {"n": 6, "m": 2}
    assert shape_for(X, sizes) == (6, 3, 2)
    a, b = random_feed([X, Y], sizes, seed=1), random_feed([X, Y], sizes, seed=1)
    assert a["x"].shape == (6, 3, 2) and a["x"].dtype == np.float32 and a["y"].dtype == np.int64
    assert np.array_equal(a["x"], b["x"]) and not np.array_equal(a["x"], random_feed([X], sizes, seed=2)["x"])
    assert a["x"].std() > 0.5 and a["y"].dtype == np.int64  # drawn, in each tensor's own dtype


def test_a_random_feed_is_named_by_its_recipe_and_drawn_only_when_read():
    """A feed both sides of which are stored is never drawn: its digest is its recipe's, and the recipe decides it."""
    sizes = {"n": 6, "m": 2}
    feed = RandomFeed([X, Y], sizes, seed=1)
    recipe = content_digest(feed.recipe)
    assert not feed.drawn and list(feed) == ["x", "y"] and len(feed) == 2 and "x" in feed and "z" not in feed
    assert recipe == content_digest(RandomFeed([X, Y], sizes, seed=1).recipe)
    others = (RandomFeed([X, Y], sizes, seed=2), RandomFeed([X, Y], {"n": 7, "m": 2}, seed=1),
              RandomFeed([X, TensorSpec("y", (N,), dtype="int32")], sizes, seed=1), RandomFeed([X], sizes, seed=1))
    assert len({recipe, *(content_digest(other.recipe) for other in others)}) == 5
    assert not feed.drawn
    drawn = random_feed([X, Y], sizes, seed=1)
    assert all(np.array_equal(feed[name], drawn[name]) for name in drawn) and feed.drawn and feed_problem([X, Y], feed) is None


def test_refused_feeds_are_zeros_of_the_sizes():
    feed = zero_feed([X, Y], {"n": 9, "m": 4})
    assert feed["x"].shape == (9, 3, 4) and feed["x"].dtype == np.float32 and feed["y"].dtype == np.int64
    assert not feed["x"].any() and feed_problem([X, Y], feed) is not None


@given(sizes_strategy([N, M]))
def test_drawn_sizes_stay_in_range(sizes):
    assert N.contains(sizes["n"]) and M.contains(sizes["m"])


def test_hypothesis_profiles(tmp_path):
    ci, dev = hypothesis_settings("ci", tmp_path), hypothesis_settings("dev", tmp_path)
    assert ci.derandomize and ci.database is None and ci.max_examples == PROFILES["ci"]["max_examples"]
    assert not dev.derandomize and dev.database is not None and ci.deadline is None


def test_a_component_s_cap_lowers_the_profile_s_draws_never_raises_them(tmp_path):
    assert hypothesis_settings("dev", tmp_path, most=2).max_examples == 2
    assert hypothesis_settings("ci", tmp_path, most=1000).max_examples == PROFILES["ci"]["max_examples"]
