"""What localizing a failure costs on a spec's component, and which layers of its fp16 graph come closest to the
fp16 tolerance where parity passes (opt-in; the full-size CenterPoint backbone takes a few minutes on 2 cores).

    /usr/bin/time -v python benchmarks/localize_cost.py --spec centerpoint --component pts_backbone_neck_head \\
        --artifacts /tmp/loc [--graphs onnx onnx-fp16]

For each graph — the fp32 one (as a failed onnxruntime-cpu-fp32 parity test localizes it, against the fp32
tolerance) and the fp16 one (what an fp16 engine computes, against the fp16 tolerance) — it prints the seconds each
stage took, wall and CPU (every graph tensor by ONNX Runtime, spilled to disk; the reference's forward with every
call judged in its hooks), the process's peak RSS so far, the (reference tensor, graph tensor) pairs compared (each once), the
first divergence (none where parity passes: a faithful export) and the layers using the largest share of their
scaled tolerance. ``--expect-none`` exits 1 when a faithful export names a divergence.

Measured 2026-12-07 on the 2-core CPU box shared with other jobs (load average ~10: upper bounds), seeded
full-size CenterPoint, the command above: fp32 graph 138 s (ONNX Runtime in 8 segments 66 s, the forward judged in
its hooks 72 s), 108 module calls, 61 graph tensors, 89 pairs compared, nothing named (closest:
pts_backbone.blocks.2.11 at 41.7 % of its scaled tolerance); fp16 graph 130 s, nothing named, closest
pts_bbox_head.task_heads.0.vel.1 at 53.0 % (max abs 0.094 on values up to 69); peak RSS 4.5 GiB for the whole run.
Before judging moved into the hooks (copies of every call spilled, each parent judging its children's tensors
again, the graph run whole once per 16 tensors): stopped after 9.8 min, peak RSS 16.9 GiB.
With the box's load at ~16 the fp32 graph took 549 s wall but 74 s of this process's CPU (ONNX Runtime 33 s, the
judged forward 41 s): on two idle cores, an estimated minute or so (not measured: no idle machine here).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import resource
import sys
import tempfile
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
from pytest_awml.divergence import LayerRow
from pytest_awml.layer_rule import LayerRule
from pytest_awml.layer_walk import localize
from pytest_awml.options import AwmlOptions
from pytest_awml.workspace import Workspace

log = logging.getLogger("localize_cost")
PRECISION = {ONNX: Precision.FP32, ONNX_FP16: Precision.FP16}  # the tolerance each graph is judged against


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="centerpoint")
    parser.add_argument("--component", default="pts_backbone_neck_head")
    parser.add_argument("--artifacts", type=Path, default=Path(".awml/artifacts"))
    parser.add_argument("--graphs", nargs="+", choices=sorted(PRECISION), default=[ONNX, ONNX_FP16])
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--expect-none", action="store_true", help="exit 1 if any graph names a divergence")
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
    named = 0
    for graph in args.graphs:
        path = workspace.artifact(spec, component, graph).path
        tolerances = options.parity_tolerances(component, PRECISION[graph])
        args.artifacts.mkdir(parents=True, exist_ok=True)
        start, cpu = time.perf_counter(), time.process_time()
        with tempfile.TemporaryDirectory(prefix=".layers-", dir=args.artifacts) as spill:  # as localize.first_divergence
            model, values = intermediates.graph_tensors(path, feed, Path(spill))
            ran, ran_cpu = time.perf_counter(), time.process_time()
            found = localize(module, [feed[name] for name in component.input_names], model.graph, values,
                             LayerRule.of(tolerances, reference), graph_format=graph, sample=0)
            done, done_cpu = time.perf_counter(), time.process_time()
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"{spec.name}/{component.name} {graph}: {done - start:.1f} s wall, {done_cpu - cpu:.1f} s CPU of this process's threads "
              f"(ONNX Runtime, every tensor spilled {ran - start:.1f} s, {ran_cpu - cpu:.1f} s CPU; reference forward judged in its hooks "
              f"{done - ran:.1f} s, {done_cpu - ran_cpu:.1f} s CPU), peak RSS so far {peak_gib:.2f} GiB, "
              f"{len(found.rows)} module calls, {len(values)} graph tensors, {found.comparisons} pairs compared")
        print(f"  rule: {dataclasses.asdict(found.rule)}")
        print(f"  {found.line()}")
        named += found.first is not None
        deepest: dict[str, LayerRow] = {}  # each graph tensor's first call to end with it alone: a module, not the ones around it
        for row in found.rows:
            if row.tolerance_used is not None and len(row.onnx_outputs) == 1:
                deepest.setdefault(row.onnx_outputs[0], row)
        ranked = sorted(deepest.values(), key=lambda r: -(r.tolerance_used or 0.0))
        for row in ranked[: args.top]:
            print(f"  {row.tolerance_used:8.3g} of its tolerance ({100 * (row.tolerance_used or 0.0):.1f} %): {row.module} "
                  f"max abs {row.max_abs:.3g} on values up to {row.ref_max_abs:.3g} ({', '.join(row.onnx_outputs)})")
        del values, found
    return 1 if args.expect_none and named else 0


if __name__ == "__main__":
    sys.exit(main())
