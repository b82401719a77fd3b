"""The tests a spec expands to. The plugin adds this module to the collection when ``--awml-spec``
is given, and :mod:`pytest_awml.cases` parametrizes each test from the plan.

Every test reads as its steps: take what it needs from the session cache (``awml_workspace``),
compute, record (:mod:`pytest_awml.results`), keep the history (:mod:`pytest_awml.golden`), judge
with a pure function (:mod:`pytest_awml.compare`, :mod:`pytest_awml.budgets`), and only on a
failure write the forensics folder (:mod:`pytest_awml.forensics`) and raise; parity and drift end in
one gate that does all of it (:mod:`pytest_awml.parity_gate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from pytest_awml import golden, golden_layers, golden_write, latency_gate, localize, pipeline_outputs, results
from pytest_awml.budgets import ROUNDS_KEY, ratio_verdict, share_verdict
from pytest_awml.builders.onnx import FORMAT as ONNX
from pytest_awml.compare import compare_outputs, differs, require_passed
from pytest_awml.device import REFERENCE
from pytest_awml.digests import content_digest
from pytest_awml.errors import ArtifactError, AwmlError, BackendError, DataError, ToleranceExceeded
from pytest_awml.latency_sources import p50, pipeline_rounds, remember_p50, stage_rounds, stage_source
from pytest_awml.limits import require_compared
from pytest_awml.localize import Skipped
from pytest_awml.metric_gate import judge_metric
from pytest_awml.parity_gate import Evidence, gate
from pytest_awml.paths import sha256_file
from pytest_awml.pipeline import PipelineName
from pytest_awml.provenance import COMPUTE, versions
from pytest_awml.records import (
    ArtifactRecord,
    ArtifactRole,
    DataNote,
    DriftRecord,
    InferenceRecord,
    Int8SensitivityRecord,
    LatencyRecord,
    LayerRow,
    ParityRecord,
    ShapesRecord,
    ShapeTry,
)
from pytest_awml.shapes import RandomFeed, corner_sizes, hypothesis_settings, out_of_range_sizes, sizes_strategy, zero_feed
from pytest_awml.timing import (
    REPORT_DECIMALS,
    LatencyStats,
    SpanTimer,
    measure_component,
    record_rounds,
    rounded_ms,
    warmup_rounds,
    warmup_total_ms,
)

BUNDLE_FORMAT = "autoware-bundle"
DISABLED = "pytest-benchmark is disabled here (--benchmark-disable, or pytest-xdist is active): no latency measured"

SCANS = "more --awml-samples, or --awml-data with scans that hold objects in range"  # what a comparison over too few objects asks for


@pytest.fixture(autouse=True)
def awml_produced(request, awml_case, awml_plan, awml_collector):
    """What this test's calls produced (:class:`~pytest_awml.produced.Produced`), received whole when it ends,
    however it ends (an interrupted test's records too: nothing is read from the ended test but its node).

    What the data reader warned about (a scan cut to the model's limit…) goes into the report once. An
    artifact built by a test other than its own test_export (xdist runs tests in any order; an intermediate
    such as the fp16 graph of an RTX fp16 engine has none) is still reported once, as built, so that 'built
    once across workers' shows in the report. The inferences the test computed (outside latency rounds) go
    to the report's ledger, ``inferences``."""
    node = request.node
    own = awml_case.format if node.originalname == "test_export" else None
    with awml_collector.collecting() as produced:
        yield produced
    for artifact in produced.builds:
        if artifact.format != own:
            results.attach(node, ArtifactRecord.of(artifact, test_id=node.nodeid, built_by=node.nodeid))
    for spec, note in produced.notes:
        results.attach(node, DataNote(test_id=node.nodeid, spec=spec, data=str(awml_plan.options.data), note=note))
    for inference in produced.inferences:
        results.attach(node, InferenceRecord.of(inference, test_id=node.nodeid))


@pytest.mark.awml_cases("export")
def test_export(awml_case, awml_workspace, request):
    """The component exports, passes the exporter's checks, and the file on disk is the one recorded."""
    artifact = awml_workspace.artifact(awml_case.spec, awml_case.component, awml_case.format)
    loaded = awml_workspace.model(awml_case.spec)
    results.attach(request.node, ArtifactRecord.of(artifact, test_id=request.node.nodeid, role=ArtifactRole.EXPORT,
                                                   weights_sha256=loaded.weights_sha256))
    on_disk = sha256_file(artifact.path)
    if on_disk != artifact.sha256:
        raise ArtifactError(f"{artifact.path} changed after it was built: sha256 {on_disk} != {artifact.sha256}")


@pytest.mark.awml_cases("parity")
def test_parity(awml_case, awml_workspace, request):
    """Every output of the backend stays within the spec's tolerance of PyTorch CPU fp32 (or of a deploy config
    scenario's own reference); a deploy config's scalar tolerance is judged and reported beside, the spec's gates."""
    spec, component, target = awml_case.spec, awml_case.component, awml_case.target
    reference = awml_case.reference or REFERENCE
    inputs = awml_workspace.inputs(spec, component)
    references = awml_workspace.outputs(spec, component, reference)
    outputs = awml_workspace.outputs(spec, component, target)
    tolerances = awml_workspace.options.parity_tolerances(component, target.precision)
    comparisons = compare_outputs(references, outputs, tolerances)
    if not all(c.passed for c in comparisons):  # a stored output that a rerun does not give is the finding, not the backend
        awml_workspace.recheck(spec, component, (reference, target))
    ids = results.record_ids(awml_case, request.node.nodeid, awml_workspace.options)
    deploy = results.deploy_tolerance(awml_workspace.options.deploy, comparisons)
    gate(request, awml_workspace, spec, component, target, [ParityRecord(ids=ids, comparison=c, **deploy) for c in comparisons],
         Evidence(inputs, references, outputs, reference.id, target.id, tolerances, reference_target=reference))


@pytest.mark.awml_cases("drift")
def test_drift(awml_case, awml_workspace, request):
    """Today's PyTorch model gives the golden outputs on the golden inputs (within the drift tolerance)."""
    spec, component = awml_case.spec, awml_case.component
    options = awml_workspace.options
    store = golden.GoldenStore(options.golden, options.lock_timeout_s)
    tolerances = options.drift_tolerances(component)
    if options.update_golden:
        golden_write.write(request, awml_workspace, store, awml_case, tolerances)
        return
    found = store.read(spec.name, component.name)
    if found is None:
        raise DataError(f"no golden outputs for {spec.name}/{component.name} under {options.golden}: create them with "
                        f"pytest --awml-spec={spec.name} --awml-golden={options.golden} --awml-update-golden -k test_drift")
    if found.meta.get("seed") != options.seed:
        raise DataError(f"the golden outputs were made with seed {found.meta.get('seed')}, this run uses {options.seed}")
    changes = golden.version_changes(found.meta.get("versions", {}), versions(COMPUTE))
    outputs = [awml_workspace.run(spec, component, REFERENCE, sample) for sample in found.inputs]
    replay = options.parity_tolerances(component, REFERENCE.precision)
    ids = results.record_ids(awml_case, request.node.nodeid, options)
    weights_changed = found.meta.get("weights_sha256") != awml_workspace.model(spec).weights_sha256
    comparisons = compare_outputs(found.outputs, outputs, tolerances)
    localized = None
    if not all(c.passed for c in comparisons) and options.localize:  # where today's model starts to differ
        localized = golden_layers.first_divergence(options.golden, spec, component,
                                                   component.extract(awml_workspace.model(spec).model), found.inputs,
                                                   tolerances, found.outputs)
    elif not all(c.passed for c in comparisons):
        localized = Skipped("--awml-no-localize")
    records = [DriftRecord(ids=ids, golden=str(found.path), version_changes=changes, weights_changed=weights_changed, comparison=c)
               for c in comparisons]
    changed = ", ".join(f"{name} {old} -> {new}" for name, (old, new) in changes.items())
    if not all(c.passed for c in comparisons):  # a stored output that a rerun does not give is the finding, not drift
        awml_workspace.recheck(spec, component, (REFERENCE,), found.inputs)
    # the replay runs ONNX Runtime, not PyTorch: allow for its fp32 error on top of the drift budget
    gate(request, awml_workspace, spec, component, REFERENCE, records,
         Evidence(found.inputs, found.outputs, outputs, f"golden ({found.meta.get('created', '?')})", "pytorch-cpu-fp32 today",
                  {o: tolerances[o].widest(replay[o]) for o in tolerances},
                  note=f"Library versions changed since the golden outputs were made: {changed}" if changes else "",
                  localized=localized))


@pytest.mark.awml_cases("shapes")
def test_shapes(awml_case, awml_workspace, request):
    """Parity at the profile's min/opt/max and at hypothesis-drawn sizes; out-of-range shapes are refused by name."""
    from hypothesis import given

    spec, component, target = awml_case.spec, awml_case.component, awml_case.target
    options = awml_workspace.options
    reference = awml_workspace.runner(spec, component, REFERENCE)
    runner = awml_workspace.runner(spec, component, target)
    tolerances = options.parity_tolerances(component, target.precision)
    dims = component.dynamic_dims
    tried: list[ShapeTry] = []

    def check(sizes: dict[str, int], keep: bool) -> None:
        """``keep``: store the inference (see Workspace.run) when a later run draws the same input."""
        seed = options.seed + len(tried)
        if component.make_feed is None:
            drawn = RandomFeed(component.inputs, sizes, seed=seed)  # drawn only if a side must run
            feed: Mapping[str, Any] = drawn
            digest = content_digest(drawn.recipe)  # named by its recipe, once for both sides
        else:  # inputs whose values index each other: the spec makes them
            feed = {name: np.asarray(value) for name, value in component.make_feed(sizes, seed).items()}
            digest = content_digest(feed)
        expected = awml_workspace.run(spec, component, REFERENCE, feed, keep=keep, digest=digest)  # drawn alike for every target: computed once
        try:
            got = awml_workspace.run(spec, component, target, feed, keep=keep, digest=digest)
        except AwmlError:
            raise
        except Exception as exc:  # a crash inside the runtime at a size the profile allows is the finding
            tried.append(ShapeTry(sizes=sizes, passed=False, error=f"{type(exc).__name__}: {exc}"[:500]))
            raise BackendError(f"{target.id} failed at {sizes}, inside the declared range: {type(exc).__name__}: {exc}") from exc
        comparisons = compare_outputs([expected], [got], tolerances)
        worst = max(comparisons, key=lambda c: c.min_atol_to_pass if c.passed else float("inf"))
        failed = [c.describe() for c in comparisons if not c.passed]
        found = localize.first_divergence(awml_workspace, spec, component, target, [dict(feed)], [expected], [got],
                                          tolerances) if failed else None
        tried.append(ShapeTry(sizes=sizes, passed=not failed, worst_output=worst.output, min_atol_to_pass=worst.min_atol_to_pass,
                              first_divergence=None if found is None else found.first))
        if found is not None:
            raise ToleranceExceeded(differs(target.id, REFERENCE.id, f"at {sizes}", failed) + f"\n{found.line()}")

    refused: list[str] = []
    try:
        for sizes in corner_sizes(dims).values():
            check(sizes, keep=True)
        settings = hypothesis_settings(options.hypothesis_profile, options.artifacts / "hypothesis", component.shape_draws)
        keep_draws = settings.derandomize  # the ci profile draws the same sizes every run; dev draws new ones

        def draw(sizes: dict[str, int]) -> None:
            check(sizes, keep_draws)

        given(sizes_strategy(dims))(settings(draw))()
        for sizes in out_of_range_sizes(dims):
            feed = zero_feed(component.inputs, sizes)  # refused by its shape: its values are never read
            for side in (reference, runner):
                with pytest.raises(DataError) as info:
                    side.run(feed)
                refused.append(str(info.value))
    finally:  # what was tried is evidence whether or not it passed
        results.attach(request.node, ShapesRecord(ids=results.record_ids(awml_case, request.node.nodeid, options),
                                                  profile=options.hypothesis_profile, examples=len(tried), tried=tuple(tried),
                                                  refused=tuple(refused)))


@pytest.mark.awml_cases("latency")
def test_latency(awml_case, awml_workspace, benchmark, request):
    """Per-inference latency of the component on the target, copies timed apart from compute; on a CPU, for a
    pipeline stage's component, that stage's rounds in the pipeline's (the runner's whole call, ``measured_in``)."""
    spec, component, target = awml_case.spec, awml_case.component, awml_case.target
    settings = awml_workspace.options.latency(component.latency)
    benchmark.group = f"{spec.name}/{component.name}"
    ids = results.record_ids(awml_case, request.node.nodeid, awml_workspace.options)
    source = stage_source(spec, component, target)
    if source is not None:  # a CPU pipeline stage: the network runs once for both tests
        if benchmark.disabled:
            pytest.skip(DISABLED)
        stage = stage_rounds(awml_workspace, spec, target, source)
        record_rounds(benchmark, stage.ms)
        stats, rounds = LatencyStats.from_ms(stage.ms), tuple(stage.ms)
        record = LatencyRecord(ids=ids, stats=stats, clock=SpanTimer.clock, spans={"stage": stats}, rounds_cut=stage.rounds_cut,
                               warmup_rounds=stage.warmup_rounds, measured_in=stage.measured_in)
    else:
        runner = awml_workspace.runner(spec, component, target)
        own = measure_component(benchmark, runner, awml_workspace.inputs(spec, component)[0], settings,
                                what=f"{spec.name}/{component.name} on {target.id}")
        if own is None:
            pytest.skip(DISABLED)
        stats, rounds = own.stats, own.rounds_ms
        record = LatencyRecord(ids=ids, stats=stats, clock=own.clock, spans=own.spans, rounds_cut=own.rounds_cut,
                               warmup_rounds=warmup_rounds(settings), warmup_total_ms=warmup_total_ms(own.warmup_ms))
    benchmark.extra_info.update(spec=spec.name, component=component.name, target=target.id, regression_threshold=settings.regression,
                                **record.benchmark_info(), **stats.as_json())
    remember_p50(awml_workspace, spec, component, target, stats.p50_ms)
    judged = latency_gate.judge(request, awml_workspace, settings, stats.p50_ms, rounds)
    benchmark.extra_info[ROUNDS_KEY] = list(rounded_ms(rounds))
    results.attach(request.node, latency_gate.with_rounds(record, rounds, judged))
    verdicts = [ratio_verdict(target.id, stats.p50_ms, r.baseline, p50(awml_workspace, spec, component, r.baseline, settings), r.max_ratio)
                for r in settings.ratios if r.target == target.id]
    latency_gate.gate(verdicts, judged)


@pytest.mark.awml_cases("pipeline_parity")
def test_pipeline_parity(awml_case, awml_workspace, request):
    """The end-to-end outputs (boxes, classes…) of the target agree with the PyTorch CPU pipeline."""
    spec, target = awml_case.spec, awml_case.target
    references = pipeline_outputs.reference(awml_workspace, spec, awml_case.pipeline)
    outputs = pipeline_outputs.outputs(awml_workspace, spec, target, awml_case.pipeline)
    pipeline_spec = spec.pipeline_named(awml_case.pipeline)
    checks = pipeline_spec.compare(references, outputs, target.precision)
    ids = results.record_ids(awml_case, request.node.nodeid, awml_workspace.options, component=awml_case.pipeline.record_component)
    results.attach_verdicts(request.node, ids, checks)
    require_passed(checks, f"the {target.id} pipeline", REFERENCE.id, f"{len(references)} sample(s)")
    require_compared(checks, pipeline_spec.min_compared, f"the {target.id} pipeline's comparison", SCANS)


@pytest.mark.awml_cases("metric")
def test_metric(awml_case, awml_workspace, request):
    """The task metric of the target's decoded outputs against ground truth stays within the spec's
    limit of PyTorch CPU fp32's (|delta|), over enough ground truth to mean something."""
    spec, target = awml_case.spec, awml_case.target
    samples = awml_workspace.model(spec).samples
    reference = spec.metric.compute(pipeline_outputs.reference(awml_workspace, spec), samples)
    if reference.compared == 0:
        pytest.skip(f"the samples hold no ground truth for {reference.name} (--awml-data scans carry none): nothing to score; "
                    "run on the spec's synthetic samples, or give a spec labelled data")
    score = spec.metric.compute(pipeline_outputs.outputs(awml_workspace, spec, target), samples)
    ids = results.record_ids(awml_case, request.node.nodeid, awml_workspace.options, component=PipelineName.SPEC.record_component)
    judge_metric(request.node, ids, spec.metric, reference, score, target, subject=f"the {target.id} pipeline's {score.name}",
                 thin=f"the {target.id} {score.name}", over=f"{len(samples)} sample(s)", remedy=SCANS)


@pytest.mark.awml_cases("int8_sensitivity")
def test_int8_sensitivity(awml_case, awml_workspace, request):
    """Each weighted layer kept float at a time (the rest int8): what it wins back on the heads and the metric, ranked,
    and the smallest float-kept set within the spec's int8 metric limit (``Int8Settings(keep_float=...)``). It fails
    only when no such set exists: then no exclusion list fixes int8 for this component."""
    from pytest_awml import int8_sensitivity

    spec, component, target = awml_case.spec, awml_case.component, awml_case.target
    result = int8_sensitivity.measure(awml_workspace, spec, component, target)
    settings = awml_workspace.options.int8(component)

    def row(layer, won: bool = True) -> LayerRow:
        metric, heads = layer.recovered(result.everything)
        return LayerRow(node=layer.node, op=layer.op, metric_delta=layer.metric_delta,
                        recovered=metric if won and layer.metric_delta is not None else None,
                        heads_recovered=heads if won else None, heads=dict(layer.heads))

    results.attach(request.node, Int8SensitivityRecord(
        ids=results.record_ids(awml_case, request.node.nodeid, awml_workspace.options), calibration_method=settings.calibration.value,
        calibration_samples=settings.samples, ranked_by=result.ranked_by, all_int8=row(result.everything, won=False),
        layers=tuple(row(c) for c in result.ranked),
        max_delta=result.limit, keep_float=result.keep_float, keep_float_delta=result.keep_float_delta))
    if result.limit is not None and result.keep_float is None:
        raise ToleranceExceeded(f"{spec.name}/{component.name}: no set of layers kept float brings the int8 metric delta within "
                                f"{result.limit} (all int8: {result.everything.metric_delta}); the costliest layers:\n"
                                + "\n".join(int8_sensitivity.table(result, top=5)))


@pytest.mark.awml_cases("pipeline_latency")
def test_pipeline_latency(awml_case, awml_workspace, benchmark, request):
    """End-to-end latency with the per-stage breakdown (ms) of every round."""
    spec, target = awml_case.spec, awml_case.target
    pipeline_spec = spec.pipeline_named(awml_case.pipeline)
    settings = awml_workspace.options.latency(pipeline_spec.latency)
    benchmark.group = f"{spec.name}/{awml_case.pipeline.record_component}"
    if benchmark.disabled:
        pytest.skip(DISABLED)
    shared = pipeline_rounds(awml_workspace, spec, target, awml_case.pipeline, settings)  # component tests may read them too
    record_rounds(benchmark, shared.total)
    measured, stats = shared.rounds, shared.rounds.stats
    stages = {name: LatencyStats.from_ms(ms) for name, ms in shared.stages.items()}
    # what the networks alone take on this target: the pipeline's overhead is its p50 over their sum (on a CPU,
    # a stage's component reads them from these same rounds: latency_sources.p50)
    networks_ms = sum(p50(awml_workspace, spec, c, target.id, settings) for c in spec.components_of(awml_case.pipeline))
    record = LatencyRecord(ids=results.record_ids(awml_case, request.node.nodeid, awml_workspace.options,
                                                  component=awml_case.pipeline.record_component),
                           stats=stats, components_p50_ms=round(networks_ms, REPORT_DECIMALS),
                           ratio_to_components=round(stats.p50_ms / networks_ms, REPORT_DECIMALS), stages=stages,
                           rounds_cut=measured.rounds_cut, warmup_rounds=warmup_rounds(settings),
                           warmup_total_ms=warmup_total_ms(measured.warmup_ms))
    benchmark.extra_info.update(spec=spec.name, component=awml_case.pipeline.record_component, target=target.id,
                                **record.benchmark_info(), regression_threshold=settings.regression,
                                components_p50_ms=record.components_p50_ms, ratio_to_components=record.ratio_to_components,
                                **stats.as_json())
    judged = latency_gate.judge(request, awml_workspace, settings, stats.p50_ms, shared.total)
    benchmark.extra_info[ROUNDS_KEY] = list(rounded_ms(shared.total))
    results.attach(request.node, latency_gate.with_rounds(record, shared.total, judged))
    verdicts = [share_verdict(stage, stages[stage].p50_ms, stats.p50_ms, share) for stage, share in settings.stage_shares.items()]
    latency_gate.gate(verdicts, judged)


@pytest.mark.awml_cases("bundle")
def test_bundle(awml_case, awml_workspace, request):
    """The deployable bundle (--awml-autoware) is written from the graphs this run tested, byte for byte,
    and the spec checks its files against each other and the consumer's rules (and schema, when given)."""
    spec = awml_case.spec
    options = awml_workspace.options
    loaded = awml_workspace.model(spec)
    tested = {c.name: awml_workspace.artifact(spec, c, ONNX) for c in spec.bundle_components}
    paths = spec.bundle(loaded.model, options.autoware / spec.name, {name: a.path for name, a in tested.items()},
                        options.autoware_schema)
    by_sha = {a.sha256: name for name, a in tested.items()}
    ids = results.record_ids(awml_case, request.node.nodeid, options, component="bundle")
    shipped = {path: sha256_file(path) for path in paths}
    for path, digest in shipped.items():
        results.attach(request.node, ArtifactRecord(test_id=ids.test_id, spec=ids.spec, component="bundle", format=BUNDLE_FORMAT,
                                                    path=str(path), sha256=digest, reused=False, build_seconds=0.0,
                                                    size_bytes=path.stat().st_size, weights_sha256=loaded.weights_sha256,
                                                    tested_as=by_sha.get(digest), role=ArtifactRole.BUNDLE))
    untested = sorted(name for name, artifact in tested.items() if artifact.sha256 not in shipped.values())
    if untested:
        raise ArtifactError(f"the bundle in {options.autoware / spec.name} does not hold the tested graph(s) of {', '.join(untested)}")


from pytest_awml.sequence_suite import test_sequence_latency, test_sequence_metric, test_sequence_parity, test_sequence_pipeline_parity  # noqa: E402, F401
