"""Where a failed comparison starts: the first module whose output leaves tolerance while its inputs did not.

Given one input and the graph's tensors (:func:`pytest_awml.intermediates.graph_tensors`), the reference module
runs once with a hook on every module; each module that produced ONNX nodes
(:func:`pytest_awml.onnx_scopes.module_of`) is matched to the graph tensors leaving its nodes (those its own nodes
make and nodes outside it read) and to those entering them, and each pair is judged inside the hook
(:class:`pytest_awml.layer_rule.PairJudge`: the component's tolerance scaled to the tensor's range, each pair once)
and the reference's tensor let go: a full-size model's activations are never held together. Calls are judged in
the order they end, so a submodule is judged before the module around it, and the first whose output is out while
its inputs are in is the divergence.

Two things make a module's graph tensor differ without a fault, and both are allowed for: a module the exporter
folded into the one before it (BatchNorm into its Conv) has no node, and the Conv's tensor is the BatchNorm's
output, so a tensor off from its own module's output but within tolerance of a following node-less module's
counts as that fold (the Conv's verdict waits for the next module with nodes to end; out of tolerance of both, the
Conv is judged against the nearer); and where a module returns several tensors of one shape, each is paired with
the graph tensor nearest to it.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pytest_awml.divergence import NO_NODE, NOT_MATCHED, Divergence, LayerRow, Localization
from pytest_awml.intermediates import floats, host, run_hooked
from pytest_awml.layer_rule import Judged, LayerRule, PairJudge
from pytest_awml.onnx_scopes import ROOT, module_of


@dataclass(frozen=True)
class _Scope:
    nodes: tuple[str, ...]
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]


def _scopes(graph: Any, owner: Mapping[str, str], modules: Sequence[str], values: Mapping[str, np.ndarray]) -> dict[str, _Scope]:
    """Each module's nodes (its own and its submodules'), the tensors leaving them and those entering them: each
    node is listed under its module's ancestors (a walk up the dotted name), not tested against every module."""
    consumers: dict[str, list[str]] = defaultdict(list)
    producer: dict[str, str] = {}
    under: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node.name)
        for name in node.output:
            producer[name] = node.name
        if node.name in owner:
            atoms = owner[node.name].split(".") if owner[node.name] else []
            for ancestor in dict.fromkeys([ROOT, *(".".join(atoms[:cut]) for cut in range(1, len(atoms) + 1))]):
                under[ancestor].append(node)
    graph_outputs = {o.name for o in graph.output}
    constant = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    scopes = {}
    for module in dict.fromkeys(modules):
        mine = under.get(module, [])
        names = {n.name for n in mine}
        leaving = [t for n in mine for t in n.output
                   if t in values and (t in graph_outputs or any(c not in names for c in consumers[t]))]
        entering = [t for n in mine for t in n.input
                    if t and t in values and t not in constant and producer.get(t) not in names]
        scopes[module] = _Scope(tuple(n.name for n in mine), tuple(dict.fromkeys(leaving)), tuple(dict.fromkeys(entering)))
    return scopes


@dataclass(frozen=True)
class _Pair:
    """A reference tensor (``key`` names its state) and the graph tensor judged nearest to it."""

    key: Hashable
    ref: np.ndarray
    name: str
    judged: Judged


@dataclass(frozen=True)
class _Start:
    """A call with nodes, as it started: its inputs judged, and copies of them while they may be replayed."""

    inputs: Judged | None
    kept: dict[str, np.ndarray]


@dataclass
class _Pending:
    """A call judged out whose verdict waits: a node-less module ending next may show its tensor is that module's."""

    order: int
    names: tuple[str, ...]
    nodes: tuple[str, ...]
    judged: Judged  # its tensors as judged so far: against its own output, or a nearer folded module's
    candidate: bool  # it is the divergence unless folded within tolerance (no earlier one, its inputs not out)
    replay: dict[str, np.ndarray] = field(default_factory=dict)


