"""The tests a spec expands to. The plugin adds this module to the collection when ``--awml-spec``
is given and parametrizes each test from the spec (see ``plugin.pytest_generate_tests``)."""

from __future__ import annotations

import pytest

from pytest_awml import results
from pytest_awml.artifacts import sha256_file
from pytest_awml.compare import compare_outputs
from pytest_awml.errors import ArtifactError, ToleranceExceeded
from pytest_awml.timing import LatencyStats, benchmark_pedantic


def _ids(case, test_id: str) -> dict:
    return {"test_id": test_id, "spec": case.spec.name, "component": case.component.name}


def _target_ids(case, test_id: str) -> dict:
    target = case.target
    return {**_ids(case, test_id), "target": target.id, "backend": target.backend,
            "device": target.device.id, "precision": target.precision.value}


@pytest.mark.awml_cases("export")
def test_export(awml_case, awml_workspace, request):
    """The component exports, passes the exporter's checks, and the file on disk is the one recorded."""
    artifact = awml_workspace.artifact(awml_case.spec, awml_case.component, awml_case.format)
    loaded = awml_workspace.model(awml_case.spec)
    results.attach(request.node, "artifacts", {**_ids(awml_case, request.node.nodeid), **artifact.as_record(),
                                               "weights_sha256": loaded.weights_sha256})
    on_disk = sha256_file(artifact.path)
    if on_disk != artifact.sha256:
        raise ArtifactError(f"{artifact.path} changed after it was built: sha256 {on_disk} != {artifact.sha256}")


@pytest.mark.awml_cases("parity")
def test_parity(awml_case, awml_workspace, request):
    """Every output of the backend stays within the spec's tolerance of PyTorch CPU fp32."""
    spec, component, target = awml_case.spec, awml_case.component, awml_case.target
    references = awml_workspace.reference(spec, component)
    runner = awml_workspace.runner(spec, component, target)
    outputs = [runner.run(sample) for sample in awml_workspace.inputs(spec, component)]
    tolerances = {name: component.tolerance(target.precision, name) for name in component.output_names}
    comparisons = compare_outputs(references, outputs, tolerances)
    for comparison in comparisons:
        results.attach(request.node, "parity", {**_target_ids(awml_case, request.node.nodeid), **comparison.as_record()})
    failed = [c for c in comparisons if not c.passed]
    if failed:
        lines = "\n  ".join(c.describe() for c in failed)
        raise ToleranceExceeded(
            f"{target.id} differs from pytorch-cpu-fp32 on {len(failed)} of {len(comparisons)} output(s) "
            f"over {len(references)} sample(s):\n  {lines}"
        )


@pytest.mark.awml_cases("latency")
def test_latency(awml_case, awml_workspace, benchmark, request):
    """Per-inference latency of the component on the target (inputs prepared outside the timing)."""
    spec, component, target = awml_case.spec, awml_case.component, awml_case.target
    runner = awml_workspace.runner(spec, component, target)
    prepared = runner.prepare(awml_workspace.inputs(spec, component)[0])

    def infer(ready):
        out = runner.execute(ready)
        runner.synchronize()
        return out

    benchmark.group = f"{spec.name}/{component.name}"
    benchmark.extra_info.update(spec=spec.name, component=component.name, target=target.id)
    stats = benchmark_pedantic(benchmark, infer, (prepared,), component.latency.rounds, component.latency.warmup_rounds)
    if stats is None:
        pytest.skip("pytest-benchmark is disabled here (--benchmark-disable, or pytest-xdist is active): no latency measured")
    results.attach(request.node, "latency", {**_target_ids(awml_case, request.node.nodeid), **stats.as_dict()})


def _pipeline_ids(case, test_id: str) -> dict:
    target = case.target
    return {"test_id": test_id, "spec": case.spec.name, "component": "pipeline", "target": target.id,
            "backend": target.backend, "device": target.device.id, "precision": target.precision.value}


@pytest.mark.awml_cases("pipeline_parity")
def test_pipeline_parity(awml_case, awml_workspace, request):
    """The end-to-end outputs (boxes, classes…) of the target agree with the PyTorch CPU pipeline."""
    spec, target = awml_case.spec, awml_case.target
    references = awml_workspace.pipeline_reference(spec)
    pipeline = awml_workspace.pipeline(spec, target)
    outputs = [pipeline(sample).outputs for sample in awml_workspace.model(spec).samples]
    checks = spec.pipeline.compare(references, outputs, target.precision)
    for check in checks:
        results.attach(request.node, "parity", {**_pipeline_ids(awml_case, request.node.nodeid), "output": check.output,
                                                "max_abs": check.value, "atol": check.limit, "rtol": 0.0,
                                                "passed": check.passed, "problem": "" if check.passed else check.detail})
    failed = [c for c in checks if not c.passed]
    if failed:
        lines = "\n  ".join(c.describe() for c in failed)
        raise ToleranceExceeded(f"the {target.id} pipeline differs from pytorch-cpu-fp32 on {len(failed)} of {len(checks)} "
                                f"check(s) over {len(references)} sample(s):\n  {lines}")


@pytest.mark.awml_cases("pipeline_latency")
def test_pipeline_latency(awml_case, awml_workspace, benchmark, request):
    """End-to-end latency with the per-stage breakdown (ms) of every round."""
    spec, target = awml_case.spec, awml_case.target
    pipeline = awml_workspace.pipeline(spec, target)
    sample = awml_workspace.model(spec).samples[0]
    stage_rounds: list = []

    def infer(s):
        result = pipeline(s)
        stage_rounds.append(result.stages_ms)
        return result

    benchmark.group = f"{spec.name}/pipeline"
    benchmark.extra_info.update(spec=spec.name, component="pipeline", target=target.id)
    settings = spec.pipeline.latency
    stats = benchmark_pedantic(benchmark, infer, (sample,), settings.rounds, settings.warmup_rounds)
    if stats is None:
        pytest.skip("pytest-benchmark is disabled here (--benchmark-disable, or pytest-xdist is active): no latency measured")
    timed = stage_rounds[settings.warmup_rounds:]
    stages = {name: LatencyStats.from_seconds([r[name] / 1e3 for r in timed]).as_dict() for name in pipeline.stages}
    benchmark.extra_info["stages"] = stages
    results.attach(request.node, "latency", {**_pipeline_ids(awml_case, request.node.nodeid), **stats.as_dict(), "stages": stages})
