"""``awml-report``: compare pytest-benchmark runs and write a Markdown and an HTML report.

    awml-report BASELINE.json [MORE.json ...] CURRENT.json [--awml-json awml-report.json] [--out DIR]
    awml-report .benchmarks/            # every autosave under it, oldest first

The first run is the baseline, the last the current one. Each test is judged against its own
threshold, which the plugin stores in the benchmark's ``extra_info`` from the spec
(``LatencySettings.regression``); ``--threshold`` covers tests without one. A test is REGRESSED only when
its rounds are slower than the baseline's past the threshold with 95 % confidence (a rank test on both runs'
rounds, :mod:`pytest_awml.regression`); a test with too few rounds to reach it is "not judged", saying so. A test of the baseline
that the current run lacks is reported as missing. Exit codes: 0 all within threshold, 1 a test
regressed beyond its threshold (a CI step gates on it), 2 a bad input (a file that is not a
benchmark run, an empty current run, a test listed twice, a median that is not a positive finite number,
``--out`` naming a file: every figure read is checked by ``budgets.load_benchmarks`` first), 3 a bug in
awml-report itself. Plots show the ``PLOTTED`` largest changes; the tables every test.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pytest_awml import regression
from pytest_awml.budgets import DEFAULT_REGRESSION, is_real, load_benchmarks, median_ms, rounds_ms
from pytest_awml.errors import AwmlError
from pytest_awml.json_input import REASON, read_json
from pytest_awml.paths import write_atomic

log = logging.getLogger("pytest_awml.report")
DEFAULT_THRESHOLD = DEFAULT_REGRESSION
PLOTTED = 40
"""Tests per plot at most (the largest changes first): a bar per test of a 10 000-test run is a
3 500-inch figure that took minutes to draw and that nobody can read; the tables list every test."""
EXIT_OK, EXIT_REGRESSION, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


@dataclass(frozen=True)
class Run:
    label: str
    data: dict

    @property
    def machine(self) -> str:
        info = self.data.get("machine_info", {})  # an object: load_benchmarks checked it; its strings are free text
        gpus = info.get("awml_gpus")
        gpus = ", ".join(map(str, gpus)) if isinstance(gpus, list) and gpus else "no GPU"
        cpu_info = info.get("cpu")
        cpu = info.get("awml_cpu_model") or (cpu_info.get("brand_raw") if isinstance(cpu_info, dict) else None) or info.get("processor", "?")
        return f"{info.get('node', '?')}: {cpu}; {gpus}"

    @cached_property
    def _by_name(self) -> dict[str, dict]:
        return {b["name"]: b for b in self.data["benchmarks"]}  # names are unique: load_benchmarks refuses a test listed twice

    def benchmarks(self) -> dict[str, dict]:
        return self._by_name


def _p99_ms(bench: dict) -> float | None:
    return bench.get("extra_info", {}).get("p99_ms")


def collect(paths: Sequence[Path]) -> list[Run]:
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files.extend(sorted(path.rglob("*.json"), key=lambda p: p.name))
        elif path.exists():
            files.append(path)
        else:
            raise AwmlError(f"{path}: no such file or folder")
    if len(files) < 2:
        raise AwmlError(f"need at least two benchmark runs to compare, found {len(files)}")
    runs = [Run(f.stem, load_benchmarks(f)) for f in files]
    if not runs[-1].benchmarks():
        raise AwmlError(f"the current run {files[-1]} holds no benchmarks: its latency tests did not run "
                        "(skipped, deselected, or --benchmark-disable); nothing can be compared")
    return runs


@dataclass(frozen=True)
class Row:
    name: str
    baseline_ms: float | None
    current_ms: float | None  # None: the test is missing from the current run
    baseline_p99: float | None
    current_p99: float | None
    threshold: float
    judgement: regression.Regression | None  # None: the test is new or missing
    baseline_rounds: Sequence[float] | None = None
    current_rounds: Sequence[float] | None = None

    @property
    def change(self) -> float | None:
        return None if self.judgement is None else self.judgement.change

    @property
    def regressed(self) -> bool:
        return self.judgement is not None and self.judgement.regressed

    @property
    def judged(self) -> bool:
        return self.judgement is not None and self.judgement.judged

    @property
    def verdict(self) -> str:
        if self.current_ms is None:
            return "MISSING"
        if self.judgement is None:
            return "new"
        return self.judgement.verdict

    @property
    def css(self) -> str:
        return self.verdict.split(":")[0].replace(" ", "-").lower()


def _rounds_cell(rounds: Sequence[float] | None) -> str:
    """Rounds and their spread (interquartile range over the median), or why there is none."""
    if not rounds:
        return "–"
    spread = regression.spread(rounds)
    return f"{len(rounds)}" + ("" if spread is None else f" ±{spread / 2:.1%}")


def compare(runs: Sequence[Run], default_threshold: float) -> list[Row]:
    baseline, current = runs[0].benchmarks(), runs[-1].benchmarks()
    rows = []
    for name, bench in current.items():
        threshold = bench.get("extra_info", {}).get("regression_threshold")
        threshold = default_threshold if threshold is None else float(threshold)
        base = baseline.get(name)
        if base is None:
            rows.append(Row(name, None, median_ms(bench), None, _p99_ms(bench), threshold, None, None, rounds_ms(bench)))
            continue
        judged = regression.judge(name, rounds_ms(bench), rounds_ms(base), threshold, median_ms(bench), median_ms(base))
        rows.append(Row(name, median_ms(base), median_ms(bench), _p99_ms(base), _p99_ms(bench), threshold, judged,
                        rounds_ms(base), rounds_ms(bench)))
    for name, base in baseline.items():
        if name not in current:
            rows.append(Row(name, median_ms(base), None, _p99_ms(base), None, default_threshold, None, rounds_ms(base)))
    return rows


def headline(rows: Sequence[Row]) -> str:
    """The report's one sentence: how many regressed of how many compared, and how many could not be judged."""
    regressed = [r for r in rows if r.regressed]
    compared = [r for r in rows if r.current_ms is not None]
    unjudged = [r for r in rows if r.judgement is not None and not r.judged]
    text = f"{len(regressed)} of {len(compared)} tests regressed beyond their threshold with {regression.CONFIDENCE:.0%} confidence."
    if unjudged:
        text += f" {len(unjudged)} not judged (too few rounds or none kept: see the verdicts)."
    return text


