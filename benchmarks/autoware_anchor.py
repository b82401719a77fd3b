"""The speed anchor: the bundle pipeline's pre- and post-processing against Autoware's own CUDA kernels, same frames,
same GPU, one run (needs CUDA, nvcc and ``$AUTOWARE_ROOT``; docs/autoware-oracle.md).

    AUTOWARE_ROOT=... python benchmarks/autoware_anchor.py [--scans DIR] [--specs centerpoint-tiny,centerpoint]
                                                          [--rounds 50] [--out anchor.json] [--profile DIR]

What is timed, per call, host clock around the call with the device synchronized at both ends (each side ends with
its results ready: the node's preprocess synchronizes its stream, its postprocess copies the boxes to the host):

* pre, bundle pipeline (``pre_bundle``): its ``preprocess`` stage as ``CenterPointPipeline`` runs it on CUDA: the
  frame's current sweep uploaded (the past one held from the frame before), the CUDA-graph replay of densify,
  voxelize and decorate into the encoder's fixed-size input (``max_voxels`` rows), the voxel count read back.
* pre, bundle pipeline on the node's terms (``pre_bundle_held``): the same with the frame's clouds already on the
  device, as the node gets them (through cuda_blackboard); the sweeps' transforms and lags computed and uploaded, as
  the node uploads its transforms. This is the like-for-like figure: the node's stage has no upload.
* pre, Autoware: ``CenterPointTRT::preprocess``'s clears and kernels (sweep points, shuffle over ``cloud_capacity``,
  voxels, base features, features) on the frame's clouds already on the device.
* post: the pipeline's decoder (:class:`AutowareDecoder`, a CUDA-graph replay, boxes on the host) on the head's
  device tensors, and :func:`decode_autoware` (the same work eagerly), against ``postProcess`` (kernel, thrust
  count/copy/sort, circle NMS with its host pass, boxes copied to the host), on the same heads.

Also: the cold start (a frame's first call: the graphs captured), the synchronizations torch reports in one warm
call (``torch.cuda.set_sync_debug_mode``), and whether the decoders give the node's box count. Prints p50s and the
ratio bundle / Autoware per spec and stage (below 1: the harness's glue is faster than the car's), and writes them as
JSON with ``--out``; ``--profile DIR`` writes torch.profiler tables of each timed call on the last frame.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from model_specs.centerpoint.autoware import AutowareSettings, node_config
from model_specs.centerpoint.autoware_decode import AutowareDecoder, decode_autoware
from model_specs.centerpoint.autoware_oracle import frames as frame_sources
from model_specs.centerpoint.autoware_oracle.bundle_side import y_axis_heads
from model_specs.centerpoint.autoware_oracle.oracle import AutowareOracle, node_frame
from model_specs.centerpoint.graphs import GraphedPreprocess
from model_specs.centerpoint.voxelize import Frame, UploadedSweeps, decorate, densify, frame, frame_moves, voxelize
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


def cold(call) -> float:
    """Milliseconds of one call (a first one: what capturing its graphs costs), the device synchronized around it."""
    return timed(call, 1, 0)[0]


def synchronizations(call) -> int:
    """The synchronizing operations torch reports in one call (``set_sync_debug_mode``; an event's wait is not one)."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            call()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def profile(calls: dict, folder: Path, name: str, rounds: int = 10) -> None:
    """torch.profiler tables of ``rounds`` warm calls of each: device kernels and host operators, by total time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    folder.mkdir(parents=True, exist_ok=True)
    for key, call in calls.items():
        call()
        torch.cuda.synchronize()
        with profiler(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(rounds):
                call()
            torch.cuda.synchronize()
        table = prof.key_averages()
        text = (f"{name} {key}: {rounds} calls\n== by device time\n" + table.table(sort_by="cuda_time_total", row_limit=30)
                + "\n== by host time\n" + table.table(sort_by="cpu_time_total", row_limit=30))
        (folder / f"{name}-{key}.txt").write_text(text)


def anchor(name: str, scans: Path | None, rounds: int, warmup: int, profile_dir: Path | None = None) -> dict:
    spec = _spec(name)
    cfg, settings, device = spec.params["model"], AutowareSettings(), torch.device("cuda")
    node = node_config(cfg)
    frames = frame_sources.synthetic(spec.make_samples, DEFAULT_SAMPLES, DEFAULT_SEED)
    if scans is not None:
        for scan, (path, columns) in frame_sources.REAL_SCANS.items():
            frames.append(frame_sources.real(scan, frame_sources.read_scan(scans / Path(path).name, columns), cfg))
    model = spec.build_model(None, DEFAULT_SEED).to(device)
    keys = ("pre_bundle", "pre_bundle_held", "pre_autoware", "post_bundle", "post_eager", "post_autoware")
    times: dict[str, list[float]] = {key: [] for key in keys}
    per_frame = []
    decoder = AutowareDecoder(node, settings)  # the pipeline's: one per pipeline, its graphs kept across frames
    with AutowareOracle(cfg, settings, device) as oracle:
        for item in frames:
            scene = item.scene
            uploaded, graphed = UploadedSweeps(), GraphedPreprocess(node, pad_to=node.max_voxels)
            used = scene.sweeps[: node.past_sweeps + 1]
            on_device = frame(scene.sweeps, node, device).raws  # every sweep up once, as the node holds them

            def pre_bundle(scene=scene, uploaded=uploaded, graphed=graphed) -> None:
                inputs = frame(scene.sweeps, node, device, uploaded)
                with graphed(inputs) as replayed:
                    assert replayed.padded is not None and replayed.padded.shape[0] == node.max_voxels

            def pre_bundle_held(used=used, raws=on_device, graphed=graphed) -> None:
                inputs = Frame(raws, torch.from_numpy(frame_moves(used)).to(device))
                with graphed(inputs) as replayed:
                    assert replayed.padded is not None

            held = node_frame(scene, node, device)
            voxels = voxelize(densify(scene.sweeps, node, device), node)
            heads = y_axis_heads(model, decorate(voxels, node), voxels.coors, node)
            result: dict = {"frame": item.name}
            if not per_frame:  # the first frame of a spec pays for the captures
                result["cold_pre_bundle_ms"] = cold(pre_bundle)
                result["cold_post_bundle_ms"] = cold(lambda heads=heads: decoder(heads))
            graphed_boxes, eager, node_boxes = decoder(heads), decode_autoware(heads, node, settings), oracle.decode(heads)
            result.update(boxes_bundle=len(graphed_boxes.scores), boxes_eager=len(eager.scores), boxes_autoware=len(node_boxes),
                          graphed_equals_eager=all(np.array_equal(getattr(graphed_boxes, f), getattr(eager, f))
                                                   for f in ("boxes", "scores", "labels", "candidate_cells", "candidate_scores")))
            calls = {"pre_bundle": pre_bundle, "pre_bundle_held": pre_bundle_held, "pre_autoware": lambda held=held: oracle.preprocess(held),
                     "post_bundle": lambda heads=heads: decoder(heads), "post_eager": lambda heads=heads: decode_autoware(heads, node, settings),
                     "post_autoware": lambda heads=heads: oracle.decode(heads)}
            result["synchronizations"] = {key: synchronizations(calls[key]) for key in ("pre_bundle", "post_bundle", "post_eager")}
            for key, call in calls.items():
                ms = timed(call, rounds, warmup)
                times[key] += ms
                result[key + "_p50_ms"] = statistics.median(ms)
            per_frame.append(result)
            log.info("%s %s", name, result)
        if profile_dir is not None:
            profile(calls, profile_dir, name)
    p50 = {key: statistics.median(values) for key, values in times.items()}
    return {"spec": name, "gpu": torch.cuda.get_device_name(device), "torch": torch.__version__, "rounds_per_frame": rounds,
            "frames": per_frame, **{f"{key}_p50_ms": value for key, value in p50.items()},
            "pre_ratio": p50["pre_bundle"] / p50["pre_autoware"], "pre_held_ratio": p50["pre_bundle_held"] / p50["pre_autoware"],
            "post_ratio": p50["post_bundle"] / p50["post_autoware"], "post_eager_ratio": p50["post_eager"] / p50["post_autoware"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", default="centerpoint-tiny,centerpoint")
    parser.add_argument("--scans", type=Path, default=None, help="folder holding the two real scans (frames.REAL_SCANS)")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="folder for torch.profiler tables of the last frame's calls")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = [anchor(name, args.scans, args.rounds, args.warmup, args.profile) for name in args.specs.split(",")]
    for r in results:
        print(f"{r['spec']} on {r['gpu']}: pre p50 bundle {r['pre_bundle_p50_ms']:.3f} ms (clouds on the device: "
              f"{r['pre_bundle_held_p50_ms']:.3f} ms) / Autoware {r['pre_autoware_p50_ms']:.3f} ms = {r['pre_ratio']:.2f}x "
              f"({r['pre_held_ratio']:.2f}x); post p50 bundle {r['post_bundle_p50_ms']:.3f} ms (eager {r['post_eager_p50_ms']:.3f} ms)"
              f" / Autoware {r['post_autoware_p50_ms']:.3f} ms = {r['post_ratio']:.2f}x ({r['post_eager_ratio']:.2f}x)")
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
