"""One exportable part of a model, as a spec declares it (:class:`Component`, :class:`FedBy`), and the checks of its
fields that :func:`pytest_awml.spec.validate` runs for each component.

A component is the unit every test is about: one graph exported, run on each backend and compared output by
output; its declaration says how to cut it from the model, how to feed it, and how close each backend must stay.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from exporters.onnx_export import OnnxOptions
from exporters.signature import Dim, TensorSpec
from pytest_awml.device import Precision
from pytest_awml.limits import LatencySettings, Tolerance, TrendSettings
from pytest_awml.quantization import Int8Settings

ANY_OUTPUT = "*"


ToleranceTable = Mapping[str, Mapping[str, Tolerance]]
"""precision (``fp32``…) → output name or ``"*"`` → :class:`Tolerance`."""


def _frozen_table(table: ToleranceTable) -> ToleranceTable:
    return MappingProxyType({str(p): MappingProxyType(dict(per_output)) for p, per_output in table.items()})


_SHAPE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")  # a static shape names a graph and a test id: as a spec's name

@dataclass(frozen=True)
class FedBy:
    """A component's inputs made from another component's outputs on the same sample: ``make(model, sample,
    outputs)`` gets the upstream component's reference outputs (PyTorch CPU fp32, NumPy, by output name), which a
    session computes once and stores for that component's own parity. A backbone whose input is scattered from an
    encoder's pillars so reuses the encoder's inference instead of running the encoder again for every sample."""

    component: str  # the upstream component: another of the same spec's components (or bundle components)
    make: Callable[[Any, Any, Mapping[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class Component:
    """One exportable part of a model.

    ``extract(model)`` returns the ``nn.Module`` to export; its ``forward`` takes the inputs in
    ``inputs`` order and returns the outputs in ``outputs`` order. ``make_inputs(model, sample)``
    turns one of the spec's samples into this component's named input tensors (CPU, fp32): it is
    where model-specific preprocessing (voxelization, scatter…) lives. ``fed_by`` (optional) says how the
    same inputs are made from another component's outputs (:class:`FedBy`); a session then makes them so, and
    ``make_inputs`` stays the standalone definition. ``plugins`` names the TensorRT
    plugin ops the exported graph carries (a detector exported with its NMS ends in EfficientNMS_TRT): the
    export checks the graph holds exactly those, and backends or builders without them skip its tests.
    ``static_shapes`` (optional) deploys the component at several static shapes, one graph each: shape name →
    sizes of its dims (``{"batch4": {"batch": 4}}``); a run tests ``<name>.<shape>`` per shape
    (:mod:`pytest_awml.static_shapes`). ``make_feed(sizes, seed)`` (optional) makes ``test_shapes``' inputs at the given
    dynamic sizes where random values would not be inputs at all (indices into each other: a point's cell, the cells'
    pixels); without it they are seeded standard-normal arrays. ``shape_draws`` (optional) caps the sizes ``test_shapes``
    draws beyond the profile's corners below the hypothesis profile's count: a component one inference of which takes
    a minute on a CPU (a full-size lidar network at 160 000 points) affords a few, where a tiny one affords the profile's.
    ``int8``: how its int8 graph is calibrated and which nodes stay in float (:class:`~pytest_awml.quantization.Int8Settings`).
    """

    name: str
    extract: Callable[[Any], Any]
    make_inputs: Callable[[Any, Any], Mapping[str, Any]]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    tolerances: ToleranceTable
    onnx: OnnxOptions = OnnxOptions()
    latency: LatencySettings = LatencySettings()
    drift: Mapping[str, Tolerance] = field(default_factory=lambda: {ANY_OUTPUT: Tolerance(atol=1e-5, rtol=1e-5)})
    trend: TrendSettings = TrendSettings()
    plugins: tuple[str, ...] = ()
    parser_plugins: tuple[str, ...] = ()
    fed_by: FedBy | None = None
    static_shapes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    make_feed: Callable[[Mapping[str, int], int], Mapping[str, Any]] | None = None
    shape_draws: int | None = None  # test_shapes' drawn sizes, at most (None: the hypothesis profile's max_examples)
    int8: Int8Settings = Int8Settings()

    def __post_init__(self) -> None:
        object.__setattr__(self, "static_shapes", MappingProxyType({k: MappingProxyType(dict(v)) for k, v in self.static_shapes.items()}))
        object.__setattr__(self, "plugins", tuple(self.plugins))
        object.__setattr__(self, "parser_plugins", tuple(self.parser_plugins))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "tolerances", _frozen_table(self.tolerances))
        object.__setattr__(self, "drift", MappingProxyType(dict(self.drift)))

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    def tolerance(self, precision: Precision | str, output: str) -> Tolerance:
        """The tolerance for ``output`` at ``precision``; validation guarantees one exists."""
        per_output = self.tolerances[str(precision)]
        return per_output.get(output) or per_output[ANY_OUTPUT]

    def drift_tolerance(self, output: str) -> Tolerance:
        """How far today's PyTorch outputs may move from the golden ones."""
        return self.drift.get(output) or self.drift[ANY_OUTPUT]

    @property
    def dynamic_dims(self) -> tuple[Dim, ...]:
        """The distinct dynamic dims of the inputs, in order of appearance."""
        seen: dict[str, Dim] = {}
        for t in self.inputs:
            for d in t.shape:
                if isinstance(d, Dim):
                    seen.setdefault(d.name, d)
        return tuple(seen.values())


