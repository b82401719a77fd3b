"""Does the main job spend its time on inference it cannot avoid? Wall time against that sum, cold and warm.

    python benchmarks/main_job.py [--spec centerpoint] [--keep DIR] [-- extra pytest args]

Runs `pytest --awml-spec <spec>` twice in fresh processes on one artifact folder: cold (empty folder)
then warm (every export and stored inference reused: what is left is the latency rounds, and under the
dev hypothesis profile the shape fuzzing's new draws; pass `-- --awml-hypothesis-profile=ci` for CI's). For each run, the work it could not avoid is
read back from its own JSON report:

- builds: the build time of every artifact the run built that is not an inference store (ONNX, engines, the
  seeded weights, whose calibration is a forward pass);
- forwards: the report's ``inferences`` ledger, every inference the run computed outside latency
  rounds (references not found in the store, backends, pipeline stages, shape fuzzing), each input
  once per target (``repeated`` counts any that ran twice: the goal is 0);
- the latency rounds asked for, as long as they took: per latency test that ran rounds (a component test
  that read a pipeline's rounds, ``measured_in``, ran none), each timed span's rounds x its mean (the
  compute rounds, and a component's copy rounds) plus its warm-up rounds (``warmup_total_ms``). Their
  median would leave out the slow first rounds and the noisy ones, which are inference too, not overhead.

It prints wall / unavoidable for both runs (goal <= 1.15) and warm / cold (goal <= 0.5), and what starting the
process and collecting the tests takes alone (a ``--collect-only`` run on the warm folder: Python, torch, pytest
and its plugins; with ``PYTHONDONTWRITEBYTECODE`` set, pytest rewrites its plugins' modules at every start). A
benchmark, not a test: it asserts nothing, and the figures are this machine's (run it alone: noise is large).
"""

from __future__ import annotations

import argparse
from collections import Counter
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INFERENCE_FORMATS = ("reference-outputs", "backend-outputs")  # stored inferences, counted as forwards


def run(spec: str, workdir: Path, name: str, extra: list[str]) -> tuple[float, dict | None]:
    """Wall seconds of one `pytest --awml-spec` process, and its report (none for ``--collect-only``)."""
    report = workdir / f"{name}.json"
    report.unlink(missing_ok=True)  # a kept folder's earlier report must not pass for this run's
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--awml-spec={spec}",
               f"--awml-artifacts={workdir / 'artifacts'}", f"--awml-report={report}", *extra]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (workdir / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:])
        raise SystemExit(f"the {name} run failed (pytest exit {done.returncode})")
    if not report.exists() and "--collect-only" not in extra:
        raise SystemExit(f"the {name} run wrote no report ({report})")
    return wall, json.loads(report.read_text()) if report.exists() else None


def unavoidable_s(report: dict) -> dict[str, float]:
    """The seconds of work the run could not skip, by kind, from its own report."""
    built = [a for a in report["artifacts"] if not a["reused"]]
    builds = sum(a["build_seconds"] for a in built if a["format"] not in INFERENCE_FORMATS)
    forwards = sum(i["seconds"] for i in report["inferences"])
    rounds = sum(rounds_ms(r) for r in report["latency"] if "measured_in" not in r) / 1e3
    return {"builds": builds, "forwards": forwards, "latency_rounds": rounds}


def rounds_ms(record: dict) -> float:
    """What one latency test's rounds took: every timed span's rounds x mean (a pipeline's: the whole call), and
    the warm-up rounds."""
    spans = record.get("spans") or {"call": record}
    return sum(s["rounds"] * s["mean_ms"] for s in spans.values()) + record["warmup_total_ms"]


def repeated(report: dict) -> int:
    """Inferences of one input on one target computed more than once in the run (the goal is none)."""
    keys = Counter((i["spec"], i["component"], i["target"], i["input"]) for i in report["inferences"])
    return sum(n - 1 for n in keys.values() if n > 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="centerpoint")
    parser.add_argument("--keep", type=Path, help="keep the artifacts and reports here (default: a temporary folder)")
    parser.add_argument("extra", nargs="*", help="further pytest arguments (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        walls = {}
        for name in ("cold", "warm"):
            wall, report = run(args.spec, workdir, name, args.extra)
            parts = unavoidable_s(report)
            total = sum(parts.values())
            walls[name] = wall
            detail = ", ".join(f"{k} {v:.1f} s" for k, v in parts.items())
            print(f"{name}: wall {wall:.1f} s, unavoidable inference {total:.1f} s ({detail}); wall / unavoidable {wall / total:.2f} "
                  f"(goal <= 1.15); inferences {len(report['inferences'])}, repeated {repeated(report)} (goal 0)")
        print(f"warm / cold: {walls['warm'] / walls['cold']:.2f} (goal <= 0.5)")
        start_up, _ = run(args.spec, workdir, "collect", [*args.extra, "--collect-only"])
        print(f"start-up and collection alone: {start_up:.1f} s (in each wall above, in no unavoidable sum)")


if __name__ == "__main__":
    main()
