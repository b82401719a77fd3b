"""Every intermediate tensor of one inference, on both sides of a comparison, for localizing a failure.

The reference's come from forward hooks on every module of ``named_modules()``: :func:`module_calls` keeps each
call's tensors or their probes (a drift failure's); a parity failure judges them inside the hooks instead
(:mod:`pytest_awml.divergence`), so none is kept. The graph's come from ONNX Runtime with every tensor of the graph
marked as an output, which Polygraphy's ``ModifyOutputs(outputs=MARK_ALL)`` does (the same as its ``--onnx-outputs
mark all``), so the fp16 graph's tensors are read in the types it computes in; a full-size graph's tensors are more
than a CI machine holds at once, so :func:`graph_tensors` can run it in segments spilled to memory maps.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def floats(value: Any) -> list[Any]:
    """The floating-point torch tensors in a module's arguments or result (tuples, lists and dicts walked in order)."""
    import torch

    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in floats(item)]
    if isinstance(value, Mapping):
        return [t for item in value.values() for t in floats(item)]
    return []


def host(tensor: Any) -> np.ndarray:
    """A torch tensor's values as float32 on the host (no copy where it already is one)."""
    return tensor.detach().float().cpu().numpy()


def torch_feed(feed: Sequence[np.ndarray]) -> tuple[Any, ...]:
    """The positional inputs the reference runs on: float32 where floating-point, as given otherwise."""
    import torch

    return tuple(torch.from_numpy(np.ascontiguousarray(x)).float() if np.issubdtype(x.dtype, np.floating)
                 else torch.from_numpy(np.ascontiguousarray(x)) for x in feed)


@dataclass(frozen=True)
class ModuleCall:
    """One call of one module (dotted name as ``named_modules()`` gives it): its floating-point tensors in and out."""

    module: str
    inputs: tuple[np.ndarray, ...]
    outputs: tuple[np.ndarray, ...]


def probe(values: np.ndarray, count: int) -> np.ndarray:
    """At most ``count`` elements of ``values`` at evenly spaced positions of its flattened form (a copy)."""
    flat = np.asarray(values, dtype=np.float32).ravel()
    if flat.size <= count:
        return flat.copy()
    return flat[np.linspace(0, flat.size - 1, count).astype(np.int64)]


class _Copies:
    """Host copies of the tensors the hooks see, one per tensor state (its id and version), or their probes; a
    tensor that died lets its id name a new one."""

    def __init__(self, probed: int | None) -> None:
        self._seen: dict[tuple[int, int], np.ndarray] = {}
        self._probed = probed

    def _forget(self, ident: int) -> None:
        for state in [s for s in self._seen if s[0] == ident]:
            del self._seen[state]

    def of(self, value: Any) -> list[np.ndarray]:
        kept = []
        for tensor in floats(value):
            state = (id(tensor), tensor._version)
            if state not in self._seen:
                if not any(s[0] == state[0] for s in self._seen):
                    weakref.finalize(tensor, self._forget, state[0])
                values = host(tensor)
                self._seen[state] = values.copy() if self._probed is None else probe(values, self._probed)
            kept.append(self._seen[state])
        return kept


def run_hooked(module, feed: Sequence[np.ndarray], hooks: Callable[[str], tuple[Any, Any]]) -> None:
    """Run ``module`` (CPU, float32) once on ``feed`` (its positional inputs) with ``hooks(name)``'s (forward
    pre-hook, forward hook) on every named module, removed again whatever happens: the one walk both the
    localizer's judging and the recording of module calls make."""
    import torch

    handles = []
    for name, sub in module.named_modules():
        before, after = hooks(name)
        handles += [sub.register_forward_pre_hook(before), sub.register_forward_hook(after)]
    try:
        with torch.no_grad():  # not inference_mode: its tensors keep no version counter, which tells in-place changes
            module.eval()(*torch_feed(feed))
    finally:
        for handle in handles:
            handle.remove()


def module_calls(module, feed: Sequence[np.ndarray], probed: int | None = None) -> list[ModuleCall]:
    """Run ``module`` on ``feed`` (its positional inputs, the reference's way: CPU, float32) with a hook on every
    module, and return each call in the order the calls ended (a submodule before the module that called it).

    Each tensor state is copied once (a module's input is the output of the one before it and a Sequential's
    output its last child's); one changed in place since (its version counter moved: ``ReLU(inplace=True)``) is
    copied again. ``probed``: keep each tensor's :func:`probe` of that many elements instead (drift's layers: a
    full-size model's calls in a few MB rather than every activation at once)."""
    copies = _Copies(probed)
    started: dict[int, list[list[np.ndarray]]] = {}
    calls: list[ModuleCall] = []

    def before(mod, args):
        started.setdefault(id(mod), []).append(copies.of(args))

    def hooks(name: str) -> tuple[Any, Any]:
        def after(mod, args, output):
            calls.append(ModuleCall(name, tuple(started[id(mod)].pop()), tuple(copies.of(output))))
        return before, after

    run_hooked(module, feed, hooks)
    return calls