Fail = Callable[[str, str, str], None]
"""How a check reports a bad field: ``fail(field, problem, fix)`` raises."""


def check_component(fail: Fail, where: str, comp: Component, group: tuple[Component, ...]) -> None:
    """Check one component's fields (``where`` names it in the spec; ``group``: the components beside it, which
    ``fed_by`` may name); ``fail(field, problem, fix)`` raises the spec's :class:`SpecError`."""
    for attr in ("extract", "make_inputs"):
        if not callable(getattr(comp, attr)):
            fail(f"{where}.{attr}", "is not callable", f"pass a function for {attr}")
    for shape in comp.static_shapes:
        if not isinstance(shape, str) or not _SHAPE_NAME.match(shape):
            fail(f"{where}.static_shapes", f"{shape!r} is not a valid shape name", "use lower-case letters, digits, '-', '_'")
    for role in ("inputs", "outputs"):
        tensors = getattr(comp, role)
        if not tensors:
            fail(f"{where}.{role}", "is empty", f"declare the graph {role} as TensorSpec(...)")
        names = [t.name for t in tensors if isinstance(t, TensorSpec)]
        if len(names) != len(tensors):
            fail(f"{where}.{role}", "holds something that is not a TensorSpec", "declare each as TensorSpec(name, shape)")
        if len(set(names)) != len(names):
            fail(f"{where}.{role}", f"names repeat: {names}", "give every tensor its own name")
        for t in tensors:
            problems = t.problems()
            if problems:
                fail(f"{where}.{role}[{t.name!r}]", "; ".join(problems), "fix the shape: ints > 0 or Dim(name, min, opt, max)")
    if comp.shape_draws is not None and (not isinstance(comp.shape_draws, int) or comp.shape_draws < 1):
        fail(f"{where}.shape_draws", f"must be an int >= 1 or None, got {comp.shape_draws!r}",
             "give the most sizes test_shapes may draw beyond the profile's corners, or None for the hypothesis profile's count")
    _validate_fed_by(fail, where, comp, group)
    _validate_dims(fail, where, comp)
    _validate_tolerances(fail, where, comp)
    _validate_drift(fail, where, comp)
    for attr in ("onnx", "latency", "trend", "int8"):
        problems = getattr(comp, attr).problems()
        if problems:
            fail(f"{where}.{attr}", "; ".join(problems), f"correct the {attr} settings")


