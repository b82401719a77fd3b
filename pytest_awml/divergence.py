"""What a localization found: every module call judged (:class:`LayerRow`), the first divergence (:class:`Divergence`,
the report's ``first_divergence``) and the whole table (:class:`Localization`); and a drift failure's localization,
today's module calls against the golden model's (:func:`compare_calls`).

A parity failure's table is made by :func:`pytest_awml.layer_walk.localize` (the reference's module calls against
the ONNX graph's tensors); the rule each tensor is judged by is :class:`pytest_awml.layer_rule.LayerRule`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pytest_awml.intermediates import ModuleCall
from pytest_awml.layer_rule import Judged, LayerRule

NO_NODE = "no ONNX node (folded into another module's, or computed at export)"
NOT_MATCHED = "no graph tensor of its shape leaves its nodes"


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
    comparisons: int = 0  # (reference tensor, graph tensor) pairs compared element by element: what judging cost

    def line(self) -> str:
        """The failure message's line: the divergence, or that no module is out where its inputs were in."""
        if self.first is not None:
            return self.first.line()
        return ("first divergence: none found (no module's output leaves tolerance where its inputs were within it; "
                "the per-layer table is in the failure folder)")


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
