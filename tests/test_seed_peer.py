"""An upstream peer's seeded weights (model_specs.recording.seed_peer): what every recorder stores of the weights."""

from __future__ import annotations

import torch

from model_specs.recording import reference_weights, seed_peer, state_sha256


def _peer() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))


def test_the_peer_holds_the_reference_weights_and_the_copy_is_what_it_holds():
    model = _peer()
    shapes, state = seed_peer(model, 7)
    assert shapes == [(k, tuple(v.shape)) for k, v in _peer().state_dict().items()]  # the peer's own order
    expected = reference_weights(shapes, 7)
    assert all(torch.equal(state[k], expected[k]) for k, _ in shapes)
    with torch.no_grad():
        model[0].weight.add_(1.0)  # the copy stays what the peer was seeded with
    assert state_sha256(state) == state_sha256(seed_peer(_peer(), 7)[1]) != state_sha256(seed_peer(_peer(), 8)[1])