class Spilled(Mapping[str, np.ndarray]):
    """Graph tensors kept as ``.npy`` files: each read maps its file afresh, so a tensor's pages leave this process's
    memory when the array read is dropped (one map held for the whole run would keep them all resident)."""

    def __init__(self, folder: Path, held: Mapping[str, np.ndarray]) -> None:
        self._folder = folder
        self._held = dict(held)  # the graph's inputs: already in memory
        self._files: dict[str, Path] = {}

    def keep(self, name: str, value: np.ndarray) -> None:
        path = self._folder / f"graph-{len(self._files)}.npy"  # by count: a tensor name may not be a file name
        np.save(path, value)
        self._files[name] = path

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._held:
            return self._held[name]
        return np.load(self._files[name], mmap_mode="r")

    def __iter__(self) -> Iterator[str]:
        return iter([*self._held, *self._files])

    def __len__(self) -> int:
        return len(self._held) + len(self._files)

    def __contains__(self, name: object) -> bool:
        return name in self._held or name in self._files


SEGMENT = 8  # nodes per ONNX Runtime session when spilling: its tensors are what one run holds beside its working set


def _names_read(node) -> list[str]:
    """The tensors a node reads, those its subgraphs (If, Loop, Scan) read from the graph around them included."""
    import onnx

    names = [n for n in node.input if n]
    for attribute in node.attribute:
        graphs = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
        for sub in graphs:
            inner = {o for n in sub.node for o in n.output} | {i.name for i in sub.input} | {i.name for i in sub.initializer}
            names += [n for s in sub.node for n in _names_read(s) if n not in inner]
    return names


def _run(graph: Any, given: Mapping[str, np.ndarray]) -> tuple[list[str], list[np.ndarray]]:
    """Every output of ``graph`` (an ``onnx.ModelProto``) on ``given`` (ONNX Runtime, CPU)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(graph.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    wanted = {i.name for i in session.get_inputs()}
    # order="C", not np.ascontiguousarray: that makes a 0-d tensor (a Gather of a Shape, spilled between segments) 1-d,
    # and the next Unsqueeze/Concat fails on the rank (full-size FRNet and StreamPETR localizations did)
    return names, session.run(names, {k: np.asarray(v, order="C") for k, v in given.items() if k in wanted})


def _segments(model, feed: Mapping[str, np.ndarray], spill: Path) -> Spilled:
    """Every node's outputs, :data:`SEGMENT` nodes per session in the graph's (topological) order, each segment fed
    the tensors it reads from the spilled ones: every node runs once and only one segment's tensors are in memory.

    The segment graphs are made here rather than by ``onnx.utils.Extractor``, which needs every boundary tensor's
    inferred type; a boundary tensor's type here is that of its computed value."""
    import onnx
    from onnx import helper

    graph = model.graph
    constants = {o: n for n in graph.node if n.op_type == "Constant" for o in n.output}  # what MARK_ALL leaves unmarked
    initializers = {i.name: i for i in graph.initializer}
    computed = [n for n in graph.node if n.op_type != "Constant"]
    values = Spilled(spill, {i.name: np.asarray(feed[i.name]) for i in graph.input if i.name in feed})
    for start in range(0, len(computed), SEGMENT):
        nodes = computed[start:start + SEGMENT]
        made = list(dict.fromkeys(o for n in nodes for o in n.output if o))
        read = [n for n in dict.fromkeys(r for node in nodes for r in _names_read(node)) if n not in made]
        fed = {n: values[n] for n in read if n in values}
        sub = helper.make_graph(
            [constants[n] for n in read if n in constants] + nodes, f"segment-{start}",
            [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in fed.items()],
            [onnx.ValueInfoProto(name=n) for n in made],  # untyped: ONNX Runtime infers them
            [initializers[n] for n in read if n in initializers])
        segment = helper.make_model(sub, opset_imports=model.opset_import, ir_version=model.ir_version, functions=model.functions)
        names, results = _run(segment, fed)
        for name, value in zip(names, results, strict=True):
            values.keep(name, np.asarray(value))
        del fed, results
    return values


def graph_tensors(path: Path, feed: Mapping[str, np.ndarray], spill: Path | None = None) -> tuple[Any, Mapping[str, np.ndarray]]:
    """The graph at ``path`` and every tensor it computes on ``feed`` (ONNX Runtime, CPU): name → value.

    With ``spill`` (a folder on disk), the graph runs in segments (:func:`_segments`) and its tensors are kept there
    and read back as memory maps (:class:`Spilled`): a full-size backbone's tensors together are GBs.
    """
    import onnx
    from polygraphy import constants
    from polygraphy.backend.onnx import ModifyOutputs
    from polygraphy.logger import G_LOGGER

    model = onnx.load(str(path))
    if spill is not None:
        return model, _segments(model, feed, spill)
    with G_LOGGER.verbosity(G_LOGGER.ERROR):
        marked = ModifyOutputs(model, outputs=constants.MARK_ALL, copy=True)()
    names, computed = _run(marked, feed)
    graph_inputs = {i.name for i in model.graph.input}
    return model, {**{k: np.asarray(v) for k, v in feed.items() if k in graph_inputs},
                   **{name: np.asarray(v) for name, v in zip(names, computed, strict=True)}}
