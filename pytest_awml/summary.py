"""The terminal summary: per component × target × output, the errors, the tolerance, the verdict."""

from __future__ import annotations

from pytest_awml.records import (
    ArtifactRecord,
    ArtifactRole,
    CheckRecord,
    DataNote,
    DriftRecord,
    GoldenRecord,
    InferenceRecord,
    Int8SensitivityRecord,
    LatencyRecord,
    MetricRecord,
    ParityRecord,
    RecordIds,
    SequenceRecord,
    ShapesRecord,
)
from pytest_awml.results import Results


def _g(value, fmt: str = ".3g") -> str:
    return "-" if value is None or value != value else format(value, fmt)  # None or NaN: not computed


def _state(artifact: ArtifactRecord) -> str:
    state = "reused" if artifact.reused else f"built in {artifact.build_seconds:.1f} s"
    return state + (f" (rebuilt: {artifact.rebuilt_reason})" if artifact.rebuilt_reason else "")


def _row(r: ParityRecord | CheckRecord) -> tuple[RecordIds, str, float | None, float | None, float | None, float | None,
                                                  float | None, int | None, bool, str]:
    """A parity row's figures: a comparison has them all, a pipeline check its figure, limit and count."""
    if isinstance(r, ParityRecord):
        c = r.comparison
        return r.ids, c.output, c.max_abs, c.max_rel, c.atol, c.rtol, c.min_atol_to_pass, c.elements, c.passed, c.problem
    return r.ids, r.output, r.max_abs, None, r.atol, r.rtol, None, r.compared, r.passed, r.problem


REL_NOTE_FACTOR = 10.0
"""A passing output whose max_rel is past this many times its rtol gets the footnote :data:`REL_NOTE` (a ``*``)."""
REL_NOTE = (f"* max_rel is |error| / |reference| at its worst element. On a passing output it is past {REL_NOTE_FACTOR:g} x rtol only "
            f"where |reference| < atol / ({REL_NOTE_FACTOR - 1:g} x rtol): reference values near zero, whose error atol bounds; "
            "every element is within atol + rtol x |reference|.")


def _rel_noted(passed: bool, max_rel: float | None, rtol: float | None) -> bool:
    """Whether a passing row's max_rel is large only through near-zero reference values (see :data:`REL_NOTE`)."""
    return passed and max_rel is not None and max_rel == max_rel and rtol is not None and max_rel > REL_NOTE_FACTOR * rtol


def _by_test(group: list[ArtifactRecord]) -> str:
    """How many of a component's stored inferences each test kind asked for (a pipeline feeds a network its own
    target's upstream outputs: inputs the reference never sees)."""
    counts: dict[str, int] = {}
    for a in group:
        kind = a.test_id.rsplit("::", 1)[-1].split("[")[0]
        counts[kind] = counts.get(kind, 0) + 1
    fed = "; test_pipeline_parity's are fed this target's own upstream outputs" if "test_pipeline_parity" in counts else ""
    return " (" + ", ".join(f"{n} for {kind}" for kind, n in counts.items()) + fed + ")"


def _shapes_line(r: ShapesRecord) -> str:
    failed = [t for t in r.tried if not t.passed]
    verdict = f"{len(failed)} failed" if failed else "all within tolerance"
    return (f"shapes {r.ids.spec}/{r.ids.component} {r.ids.target}: {r.examples} size(s) tried ({r.profile} profile), {verdict}; "
            f"{len(r.refused)} out-of-range size(s) refused by name")


def time_spent(results: Results, wall_s: float) -> str:
    """Where the run's time went: exports (ONNX), builds (engines, converted graphs), inferences outside latency
    rounds (and seeded weights' calibration), latency rounds (warm-up and copies included), and the rest. Figures of
    xdist workers add up past the wall time: then the rest is not computed."""
    built: dict[str, ArtifactRecord] = {}
    for a in results.of(ArtifactRecord):  # under xdist a file may be reported by each worker that read it
        if not a.reused and a.role is not ArtifactRole.INFERENCE:
            built[str(a.path)] = a
    export = sum(a.build_seconds for a in built.values() if a.role is ArtifactRole.EXPORT and a.format == "onnx")
    build = sum(a.build_seconds for a in built.values() if a.role is ArtifactRole.EXPORT and a.format != "onnx")
    weights = sum(a.build_seconds for a in built.values() if a.role is ArtifactRole.WEIGHTS)
    inference = weights + sum(i.seconds for i in results.of(InferenceRecord))
    latency = 0.0
    for t in results.of(LatencyRecord):
        if t.measured_in is None:  # a stage's component reads its pipeline's rounds: counted once, there
            copies = sum(s.mean_ms * s.rounds for name, s in (t.spans or {}).items() if name in ("h2d", "d2h"))
            latency += (t.stats.mean_ms * t.stats.rounds + (t.warmup_total_ms or 0.0) + copies) / 1e3
    parts = {"export": export, "build": build, "inference": inference, "latency": latency}
    workers = {r.ids.worker for r in results.of(LatencyRecord) if r.ids.worker} | {
        r.ids.worker for r in results.of(ParityRecord) if r.ids.worker}
    shown = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in parts.items())
    if workers:
        return f"time: {shown} (summed over {len(workers)} xdist workers; wall {wall_s:.1f} s)"
    return f"time: {shown}, other {max(0.0, wall_s - sum(parts.values())):.1f} s (wall {wall_s:.1f} s)"
