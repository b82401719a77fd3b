"""A failed parity test's first divergence: which graph stands for the target, which input is replayed, and the
run of :mod:`pytest_awml.layer_walk` on it.

The backend side is the ONNX graph the target runs or is compiled from (``ArtifactBuilder.onnx_graph``), run by
ONNX Runtime on the CPU with every tensor marked: a TensorRT engine's own layers cannot be read back, its graph's
can, and an fp16 target whose engine takes half precision from a builder flag is stood for by the fp16 graph.
Localizing is a diagnosis after a verdict: whatever goes wrong in it is said beside the failure (a
:class:`Skipped` reason), never raised instead of it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pytest_awml import intermediates
from pytest_awml.builders.onnx import FORMAT as ONNX
from pytest_awml.builders.onnx_fp16 import FORMAT as ONNX_FP16
from pytest_awml.cases import Plan
from pytest_awml.device import REFERENCE, Precision, Target
from pytest_awml.divergence import Localization
from pytest_awml.errors import AwmlError
from pytest_awml.layer_rule import LayerRule
from pytest_awml.layer_walk import localize
from pytest_awml.limits import Tolerance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skipped:
    """Why a failure was not localized (said in the failure's message)."""

    reason: str

    def line(self) -> str:
        return f"first divergence: not localized ({self.reason})"

    @property
    def first(self) -> None:
        """No divergence named (as a :class:`~pytest_awml.divergence.Localization` that found none)."""
        return None


def graph_format(plan: Plan, target: Target) -> str | None:
    """The ONNX artifact that stands for ``target``'s computation, or None (a target that runs no graph)."""
    fmt = plan.backends.get(target.backend).artifact_format(target.precision)
    if fmt is None:
        return None
    graph = plan.builders.get(fmt).onnx_graph()
    if graph == ONNX and target.precision is Precision.FP16 and ONNX_FP16 in plan.builders.names():
        return ONNX_FP16  # half layers chosen by a builder flag: the fp16 graph computes what they do
    return graph


def worst_sample(references: Sequence[Mapping[str, np.ndarray]], outputs: Sequence[Mapping[str, np.ndarray]]) -> int:
    """The input whose outputs are furthest from the reference's (relative to each output's range): the one replayed."""
    def distance(i: int) -> float:
        worst = 0.0
        for name, ref in references[i].items():
            got = outputs[i].get(name)
            if got is None or got.shape != ref.shape or ref.size == 0:
                continue
            diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
            span = float(np.nanmax(np.abs(ref))) or 1.0
            worst = max(worst, float(np.nanmax(np.where(np.isfinite(diff), diff, np.inf))) / span)
        return worst

    return max(range(len(references)), key=distance) if references else 0


def first_divergence(workspace, spec, component, target: Target, inputs: Sequence[Mapping[str, np.ndarray]],
                     references: Sequence[Mapping[str, np.ndarray]], outputs: Sequence[Mapping[str, np.ndarray]],
                     tolerances: Mapping[str, Tolerance], reference: Target = REFERENCE) -> Localization | Skipped:
    """Localize a failed comparison of ``target`` against ``reference`` on the worst of ``inputs``."""
    if not workspace.options.localize:
        return Skipped("--awml-no-localize")
    if reference != REFERENCE:
        return Skipped(f"the reference is {reference.id}: layers are read from the PyTorch CPU fp32 module only")
    graph = graph_format(workspace.plan, target)
    if graph is None:
        return Skipped(f"{target.id} runs no ONNX graph to read layers from")
    if not inputs:
        return Skipped("no input to replay")
    start = time.perf_counter()
    sample = worst_sample(references, outputs) if len(outputs) == len(references) else 0
    try:
        path = workspace.artifact(spec, component, graph).path
        module = component.extract(workspace.model(spec).model)
        feed = inputs[sample]
        workspace.options.artifacts.mkdir(parents=True, exist_ok=True)  # on disk, not a tmpfs /tmp: the graph's tensors
        with tempfile.TemporaryDirectory(prefix=".layers-", dir=workspace.options.artifacts) as spill:
            model, values = intermediates.graph_tensors(path, feed, Path(spill))
            rule = LayerRule.of(tolerances, references[sample] if sample < len(references) else {})
            found = localize(module, [feed[name] for name in component.input_names], model.graph, values, rule,
                             graph_format=graph, sample=sample)
    except AwmlError as exc:
        return Skipped(f"the {graph} graph is not available: {exc}")
    except Exception as exc:
        log.warning("localizing %s/%s on %s failed", spec.name, component.name, target.id, exc_info=True)
        return Skipped(f"{type(exc).__name__}: {str(exc)[:300]}")
    return replace(found, seconds=round(time.perf_counter() - start, 3), graph_path=path)
