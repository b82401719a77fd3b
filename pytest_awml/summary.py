"""The terminal summary: per component × target × output, the errors, the tolerance, the verdict."""

from __future__ import annotations

from pytest_awml.artifacts import Kind
from pytest_awml.results import Results


def _g(value, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)


def _state(artifact: dict) -> str:
    state = "reused" if artifact["reused"] else f"built in {artifact['build_seconds']:.1f} s"
    return state + (f" (rebuilt: {artifact['rebuilt_reason']})" if artifact.get("rebuilt_reason") else "")


def lines(results: Results, report_path) -> list[str]:
    latency = {(r["spec"], r["component"], r["target"]): r for r in results.latency}
    out: list[str] = []
    header = (f"{'spec/component':<42} {'target':<24} {'output':<26} {'max_abs':>9} {'max_rel':>9} {'atol':>8} {'rtol':>8} "
              f"{'min_atol':>9} {'n':>9} {'ok':>4} {'p50 ms':>9}")
    if results.parity:
        out.append(header)
        out.append("-" * len(header))
    shown: set = set()
    for r in results.parity:
        key = (r["spec"], r["component"], r["target"])
        lat = latency.get(key)
        out.append(
            f"{r['spec'] + '/' + r['component']:<42} {r['target']:<24} {r['output']:<26} {_g(r.get('max_abs')):>9} "
            f"{_g(r.get('max_rel')):>9} {_g(r.get('atol'), 'g'):>8} {_g(r.get('rtol'), 'g'):>8} "
            f"{_g(r.get('min_atol_to_pass')):>9} {_g(r.get('compared'), 'd'):>9} {'yes' if r['passed'] else 'NO':>4} "
            f"{_g(lat['p50_ms'], '.2f') if lat and key not in shown else '':>9}"
        )
        if r.get("problem"):
            out.append(f"{'':<42} {'':<24} ^ {r['problem']}")
        shown.add(key)
    if results.metrics:
        out.append("")
        out.append(f"{'metric: spec':<42} {'target':<24} {'metric':<8} {'value':>9} {'reference':>9} {'delta':>9} {'limit':>8} {'n':>6} {'ok':>4}")
        for m in results.metrics:
            out.append(f"{m['spec']:<42} {m['target']:<24} {m['metric']:<8} {m['value']:>9.4f} {m['reference_value']:>9.4f} "
                       f"{m['delta']:>9.4f} {m['max_delta']:>8g} {m['compared']:>6} {'yes' if m['passed'] else 'NO':>4}")
    rest = [r for key, r in latency.items() if key not in shown]
    if rest:
        out.append("")
        out.append(f"{'latency: spec/component':<42} {'target':<24} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'rounds':>7}")
        for r in rest:
            over = f"  {r['ratio_to_components']:.2f} x the networks' {r['components_p50_ms']:.2f} ms" if "ratio_to_components" in r else ""
            out.append(f"{r['spec'] + '/' + r['component']:<42} {r['target']:<24} {r['p50_ms']:>9.2f} {r['p90_ms']:>9.2f} {r['p99_ms']:>9.2f} {r['rounds']:>7}{over}")
    inferences: dict[tuple[str, ...], list[dict]] = {}
    for a in results.artifacts:
        if a.get("artifact_kind") == Kind.OUTPUTS.value:  # one stored inference: shown per component and target, not per input
            group = inferences.setdefault((a["spec"], a["component"], a["format"], a["details"].get("target", "?")), [])
            if all(other["path"] != a["path"] for other in group):  # under xdist each worker that read it reports it
                group.append(a)
            continue
        out.append(f"artifact {a['spec']}/{a['component']}/{a['format']}: {_state(a)}: {a['path']}")
    for (spec, component, fmt, target), group in inferences.items():
        reused = [a for a in group if a["reused"]]
        made = [a for a in group if not a["reused"]]
        rebuilt = next((f" (rebuilt: {a['rebuilt_reason']})" for a in made if a.get("rebuilt_reason")), "")
        states = [f"{len(reused)} reused"] if reused else []
        states += [f"{len(made)} computed in {sum(a['build_seconds'] for a in made):.1f} s{rebuilt}"] if made else []
        out.append(f"outputs {spec}/{component} {target} ({fmt}), {len(group)} inputs: {', '.join(states)}")
    for g in results.golden:
        change = ", ".join(f"{k} {v:.3g}" for k, v in g.get("old_vs_new_max_abs", {}).items() if v is not None)
        out.append(f"golden {g['spec']}/{g['component']}: {g['action']} {g['path']}" + (f" (old vs new max_abs: {change})" if change else ""))
    for note in results.data:
        out.append(f"data {note['spec']}: {note['note']}")
    for d in results.drift:
        if not d["passed"]:
            out.append(f"drift {d['spec']}/{d['component']} {d['output']}: max_abs {d.get('max_abs')} > atol {d['atol']}")
    placed = sorted({(r["worker"], r["gpu"]) for r in results.parity + results.latency if r.get("worker")})
    if placed:
        out.append("xdist placement: " + ", ".join(f"{w} -> {g}" for w, g in placed))
    if report_path:
        out.append(f"JSON report: {report_path}")
    return out