SENSITIVE_SHOWN = 10  # the costliest layers the terminal lists (the report holds every one)


def _sensitivity(record: Int8SensitivityRecord) -> list[str]:
    """The costliest layers of a component at int8 and the smallest float-kept set (``--awml-int8-sensitivity``)."""
    base = record.all_int8
    delta = "no metric" if base.metric_delta is None else f"metric delta {base.metric_delta:.4f} (limit {record.max_delta:g})"
    out = ["", f"int8 sensitivity: {record.ids.spec}/{record.ids.component} ({record.calibration_method}, "
               f"{record.calibration_samples} calibration samples); all int8: {delta}, "
               f"summed relative head error {sum(base.heads.values()):.4f}; ranked by the {record.ranked_by} each layer wins back",
           f"  {'layer kept float (the rest int8)':<52} {'op':<14} {'metric delta':>12} {'metric won':>10} {'heads won':>10}"]
    shown = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for layer in record.layers[:SENSITIVE_SHOWN]:
        out.append(f"  {layer.node[-52:]:<52} {layer.op:<14} {shown(layer.metric_delta):>12} {shown(layer.recovered):>10} "
                   f"{shown(layer.heads_recovered):>10}")
    if record.keep_float is None:
        out.append("  smallest float-kept set: none within the limit" if record.max_delta is not None else
                   "  smallest float-kept set: the spec has no int8 metric limit to judge one")
    else:
        out.append(f"  smallest float-kept set (Int8Settings(keep_float=...)): {list(record.keep_float)} "
                   f"-> metric delta {record.keep_float_delta:.4f}")
    return out


