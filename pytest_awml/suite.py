"""The tests a spec expands to. The plugin adds this module to the collection when ``--awml-spec``
is given and parametrizes each test from the spec (see ``plugin.pytest_generate_tests``)."""

from __future__ import annotations

import time

import pytest

from pytest_awml import forensics, results
from pytest_awml.artifacts import sha256_file
from pytest_awml.compare import OutputComparison, compare_outputs
from pytest_awml.device import REFERENCE
from pytest_awml.errors import ArtifactError, AwmlError, BackendError, DataError, LatencyBudgetExceeded, ToleranceExceeded
from pytest_awml.golden import GoldenStore, trend_problem, version_changes
from pytest_awml.spec import Tolerance, fingerprint
from pytest_awml.shapes import corner_sizes, hypothesis_settings, out_of_range_sizes, random_feed, sizes_strategy
from pytest_awml.budgets import ratio_verdict, regression_verdict, share_verdict
from pytest_awml.timing import LatencyStats, measure_component, plan_rounds
from pytest_awml.workspace import library_versions

# Figures recorded as junitxml properties for CI dashboards (record_property).
KEY_FIGURES = ("max_abs", "p99_abs", "min_atol_to_pass")


def _ids(case, test_id: str) -> dict:
    return {"test_id": test_id, "spec": case.spec.name, "component": case.component.name}


def _target_ids(case, test_id: str, options, component: str | None = None) -> dict:
    """Record ids of a test on a target; ``component`` overrides the case's (``pipeline``)."""
    target = case.target
    ids = {"test_id": test_id, "spec": case.spec.name, "component": component or case.component.name, "target": target.id,
           "backend": target.backend, "device": target.device.id, "precision": target.precision.value}
    if options.worker:
        ids.update(worker=options.worker, gpu=options.physical(target.device).torch)
    return ids


def _judge(request, workspace, case, kind: str, comparisons: list[OutputComparison], ids: dict, *, inputs, reference,
           outputs, reference_name: str, test_name: str, replay_tolerances) -> None:
    """Record, remember and gate one comparison: report records, junit properties, error history,
    the trend budget, and on failure the forensics folder named in the message."""
    options = workspace.plan.options
    for comparison in comparisons:
        results.attach(request.node, kind, {**ids, **comparison.as_record()})
        for figure in KEY_FIGURES:
            request.node.user_properties.append((f"awml.{comparison.output}.{figure}", getattr(comparison, figure)))
    failed = [c for c in comparisons if not c.passed]
    notes = []
    if options.golden is not None:
        store = GoldenStore(options.golden)
        if options.drift_trend:
            for c in comparisons:
                previous = [h.get("max_abs") for h in store.history(ids["test_id"], c.output)]
                problem = trend_problem(previous, c.max_abs, case.component.trend)
                if problem:
                    notes.append(f"{c.output}: trend budget broken: {problem}")
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        store.append_history([{"time": now, "test_id": ids["test_id"], "output": c.output,
                               **{f: getattr(c, f) for f in KEY_FIGURES}} for c in comparisons if c.passed or not c.problem])
    if not failed and not notes:
        return
    onnx_path = workspace.onnx_path_or_none(case.spec, case.component)
    folder = forensics.write_failure(options.artifacts, ids["test_id"], inputs=inputs, reference=reference, outputs=outputs,
                                     reference_name=reference_name, test_name=test_name, tolerances=replay_tolerances,
                                     onnx_path=onnx_path)
    request.node.user_properties.append(("awml.failure_folder", str(folder)))
    lines = "\n  ".join([c.describe() for c in failed] + notes)
    raise ToleranceExceeded(f"{test_name} differs from {reference_name} on {len(failed) + len(notes)} of {len(comparisons)} "
                            f"output(s) over {len(reference)} sample(s):\n  {lines}\nInputs, outputs and reproduce.sh: {folder}")


