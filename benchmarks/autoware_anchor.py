"""The speed anchor: the bundle pipeline's pre- and post-processing against Autoware's own CUDA kernels, same frames,
same GPU, one run (needs CUDA, nvcc and ``$AUTOWARE_ROOT``; docs/autoware-oracle.md).

    AUTOWARE_ROOT=... python benchmarks/autoware_anchor.py [--scans DIR] [--specs centerpoint-tiny,centerpoint]
                                                          [--rounds 50] [--out anchor.json]

What is timed, per call, host clock around the call with the device synchronized at both ends (each side ends with
its results ready: the node's preprocess synchronizes its stream, its postprocess copies the boxes to the host):

* pre, bundle pipeline: its ``preprocess`` stage as ``CenterPointPipeline`` runs it on CUDA: the frame's current
  sweep uploaded (the past one held from the frame before), the CUDA-graph replay of densify, voxelize and decorate,
  the encoder input padded to ``max_voxels``, the voxel count read back.
* pre, Autoware: ``CenterPointTRT::preprocess``'s clears and kernels (sweep points, shuffle over ``cloud_capacity``,
  voxels, base features, features) on the frame's clouds already on the device (the node gets them so, through
  cuda_blackboard): the project's stage includes an upload the node's does not.
* post: ``decode_autoware`` on the head's device tensors (boxes on the host) against ``postProcess`` (kernel, thrust
  count/copy/sort, circle NMS with its host pass, boxes copied to the host), on the same heads.

Prints p50s and the ratio bundle / Autoware per spec and stage (below 1: the harness's glue is faster than the car's),
and writes them as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import torch

from model_specs.centerpoint.autoware import AutowareSettings, node_config
from model_specs.centerpoint.autoware_decode import AutowareDecoder, decode_autoware
from model_specs.centerpoint.autoware_oracle import frames as frame_sources
from model_specs.centerpoint.autoware_oracle.bundle_side import y_axis_heads
from model_specs.centerpoint.autoware_oracle.oracle import AutowareOracle, node_frame
from model_specs.centerpoint.graphs import GraphedPreprocess
from model_specs.centerpoint.pipeline import pad_pillars
from model_specs.centerpoint.voxelize import UploadedSweeps, decorate, densify, frame, voxelize
from pytest_awml.options import DEFAULT_SAMPLES, DEFAULT_SEED

log = logging.getLogger("autoware_anchor")


def _spec(name: str):
    from importlib.metadata import entry_points

    (point,) = [p for p in entry_points(group="pytest_awml.specs") if p.name == name]
    return point.load()


def timed(call, rounds: int, warmup: int) -> list[float]:
    """Milliseconds per call, the device synchronized before and after each."""
    for _ in range(warmup):
        call()
    out = []
    for _ in range(rounds):
        torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def anchor(name: str, scans: Path | None, rounds: int, warmup: int) -> dict:
    spec = _spec(name)
    cfg, settings, device = spec.params["model"], AutowareSettings(), torch.device("cuda")
    node = node_config(cfg)
    frames = frame_sources.synthetic(spec.make_samples, DEFAULT_SAMPLES, DEFAULT_SEED)
    if scans is not None:
        for scan, (path, columns) in frame_sources.REAL_SCANS.items():
            frames.append(frame_sources.real(scan, frame_sources.read_scan(scans / Path(path).name, columns), cfg))
    model = spec.build_model(None, DEFAULT_SEED).to(device)
    times: dict[str, list[float]] = {"pre_bundle": [], "pre_autoware": [], "post_bundle": [], "post_autoware": []}
    per_frame = []
    with AutowareOracle(cfg, settings, device) as oracle:
        for item in frames:
            scene = item.scene
            uploaded, graphed = UploadedSweeps(), GraphedPreprocess(node)

            def pre_bundle(scene=scene, uploaded=uploaded, graphed=graphed) -> None:
                inputs = frame(scene.sweeps, node, device, uploaded)
                with graphed(inputs) as replayed:
                    pad_pillars(replayed.features[: replayed.rows], node.max_voxels)

            held = node_frame(scene, node, device)
            voxels = voxelize(densify(scene.sweeps, node, device), node)
            heads = y_axis_heads(model, decorate(voxels, node), voxels.coors, node)
            result = {"frame": item.name, "boxes_bundle": len(decode_autoware(heads, node, settings).scores),
                      "boxes_autoware": len(oracle.decode(heads))}
            calls = {"pre_bundle": pre_bundle, "pre_autoware": lambda held=held: oracle.preprocess(held),
                     "post_bundle": lambda heads=heads: decode_autoware(heads, node, settings),
                     "post_autoware": lambda heads=heads: oracle.decode(heads)}
            for key, call in calls.items():
                ms = timed(call, rounds, warmup)
                times[key] += ms
                result[key + "_p50_ms"] = statistics.median(ms)
            per_frame.append(result)
            log.info("%s %s", name, result)
    p50 = {key: statistics.median(values) for key, values in times.items()}
    return {"spec": name, "gpu": torch.cuda.get_device_name(device), "rounds_per_frame": rounds, "frames": per_frame,
            **{f"{key}_p50_ms": value for key, value in p50.items()},
            "pre_ratio": p50["pre_bundle"] / p50["pre_autoware"], "post_ratio": p50["post_bundle"] / p50["post_autoware"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", default="centerpoint-tiny,centerpoint")
    parser.add_argument("--scans", type=Path, default=None, help="folder holding the two real scans (frames.REAL_SCANS)")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = [anchor(name, args.scans, args.rounds, args.warmup) for name in args.specs.split(",")]
    for r in results:
        print(f"{r['spec']} on {r['gpu']}: pre p50 bundle {r['pre_bundle_p50_ms']:.3f} ms / Autoware {r['pre_autoware_p50_ms']:.3f} ms"
              f" = {r['pre_ratio']:.2f}x; post p50 bundle {r['post_bundle_p50_ms']:.3f} ms / Autoware {r['post_autoware_p50_ms']:.3f} ms"
              f" = {r['post_ratio']:.2f}x")
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