def lines(results: Results, report_path) -> list[str]:
    latency = {(r.ids.spec, r.ids.component, r.ids.target): r for r in results.of(LatencyRecord)}
    out: list[str] = []
    header = (f"{'spec/component':<42} {'target':<24} {'output':<26} {'max_abs':>9} {'max_rel':>9} {'atol':>8} {'rtol':>8} "
              f"{'min_atol':>9} {'n':>9} {'ok':>4}")
    # the kind's list is in the order the tests finished: comparisons and pipeline checks interleaved as they came
    parity = [r for r in results.records[ParityRecord.KIND] if isinstance(r, (ParityRecord, CheckRecord))]
    if parity:
        out.append(header)
        out.append("-" * len(header))
    noted = False
    for r in parity:
        ids, output, max_abs, max_rel, atol, rtol, min_atol, compared, passed, problem = _row(r)
        mark = "*" if _rel_noted(passed, max_rel, rtol) else ""
        noted = noted or bool(mark)
        out.append(
            f"{ids.spec + '/' + str(ids.component):<42} {ids.target!s:<24} {output:<26} {_g(max_abs):>9} "
            f"{_g(max_rel) + mark:>9} {_g(atol, 'g'):>8} {_g(rtol, 'g'):>8} "
            f"{_g(min_atol):>9} {_g(compared, 'd'):>9} {'yes' if passed else 'NO':>4}"
        )
        if problem:
            out.append(f"{'':<42} {'':<24} ^ {problem}")
    if noted:
        out.append(REL_NOTE)
    metrics = results.of(MetricRecord)
    if metrics:
        out.append("")
        out.append(f"{'metric: spec':<42} {'target':<24} {'metric':<8} {'value':>9} {'reference':>9} {'delta':>9} {'limit':>8} {'n':>6} {'ok':>4}")
        for m in metrics:
            verdict = "not judged" if m.not_judged else "yes" if m.passed else "NO"
            out.append(f"{m.ids.spec:<42} {m.ids.target!s:<24} {m.metric:<8} {m.value:>9.4f} {m.reference_value:>9.4f} "
                       f"{m.delta:>9.4f} {m.max_delta:>8g} {m.compared:>6} {verdict:>4}")
            if m.not_judged:
                out.append(f"{'':<42} {'':<24} ^ not judged: {m.not_judged}")
    out.extend(_sequence_lines(results.of(SequenceRecord)))
    for record in results.of(Int8SensitivityRecord):
        out.extend(_sensitivity(record))
    shapes = results.of(ShapesRecord)
    if shapes:
        out.append("")
        out.extend(_shapes_line(r) for r in shapes)
    if latency:  # every timed target: a target's parity rows carry no latency
        out.append("")
        out.append(f"{'latency: spec/component':<42} {'target':<24} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'rounds':>7}")
        for t in latency.values():
            over = (f"  {t.ratio_to_components:.2f} x the networks' {t.components_p50_ms:.2f} ms"
                    if t.ratio_to_components is not None and t.components_p50_ms is not None else "")
            s = t.stats
            out.append(f"{t.ids.spec + '/' + str(t.ids.component):<42} {t.ids.target!s:<24} {s.p50_ms:>9.2f} {s.p90_ms:>9.2f} "
                       f"{s.p99_ms:>9.2f} {s.rounds:>7}{over}")
            if t.regression:
                out.append(f"{'':<42} {'':<24} ^ against --awml-latency-baseline: {t.regression}")
    inferences: dict[tuple[str, ...], list[ArtifactRecord]] = {}
    for a in results.of(ArtifactRecord):
        if a.role is ArtifactRole.INFERENCE:  # one stored inference: shown per component and target, not per input
            group = inferences.setdefault((a.spec, a.component, a.format, str(a.details.get("target", "?"))), [])
            if all(other.path != a.path for other in group):  # under xdist each worker that read it reports it
                group.append(a)
            continue
        out.append(f"artifact {a.spec}/{a.component}/{a.format}: {_state(a)}: {a.path}")
    for (spec, component, fmt, target), group in inferences.items():
        reused = [a for a in group if a.reused]
        made = [a for a in group if not a.reused]
        rebuilt = next((f" (rebuilt: {a.rebuilt_reason})" for a in made if a.rebuilt_reason), "")
        states = [f"{len(reused)} reused"] if reused else []
        states += [f"{len(made)} computed in {sum(a.build_seconds for a in made):.1f} s{rebuilt}"] if made else []
        out.append(f"outputs {spec}/{component} {target} ({fmt}), {len(group)} inputs{_by_test(group)}: {', '.join(states)}")
    for g in results.of(GoldenRecord):
        change = ", ".join(f"{k} {v:.3g}" for k, v in g.old_vs_new_max_abs.items() if v is not None)
        out.append(f"golden {g.ids.spec}/{g.ids.component}: {g.action} {g.path}" + (f" (old vs new max_abs: {change})" if change else ""))
    for note in results.of(DataNote):
        out.append(f"data {note.spec}: {note.note}")
    for d in results.of(DriftRecord):
        c = d.comparison
        if not c.passed:
            out.append(f"drift {d.ids.spec}/{d.ids.component} {c.output}: max_abs {_g(c.max_abs)} > atol {c.atol}")
    placed = sorted({(i.worker, str(i.gpu)) for i in [*(p.ids for p in parity), *(t.ids for t in latency.values())] if i.worker})
    if placed:
        out.append("xdist placement: " + ", ".join(f"{w} -> {g}" for w, g in placed))
    if report_path:
        out.append(f"JSON report: {report_path}")
    return out


def _sequence_lines(records: list[SequenceRecord]) -> list[str]:
    """Per stateful pipeline and target, each gate's verdict and its worst output's error at every frame, as a share of
    its bound (the report holds every output's figures): the sequence gate's row shows the memory's drift."""
    found: dict[tuple[str, str, str], list[SequenceRecord]] = {}
    for r in records:
        found.setdefault((r.ids.spec, str(r.ids.target), r.gate), []).append(r)
    header = f"{'sequence: spec':<42} {'target':<24} {'gate':<9} {'worst output':<34} max_abs / (atol + rtol x max|ref|) per frame"
    out = ["", header] if found else []
    for (spec, target, gate), rows in found.items():
        share = {id(r): r.comparison.max_abs / max(r.comparison.atol + r.comparison.rtol * r.comparison.ref_max_abs, 1e-30) for r in rows}
        worst = max(rows, key=lambda r: share[id(r)] if share[id(r)] == share[id(r)] else float("inf"))
        frames = sorted((r for r in rows if (r.ids.component, r.comparison.output) == (worst.ids.component, worst.comparison.output)),
                        key=lambda r: r.frame)
        verdict = "ok" if all(r.comparison.passed for r in rows) else "FAILED"
        name = f"{worst.ids.component}.{worst.comparison.output}"
        out.append(f"{spec:<42} {target:<24} {gate:<9} {name:<34} {' '.join(_g(share[id(r)], '.2g') for r in frames)}  {verdict}")
    return out
