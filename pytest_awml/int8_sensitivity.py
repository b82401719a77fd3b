"""Which layers cost accuracy when quantized (``--awml-int8-sensitivity``): each weighted layer of a component kept in
float at a time, the rest int8, and what that does to the component's outputs (the heads) and to the spec's metric;
then the smallest set of layers, taken in that ranking, whose keeping in float brings the metric delta within the
spec's int8 limit. The set is what a spec gives as ``Int8Settings(keep_float=...)``.

Every variant is quantized with the ranges of one calibration (ONNX Runtime's calibration cache), so variants differ
only in the layer kept float; each runs on ONNX Runtime's CPU provider, the component's inputs are the session's, and
the metric is the spec's pipeline over the session's samples, the other components on their own int8 graphs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from exporters.onnx_int8 import calibration_cache, quantize_int8
from pytest_awml.builders.onnx import FORMAT as ONNX
from pytest_awml.device import Target
from pytest_awml.runners.onnxruntime import OnnxRuntimeRunner

if TYPE_CHECKING:
    from pytest_awml.spec import Component, ModelSpec
    from pytest_awml.workspace import Workspace

WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})  # the layers whose weights the quantizer scales


@dataclass(frozen=True, kw_only=True)
class LayerCost:
    """One layer kept float, the rest int8: the metric delta to the reference's (None without a metric) and each output's
    largest error, relative to that output's largest reference value."""

    node: str
    op: str
    metric_delta: float | None
    heads: Mapping[str, float]

    def recovered(self, everything: LayerCost) -> tuple[float, float]:
        """How much of the all-int8 cost keeping this layer float wins back: metric delta, summed relative head error."""
        metric = (everything.metric_delta or 0.0) - (self.metric_delta or 0.0)
        return metric, sum(everything.heads.values()) - sum(self.heads.values())


def rank(everything: LayerCost, costs: Sequence[LayerCost], limit: float | None) -> tuple[list[LayerCost], str]:
    """The layers costliest first, and by what. While all-int8 is over the metric limit, by the metric each wins back
    (what the float-kept set must fix), then the heads; within it, by the heads (a continuous measure, where a metric over
    a few samples moves in steps of one box), then the metric."""
    over = limit is not None and everything.metric_delta is not None and everything.metric_delta > limit
    if over:
        return sorted(costs, key=lambda c: c.recovered(everything), reverse=True), "metric"
    return sorted(costs, key=lambda c: c.recovered(everything)[::-1], reverse=True), "heads"


@dataclass(frozen=True, kw_only=True)
class Sensitivity:
    """The all-int8 cost, the layers ranked (costliest first), and the smallest float-kept set within ``limit``."""

    everything: LayerCost
    ranked: tuple[LayerCost, ...]
    limit: float | None
    keep_float: tuple[str, ...] | None  # None: no set within the limit (or no metric to judge one)
    keep_float_delta: float | None
    ranked_by: str  # "metric" or "heads": see rank


