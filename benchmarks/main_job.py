"""Does the main job spend its time on inference it cannot avoid? Wall time against that sum, cold and warm.

    python benchmarks/main_job.py [--spec centerpoint] [--keep DIR] [-- extra pytest args]

Runs `pytest --awml-spec <spec>` twice in fresh processes on one artifact folder: cold (empty folder)
then warm (every export and reference output reused). For each run, the inference it could not avoid is
read back from its own JSON report:

- exports: the build time of every artifact the run built that is not inference (ONNX, engines);
- one reference and one backend forward per input: ``samples`` x the component's p50 on each target
  (the reference's only when its outputs were computed, not reused);
- the latency rounds asked for: (warm-up + timed rounds) x p50, per latency test.

It prints wall / unavoidable for both runs (goal <= 1.15) and warm / cold (goal <= 0.5). A benchmark,
not a test: it asserts nothing, and the figures are this machine's (run it alone: noise is large).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INFERENCE_FORMATS = ("reference-outputs", "backend-outputs")  # stored inferences, counted as forwards
REFERENCE_TARGET = "pytorch-cpu-fp32"


def run(spec: str, workdir: Path, name: str, extra: list[str]) -> tuple[float, dict]:
    """Wall seconds of one `pytest --awml-spec` process, and its report."""
    report = workdir / f"{name}.json"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--awml-spec={spec}",
               f"--awml-artifacts={workdir / 'artifacts'}", f"--awml-report={report}", *extra]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (workdir / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:])
        raise SystemExit(f"the {name} run failed (pytest exit {done.returncode})")
    return wall, json.loads(report.read_text())


def unavoidable_s(report: dict) -> dict[str, float]:
    """The seconds of inference the run could not skip, by kind, from its report."""
    samples = report["run"]["samples"]
    built = [a for a in report["artifacts"] if not a["reused"]]
    exports = sum(a["build_seconds"] for a in built if a["format"] not in INFERENCE_FORMATS)
    reference_computed = {a["component"] for a in built if a["format"] == "reference-outputs"}
    latency = [r for r in report["latency"] if not r["component"].endswith("pipeline")]
    forwards = 0.0
    for r in latency:
        if r["target"] != REFERENCE_TARGET or r["component"] in reference_computed:
            forwards += samples * r["p50_ms"] / 1e3
    rounds = sum((r["rounds"] + r.get("warmup_rounds", 1)) * r["p50_ms"] / 1e3 for r in report["latency"])
    return {"exports": exports, "forwards": forwards, "latency_rounds": rounds}


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
            print(f"{name}: wall {wall:.1f} s, unavoidable inference {total:.1f} s ({detail}); wall / unavoidable {wall / total:.2f} (goal <= 1.15)")
        print(f"warm / cold: {walls['warm'] / walls['cold']:.2f} (goal <= 0.5)")


if __name__ == "__main__":
    main()
