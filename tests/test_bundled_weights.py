"""The bundled-weights file the training tools write is the one the tiny specs load (model_specs/bundled_weights.py)."""

from __future__ import annotations

import json
import time

import torch

from model_specs.bundled_weights import load_weights, write_weights


def test_written_weights_load_strictly_with_the_json_of_how_they_were_made(tmp_path):
    torch.manual_seed(0)
    trained = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).train()
    written = write_weights(trained, tmp_path / "w" / "tiny.pt", {"steps": 7}, time.perf_counter())
    assert not trained.training  # saved as it runs
    assert json.loads((tmp_path / "w" / "tiny.json").read_text()) == written
    assert written["steps"] == 7 and written["torch"] == torch.__version__ and written["seconds"] >= 0
    fresh = load_weights(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)), tmp_path / "w" / "tiny.pt")
    assert not fresh.training
    for (k, a), (_, b) in zip(trained.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_weights_trained_in_part_hold_those_tensors_alone_in_float16(tmp_path):
    """``trained``: the file holds those keys only (the rest is the model's own, regenerated as training started from
    it); ``half``: stored as float16, loaded as the model's float32."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    out = tmp_path / "part.pt"
    write_weights(model, out, {}, time.perf_counter(), trained=("1.weight", "1.bias"), half=True)
    stored = torch.load(out, weights_only=True)
    assert set(stored) == {"1.weight", "1.bias"} and all(v.dtype == torch.float16 for v in stored.values())
    torch.manual_seed(0)
    fresh = load_weights(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)), out, trained=("1.weight", "1.bias"))
    assert fresh[1].weight.dtype == torch.float32 and torch.equal(fresh[1].weight, model[1].weight.half().float())
    assert torch.equal(fresh[0].weight, model[0].weight)  # regenerated, not stored