@pytest.fixture(autouse=True)
def _record_builds(request, awml_workspace):
    """An artifact built by a test other than its test_export (xdist runs tests in any order) is
    still reported once, as built, so that 'built once across workers' shows in the report."""
    yield
    for artifact in awml_workspace.drain_builds():
        if request.node.originalname != "test_export":
            results.attach(request.node, "artifacts", {"test_id": request.node.nodeid, "built_by": request.node.nodeid,
                                                       **artifact.as_record()})


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
    inputs = awml_workspace.inputs(spec, component)
    references = awml_workspace.reference(spec, component)
    runner = awml_workspace.runner(spec, component, target)
    outputs = [runner.run(sample) for sample in inputs]
    tolerances = awml_workspace.tolerances(component, target.precision)
    comparisons = compare_outputs(references, outputs, tolerances)
    _judge(request, awml_workspace, awml_case, "parity", comparisons, _target_ids(awml_case, request.node.nodeid, awml_workspace.plan.options),
           inputs=inputs, reference=references, outputs=outputs, reference_name=REFERENCE.id, test_name=target.id,
           replay_tolerances=tolerances)


@pytest.mark.awml_cases("drift")
def test_drift(awml_case, awml_workspace, request):
    """Today's PyTorch model gives the golden outputs on the golden inputs (within the drift tolerance)."""
    spec, component = awml_case.spec, awml_case.component
    options = awml_workspace.plan.options
    store = GoldenStore(options.golden)
    reference = awml_workspace.runner(spec, component, REFERENCE)
    ids = _ids(awml_case, request.node.nodeid)
    tolerances = {o: options.tolerances.apply(o, component.drift_tolerance(o)) for o in component.output_names}
    if options.update_golden:
        _update_golden(request, awml_workspace, store, awml_case, reference, tolerances)
        return
    golden = store.read(spec.name, component.name)
    if golden is None:
        raise DataError(f"no golden outputs for {spec.name}/{component.name} under {options.golden}: create them with "
                        f"pytest --awml-spec {spec.name} --awml-golden {options.golden} --awml-update-golden -k test_drift")
    if golden.meta.get("seed") != options.seed:
        raise DataError(f"the golden outputs were made with seed {golden.meta.get('seed')}, this run uses {options.seed}")
    changes = version_changes(golden.meta.get("versions", {}), library_versions())
    outputs = [reference.run(sample) for sample in golden.inputs]
    comparisons = compare_outputs(golden.outputs, outputs, tolerances)
    replay = awml_workspace.tolerances(component, REFERENCE.precision)
    loaded = awml_workspace.model(spec)
    ids = {**ids, "golden": str(golden.path), "version_changes": changes,
           "weights_changed": golden.meta.get("weights_sha256") != loaded.weights_sha256}
    try:
        _judge(request, awml_workspace, awml_case, "drift", comparisons, ids, inputs=golden.inputs, reference=golden.outputs,
               outputs=outputs, reference_name=f"golden ({golden.meta.get('created', '?')})", test_name="pytorch-cpu-fp32 today",
               # the replay runs ONNX Runtime, not PyTorch: allow for its fp32 error on top of the drift budget
               replay_tolerances={o: _wider(tolerances[o], replay[o]) for o in tolerances})
    except ToleranceExceeded as exc:
        if changes:
            changed = ", ".join(f"{name} {old} -> {new}" for name, (old, new) in changes.items())
            raise ToleranceExceeded(f"{exc}\nLibrary versions changed since the golden outputs were made: {changed}") from None
        raise


def _wider(a: Tolerance, b: Tolerance) -> Tolerance:
    return Tolerance(max(a.atol, b.atol), max(a.rtol, b.rtol))


def _update_golden(request, workspace, store, case, reference, tolerances) -> None:
    spec, component = case.spec, case.component
    inputs = workspace.inputs(spec, component)
    outputs = [reference.run(sample) for sample in inputs]
    old = None
    try:
        old = store.read(spec.name, component.name)
    except ArtifactError as exc:  # a corrupt golden file is replaced; say so
        request.node.user_properties.append(("awml.golden_replaced", str(exc)))
    change = {}
    if old is not None and len(old.outputs) == len(outputs):
        change = {c.output: c.max_abs for c in compare_outputs(old.outputs, outputs, tolerances)}
    loaded = workspace.model(spec)
    options = workspace.plan.options
    meta = {"spec": spec.name, "component": component.name, "spec_hash": fingerprint(spec, component),
            "weights_sha256": loaded.weights_sha256, "seed": options.seed, "samples": len(inputs), "versions": library_versions()}
    path = store.write(spec.name, component.name, inputs, outputs, meta)
    results.attach(request.node, "golden", {**_ids(case, request.node.nodeid), "path": str(path),
                                            "action": "updated" if old is not None else "created", "old_vs_new_max_abs": change})


