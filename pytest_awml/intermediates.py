"""Every intermediate tensor of one inference, on both sides of a parity test, for localizing a failure.

The reference's come from forward hooks on every module of ``named_modules()`` (each call's inputs when it starts
and outputs when it ends, copied: an in-place op later on would change them); the graph's from ONNX Runtime with
every tensor of the graph marked as an output, which Polygraphy's ``ModifyOutputs(outputs=MARK_ALL)`` does (the
same as its ``--onnx-outputs mark all``), so the fp16 graph's tensors are read in the types it computes in.
"""

from __future__ import annotations

import logging
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


def _tensors(value: Any) -> list[np.ndarray]:
    """The floating-point tensors in a module's arguments or result (tuples, lists and dicts walked in order)."""
    import torch

    if isinstance(value, torch.Tensor):
        return [value.detach().float().cpu().numpy().copy()] if value.is_floating_point() else []
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, Mapping):
        return [t for item in value.values() for t in _tensors(item)]
    return []


def module_calls(module, feed: Sequence[np.ndarray]) -> list[ModuleCall]:
    """Run ``module`` on ``feed`` (its positional inputs, the reference's way: CPU, float32) with a hook on every
    module, and return each call in the order the calls ended (a submodule before the module that called it)."""
    import torch

    started: dict[int, list[list[np.ndarray]]] = {}
    calls: list[ModuleCall] = []
    handles = []

    def before(name: str):
        def hook(mod, args):
            started.setdefault(id(mod), []).append(_tensors(args))
        return hook

    def after(name: str):
        def hook(mod, args, output):
            inputs = started[id(mod)].pop()
            calls.append(ModuleCall(name, tuple(inputs), tuple(_tensors(output))))
        return hook

    for name, sub in module.named_modules():
        handles.append(sub.register_forward_pre_hook(before(name)))
        handles.append(sub.register_forward_hook(after(name)))
    tensors = tuple(torch.from_numpy(np.ascontiguousarray(x)).float() if np.issubdtype(x.dtype, np.floating)
                    else torch.from_numpy(np.ascontiguousarray(x)) for x in feed)
    try:
        with torch.inference_mode():
            module.eval()(*tensors)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def graph_tensors(path: Path, feed: Mapping[str, np.ndarray]) -> tuple[Any, dict[str, np.ndarray]]:
    """The graph at ``path`` and every tensor it computes on ``feed`` (ONNX Runtime, CPU): name → value."""
    import onnx
    import onnxruntime
    from polygraphy import constants
    from polygraphy.backend.onnx import ModifyOutputs
    from polygraphy.logger import G_LOGGER

    model = onnx.load(str(path))
    with G_LOGGER.verbosity(G_LOGGER.ERROR):
        marked = ModifyOutputs(model, outputs=constants.MARK_ALL, copy=True)()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(marked.SerializeToString(), sess_options=options,
                                           providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    wanted = {i.name for i in session.get_inputs()}
    values = session.run(names, {k: np.ascontiguousarray(v) for k, v in feed.items() if k in wanted})
    graph_inputs = {k: np.asarray(v) for k, v in feed.items() if k in wanted}
    return model, {**graph_inputs, **{name: np.asarray(v) for name, v in zip(names, values, strict=True)}}
