"""Where does a pipeline's time go? Its latency rounds under torch.profiler: kernels and host operators per call.

    python benchmarks/pipeline_profile.py [--spec centerpoint] [--device cuda] [--precision fp16] [--rounds 30] [--rows 25]

Runs `pytest --awml-spec <spec> --awml-backends pytorch -k test_pipeline_latency` in this process with the
profiler around the pipeline's rounds alone (warm-up and timed: the model's build and the networks' own
latency rounds are outside it), and prints per pipeline call the CUDA kernels by device time and the host
operators by self time (how many launches a call makes, and which), then the stage p50s the test reported.
A diagnostic, not a test: it asserts nothing, and the profiler's overhead inflates host times (the p50s
printed come from a run under it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pytest

from pytest_awml import workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="centerpoint")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rows", type=int, default=25, help="rows of each table")
    args = parser.parse_args()
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
    profiles = []
    rounds_of = workspace.measure_shared

    def profiled(*call_args, **call_kwargs):
        """The pipeline's rounds under the profiler (a network's own rounds, measured on demand, are not)."""
        if call_kwargs.get("span") != "pipeline":
            return rounds_of(*call_args, **call_kwargs)
        with profile(activities=activities) as prof:
            measured = rounds_of(*call_args, **call_kwargs)
        profiles.append(prof)
        return measured

    workspace.measure_shared = profiled
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        code = pytest.main(["-q", "-p", "no:cacheprovider", f"--awml-spec={args.spec}", f"--awml-device={args.device}",
                            "--awml-backends=pytorch", f"--awml-precision={args.precision}", f"--awml-rounds={args.rounds}",
                            f"--awml-warmup={args.warmup}", f"--awml-artifacts={Path(tmp) / 'artifacts'}",
                            f"--awml-report={report}", "-k", "test_pipeline_latency"])
        if code != 0 or not profiles:
            raise SystemExit(f"the latency run failed (pytest exit {code})")
        records = [r for r in json.loads(report.read_text())["latency"] if r["component"] == "pipeline"]
    calls = args.rounds + args.warmup
    events = profiles[-1].key_averages()
    kernels = sorted((e for e in events if e.device_type == torch.autograd.DeviceType.CUDA), key=lambda e: -e.self_device_time_total)
    if kernels:
        print(f"CUDA kernels per pipeline call ({calls} calls profiled; device time):")
        for e in kernels[: args.rows]:
            print(f"  {e.self_device_time_total / calls:9.1f} us  {e.count / calls:6.1f} x  {e.key[:110]}")
        print(f"  total {sum(e.self_device_time_total for e in kernels) / calls:9.1f} us, {sum(e.count for e in kernels) / calls:.0f} launches")
    host = sorted((e for e in events if e.device_type == torch.autograd.DeviceType.CPU), key=lambda e: -e.self_cpu_time_total)
    print("host operators per pipeline call (self time):")
    for e in host[: args.rows]:
        print(f"  {e.self_cpu_time_total / calls:9.1f} us  {e.count / calls:6.1f} x  {e.key[:110]}")
    for record in records:
        stages = ", ".join(f"{name} {s['p50_ms']:.3f}" for name, s in record["stages"].items())
        print(f"{record['target']}: pipeline p50 {record['p50_ms']:.3f} ms = {record['ratio_to_components']:.3f} x the networks' "
              f"{record['components_p50_ms']:.3f} ms; stages (p50 ms): {stages}")


if __name__ == "__main__":
    main()