def _validate_fed_by(fail, where: str, comp: Component, group: tuple[Component, ...]) -> None:
    """``fed_by`` names another component of the same group, and following the links never comes back."""
    if comp.fed_by is None:
        return
    if not isinstance(comp.fed_by, FedBy) or not callable(comp.fed_by.make):
        fail(f"{where}.fed_by", "is not a FedBy with a callable make", "use pytest_awml.spec.FedBy(component, make)")
    names = {c.name: c for c in group}
    seen: set[str] = {comp.name}
    link: FedBy | None = comp.fed_by
    while link is not None:
        if link.component not in names:
            fail(f"{where}.fed_by", f"names {link.component!r}, which is not a component beside it ({', '.join(sorted(names))})",
                 "name the component whose outputs make these inputs")
        if link.component in seen:
            fail(f"{where}.fed_by", f"leads back to {link.component!r}", "feed a component from one upstream of it, without a loop")
        seen.add(link.component)
        link = names[link.component].fed_by


def _validate_dims(fail, where: str, comp: Component) -> None:
    """A dim name must mean one range everywhere it is used; outputs may only reuse input dims."""
    declared: dict[str, Dim] = {}
    for t in comp.inputs:
        for d in t.shape:
            if isinstance(d, Dim):
                other = declared.setdefault(d.name, d)
                if other != d:
                    fail(f"{where}.inputs[{t.name!r}]", f"dim {d.name!r} is declared twice with different ranges ({other} vs {d})",
                         "use one Dim object per dynamic dimension")
    for t in comp.outputs:
        for d in t.shape:
            if isinstance(d, Dim) and d.name not in declared:
                fail(f"{where}.outputs[{t.name!r}]", f"dynamic dim {d.name!r} is not an input dim",
                     f"outputs may only use the inputs' dims ({', '.join(declared) or 'none'})")


def _validate_tolerances(fail, where: str, comp: Component) -> None:
    known = {p.value for p in Precision}
    outputs = set(comp.output_names)
    if Precision.FP32.value not in comp.tolerances:
        fail(f"{where}.tolerances", "has no 'fp32' entry", "give at least tolerances={'fp32': {'*': Tolerance(atol, rtol)}}")
    for precision, per_output in comp.tolerances.items():
        if precision not in known:
            fail(f"{where}.tolerances[{precision!r}]", "is not a precision", f"use one of {sorted(known)}")
        for output, tol in per_output.items():
            if output != ANY_OUTPUT and output not in outputs:
                fail(f"{where}.tolerances[{precision!r}][{output!r}]", "names no output",
                     f"outputs are {', '.join(comp.output_names)} (or '*' for all)")
            if not isinstance(tol, Tolerance):
                fail(f"{where}.tolerances[{precision!r}][{output!r}]", f"is a {type(tol).__name__}", "use Tolerance(atol, rtol)")
            problems = tol.problems()
            if problems:
                fail(f"{where}.tolerances[{precision!r}][{output!r}]", "; ".join(problems),
                     "use finite atol, rtol >= 0 (and max_label_flips, max_reordered_rows shares in [0, 1], or None)")
            ranks = {len(o.shape) for o in comp.outputs if output in (ANY_OUTPUT, o.name)}
            by_rank = tol.max_reordered_rows is not None or tol.max_unmatched_rows is not None
            if by_rank and any(rank <= tol.row_axis for rank in ranks):
                fail(f"{where}.tolerances[{precision!r}][{output!r}]", f"reorders rows along axis {tol.row_axis}, which an "
                     f"output of rank {min(ranks)} lacks", "give a row_axis every output it covers has")
        if ANY_OUTPUT not in per_output:
            missing = sorted(outputs - set(per_output))
            if missing:
                fail(f"{where}.tolerances[{precision!r}]", f"covers no tolerance for {', '.join(missing)}",
                     "add those outputs or a '*' default")


def _validate_drift(fail, where: str, comp: Component) -> None:
    outputs = set(comp.output_names)
    for output, tol in comp.drift.items():
        if output != ANY_OUTPUT and output not in outputs:
            fail(f"{where}.drift[{output!r}]", "names no output", f"outputs are {', '.join(comp.output_names)} (or '*')")
        if not isinstance(tol, Tolerance) or tol.problems():
            fail(f"{where}.drift[{output!r}]", "is not a valid Tolerance", "use Tolerance(atol, rtol) with finite values >= 0")
    if ANY_OUTPUT not in comp.drift and outputs - set(comp.drift):
        fail(f"{where}.drift", f"covers no tolerance for {', '.join(sorted(outputs - set(comp.drift)))}", "add them or a '*' default")