TABLE_HEAD = ("test", "baseline median ms", "current median ms", "baseline p99 ms", "current p99 ms", "baseline rounds ±spread",
              "current rounds ±spread", "change", "threshold", "p", "verdict")
"""The table's columns (Markdown and HTML alike); spread: half the interquartile range over the median."""


def _cells(r: Row) -> list[str]:
    change = "–" if r.change is None else f"{r.change:+.1%}"
    p = "–" if r.judgement is None or r.judgement.p_value is None else f"{r.judgement.p_value:.3g}"
    return [_fmt(r.baseline_ms), _fmt(r.current_ms), _fmt(r.baseline_p99), _fmt(r.current_p99), _rounds_cell(r.baseline_rounds),
            _rounds_cell(r.current_rounds), change, f"+{r.threshold:.0%}", p, r.verdict]


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def markdown(runs: Sequence[Run], rows: Sequence[Row]) -> str:
    lines = ["# Latency report", ""]
    machines = {run.machine for run in runs}
    for i, run in enumerate(runs):
        role = "baseline" if i == 0 else "current" if i == len(runs) - 1 else "run"
        lines.append(f"- {role} `{run.label}` ({run.data.get('datetime', '?')}) on {run.machine}")
    if len(machines) > 1:
        lines += ["", "> **Warning:** the runs come from different machines; their times are not comparable."]
    missing = [r for r in rows if r.current_ms is None]
    lines += ["", f"**{headline(rows)}**"]
    if missing:
        lines += ["", f"> **Missing:** {len(missing)} test(s) of the baseline did not run in the current run: "
                  + ", ".join(f"`{r.name}`" for r in missing)]
    lines += ["", "| " + " | ".join(TABLE_HEAD) + " |", "| --- | " + "---: | " * (len(TABLE_HEAD) - 2) + "--- |"]
    for r in rows:
        lines.append(f"| `{r.name}` | " + " | ".join(_cells(r)) + " |")
    lines += ["", METHOD]
    return "\n".join(lines) + "\n"


