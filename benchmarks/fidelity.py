"""Does the harness add overhead? One component timed by the harness and by a bare loop.

    python benchmarks/fidelity.py [--spec centerpoint-tiny] [--component pts_voxel_encoder]
                                  [--target onnxruntime-cpu-fp32|pytorch-cuda0-fp32|onnxruntime-cuda-cuda0-fp32] [--rounds 200]

The harness run is `pytest --awml-spec … -k "test_latency and <component> and <target>"` in this
process (pytest-benchmark's pedantic loop plus the span timers), read as the p50 the gate judges. The
bare loop is the least code that times the same work: on the CPU, `session.run` on an ONNX Runtime
session built from the same ONNX file (perf_counter); PyTorch on CUDA, the module between two CUDA
events on the current stream; ONNX Runtime on CUDA, `run_with_iobinding` on device-resident inputs
and outputs (host-timed: ORT's CUDA provider runs on a stream of its own, and the call returns when
it is done). Runs are interleaved (bare, harness, bare, harness, bare) so that the machine's drift
hits both, and the ratio of medians is printed: the goal is 1.00 ± 0.03. A benchmark, not a test:
it asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from pytest_awml import spec_loader
from pytest_awml.device import Target
from pytest_awml.runners.onnxruntime import OnnxRuntimeRunner

log = logging.getLogger("fidelity")


def harness_median_ms(spec: str, component: str, target: Target, rounds: int, workdir: Path) -> tuple[float, Path | None]:
    """p50 (ms) the harness reports for ``component`` on ``target``, and the ONNX file it ran (if any)."""
    out = workdir / "bench.json"
    code = pytest.main(["-q", "-p", "no:cacheprovider", f"--awml-spec={spec}", f"--awml-artifacts={workdir / 'artifacts'}",
                        f"--awml-device={target.device}", f"--awml-precision={target.precision.value}",
                        f"--awml-backends={target.backend}", f"--awml-rounds={rounds}", "--awml-warmup=5",
                        f"--benchmark-json={out}", "-k", f"test_latency and {component}"])
    if code != 0:
        raise SystemExit(f"the harness run failed (pytest exit {code})")
    bench = next(b for b in json.loads(out.read_text())["benchmarks"]
                 if (b["extra_info"].get("component"), b["extra_info"].get("target")) == (component, target.id))
    onnx = next((workdir / "artifacts").rglob(f"{component}.onnx"), None)  # content-addressed: the one file this spec built
    return bench["extra_info"]["p50_ms"], onnx


def _median_loop_ms(once: Callable[[], float], rounds: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        once()
    return statistics.median(once() for _ in range(rounds))


def bare_onnxruntime_cpu(onnx: Path, feed: dict, rounds: int) -> float:
    with OnnxRuntimeRunner(onnx, Target.parse("onnxruntime-cpu-fp32"), (), ["CPUExecutionProvider"]) as runner:
        session = runner.session

        def once() -> float:
            start = time.perf_counter_ns()
            session.run(None, feed)
            return (time.perf_counter_ns() - start) / 1e6

        return _median_loop_ms(once, rounds)


def bare_pytorch_cuda(module, feed: dict, target: Target, rounds: int) -> float:
    import torch

    dtype = torch.float16 if target.precision.value == "fp16" else torch.float32
    device = torch.device(target.device.torch)
    module = copy.deepcopy(module).to(device=device, dtype=dtype).eval()
    inputs = [torch.from_numpy(v).to(device=device, dtype=dtype) for v in feed.values()]
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = target.precision.value == "tf32"

    def once() -> float:
        with torch.inference_mode():
            start.record()
            module(*inputs)
            end.record()
        end.synchronize()
        return start.elapsed_time(end)

    return _median_loop_ms(once, rounds)


def bare_onnxruntime_cuda(onnx: Path, feed: dict, target: Target, rounds: int) -> float:
    import onnxruntime as ort

    index = target.device.index
    session = ort.InferenceSession(str(onnx), providers=[("CUDAExecutionProvider", {"device_id": index, "use_tf32": 0})])
    binding = session.io_binding()
    for name, value in feed.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value), "cuda", index))
    for output in session.get_outputs():
        binding.bind_output(output.name, "cuda", index)

    def once() -> float:
        begin = time.perf_counter_ns()
        session.run_with_iobinding(binding)
        return (time.perf_counter_ns() - begin) / 1e6

    return _median_loop_ms(once, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="centerpoint-tiny")
    parser.add_argument("--component", default="pts_voxel_encoder")
    parser.add_argument("--target", default="onnxruntime-cpu-fp32", help="<backend>-<device>-<precision>, as in the test ids")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=3, help="harness runs, interleaved between pairs+1 bare runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    target = Target.parse(args.target)
    spec = spec_loader.load(args.spec)[0]
    component = spec.component(args.component)
    import torch

    model = spec.build_model(None, 0)
    with torch.inference_mode():
        feed = {k: v.numpy() for k, v in component.make_inputs(model, spec.make_samples(1, 0)[0]).items()}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        _, onnx = harness_median_ms(args.spec, args.component, target, 10, workdir)  # export once: both time this file
        bare_loops = {("onnxruntime", False): lambda: bare_onnxruntime_cpu(onnx, feed, args.rounds),
                      ("onnxruntime-cuda", True): lambda: bare_onnxruntime_cuda(onnx, feed, target, args.rounds),
                      ("pytorch", True): lambda: bare_pytorch_cuda(component.extract(model), feed, target, args.rounds)}
        bare_loop = bare_loops.get((target.backend, target.device.is_cuda))
        if bare_loop is None:
            raise SystemExit(f"no bare loop for {target.id}: use onnxruntime-cpu-fp32, pytorch-cudaN-<precision> or onnxruntime-cuda-cudaN-fp32")
        harness, bare = [], []
        for i in range(2 * args.pairs + 1):
            if i % 2:
                harness.append(harness_median_ms(args.spec, args.component, target, args.rounds, workdir)[0])
            else:
                bare.append(bare_loop())
        ratio = statistics.median(harness) / statistics.median(bare)
        print(f"{target.id} {args.spec}/{args.component}")
        print(f"harness p50s (ms): {np.round(harness, 4).tolist()}")
        print(f"bare-loop medians (ms): {np.round(bare, 4).tolist()}")
        print(f"fidelity ratio (harness / bare, medians): {ratio:.3f}  (goal 1.00 ± 0.03)")


if __name__ == "__main__":
    main()
