"""The Autoware decoder's GPU-shaped parts, checked on the CPU: the circle NMS as settled rounds against the greedy
pass, and the fixed-row decode (what CUDA runs without reading the count) against the exact one, including the
cases where the fixed shape is too small and must say so."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_specs.centerpoint import autoware_decode as ad
from model_specs.centerpoint.autoware import AutowareSettings, has_twist, node_config
from model_specs.centerpoint.decode import greedy_keep
from model_specs.centerpoint.spec import TINY_SPEC

CFG = node_config(TINY_SPEC.params["model"])
FIELDS = ("boxes", "scores", "labels", "candidate_cells", "candidate_scores", "probabilities", "sizes", "yaws")


def _lower(near: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.tril(near, -1).astype(np.float32))


def _chain(n: int) -> np.ndarray:
    """Rows each near the next, scores falling: greedy keeps every other one, the slowest case for the rounds."""
    near = np.zeros((n, n), dtype=bool)
    idx = np.arange(n - 1)
    near[idx, idx + 1] = near[idx + 1, idx] = True
    return near


@pytest.mark.parametrize("seed", range(20))
def test_settled_rounds_are_the_greedy_pass(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    near = rng.random((n, n)) < rng.uniform(0.0, 0.3)
    near = near | near.T
    valid = rng.random(n) < 0.9
    expected = greedy_keep(near[np.ix_(valid, valid)], n)
    kept, settled = ad._suppress(_lower(near & valid[None, :] & valid[:, None]), torch.from_numpy(valid.astype(np.float32)), None)
    assert bool(settled)
    assert np.flatnonzero(kept.numpy()).tolist() == np.flatnonzero(valid)[expected].tolist()


def test_fixed_rounds_say_when_a_chain_is_longer():
    near, valid = _chain(12), torch.ones(12)
    kept, settled = ad._suppress(_lower(near), valid, ad.NMS_ROUNDS)
    assert not bool(settled), "a chain of 12 cannot settle in 4 rounds: the decoder must decode again"
    kept, settled = ad._suppress(_lower(near), valid, None)
    assert bool(settled) and np.flatnonzero(kept.numpy()).tolist() == greedy_keep(near, 12) == list(range(0, 12, 2))


def _heads(seed: int = 0, peaks: int = 40) -> dict[str, torch.Tensor]:
    """Tiny-grid heads with ``peaks`` strong cells, some of them neighbours (NMS has work)."""
    g = torch.Generator().manual_seed(seed)
    _, h, w = 1, *CFG.grid_size[:2]
    h, w = h // CFG.out_size_factor, w // CFG.out_size_factor
    heads = {"heatmap": torch.randn(1, len(CFG.class_names), h, w, generator=g) - 4, "reg": torch.rand(1, 2, h, w, generator=g),
             "height": torch.randn(1, 1, h, w, generator=g), "dim": torch.randn(1, 3, h, w, generator=g) * 0.3,
             "rot": torch.randn(1, 2, h, w, generator=g), "vel": torch.randn(1, 2, h, w, generator=g)}
    cells = torch.randint(0, h * w, (peaks,), generator=g)
    heads["heatmap"][0, 0].view(-1)[cells] = 3.0
    heads["heatmap"][0, 0].view(-1)[(cells + 1) % (h * w)] = 2.0  # right-hand neighbours: suppressed or not by distance
    heads["reg"][0, 0].view(-1)[(cells + 1) % (h * w)] = -0.9  # pulled back within NMS's radius of their peak
    return heads


def _fixed(heads, capacity: int, rounds: int):
    t = ad.as_tensors(heads)
    maps, settings = ad._stack(t), AutowareSettings()
    at = ad._layout({name: t[name].shape[1] for name in ad.HEADS})
    k = ad._constants(CFG, settings, maps[0].numel(), maps.device)
    packed, prob = ad._decode(maps, at, k, CFG, has_twist(CFG), capacity, rounds)
    return ad._unpack(packed.numpy(), capacity, k.top, (prob, *ad._maps(maps, at)))


def test_fixed_rows_decode_the_exact_boxes():
    heads = _heads()
    exact = ad.decode_autoware(heads, CFG, AutowareSettings())
    fixed, count = _fixed(heads, ad.CANDIDATES, ad.NMS_ROUNDS)
    assert fixed is not None and count >= len(exact.scores) > 10
    assert all(np.array_equal(getattr(exact, f), getattr(fixed, f)) for f in FIELDS)
    assert len(exact.scores) < count, "NMS suppressed nothing: the heads give it no work"


def test_too_few_rows_are_refused():
    heads = _heads()
    _, count = _fixed(heads, ad.CANDIDATES, ad.NMS_ROUNDS)
    fixed, seen = _fixed(heads, count - 1, ad.NMS_ROUNDS)
    assert fixed is None and seen == count


def test_the_pipeline_decoder_on_the_cpu_is_decode_autoware():
    heads = _heads(1)
    ours, theirs = ad.AutowareDecoder(CFG, AutowareSettings())(heads), ad.decode_autoware(heads, CFG, AutowareSettings())
    assert all(np.array_equal(getattr(ours, f), getattr(theirs, f)) for f in FIELDS)
