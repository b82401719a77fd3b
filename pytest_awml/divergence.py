"""Where a failed comparison starts: the first module whose output leaves tolerance while its inputs did not.

Given one input, the reference module's calls (:func:`pytest_awml.intermediates.module_calls`) and the graph's
tensors (:func:`pytest_awml.intermediates.graph_tensors`), each module that produced ONNX nodes
(:func:`pytest_awml.onnx_scopes.module_of`) is matched to the graph tensors leaving its nodes (those its own
nodes make and nodes outside it read) and to those entering them; each pair is judged with the component's
tolerance scaled to the tensor's range (:class:`LayerRule`). Calls are walked in the order they ended, so a
submodule is judged before the module around it, and the first whose output is out while its inputs are in is
the divergence.

Two things make a module's graph tensor differ without a fault, and both are allowed for: a module the exporter
folded into the one before it (BatchNorm into its Conv) has no node, and the Conv's tensor is the BatchNorm's
output, so a tensor off from its own module's output but within tolerance of a following node-less module's
counts as that fold; and where a module returns several tensors of one shape, each is paired with the graph
tensor nearest to it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_awml.intermediates import ModuleCall
from pytest_awml.limits import Tolerance
from pytest_awml.onnx_scopes import module_of, within

NO_NODE = "no ONNX node (folded into another module's, or computed at export)"
NOT_MATCHED = "no graph tensor of its shape leaves its nodes"


@dataclass(frozen=True)
class LayerRule:
    """A component's tolerance as a layer's: ``atol`` per unit of the tensor's range (the tightest any output
    allows for its own range), ``rtol`` as the component's tightest."""

    atol_ratio: float
    rtol: float

    @classmethod
    def of(cls, tolerances: Mapping[str, Tolerance], reference: Mapping[str, np.ndarray]) -> LayerRule:
        ratios, rtols = [], []
        for name, tol in tolerances.items():
            rtols.append(float(tol.rtol))
            if name in reference:
                finite = np.abs(np.asarray(reference[name], dtype=np.float64))
                finite = finite[np.isfinite(finite)]
                span = float(finite.max()) if finite.size else 0.0
                if span > 0:
                    ratios.append(float(tol.atol) / span)
        return cls(min(ratios) if ratios else 0.0, min(rtols) if rtols else 0.0)

    def judge(self, ref: np.ndarray, test: np.ndarray) -> Judged:
        """One graph tensor against the reference's value of it."""
        ref64, test64 = np.asarray(ref, dtype=np.float64).ravel(), np.asarray(test, dtype=np.float64).ravel()
        same = (ref64 == test64) | (np.isnan(ref64) & np.isnan(test64))  # equal infinities and NaNs agree
        diff = np.where(same, 0.0, np.abs(test64 - ref64))
        bad = int((~np.isfinite(diff)).sum())
        finite_ref = np.abs(ref64[np.isfinite(ref64)])
        span = float(finite_ref.max()) if finite_ref.size else 0.0
        finite = np.isfinite(diff)
        worst = float(diff[finite].max()) if finite.any() else 0.0
        allowed = self.atol_ratio * span + self.rtol * np.abs(np.where(np.isfinite(ref64), ref64, 0.0))
        ratio = np.divide(diff, allowed, out=np.where(diff > 0, np.inf, 0.0), where=allowed > 0)
        used = float(ratio[finite].max()) if finite.any() else 0.0
        return Judged(worst, span, bad, bad == 0 and bool((diff <= allowed).all()), used)


@dataclass(frozen=True)
class Judged:
    """A module's tensors judged: the max abs difference over finite elements, the reference's range, elements
    non-finite on one side only, the verdict, and the share of the tolerance used (1: at the limit)."""

    max_abs: float
    span: float
    nonfinite: int
    within: bool
    used: float

    @classmethod
    def of_all(cls, judged: Sequence[Judged]) -> Judged | None:
        if not judged:
            return None
        return cls(max(j.max_abs for j in judged), max(j.span for j in judged), sum(j.nonfinite for j in judged),
                   all(j.within for j in judged), max(j.used for j in judged))


@dataclass(frozen=True)
class LayerRow:
    """One module call judged: the graph tensors paired with its outputs and inputs and how far each side was."""

    order: int
    module: str
    onnx_nodes: tuple[str, ...]
    onnx_outputs: tuple[str, ...] = ()
    max_abs: float | None = None
    ref_max_abs: float | None = None
    nonfinite: int = 0
    within: bool | None = None
    input_max_abs: float | None = None
    inputs_within: bool | None = None
    folded: str | None = None  # the node-less module whose output the graph tensor is (BatchNorm folded into a Conv)
    note: str = ""
    tolerance_used: float | None = None  # the largest |diff| / allowed over its outputs' elements (1: at the limit)