@pytest.mark.awml_cases("shapes")
def test_shapes(awml_case, awml_workspace, request):
    """Parity at the profile's min/opt/max and at hypothesis-drawn sizes; out-of-range shapes are refused by name."""
    from hypothesis import given

    spec, component, target = awml_case.spec, awml_case.component, awml_case.target
    options = awml_workspace.plan.options
    reference = awml_workspace.runner(spec, component, REFERENCE)
    runner = awml_workspace.runner(spec, component, target)
    tolerances = awml_workspace.tolerances(component, target.precision)
    dims = component.dynamic_dims
    tried: list[dict] = []

    def check(sizes: dict[str, int]) -> None:
        feed = random_feed(component.inputs, sizes, seed=options.seed + len(tried))
        expected = reference.run(feed)
        try:
            got = runner.run(feed)
        except AwmlError:
            raise
        except Exception as exc:  # a crash inside the runtime at a size the profile allows is the finding
            tried.append({"sizes": sizes, "passed": False, "error": f"{type(exc).__name__}: {exc}"[:500]})
            raise BackendError(f"{target.id} failed at {sizes}, inside the declared range: {type(exc).__name__}: {exc}") from exc
        comparisons = compare_outputs([expected], [got], tolerances)
        worst = max(comparisons, key=lambda c: c.min_atol_to_pass if c.passed else float("inf"))
        tried.append({"sizes": sizes, "passed": all(c.passed for c in comparisons), "worst_output": worst.output,
                      "min_atol_to_pass": worst.min_atol_to_pass})
        failed = [c for c in comparisons if not c.passed]
        if failed:
            lines = "\n  ".join(c.describe() for c in failed)
            raise ToleranceExceeded(f"{target.id} differs from {REFERENCE.id} at {sizes}:\n  {lines}")

    refused: list[str] = []
    try:
        for sizes in corner_sizes(dims).values():
            check(sizes)
        settings = hypothesis_settings(options.hypothesis_profile, options.artifacts / "hypothesis")
        given(sizes_strategy(dims))(settings(check))()
        for sizes in out_of_range_sizes(dims):
            feed = random_feed(component.inputs, sizes, seed=options.seed)
            for side in (reference, runner):
                with pytest.raises(DataError) as info:
                    side.run(feed)
                refused.append(str(info.value))
    finally:  # what was tried is evidence whether or not it passed
        results.attach(request.node, "shapes", {**_target_ids(awml_case, request.node.nodeid, options),
                                                "profile": options.hypothesis_profile, "examples": len(tried),
                                                "tried": tried, "refused": refused})


def _gate_latency(verdicts) -> None:
    broken = [v for v in verdicts if not v.passed]
    if broken:
        raise LatencyBudgetExceeded("latency budget broken:\n  " + "\n  ".join(v.message for v in broken))


def _regression(workspace, request, settings, median_ms: float) -> list:
    if settings.regression is None:
        return []
    baseline = workspace.baseline_median(request.node.name)
    return [] if baseline is None else [regression_verdict(request.node.name, median_ms, baseline, settings.regression)]


_DISABLED = "pytest-benchmark is disabled here (--benchmark-disable, or pytest-xdist is active): no latency measured"


@pytest.mark.awml_cases("latency")
def test_latency(awml_case, awml_workspace, benchmark, request):
    """Per-inference latency of the component on the target, copies timed apart from compute."""
    spec, component, target = awml_case.spec, awml_case.component, awml_case.target
    settings = awml_workspace.latency_settings(component.latency)
    runner = awml_workspace.runner(spec, component, target)
    benchmark.group = f"{spec.name}/{component.name}"
    measured = measure_component(benchmark, runner, awml_workspace.inputs(spec, component)[0],
                                 settings.rounds, settings.warmup_rounds, settings)
    if measured is None:
        pytest.skip(_DISABLED)
    stats = measured.wall
    benchmark.extra_info.update(spec=spec.name, component=component.name, target=target.id, clock=measured.clock,
                                spans=measured.spans, rounds_cut=measured.rounds_cut,
                                regression_threshold=settings.regression, **stats.as_dict())
    awml_workspace.remember_latency(spec, component.name, target, stats.p50_ms)
    results.attach(request.node, "latency", {**_target_ids(awml_case, request.node.nodeid, awml_workspace.plan.options), **stats.as_dict(),
                                             "clock": measured.clock, "spans": measured.spans, "rounds_cut": measured.rounds_cut})
    verdicts = [ratio_verdict(target.id, stats.p50_ms, r.baseline,
                              awml_workspace.component_p50(spec, component, r.baseline, settings), r.max_ratio)
                for r in settings.ratios if r.target == target.id]
    _gate_latency(verdicts + _regression(awml_workspace, request, settings, stats.p50_ms))