METHOD = (f"REGRESSED: the current rounds are slower than the baseline's scaled by (1 + threshold), one-sided Mann-Whitney U "
          f"p < {regression.ALPHA:g}, and the median change is past the threshold. Fewer than {regression.min_rounds()} "
          "rounds a side can never reach that confidence: such a test is not judged. Spread: half the interquartile range "
          "over the median.")


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _worth_plotting(rows: Sequence[Row]) -> list[Row]:
    """The ``PLOTTED`` rows a reader looks at first: regressions, then the largest changes, then the rest."""
    return sorted(rows, key=lambda r: (not r.regressed, -abs(r.change) if r.change is not None else 0.0, r.name))[:PLOTTED]


def _shown(kept: int, total: int, what: str) -> str:
    return f" ({kept} of {total} {what}; every one is in the table)" if kept < total else ""


def figures(runs: Sequence[Run], rows: Sequence[Row], awml_json: dict | None) -> list[tuple[str, str]]:
    """(title, base64 PNG) for each plot; matplotlib is imported here only (the ``report`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise AwmlError(f"the HTML report needs matplotlib ({exc}): pip install 'pytest-awml[report]'") from None
    out = []
    names = sorted(r.name for r in _worth_plotting(rows))
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(names) + 2))
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        benches = run.benchmarks()
        values = [median_ms(benches[n]) if n in benches else 0 for n in names]
        ax.barh([y + i * width for y in range(len(names))], values, height=width, label=run.label)
    ax.set_yticks([y + 0.4 - width / 2 for y in range(len(names))], [n.replace("test_", "") for n in names], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("median latency (ms, log scale)")
    ax.legend(fontsize=7)
    out.append(("Latency per test across runs" + _shown(len(names), len(rows), "tests, the largest changes"), _png(fig)))
    plt.close(fig)

    all_pipelines = [(b["name"], b["extra_info"]["stages"]) for b in runs[-1].data["benchmarks"] if b.get("extra_info", {}).get("stages")]
    pipelines = all_pipelines[:PLOTTED]
    if pipelines:
        fig, ax = plt.subplots(figsize=(9, 0.6 * len(pipelines) + 1.5))
        stages = list(pipelines[0][1])
        left = [0.0] * len(pipelines)
        for stage in stages:
            values = [p[1].get(stage, {}).get("p50_ms", 0.0) for p in pipelines]
            ax.barh(range(len(pipelines)), values, left=left, label=stage)
            left = [a + b for a, b in zip(left, values, strict=True)]  # one bar per pipeline on both sides
        ax.set_yticks(range(len(pipelines)), [p[0].replace("test_pipeline_latency", "") for p in pipelines], fontsize=8)
        ax.set_xlabel("p50 per stage (ms), current run")
        ax.legend(fontsize=7, ncol=len(stages))
        out.append(("Pipeline stage breakdown per backend" + _shown(len(pipelines), len(all_pipelines), "pipelines"), _png(fig)))
        plt.close(fig)

    all_parity = [r for r in (awml_json or {}).get("parity", []) if r.get("max_abs") is not None and r.get("rtol") is not None
                  and math.isfinite(r["max_abs"]) and math.isfinite(r["atol"])]  # a NaN output's error has no bar
    parity = sorted(all_parity, key=lambda r: (r["passed"], -r["max_abs"] / max(r["atol"], 1e-12)))[:PLOTTED]
    if parity:
        fig, ax = plt.subplots(figsize=(10, 0.3 * len(parity) + 1.5))
        labels = [f"{r.get('component', '?')}/{r.get('output', '?')} {r.get('target', '')}" for r in parity]
        ax.barh(range(len(parity)), [max(r["max_abs"], 1e-12) for r in parity],
                color=["tab:green" if r["passed"] else "tab:red" for r in parity], label="max |error|")
        ax.scatter([max(r["atol"], 1e-12) for r in parity], range(len(parity)), marker="|", s=200, color="black", label="atol", zorder=3)
        ax.set_yticks(range(len(parity)), labels, fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("error against the reference (log scale); the black mark is the tolerance")
        ax.legend(fontsize=7)
        out.append(("Parity error per output against its tolerance" + _shown(len(parity), len(all_parity), "outputs, the closest to their tolerance"),
                    _png(fig)))
        plt.close(fig)
    return out


def html_table(runs: Sequence[Run], rows: Sequence[Row]) -> str:
    roles = ["baseline" if i == 0 else "current" if i == len(runs) - 1 else "run" for i in range(len(runs))]
    runs_html = "".join(f"<li><b>{role}</b> {html.escape(r.label)} ({html.escape(str(r.data.get('datetime', '?')))}) on {html.escape(r.machine)}</li>"
                        for role, r in zip(roles, runs, strict=True))
    warn = "<p class='warn'>The runs come from different machines: their times are not comparable.</p>" if len({r.machine for r in runs}) > 1 else ""
    cells = [f"<tr class='{r.css}'><td><code>{html.escape(r.name)}</code></td>"
             + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r)) + "</tr>" for r in rows]
    head = "".join(f"<th>{h}</th>" for h in TABLE_HEAD)
    return (f"<p class='headline'><b>{html.escape(headline(rows))}</b></p><ul>{runs_html}</ul>{warn}"
            f"<table><tr>{head}</tr>{''.join(cells)}</table><p>{html.escape(METHOD)}</p>")


def html_page(table: str, plots: Sequence[tuple[str, str]]) -> str:
    body = [table]
    for title, png in plots:
        body.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'/>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>pytest-awml latency report</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
            "tr.regressed,tr.missing{background:#fdd}tr.not-judged{background:#ffe}.warn{color:#a00;font-weight:bold}img{max-width:100%}</style></head><body>"
            "<h1>pytest-awml latency report</h1>" + "".join(body) + "</body></html>\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="awml-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="pytest-benchmark JSON files or .benchmarks/ folders, oldest first")
    parser.add_argument("--awml-json", type=Path, help="the plugin's JSON report, for the parity plot")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for report.md and report.html")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="regression threshold for tests whose spec sets none")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return _report(args)
    except AwmlError as exc:
        log.error("awml-report: %s", exc)
        return EXIT_USAGE
    except Exception:  # a bug here must not read as exit 1, "a test regressed"
        log.exception("awml-report: internal error (please report it with the input files)")
        return EXIT_INTERNAL


def _report(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.out.is_dir():
        raise AwmlError(f"--out {args.out} is a file: give a folder for report.md and report.html")
    if not args.threshold >= 0:
        raise AwmlError(f"--threshold {args.threshold} must be a fraction >= 0 (0.1 = 10 %)")
    runs = collect(args.runs)
    rows = compare(runs, args.threshold)
    awml_json = _awml_json(args.awml_json) if args.awml_json else None
    text = markdown(runs, rows)
    page = html_page(html_table(runs, rows), figures(runs, rows, awml_json))
    try:  # each file whole or not at all: a full disk leaves the previous report as it was
        write_atomic(args.out / "report.md", text.encode(), what="report.md")
        write_atomic(args.out / "report.html", page.encode(), what="report.html")
    except AwmlError as exc:
        raise AwmlError(f"--out {args.out}: {exc}") from None
    regressed = [r.name for r in rows if r.regressed]
    missing = [r.name for r in rows if r.current_ms is None]
    if missing:
        log.warning("%d test(s) of the baseline are missing from the current run: %s", len(missing), ", ".join(missing))
    log.info("wrote %s and %s; %s", args.out / "report.md", args.out / "report.html", headline(rows))
    return EXIT_REGRESSION if regressed else EXIT_OK


def _awml_json(path: Path) -> dict:
    data = read_json(path, f"--awml-json {path} is not a readable JSON report: {REASON}")
    if not isinstance(data, dict):
        raise AwmlError(f"--awml-json {path} is not pytest-awml's JSON report (an object with run, parity, …)")
    parity = data.get("parity", [])
    if not isinstance(parity, list) or not all(isinstance(r, dict) for r in parity):
        raise AwmlError(f"--awml-json {path}: 'parity' is not a list of records: pass the report pytest-awml wrote")
    for index, record in enumerate(parity):
        if record.get("max_abs") is None or record.get("rtol") is None:
            continue  # not plotted
        bad = [key for key in ("max_abs", "atol", "rtol") if not is_real(record.get(key))]
        if bad or not isinstance(record.get("passed"), bool):
            raise AwmlError(f"--awml-json {path}: parity record {index} has no numeric {', '.join(bad) or 'passed flag'}: "
                            "pass the report pytest-awml wrote")
    return data


if __name__ == "__main__":
    sys.exit(main())