@dataclass(frozen=True)
class Divergence:
    """The first module that leaves tolerance while its inputs did not (the report's ``first_divergence``).
    ``max_abs``: over the finite differences; ``nonfinite``: elements where one side is Inf/NaN and the other not."""

    module: str
    onnx_nodes: tuple[str, ...]
    max_abs: float
    input_max_abs: float | None
    ref_max_abs: float
    nonfinite: int
    onnx_tensor: str
    op: str
    graph: str

    def line(self) -> str:
        """The failure message's one line."""
        node = self.onnx_nodes[-1] if self.onnx_nodes else ""
        if self.op == "call":
            return f"first divergence: {self.module or '(the exported module)'}: the golden model's calls differ from here on"
        values = f"max abs {self.max_abs:.3g} on values up to {self.ref_max_abs:.3g}"
        if self.nonfinite:
            values += f", {self.nonfinite} non-finite element(s) where the reference is finite"
        inputs = ("its inputs were not compared (no graph tensor matched them)" if self.input_max_abs is None
                  else f"its input was within {self.input_max_abs:.1g}")
        where = f" ({self.op} {node})" if node else ""
        return f"first divergence: {self.module or '(the exported module)'}{where}: {values}; {inputs}"


@dataclass(frozen=True)
class Localization:
    """Every module call judged, in the order they ended, and the divergence (None: no module is out where its
    inputs were in). ``graph``: the ONNX artifact's format the backend side ran."""

    rows: tuple[LayerRow, ...]
    first: Divergence | None
    graph: str
    sample: int
    rule: LayerRule
    seconds: float = 0.0
    graph_path: Path | None = None  # the graph file it ran (the layer replay runs it again)
    # the reference's values of the diverging module's graph tensors (out and in): what replaying one layer compares
    replay: Mapping[str, np.ndarray] = field(default_factory=dict)

    def line(self) -> str:
        """The failure message's line: the divergence, or that no module is out where its inputs were in."""
        if self.first is not None:
            return self.first.line()
        return ("first divergence: none found (no module's output leaves tolerance where its inputs were within it; "
                "the per-layer table is in the failure folder)")


@dataclass(frozen=True)
class _Scope:
    nodes: tuple[str, ...]
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]


def _scopes(graph: Any, owner: Mapping[str, str], modules: Sequence[str], values: Mapping[str, np.ndarray]) -> dict[str, _Scope]:
    """Each module's nodes (its own and its submodules'), the tensors leaving them and those entering them."""
    consumers: dict[str, list[str]] = defaultdict(list)
    producer: dict[str, str] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node.name)
        for name in node.output:
            producer[name] = node.name
    graph_outputs = {o.name for o in graph.output}
    constant = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    scopes = {}
    for module in dict.fromkeys(modules):
        mine = [n for n in graph.node if n.name in owner and within(owner[n.name], module)]
        names = {n.name for n in mine}
        leaving = [t for n in mine for t in n.output
                   if t in values and (t in graph_outputs or any(c not in names for c in consumers[t]))]
        entering = [t for n in mine for t in n.input
                    if t and t in values and t not in constant and producer.get(t) not in names]
        scopes[module] = _Scope(tuple(n.name for n in mine), tuple(dict.fromkeys(leaving)), tuple(dict.fromkeys(entering)))
    return scopes


def _pair(refs: Sequence[np.ndarray], candidates: Sequence[str], values: Mapping[str, np.ndarray]) -> list[tuple[np.ndarray, str]]:
    """Each reference tensor with the unused candidate of its element count nearest to it (max abs difference)."""
    pairs, used = [], set()
    for ref in refs:
        fits = [c for c in candidates if c not in used and values[c].size == ref.size and values[c].dtype.kind == "f"]
        if not fits:
            continue
        ref64 = ref.astype(np.float64).ravel()

        def distance(name: str, ref64: np.ndarray = ref64) -> float:
            d = np.abs(values[name].astype(np.float64).ravel() - ref64)
            return float(np.nanmax(np.where(np.isfinite(d), d, np.inf))) if d.size else 0.0

        best = min(fits, key=distance)
        used.add(best)
        pairs.append((ref, best))
    return pairs


def _judge_pairs(rule: LayerRule, pairs: Sequence[tuple[np.ndarray, str]], values: Mapping[str, np.ndarray]) -> Judged | None:
    return Judged.of_all([rule.judge(ref, values[name]) for ref, name in pairs])