class _Walk:
    """The hooks' state over one forward: the rows so far, the calls started, the verdict that waits."""

    def __init__(self, graph: Any, values: Mapping[str, np.ndarray], rule: LayerRule, names: Sequence[str]) -> None:
        owner = {n.name: m for n in graph.node if (m := module_of(n, set(names))) is not None}
        self.scopes = _scopes(graph, owner, names, values)
        self.ops = {n.name: n.op_type for n in graph.node}
        self.producer = {t: n.name for n in graph.node for t in n.output}
        self.values = values
        self.judge = PairJudge(rule, values)
        self.rows: list[LayerRow] = []
        self.pending: _Pending | None = None
        self.first: Divergence | None = None
        self.replay: dict[str, np.ndarray] = {}
        self._serial: dict[int, int] = {}  # a live tensor's id -> a number no other tensor of this walk gets
        self._numbered = 0
        self._copies: weakref.WeakValueDictionary[Hashable, np.ndarray] = weakref.WeakValueDictionary()

    def _tensors(self, value: Any) -> list[tuple[Hashable, np.ndarray]]:
        """The floating-point tensors in ``value``, each with a key naming its state (the tensor and its version:
        an in-place op makes it another state)."""
        found: list[tuple[Hashable, np.ndarray]] = []
        for tensor in floats(value):
            ident = id(tensor)
            if ident not in self._serial:
                self._numbered += 1
                self._serial[ident] = self._numbered
                weakref.finalize(tensor, self._serial.pop, ident, None)  # a dead tensor's id may name a new one
            found.append(((self._serial[ident], tensor._version), host(tensor)))
        return found

    def _pair(self, refs: Sequence[tuple[Hashable, np.ndarray]], candidates: Sequence[str]) -> list[_Pair]:
        """Each reference tensor with the unused candidate of its element count nearest to it."""
        pairs: list[_Pair] = []
        used: set[str] = set()
        for key, ref in refs:
            fits = [c for c in candidates if c not in used and (v := self.values[c]).size == ref.size and v.dtype.kind == "f"]
            if fits:
                best = min(((self.judge(key, ref, c), c) for c in fits), key=lambda judged: judged[0].distance)
                used.add(best[1])
                pairs.append(_Pair(key, ref, best[1], best[0]))
        return pairs

    def _copy(self, pair: _Pair) -> np.ndarray:
        """A copy of a reference tensor to replay (one per state, shared while anything holds it)."""
        kept = self._copies.get(pair.key)
        if kept is None:
            kept = self._copies[pair.key] = pair.ref.copy()
        return kept

    def before(self, name: str, args: Any) -> _Start | None:
        scope = self.scopes[name]
        if not scope.nodes:
            return None
        inputs = self._pair(self._tensors(args), scope.inputs)
        judged = Judged.of_all([p.judged for p in inputs])
        replayable = self.first is None and (judged is None or judged.within)
        return _Start(judged, {p.name: self._copy(p) for p in inputs} if replayable else {})

    def after(self, name: str, start: _Start | None, output: Any) -> None:
        order, scope = len(self.rows), self.scopes[name]
        if start is None:
            self.rows.append(LayerRow(order, name, (), note=NO_NODE))
            self._refold(name, output)
            return
        self.settle()
        pairs = self._pair(self._tensors(output), scope.outputs)
        judged = Judged.of_all([p.judged for p in pairs])
        if judged is None:
            self.rows.append(LayerRow(order, name, scope.nodes, note=NOT_MATCHED))
            return
        in_abs, in_ok = (None, None) if start.inputs is None else (start.inputs.max_abs, start.inputs.within)
        self.rows.append(LayerRow(order, name, scope.nodes, tuple(p.name for p in pairs), judged.max_abs, judged.span,
                                  judged.nonfinite, judged.within, in_abs, in_ok, tolerance_used=judged.used))
        if not judged.within:
            candidate = self.first is None and in_ok is not False
            replay = {**{p.name: self._copy(p) for p in pairs}, **start.kept} if candidate else {}
            self.pending = _Pending(order, tuple(p.name for p in pairs), scope.nodes, judged, candidate, replay)

    def _refold(self, name: str, output: Any) -> None:
        """A node-less module ended: if the call judged out before it has this module's output as its tensors, that
        was a fold. Within tolerance, it is no divergence; out of it but nearer than the call's own output (a
        tolerance nothing meets), the call's row and replay take the folded module's figures and values."""
        pending = self.pending
        if pending is None:
            return
        refolded = [(key, ref, tensor) for (key, ref), tensor in zip(self._tensors(output), pending.names, strict=False)
                    if ref.size == self.values[tensor].size]
        again = Judged.of_all([self.judge(*pair) for pair in refolded]) if len(refolded) == len(pending.names) else None
        if again is None or not (again.within or again.distance < pending.judged.distance):
            return
        row = self.rows[pending.order]
        self.rows[pending.order] = replace(row, max_abs=again.max_abs, ref_max_abs=again.span, nonfinite=again.nonfinite,
                                           within=again.within, folded=name, tolerance_used=again.used)
        pending.judged = again
        if again.within:
            self.pending = None
        elif pending.candidate:
            pending.replay.update({tensor: self._copy(_Pair(key, ref, tensor, again)) for key, ref, tensor in refolded})

    def settle(self) -> None:
        """A module with nodes ended (or the forward did): the call judged out before it was no fold."""
        pending, self.pending = self.pending, None
        if pending is None or not pending.candidate:
            return
        row = self.rows[pending.order]
        tensor = row.onnx_outputs[-1]
        last = self.producer.get(tensor, "")
        nodes = tuple(n for n in pending.nodes if n != last) + ((last,) if last in pending.nodes else ())  # its maker last
        assert row.max_abs is not None and row.ref_max_abs is not None  # a judged row
        self.first = Divergence(module=row.module, onnx_nodes=nodes, max_abs=row.max_abs, input_max_abs=row.input_max_abs,
                                ref_max_abs=row.ref_max_abs, nonfinite=row.nonfinite, onnx_tensor=tensor,
                                op=self.ops.get(last, "?"), graph="")
        self.replay = pending.replay


def localize(module, feed: Sequence[np.ndarray], graph: Any, values: Mapping[str, np.ndarray], rule: LayerRule, *,
             graph_format: str, sample: int) -> Localization:
    """Run ``module`` (the reference: CPU, float32) on ``feed`` (its positional inputs), judge every call against
    ``graph``'s tensors ``values`` as it ends (see the module's docstring) and name the first divergence."""
    walk = _Walk(graph, values, rule, [name for name, _ in module.named_modules()])
    started: dict[int, list[_Start | None]] = defaultdict(list)

    def hooks(name: str) -> tuple[Any, Any]:
        def before(mod, args):
            started[id(mod)].append(walk.before(name, args))

        def after(mod, args, output):
            walk.after(name, started[id(mod)].pop(), output)
        return before, after

    run_hooked(module, feed, hooks)
    walk.settle()
    first = None if walk.first is None else replace(walk.first, graph=graph_format)
    return Localization(tuple(walk.rows), first, graph_format, sample, rule, replay=walk.replay,
                        comparisons=walk.judge.comparisons)
