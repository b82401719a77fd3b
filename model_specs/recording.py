"""Recorded upstream outputs, shared by every spec proven against its upstream framework.

A :class:`Recording` is what an upstream model (mmdet3d's CenterPoint, mmdet's YOLOX, mmpretrain's
classifier) computed on fixed inputs with fixed weights, as arrays plus the facts needed to reproduce
it (``meta``). Small models store their weights whole (``state/<key>``); full-size ones store only the
key/shape list and a seed, and :func:`reference_weights` regenerates the weights from NumPy's legacy
``RandomState`` (whose streams NumPy keeps stable across versions), with the few tensors a recording
had to set itself (a calibrated bias, a scaled stem) stored whole as overrides. The recorded sha256
proves both sides used the same numbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

# What "agrees" means. Two implementations of the same float32 network on different CPUs and torch
# versions: each tensor within 1e-5 of its largest magnitude (a wrong layer, weight or transposed matrix
# errs by the tensor's own scale).
TENSOR_RTOL = 1e-5
STATE_PREFIX = "state/"
# meta["weights"]["source"] of a recording whose weights come from reference_weights
REGENERATED = "model_specs.recording.reference_weights"


@dataclass(frozen=True)
class Recording:
    """What an upstream model computed, as arrays, plus the facts needed to reproduce it (``meta``)."""

    arrays: Mapping[str, np.ndarray]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def stored_state(self) -> dict[str, torch.Tensor]:
        return {k[len(STATE_PREFIX):]: torch.from_numpy(np.array(v)) for k, v in self.arrays.items() if k.startswith(STATE_PREFIX)}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights the upstream model ran with: stored whole, or regenerated with the stored overrides."""
        weights = self.meta.get("weights", {})
        if weights.get("source") != REGENERATED:
            return self.stored_state()
        state = reference_weights([(k, tuple(s)) for k, s in self.meta["state_shapes"]], weights["seed"])
        state.update(self.stored_state())
        return state

    def save(self, folder: Path, name: str) -> list[Path]:
        """``<name>.npz`` (arrays, compressed) and ``<name>.json`` (meta)."""
        buffer = io.BytesIO()
        # mypy matches the mapping's keys against numpy's allow_pickle keyword too; they are tensor names
        np.savez_compressed(buffer, **self.arrays)  # type: ignore[arg-type]
        paths = [Path(folder) / f"{name}.npz", Path(folder) / f"{name}.json"]
        paths[0].write_bytes(buffer.getvalue())
        paths[1].write_text(json.dumps(self.meta, indent=1, sort_keys=True, default=str) + "\n")
        return paths

    @classmethod
    def load(cls, folder: Path, name: str) -> Recording:
        with np.load(Path(folder) / f"{name}.npz", allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        return cls(arrays, json.loads((Path(folder) / f"{name}.json").read_text()))


def state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        array = state[key].detach().cpu().contiguous().numpy()
        digest.update(f"{key}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def array_sha256(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(f"{array.dtype}:{array.shape}".encode() + array.tobytes()).hexdigest()


def reference_weights(shapes: list[tuple[str, tuple[int, ...]]], seed: int) -> dict[str, torch.Tensor]:
    """Weights with a trained network's scale, from a stream NumPy keeps stable across versions.

    Conv/linear weights He-normal (fan-in), biases small, BatchNorm near identity with randomised
    running statistics; keys are filled in the given order (the upstream state_dict's order).
    """
    rng = np.random.RandomState(seed)
    norms = {key.rsplit(".", 1)[0] for key, _ in shapes if key.endswith(".running_mean")}
    state = {}
    for key, shape in shapes:
        owner, name = key.rsplit(".", 1)
        value: np.ndarray
        if name == "num_batches_tracked":
            value = np.zeros(shape, np.int64)
        elif owner in norms and name == "weight":
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif owner in norms and name == "bias":
            value = 0.05 * rng.standard_normal(shape)
        elif name in ("weight", "gamma") and len(shape) == 1:  # a LayerNorm's scale, a ConvNeXt block's layer scale
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name in ("weight", "in_proj_weight"):  # conv / linear (an attention's packed q, k, v too): keeps the variance
            value = rng.standard_normal(shape) * math.sqrt(2.0 / int(np.prod(shape[1:])))
        elif name in ("bias", "in_proj_bias"):
            value = 0.1 * (2.0 * rng.random_sample(shape) - 1.0)
        elif name == "running_mean":
            value = 0.05 * rng.standard_normal(shape)
        elif name == "running_var":
            value = 1.0 + 0.2 * rng.random_sample(shape)
        else:
            raise KeyError(f"reference_weights: no rule for {key}")
        state[key] = torch.from_numpy(np.asarray(value, dtype=np.int64 if name == "num_batches_tracked" else np.float32))
    return state


def seed_peer(model: torch.nn.Module, seed: int) -> tuple[list[tuple[str, tuple[int, ...]]], dict[str, torch.Tensor]]:
    """Load :func:`reference_weights` of ``seed`` into an upstream ``model`` (strictly, in its state_dict's order) and
    return (its key/shape list, a copy of the state it now holds): what a recording stores of the weights it ran with."""
    shapes = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    model.load_state_dict(reference_weights(shapes, seed), strict=True)
    return shapes, {k: v.detach().clone() for k, v in model.state_dict().items()}


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b|, or inf when the shapes differ or there is nothing to compare."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.shape == b.shape and a.size else math.inf


def scale_of(array: np.ndarray) -> float:
    array = np.asarray(array)
    return float(np.abs(array).max()) if array.size else 0.0


def agrees(difference: float, scale: float) -> bool:
    """Within TENSOR_RTOL of the tensor's own scale (at least 1: values near 0 are judged absolutely)."""
    return difference <= TENSOR_RTOL * max(1.0, scale)


def tensor_problems(differences: Mapping[str, float], scales: Mapping[str, float], what: str = "") -> list[str]:
    """A sentence for every tensor that does not agree; empty when all do."""
    return [f"{what}{name}: off by {value:.3g} (values up to {scales[name]:.3g})"
            for name, value in differences.items() if not agrees(value, scales[name])]
