"""Loading a user's checkpoint into a spec's model: safely, strictly, with errors that say what to do.

A checkpoint is untrusted input: it is read with ``torch.load(weights_only=True)``, so no pickled
code runs, unless the user passes ``--awml-trust-checkpoint`` for a file they trust. The metadata
that training frameworks save beside the weights (mmengine's ``meta`` and ``message_hub``: numpy
arrays, HistoryBuffer objects) names classes outside torch's allowlist; each of them is read as an
inert placeholder that runs nothing, so such a file needs no trust (a state_dict must still hold
tensors only). Loading is
strict: every missing, unexpected or mis-shaped tensor is listed in one message (the first ten and
a count), followed by the spec's own hints about which configuration would match.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_awml.errors import CheckpointError

__all__ = ["CheckpointError", "Mismatch", "load_into", "mismatch", "read_state_dict"]

log = logging.getLogger(__name__)

SHOWN = 10
PREFIXES = ("module.", "model.")  # DataParallel / wrapper prefixes that checkpoints commonly carry
OPTIONAL = ("num_batches_tracked",)  # BatchNorm counters older checkpoints lack; unused at inference
PICKLE_PROTO = b"\x80"  # first byte of a pickle (protocol >= 2): legacy torch.save files start so
# torch.serialization gained get_unsafe_globals_in_checkpoint in 2.5 and (global, name) safe globals in 2.6
INERT_METADATA_TORCH = "2.6"


class _Inert:
    """What every global a checkpoint names outside torch's allowlist becomes: built from anything, it keeps
    nothing and runs nothing (weights_only's unpickler may build it, call it or set its state, and none
    of that reaches the named class or function)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _load_with_inert_metadata(path: Path, refused: CheckpointError) -> Any:
    """``torch.load(weights_only=True)`` with each non-allowlisted global the pickle names (listed statically,
    without unpickling) standing in as :class:`_Inert`; ``refused`` where that cannot read the file (a legacy
    non-zip file, a blocked module such as ``os``, an older torch)."""
    import torch

    if not zipfile.is_zipfile(path) or torch.__version__ < INERT_METADATA_TORCH:
        raise refused from None
    names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    try:
        with torch.serialization.safe_globals([(_Inert, name) for name in names]):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, TypeError):
        raise refused from None
    log.info("%s: read %d non-tensor global(s) as inert placeholders: %s", path, len(names), ", ".join(sorted(names)))
    return raw


@dataclass(frozen=True)
class Mismatch:
    """What does not fit: keys missing from the checkpoint, keys it has in excess, shape conflicts
    as (key, checkpoint shape, model shape)."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    shapes: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)


def read_state_dict(path: Path, trust: bool = False) -> dict[str, Any]:
    """The tensors of ``path``: a bare state_dict or ``{"state_dict": ..., "meta": ...}``, prefixes stripped."""
    import torch

    try:
        raw = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if not zipfile.is_zipfile(path) and path.read_bytes()[:1] != PICKLE_PROTO:
            raise CheckpointError(f"{path} cannot be read as a torch checkpoint (neither a zip archive nor a pickle: "
                                  "truncated or corrupted?)") from None
        raw = _load_with_inert_metadata(path, CheckpointError(
            f"{path} needs pickle to load (it holds Python objects, not only tensors), which can run code. "
            f"If you trust this file, pass --awml-trust-checkpoint. ({str(exc).splitlines()[0]})"))
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(f"{path} cannot be read as a torch checkpoint (truncated or corrupted?): "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    state = raw.get("state_dict", raw) if isinstance(raw, Mapping) else None
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state_dict: expected a mapping of names to tensors, or {{'state_dict': ...}}")
    state = dict(state)
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def mismatch(model, state: Mapping[str, Any]) -> Mismatch:
    expected = model.state_dict()
    missing = tuple(k for k in expected if k not in state and not k.endswith(OPTIONAL))
    unexpected = tuple(k for k in state if k not in expected)
    shapes = tuple((k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items()
                   if k in state and tuple(state[k].shape) != tuple(v.shape))
    return Mismatch(missing, unexpected, shapes)


def _listed(title: str, items) -> str:
    items = list(items)
    more = f" (and {len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return f"{len(items)} {title}: {', '.join(items[:SHOWN])}{more}"


def load_into(model, path: Path, *, trust: bool = False, hints: Callable[[Mismatch], list[str]] | None = None) -> None:
    """Load ``path`` into ``model`` strictly, or raise :class:`CheckpointError` listing every misfit."""
    state = read_state_dict(path, trust)
    found = mismatch(model, state)
    if found:
        parts = []
        if found.missing:
            parts.append(_listed("missing key(s)", found.missing))
        if found.unexpected:
            parts.append(_listed("unexpected key(s)", found.unexpected))
        if found.shapes:
            parts.append(_listed("shape mismatch(es)", (f"{k} is {tuple(c)} in the checkpoint, {tuple(m)} in the model" for k, c, m in found.shapes)))
        advice = (hints(found) if hints else []) or ["check that the spec's configuration matches the one that trained the checkpoint"]
        raise CheckpointError(f"{path} does not fit the model: " + "; ".join(parts) + ". " + " ".join(advice))
    expected = model.state_dict()
    for key in expected:
        if key not in state:  # only OPTIONAL counters reach here
            state[key] = expected[key]
    model.load_state_dict(state, strict=True)
