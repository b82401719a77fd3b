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
