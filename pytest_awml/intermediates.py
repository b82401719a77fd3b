"""Every intermediate tensor of one inference, on both sides of a parity test, for localizing a failure.

The reference's come from forward hooks on every module of ``named_modules()`` (each call's inputs when it starts
and outputs when it ends, copied: an in-place op later on would change them); the graph's from ONNX Runtime with
every tensor of the graph marked as an output, which Polygraphy's ``ModifyOutputs(outputs=MARK_ALL)`` does (the
same as its ``--onnx-outputs mark all``), so the fp16 graph's tensors are read in the types it computes in.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModuleCall:
    """One call of one module (dotted name as ``named_modules()`` gives it): its floating-point tensors in and out."""

    module: str
    inputs: tuple[np.ndarray, ...]
    outputs: tuple[np.ndarray, ...]


class _Copies:
    """Host copies of the tensors the hooks see, one per tensor state: a module's input is the output of the one
    before it and a Sequential's output its last child's, so each is copied once (a full-size backbone's calls
    would otherwise hold every activation three or four times). A tensor changed in place since (its version
    counter moved: ``ReLU(inplace=True)``) is copied again."""

    def __init__(self, spill: Path | None = None) -> None:
        self._seen: dict[tuple[int, int], np.ndarray] = {}  # (the tensor object's id, its version) -> its copy
        self._spill = spill
        self._written = 0  # files named by a count that never goes back (a forgotten state's file stays mapped)

    def _forget(self, ident: int) -> None:
        """A tensor died: its id may name a new one now (its memory too: the state cannot be its address)."""
        for state in [s for s in self._seen if s[0] == ident]:
            del self._seen[state]

    def _copy(self, values: np.ndarray) -> np.ndarray:
        if self._spill is None:
            return values.copy()
        self._written += 1
        kept = np.lib.format.open_memmap(self._spill / f"{self._written}.npy", mode="w+", dtype=values.dtype, shape=values.shape)
        kept[...] = values
        kept.flush()  # written back: its pages are clean, the kernel may drop them until they are read
        return kept

    def of(self, value: Any) -> list[np.ndarray]:
        """The floating-point tensors in a module's arguments or result (tuples, lists and dicts walked in order)."""
        import torch

        if isinstance(value, torch.Tensor):
            if not value.is_floating_point():
                return []
            state = (id(value), value._version)
            if state not in self._seen:
                if not any(s[0] == state[0] for s in self._seen):
                    weakref.finalize(value, self._forget, state[0])
                self._seen[state] = self._copy(value.detach().float().cpu().numpy())
            return [self._seen[state]]
        if isinstance(value, (tuple, list)):
            return [t for item in value for t in self.of(item)]
        if isinstance(value, Mapping):
            return [t for item in value.values() for t in self.of(item)]
        return []


def module_calls(module, feed: Sequence[np.ndarray], spill: Path | None = None) -> list[ModuleCall]:
    """Run ``module`` on ``feed`` (its positional inputs, the reference's way: CPU, float32) with a hook on every
    module, and return each call in the order the calls ended (a submodule before the module that called it).
    ``spill``: a folder the copies are written to and read back from as memory maps, so that a full-size model's
    activations (several GB on each side) stay out of memory until judged."""
    import torch

    copies = _Copies(spill)
    started: dict[int, list[list[np.ndarray]]] = {}
    calls: list[ModuleCall] = []
    handles = []

    def before(mod, args):
        started.setdefault(id(mod), []).append(copies.of(args))

    def after(name: str):
        def hook(mod, args, output):
            calls.append(ModuleCall(name, tuple(started[id(mod)].pop()), tuple(copies.of(output))))
        return hook

    for name, sub in module.named_modules():
        handles.append(sub.register_forward_pre_hook(before))
        handles.append(sub.register_forward_hook(after(name)))
    tensors = tuple(torch.from_numpy(np.ascontiguousarray(x)).float() if np.issubdtype(x.dtype, np.floating)
                    else torch.from_numpy(np.ascontiguousarray(x)) for x in feed)
    try:
        with torch.no_grad():  # not inference_mode: its tensors keep no version counter, which tells in-place changes
            module.eval()(*tensors)
    finally:
        for handle in handles:
            handle.remove()
    return calls


CHUNK = 16  # graph tensors read per ONNX Runtime session when spilling: what one run holds beside its working set


def graph_tensors(path: Path, feed: Mapping[str, np.ndarray], spill: Path | None = None) -> tuple[Any, dict[str, np.ndarray]]:
    """The graph at ``path`` and every tensor it computes on ``feed`` (ONNX Runtime, CPU): name → value.

    With ``spill``, the tensors are read :data:`CHUNK` at a time (a session marking only those, run again for each
    chunk: a full-size backbone's tensors together are more than a CI machine's memory) and kept as memory maps there.
    """
    import onnx
    import onnxruntime
    from polygraphy import constants
    from polygraphy.backend.onnx import ModifyOutputs
    from polygraphy.logger import G_LOGGER

    model = onnx.load(str(path))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3

    def run(outputs: Any) -> tuple[list[str], list[np.ndarray]]:
        with G_LOGGER.verbosity(G_LOGGER.ERROR):
            marked = ModifyOutputs(model, outputs=outputs, copy=True)()
        session = onnxruntime.InferenceSession(marked.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        wanted = {i.name for i in session.get_inputs()}
        return names, session.run(names, {k: np.ascontiguousarray(v) for k, v in feed.items() if k in wanted})

    graph_inputs = {i.name for i in model.graph.input}
    values: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in feed.items() if k in graph_inputs}
    if spill is None:
        names, computed = run(constants.MARK_ALL)
        return model, {**values, **{name: np.asarray(v) for name, v in zip(names, computed, strict=True)}}
    # what MARK_ALL marks: every node's output but a Constant's (Polygraphy's graph holds those as constants)
    every = list(dict.fromkeys(t for node in model.graph.node if node.op_type != "Constant" for t in node.output if t))
    for start in range(0, len(every), CHUNK):
        names, computed = run(every[start:start + CHUNK])
        for name, value in zip(names, computed, strict=True):
            array = np.asarray(value)
            kept = np.lib.format.open_memmap(spill / f"graph-{start}-{name.__hash__() & 0xFFFFFFFF:08x}-{len(values)}.npy",
                                             mode="w+", dtype=array.dtype, shape=array.shape)
            kept[...] = array
            kept.flush()
            values[name] = kept
        del computed
    return model, values
