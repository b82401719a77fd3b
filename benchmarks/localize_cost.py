"""What localizing a failure costs on a spec's component, and which layers of its fp16 graph come closest to the
fp16 tolerance where parity passes (opt-in; the full-size CenterPoint backbone takes minutes on 2 cores).

    python benchmarks/localize_cost.py --spec centerpoint --component pts_backbone_neck_head --artifacts /tmp/loc

Prints, for the fp32 graph (as a failed onnxruntime-cpu-fp32 parity test localizes it) and the fp16 graph
(what an fp16 engine computes, against the fp16 tolerance): the seconds localizing took, peak memory, the first
divergence (none, where parity passes) and the layers using the largest share of their scaled tolerance.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import resource
import time
from pathlib import Path

from pytest_awml import intermediates, spec_loader
from pytest_awml.artifacts import ArtifactStore
from pytest_awml.backends import builtin as builtin_backends
from pytest_awml.builders import builtin as builtin_builders
from pytest_awml.builders.onnx import FORMAT as ONNX
from pytest_awml.builders.onnx_fp16 import FORMAT as ONNX_FP16
from pytest_awml.cases import Plan
from pytest_awml.device import Device, Precision
from pytest_awml.divergence import LayerRule, localize
from pytest_awml.options import AwmlOptions
from pytest_awml.workspace import Workspace

log = logging.getLogger("localize_cost")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="centerpoint")
    parser.add_argument("--component", default="pts_backbone_neck_head")
    parser.add_argument("--artifacts", type=Path, default=Path(".awml/artifacts"))
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    options = AwmlOptions(specs=(args.spec,), backends=("pytorch", "onnxruntime"), device=Device.parse("cpu"),
                          precisions=(Precision.FP32,), artifacts=args.artifacts, checkpoint=None, samples=1, seed=0,
                          report=args.artifacts / "report.json")
    specs = spec_loader.load_all(options)
    workspace = Workspace(Plan.build(options, specs, builtin_backends(), builtin_builders()), ArtifactStore(args.artifacts))
    spec = specs[0]
    component = spec.component(args.component)
    feed = workspace.inputs(spec, component)[0]
    reference = workspace.reference(spec, component)[0]
    module = component.extract(workspace.model(spec).model)
    names = [name for name, _ in module.named_modules()]
    for graph, precision in ((ONNX, Precision.FP32), (ONNX_FP16, Precision.FP16)):
        path = workspace.artifact(spec, component, graph).path
        tolerances = options.parity_tolerances(component, precision)
        start = time.perf_counter()
        log.warning("localizing on the %s graph", graph)
        spill = args.artifacts / f"spill-{graph}"
        spill.mkdir(parents=True, exist_ok=True)
        calls = intermediates.module_calls(module, [feed[name] for name in component.input_names], spill)
        hooked = time.perf_counter()
        log.warning("hooked")
        model, values = intermediates.graph_tensors(path, feed, spill)
        ran = time.perf_counter()
        log.warning("graph run")
        found = localize(calls, model.graph, values, LayerRule.of(tolerances, reference), graph_format=graph, sample=0,
                         module_names=names)
        done = time.perf_counter()
        log.warning("judged")
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"{spec.name}/{component.name} {graph}: {done - start:.1f} s (hooks {hooked - start:.1f} s, ONNX Runtime "
              f"every tensor {ran - hooked:.1f} s, judging {done - ran:.1f} s), peak RSS {peak_gib:.1f} GiB, "
              f"{len(found.rows)} module calls, {len(values)} graph tensors")
        print(f"  rule: {dataclasses.asdict(found.rule)}")
        print(f"  {found.line()}")
        deepest = {r.onnx_outputs: r for r in reversed(found.rows) if r.tolerance_used is not None}  # a call's, not its parents'
        ranked = sorted(deepest.values(), key=lambda r: -(r.tolerance_used or 0.0))
        for row in ranked[: args.top]:
            print(f"  {row.tolerance_used:8.3g} of its tolerance: {row.module} max abs {row.max_abs:.3g} on values up to "
                  f"{row.ref_max_abs:.3g} ({', '.join(row.onnx_outputs)})")
        del calls, values, found


if __name__ == "__main__":
    main()