def layers(graph: Path) -> list[tuple[str, str]]:
    """The weighted layers of an fp32 graph, as (node name, op), in graph order."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    return [(n.name, n.op_type) for n in model.graph.node if n.op_type in WEIGHTED_OPS and n.name]


def measure(workspace: Workspace, spec: ModelSpec, component: Component, target: Target) -> Sensitivity:
    """Rank ``component``'s layers by what quantizing each costs, on ``target`` (ONNX Runtime CPU int8)."""
    calibrated = workspace.calibration(spec, component)
    settings = calibrated.settings
    graph = workspace.artifact(spec, component, ONNX).path
    limit = spec.metric.max_delta.get(target.precision.value) if spec.metric is not None else None
    with tempfile.TemporaryDirectory(prefix="awml-int8-sensitivity-") as scratch:
        folder = Path(scratch)
        cache = calibration_cache(graph, calibrated.inputs, settings.calibration, folder / "ranges.json", component=component.name)

        def cost(keep: Sequence[str], node: str = "(none)", op: str = "") -> LayerCost:
            path = folder / f"variant{len(list(folder.glob('variant*.onnx')))}.onnx"
            quantize_int8(graph, path, (), settings.calibration, component=component.name, exclude=(*settings.keep_float, *keep), cache=cache)
            runner = OnnxRuntimeRunner(path, target, component.output_names, ["CPUExecutionProvider"], component.inputs)
            try:
                return LayerCost(node=node, op=op, metric_delta=_metric_delta(workspace, spec, component, target, runner),
                                 heads=_head_errors(workspace, spec, component, runner))
            finally:
                runner.close()

        everything = cost(())
        candidates = [(n, op) for n, op in layers(graph) if n not in settings.keep_float]
        ranked, by = rank(everything, [cost((n,), n, op) for n, op in candidates], limit)
        keep, delta = smallest_set(everything, ranked, limit, lambda names: cost(names).metric_delta)
    return Sensitivity(everything=everything, ranked=tuple(ranked), limit=limit, keep_float=keep, keep_float_delta=delta, ranked_by=by)


def smallest_set(everything: LayerCost, ranked: Sequence[LayerCost], limit: float | None,
                  delta_of: Callable[[tuple[str, ...]], float | None]) -> tuple[tuple[str, ...] | None, float | None]:
    """The shortest prefix of ``ranked`` kept float whose metric delta is within ``limit`` (measured, not summed: layers
    interact), or None when no prefix is; empty when all-int8 already is."""
    if limit is None or everything.metric_delta is None:
        return None, None
    if everything.metric_delta <= limit:
        return (), everything.metric_delta
    for count in range(1, len(ranked) + 1):
        names = tuple(c.node for c in ranked[:count])
        delta = delta_of(names)
        if delta is not None and delta <= limit:
            return names, delta
    return None, None


def _head_errors(workspace: Workspace, spec: ModelSpec, component: Component, runner: OnnxRuntimeRunner) -> dict[str, float]:
    references = workspace.reference(spec, component)
    worst: dict[str, float] = {}
    for inputs, reference in zip(workspace.inputs(spec, component), references, strict=True):
        got = runner.run(inputs)
        for name in component.output_names:
            scale = float(np.abs(reference[name]).max()) or 1.0
            worst[name] = max(worst.get(name, 0.0), float(np.abs(got[name] - reference[name]).max()) / scale)
    return worst


def _metric_delta(workspace: Workspace, spec: ModelSpec, component: Component, target: Target, runner: OnnxRuntimeRunner) -> float | None:
    """The spec's metric over the session's samples with ``runner`` for ``component`` and the other components' ``target``
    runners, as |delta| to the reference pipeline's (None: the spec has no metric or pipeline)."""
    from pytest_awml import pipeline_outputs

    if spec.metric is None or spec.pipeline is None:
        return None
    loaded = workspace.model(spec)
    runners: dict[str, Any] = {c.name: runner if c.name == component.name else workspace.runner(spec, c, target)
                               for c in spec.components}
    pipeline = spec.pipeline.build(loaded.model, runners)
    outputs = [pipeline(sample).outputs for sample in loaded.samples]
    reference = spec.metric.compute(pipeline_outputs.reference(workspace, spec), loaded.samples)
    return abs(spec.metric.compute(outputs, loaded.samples).value - reference.value)


def table(result: Sensitivity, top: int | None = None) -> list[str]:
    """The ranked table as lines for a failure message: the costliest layers first."""
    everything = result.everything
    lines = [f"{'layer kept float':<48} {'op':<14} {'metric delta':>12} {'metric won':>10} {'heads won':>10}"]
    for layer in (result.ranked if top is None else result.ranked[:top]):
        metric, heads = layer.recovered(everything)
        delta = "-" if layer.metric_delta is None else f"{layer.metric_delta:.4f}"
        lines.append(f"{layer.node[-48:]:<48} {layer.op:<14} {delta:>12} {metric:>10.4f} {heads:>10.4f}")
    return lines
