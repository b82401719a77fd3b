"""Does the harness add overhead? One component timed by the harness and by a bare loop.

    python benchmarks/fidelity.py [--spec centerpoint-tiny] [--component pts_voxel_encoder] [--rounds 200]

The harness run is `pytest --awml-spec … -k test_latency` in this process (pytest-benchmark's
pedantic loop plus the span timers); the bare loop calls `session.run` on an ONNX Runtime session
built the same way from the same ONNX file. Runs are interleaved (bare, harness, bare, harness,
bare) so that the machine's drift hits both, and the ratio of medians is printed: the goal is
1.00 ± 0.03. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from pytest_awml import spec_loader
from pytest_awml.device import Target
from pytest_awml.runners.onnxruntime import OnnxRuntimeRunner

log = logging.getLogger("fidelity")


def harness_median_ms(spec: str, component: str, rounds: int, workdir: Path) -> tuple[float, Path]:
    out = workdir / "bench.json"
    code = pytest.main(["-q", "-p", "no:cacheprovider", f"--awml-spec={spec}", f"--awml-artifacts={workdir / 'artifacts'}",
                        f"--awml-rounds={rounds}", "--awml-warmup=5", f"--benchmark-json={out}",
                        "-k", f"test_latency and {component} and onnxruntime"])
    if code != 0:
        raise SystemExit(f"the harness run failed (pytest exit {code})")
    bench = json.loads(out.read_text())["benchmarks"][0]
    onnx = next((workdir / "artifacts").rglob(f"{component}.onnx"))  # content-addressed: the one file this spec built
    return bench["stats"]["median"] * 1e3, onnx


def bare_median_ms(onnx: Path, feed: dict, rounds: int) -> float:
    with OnnxRuntimeRunner(lambda: onnx, Target.parse("onnxruntime-cpu-fp32"), (), ["CPUExecutionProvider"]) as runner:
        return _bare_loop_ms(runner.session, feed, rounds)


def _bare_loop_ms(session, feed: dict, rounds: int) -> float:
    for _ in range(5):
        session.run(None, feed)
    times = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        session.run(None, feed)
        times.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="centerpoint-tiny")
    parser.add_argument("--component", default="pts_voxel_encoder")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=3, help="harness runs, interleaved between pairs+1 bare runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = spec_loader.load(args.spec)[0]
    component = spec.component(args.component)
    import torch

    model = spec.build_model(None, 0)
    with torch.inference_mode():
        feed = {k: v.numpy() for k, v in component.make_inputs(model, spec.make_samples(1, 0)[0]).items()}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        _, onnx = harness_median_ms(args.spec, args.component, 10, workdir)  # export once: both time this file
        harness, bare = [], []
        for i in range(2 * args.pairs + 1):
            if i % 2:
                harness.append(harness_median_ms(args.spec, args.component, args.rounds, workdir)[0])
            else:
                bare.append(bare_median_ms(onnx, feed, args.rounds))
        ratio = statistics.median(harness) / statistics.median(bare)
        print(f"harness medians (ms): {np.round(harness, 3).tolist()}")
        print(f"bare-loop medians (ms): {np.round(bare, 3).tolist()}")
        print(f"fidelity ratio (harness / bare, medians): {ratio:.3f}  (goal 1.00 ± 0.03)")


if __name__ == "__main__":
    main()