def localize(calls: Sequence[ModuleCall], graph: Any, values: Mapping[str, np.ndarray], rule: LayerRule, *,
             graph_format: str, sample: int, module_names: Sequence[str]) -> Localization:
    """Judge every call (see the module's docstring) and name the first divergence."""
    owner = {n.name: m for n in graph.node if (m := module_of(n, set(module_names))) is not None}
    scopes = _scopes(graph, owner, [c.module for c in calls], values)
    ops = {n.name: n.op_type for n in graph.node}
    producer = {t: n.name for n in graph.node for t in n.output}
    rows: list[LayerRow] = []
    first: Divergence | None = None
    replay: dict[str, np.ndarray] = {}
    for order, call in enumerate(calls):
        scope = scopes[call.module]
        if not scope.nodes:
            rows.append(LayerRow(order, call.module, (), note=NO_NODE))
            continue
        pairs = _pair(call.outputs, scope.outputs, values)
        if not pairs:
            rows.append(LayerRow(order, call.module, scope.nodes, note=NOT_MATCHED))
            continue
        judged = _judge_pairs(rule, pairs, values)
        assert judged is not None  # pairs is not empty
        folded = None
        if not judged.within:
            for later in calls[order + 1:]:  # the node-less modules right after it: one may be folded into its nodes
                if scopes[later.module].nodes:
                    break
                refolded = [(ref, name) for (_, name), ref in zip(pairs, later.outputs, strict=False) if ref.size == values[name].size]
                again = _judge_pairs(rule, refolded, values) if len(refolded) == len(pairs) else None
                if again is not None and again.within:
                    judged, folded = again, later.module
                    break
        in_pairs = _pair(call.inputs, scope.inputs, values)
        inputs = _judge_pairs(rule, in_pairs, values)
        in_abs, in_ok = (None, None) if inputs is None else (inputs.max_abs, inputs.within)
        row = LayerRow(order, call.module, scope.nodes, tuple(name for _, name in pairs), judged.max_abs, judged.span,
                       judged.nonfinite, judged.within, in_abs, in_ok, folded, tolerance_used=judged.used)
        rows.append(row)
        if first is None and not judged.within and in_ok is not False:
            tensor = row.onnx_outputs[-1]
            first = Divergence(module=call.module, onnx_nodes=_producing(scope.nodes, tensor, producer), max_abs=judged.max_abs,
                               input_max_abs=in_abs, ref_max_abs=judged.span, nonfinite=judged.nonfinite, onnx_tensor=tensor,
                               op=ops.get(producer.get(tensor, ""), "?"), graph=graph_format)
            replay = {name: ref for ref, name in (*pairs, *in_pairs)}
    return Localization(tuple(rows), first, graph_format, sample, rule, replay=replay)


def _producing(nodes: Sequence[str], tensor: str, producer: Mapping[str, str]) -> tuple[str, ...]:
    """The module's nodes, the one that made the diverging tensor last (the message names it)."""
    last = producer.get(tensor, "")
    return tuple(n for n in nodes if n != last) + ((last,) if last in nodes else ())


GOLDEN = "golden layers"  # the graph field of a drift localization: both sides are PyTorch calls


def compare_calls(golden: Sequence[ModuleCall], today: Sequence[ModuleCall], rule: LayerRule) -> Localization:
    """Today's module calls against the golden model's, pair by pair in the order they ended (drift: both sides
    are PyTorch, no graph): the first call out of tolerance with its inputs in is the divergence. Where the calls
    themselves differ (a module added or removed), the first differing call is it."""
    rows: list[LayerRow] = []
    first: Divergence | None = None
    for order, (old, new) in enumerate(zip(golden, today, strict=False)):
        if old.module != new.module or len(old.outputs) != len(new.outputs) or \
                any(a.size != b.size for a, b in zip(old.outputs, new.outputs, strict=True)):
            rows.append(LayerRow(order, new.module, (), note=f"the golden model called {old.module or '(root)'} here"))
            first = first or Divergence(module=new.module, onnx_nodes=(), max_abs=0.0, input_max_abs=None,
                                        ref_max_abs=0.0, nonfinite=0, onnx_tensor="", op="call", graph=GOLDEN)
            break
        out = Judged.of_all([rule.judge(a, b) for a, b in zip(old.outputs, new.outputs, strict=True)])
        ins = Judged.of_all([rule.judge(a, b) for a, b in zip(old.inputs, new.inputs, strict=False) if a.size == b.size])
        if out is None:
            rows.append(LayerRow(order, new.module, (), note="no floating-point output"))
            continue
        row = LayerRow(order, new.module, (), (), out.max_abs, out.span, out.nonfinite, out.within,
                       None if ins is None else ins.max_abs, None if ins is None else ins.within, tolerance_used=out.used)
        rows.append(row)
        if first is None and not out.within and (ins is None or ins.within):
            first = Divergence(module=new.module, onnx_nodes=(), max_abs=out.max_abs, input_max_abs=None if ins is None else ins.max_abs,
                               ref_max_abs=out.span, nonfinite=out.nonfinite, onnx_tensor="", op="module", graph=GOLDEN)
    return Localization(tuple(rows), first, GOLDEN, 0, rule)
