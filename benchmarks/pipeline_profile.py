"""Where does a pipeline's time go on a GPU? Its latency test under torch.profiler, kernels and host ops per round.

    python benchmarks/pipeline_profile.py [--spec centerpoint] [--precision fp16] [--rounds 30] [--rows 25]

Runs `pytest --awml-spec <spec> --awml-device cuda --awml-backends pytorch -k pipeline_latency` in this
process under ``torch.profiler`` and prints, per timed round, the CUDA kernels by device time and the host
operators by self time (how many launches a round makes, and which), then the stage p50s the test reported.
The warm-up and the model's first calls are in the profile too: with enough rounds they are a small share.
A diagnostic, not a test: it asserts nothing, and the profiler's own overhead inflates host times.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pytest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="centerpoint")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--rows", type=int, default=25, help="rows of each table")
    args = parser.parse_args()
    import torch
    from torch.profiler import ProfilerActivity, profile

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = ["-q", "-p", "no:cacheprovider", f"--awml-spec={args.spec}", "--awml-device=cuda", "--awml-backends=pytorch",
                   f"--awml-precision={args.precision}", f"--awml-rounds={args.rounds}", "--awml-warmup=3",
                   f"--awml-artifacts={Path(tmp) / 'artifacts'}", f"--awml-report={report}", "-k", "test_pipeline_latency"]
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            code = pytest.main(command)
        if code != 0:
            raise SystemExit(f"the latency run failed (pytest exit {code})")
        torch.cuda.synchronize()
        records = [r for r in json.loads(report.read_text())["latency"] if r["component"] == "pipeline"]
    calls = args.rounds + 3
    events = prof.key_averages()
    kernels = sorted((e for e in events if e.device_type == torch.autograd.DeviceType.CUDA), key=lambda e: -e.self_device_time_total)
    print(f"CUDA kernels per round ({calls} pipeline calls profiled; us = device time per round):")
    for e in kernels[: args.rows]:
        print(f"  {e.self_device_time_total / calls:9.1f} us  {e.count / calls:6.1f} x  {e.key[:110]}")
    print(f"  total {sum(e.self_device_time_total for e in kernels) / calls:9.1f} us, {sum(e.count for e in kernels) / calls:.0f} launches")
    host = sorted((e for e in events if e.device_type == torch.autograd.DeviceType.CPU), key=lambda e: -e.self_cpu_time_total)
    print("host operators per round (self time, us):")
    for e in host[: args.rows]:
        print(f"  {e.self_cpu_time_total / calls:9.1f} us  {e.count / calls:6.1f} x  {e.key[:110]}")
    for record in records:
        stages = ", ".join(f"{name} {s['p50_ms']:.3f}" for name, s in record["stages"].items())
        print(f"{record['target']}: pipeline p50 {record['p50_ms']:.3f} ms = {record['ratio_to_components']:.3f} x the networks' "
              f"{record['components_p50_ms']:.3f} ms; stages (p50 ms): {stages}")


if __name__ == "__main__":
    main()