@pytest.mark.awml_cases("pipeline_parity")
def test_pipeline_parity(awml_case, awml_workspace, request):
    """The end-to-end outputs (boxes, classes…) of the target agree with the PyTorch CPU pipeline."""
    spec, target = awml_case.spec, awml_case.target
    references = awml_workspace.pipeline_reference(spec)
    pipeline = awml_workspace.pipeline(spec, target)
    outputs = [pipeline(sample).outputs for sample in awml_workspace.model(spec).samples]
    checks = spec.pipeline.compare(references, outputs, target.precision)
    for check in checks:
        results.attach(request.node, "parity", {**_target_ids(awml_case, request.node.nodeid, awml_workspace.plan.options, component="pipeline"), "output": check.output,
                                                "max_abs": check.value, "atol": check.limit, "rtol": 0.0,
                                                "passed": check.passed, "problem": "" if check.passed else check.detail})
        request.node.user_properties.append((f"awml.{check.output}", check.value))
    failed = [c for c in checks if not c.passed]
    if failed:
        lines = "\n  ".join(c.describe() for c in failed)
        raise ToleranceExceeded(f"the {target.id} pipeline differs from pytorch-cpu-fp32 on {len(failed)} of {len(checks)} "
                                f"check(s) over {len(references)} sample(s):\n  {lines}")


@pytest.mark.awml_cases("pipeline_latency")
def test_pipeline_latency(awml_case, awml_workspace, benchmark, request):
    """End-to-end latency with the per-stage breakdown (ms) of every round."""
    spec, target = awml_case.spec, awml_case.target
    settings = awml_workspace.latency_settings(spec.pipeline.latency)
    pipeline = awml_workspace.pipeline(spec, target)
    sample = awml_workspace.model(spec).samples[0]
    stage_rounds: list = []

    def infer(s):
        result = pipeline(s)
        stage_rounds.append(result.stages_ms)
        return result

    for _ in range(max(1, settings.warmup_rounds)):
        infer(sample)
    rounds, cut = plan_rounds(settings, sum(stage_rounds[-1].values()), settings.rounds)
    stage_rounds.clear()
    benchmark.group = f"{spec.name}/pipeline"
    benchmark.pedantic(infer, args=(sample,), rounds=rounds, warmup_rounds=0, iterations=1)
    if benchmark.disabled or benchmark.stats is None:
        pytest.skip(_DISABLED)
    stats = LatencyStats.from_seconds(benchmark.stats.stats.data)
    stages = {name: LatencyStats.from_ms([r[name] for r in stage_rounds]).as_dict() for name in pipeline.stages}
    benchmark.extra_info.update(spec=spec.name, component="pipeline", target=target.id, stages=stages, rounds_cut=cut,
                                regression_threshold=settings.regression, **stats.as_dict())
    results.attach(request.node, "latency", {**_target_ids(awml_case, request.node.nodeid, awml_workspace.plan.options, component="pipeline"), **stats.as_dict(),
                                             "stages": stages, "rounds_cut": cut})
    verdicts = [share_verdict(stage, stages[stage]["p50_ms"], stats.p50_ms, share) for stage, share in settings.stage_shares.items()]
    _gate_latency(verdicts + _regression(awml_workspace, request, settings, stats.p50_ms))


@pytest.mark.awml_cases("bundle")
def test_bundle(awml_case, awml_workspace, request):
    """The deployable bundle (--awml-autoware) is written and checked by the spec for consistency."""
    spec = awml_case.spec
    options = awml_workspace.plan.options
    loaded = awml_workspace.model(spec)
    for path in spec.bundle(loaded.model, options.autoware / spec.name):
        results.attach(request.node, "artifacts", {"test_id": request.node.nodeid, "spec": spec.name, "component": "bundle",
                                                   "format": "autoware-bundle", "path": str(path), "sha256": sha256_file(path),
                                                   "reused": False, "build_seconds": 0.0, "weights_sha256": loaded.weights_sha256})
