"""A spec's bundled weights: a ``state_dict`` file and, beside it, a JSON of how they were made.

The training tools (``tools/train_*_tiny.py``) write them and the ``-tiny`` specs load them; one place keeps the
file format (CPU tensors, detached copies; ``weights_only`` loading, strict) the same on both sides.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch


def load_weights(model: torch.nn.Module, path: Path) -> torch.nn.Module:
    """``model`` holding the weights at ``path`` (strictly: every key, no more), in eval mode."""
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def write_weights(model: torch.nn.Module, out: Path, meta: Mapping[str, Any], started: float) -> dict[str, Any]:
    """Write ``model``'s weights (in eval mode) to ``out`` and ``meta`` with the seconds since ``started``
    (``time.perf_counter``) and torch's version to ``out`` with a ``.json`` suffix; return what the JSON holds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu().clone() for k, v in model.eval().state_dict().items()}, out)
    written = {**meta, "seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__}
    out.with_suffix(".json").write_text(json.dumps(written, indent=1) + "\n")
    return written
