"""A spec's bundled weights: a ``state_dict`` file and, beside it, a JSON of how they were made.

The training tools (``tools/train_*_tiny.py``) write them and the ``-tiny`` specs load them; one place keeps the
file format (CPU tensors, detached copies; ``weights_only`` loading, strict) the same on both sides.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch

from pytest_awml.errors import ArtifactError


def load_weights(model: torch.nn.Module, path: Path, trained: Collection[str] | None = None) -> torch.nn.Module:
    """``model`` holding the weights at ``path`` (strictly: every key, no more), in eval mode. ``trained``: the file holds
    only these keys (a model trained in part: the rest is ``model``'s own, regenerated as the training started from it),
    exactly these; a float16 file is cast to the model's dtypes."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if trained is None:
        model.load_state_dict(state, strict=True)
        return model.eval()
    if set(state) != set(trained):
        raise ArtifactError(f"{path} holds {len(state)} tensors, not the {len(trained)} the spec trained: "
                            f"{sorted(set(state) ^ set(trained))[:3]}...; write them again with the training tool")
    model.load_state_dict({**model.state_dict(), **state}, strict=True)
    return model.eval()


def write_weights(model: torch.nn.Module, out: Path, meta: Mapping[str, Any], started: float, trained: Collection[str] | None = None,
                  half: bool = False) -> dict[str, Any]:
    """Write ``model``'s weights (in eval mode) to ``out`` and ``meta`` with the seconds since ``started``
    (``time.perf_counter``) and torch's version to ``out`` with a ``.json`` suffix; return what the JSON holds.
    ``trained``: only these keys (see :func:`load_weights`); ``half``: floats stored as float16 (half the file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.eval().state_dict().items() if trained is None or k in trained}
    torch.save({k: v.half() if half and v.is_floating_point() else v for k, v in state.items()}, out)
    written = {**meta, "seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__}
    out.with_suffix(".json").write_text(json.dumps(written, indent=1) + "\n")
    return written
