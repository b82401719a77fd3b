"""Record Autoware's own pre- and post-processing on the frames the bundle pipeline is checked on (needs a CUDA GPU,
nvcc and ``$AUTOWARE_ROOT``; see docs/autoware-oracle.md).

    AUTOWARE_ROOT=/path/to/autoware python tools/record_autoware.py --scans DIR --out tests/data/autoware

``--scans`` holds the two real scans by their file names in open-mmlab/mmdetection3d (``000008.bin`` and the
nuScenes ``...LIDAR_TOP...pcd.bin``). For each frame (the spec's seeded synthetic samples, then the scans) it
keeps what the node computed (voxels, encoder input, boxes), the head outputs both decoders get (the bundled
trained tiny weights, PyTorch on the CPU) and the differences it measured against the bundle pipeline then.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import platform
from pathlib import Path

import numpy as np
import torch

from model_specs.centerpoint.autoware import AutowareSettings, node_config
from model_specs.centerpoint.autoware_decode import decode_autoware
from model_specs.centerpoint.autoware_oracle import build, frames, recording
from model_specs.centerpoint.autoware_oracle.bundle_side import bundle_voxels, y_axis_heads
from model_specs.centerpoint.autoware_oracle.compare import compare_boxes, compare_voxels
from model_specs.centerpoint.autoware_oracle.oracle import CLOUD_CAPACITY, AutowareOracle, node_frame
from model_specs.centerpoint.spec import TINY_SPEC
from pytest_awml.options import DEFAULT_SAMPLES, DEFAULT_SEED

log = logging.getLogger("record_autoware")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=Path, required=True, help="folder holding the two real scans")
    parser.add_argument("--out", type=Path, default=Path("tests/data/autoware"))
    parser.add_argument("--autoware-root", default=os.environ.get(build.ROOT_VARIABLE))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    spec, cfg, settings = TINY_SPEC, TINY_SPEC.params["model"], AutowareSettings()
    node = node_config(cfg)
    sources = frames.synthetic(spec.make_samples, DEFAULT_SAMPLES, DEFAULT_SEED)
    for name, (path, columns) in frames.REAL_SCANS.items():
        points = frames.crop(frames.read_scan(args.scans / Path(path).name, columns), cfg)
        sources.append(frames.real(name, points, cfg))
    model = spec.build_model(None, DEFAULT_SEED)
    root = build.package_root(args.autoware_root).parents[1]
    device = torch.device("cuda")
    meta = {"spec": spec.name, "synthetic": {"count": DEFAULT_SAMPLES, "seed": DEFAULT_SEED}, "cloud_capacity": CLOUD_CAPACITY,
            "shuffle_offset": 0, "gpu": torch.cuda.get_device_name(device), "torch": torch.__version__, "host": platform.node(),
            "autoware_commits": _commits(root), "frames": []}
    arrays: dict[str, np.ndarray] = {}
    with AutowareOracle(cfg, settings, device, args.autoware_root) as oracle:
        meta["autoware_grid"] = list(oracle.grid)
        for frame in sources:
            ours, cells, features, coors = bundle_voxels(frame.scene, cfg)
            heads = {k: v.numpy() for k, v in y_axis_heads(model, features, coors, node).items()}
            oracle.preprocess(node_frame(frame.scene, node, device))
            theirs = oracle.voxels()
            padding = float(np.abs(theirs.features[np.arange(32)[None, :] >= theirs.num_points[:, None]]).max(initial=0.0))
            boxes = oracle.decode({k: torch.from_numpy(v).to(device) for k, v in heads.items()})
            decoded = decode_autoware(heads, node, settings)
            voxel_diff = compare_voxels(ours, theirs, cells, cfg.grid_size[0])
            box_diff = compare_boxes(decoded.labels, decoded.scores, decoded.boxes, boxes)
            entry = {"name": frame.name, "real": frame.real, "points": int(sum(len(s.points) for s in frame.scene.sweeps[: node.past_sweeps + 1])),
                     "autoware_padding_max_abs": padding, "voxels": voxel_diff.as_dict(), "boxes": box_diff.as_dict()}
            if not frame.real:
                entry["digest"] = frames.digest(frame.scene)
            meta["frames"].append(entry)
            log.info("%s: voxels %s; boxes %s", frame.name, voxel_diff, box_diff)
            arrays.update(recording.pack(frame.name, theirs, heads, boxes, frame.scene.sweeps[0].points if frame.real else None))
    for path in recording.save(args.out, spec.name, meta, arrays):
        log.info("wrote %s (%d bytes)", path, path.stat().st_size)


def _commits(root: Path) -> dict:
    """The checkout's COMMITS.txt (which commit each file came from), with its digest."""
    text = (root / "COMMITS.txt").read_text() if (root / "COMMITS.txt").is_file() else ""
    return {"commits_txt_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "files": [line for line in text.splitlines() if line[:1].isalpha() and len(line.split()) >= 3 and len(line.split()[-1]) == 40]}


if __name__ == "__main__":
    main()
