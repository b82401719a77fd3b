"""Train centerpoint-tiny on the project's own synthetic scenes, with mmdet3d's own loss.

The training runs mmdet3d's CenterPoint built from ``tests/data/configs/awml/centerpoint_tiny.py``
(the same model the recorded cross-check proves equal to this project's), so the targets (Gaussian
heatmaps, regression boxes) and the losses (Gaussian focal + L1) are mmdet3d's, not a re-implementation.
Its state_dict loads strictly into the project's model. Needs mmdet3d (the mmdet3d extra, or the device
recipe in tests/data/mmdet3d/README.md); reproducible from ``--seed``:

    python tools/train_tiny.py --out model_specs/centerpoint/weights/centerpoint-tiny.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_specs.bundled_weights import write_weights  # noqa: E402
from model_specs.centerpoint.mmconfig import read_config, to_centerpoint  # noqa: E402
from model_specs.centerpoint.mmdet3d_peer import build_peer, peer_model_dict  # noqa: E402
from model_specs.centerpoint.scene import make_scene  # noqa: E402
from model_specs.centerpoint.spec import TINY_SPEC  # noqa: E402
from model_specs.centerpoint.voxelize import densify  # noqa: E402

log = logging.getLogger("train_tiny")
CONFIG = ROOT / "tests" / "data" / "configs" / "awml" / "centerpoint_tiny.py"
# Training scenes are drawn from seeds no test or spec sample uses (those are seed * 1000 + i < 10**6).
SCENE_SEED_BASE = 10_000_000


def augment(points: torch.Tensor, boxes: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """A global rotation about z and a random flip across x: points, box centres, yaws and velocities alike."""
    angle = rng.uniform(-math.pi, math.pi)
    c, s = math.cos(angle), math.sin(angle)
    flip = -1.0 if rng.random() < 0.5 else 1.0
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float32) @ torch.tensor([[1.0, 0.0], [0.0, flip]])
    points = points.clone()
    points[:, :2] = points[:, :2] @ rot.T
    boxes = boxes.copy()
    r = rot.numpy().astype(np.float64)
    boxes[:, :2] = boxes[:, :2] @ r.T
    boxes[:, 7:9] = boxes[:, 7:9] @ r.T
    boxes[:, 6] = np.arctan2(np.sin(flip * boxes[:, 6] + angle), np.cos(flip * boxes[:, 6] + angle))
    return points, boxes


def sample(scene, cfg, rng):
    from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes
    from mmengine.structures import InstanceData

    points, boxes = augment(densify(scene.sweeps, cfg), scene.boxes.astype(np.float64), rng)
    bottom = boxes.copy()
    bottom[:, 2] -= bottom[:, 5] / 2  # LiDARInstance3DBoxes hold the bottom centre
    instances = InstanceData()
    instances.bboxes_3d = LiDARInstance3DBoxes(torch.from_numpy(bottom).float(), box_dim=9)
    instances.labels_3d = torch.from_numpy(scene.labels).long()
    data_sample = Det3DDataSample(metainfo=dict(box_type_3d=LiDARInstance3DBoxes))
    data_sample.gt_instances_3d = instances
    return points, data_sample


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    config = read_config(CONFIG)
    cfg = to_centerpoint(config, TINY_SPEC.params["model"])
    scene_cfg = dataclasses.replace(TINY_SPEC.params["scene"], past_sweeps=cfg.past_sweeps, sweep_interval_s=cfg.sweep_interval_s)
    start = time.perf_counter()
    scenes = [make_scene(SCENE_SEED_BASE + args.seed * args.scenes + i, scene_cfg) for i in range(args.scenes)]
    log.info("%d scenes in %.1f s", len(scenes), time.perf_counter() - start)
    section = peer_model_dict(config)
    # mmdet3d's own focal loss reduced to a mean (its default): AWML's class-wise variant with reduction
    # "none" lives in AWML's CenterHead subclass, which mmdet3d's CenterHead does not reduce.
    section["pts_bbox_head"]["loss_cls"] = dict(type="mmdet.GaussianFocalLoss", reduction="mean", loss_weight=1.0)
    model = build_peer(config, args.seed, randomise_norms=False, model=section).to(args.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=0.3)
    start, history = time.perf_counter(), []
    for step in range(args.steps):
        batch = [sample(scenes[int(i)], cfg, rng) for i in rng.integers(0, len(scenes), args.batch)]
        data = {"inputs": {"points": [p.to(args.device) for p, _ in batch]}, "data_samples": [s for _, s in batch]}
        processed = model.data_preprocessor(data, training=True)
        losses = model(**processed, mode="loss")
        loss = sum(v.sum() for k, v in losses.items() if "loss" in k)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # AWML's clip_grad max_norm
        optimizer.step()
        schedule.step()
        history.append(float(loss.detach()))
        if step % 100 == 0 or step == args.steps - 1:
            log.info("step %d loss %.4f (%.0f s)", step, np.mean(history[-100:]), time.perf_counter() - start)
    meta = {"trained_on": f"{args.scenes} synthetic ray-cast scenes (seeds from {SCENE_SEED_BASE + args.seed * args.scenes}), "
                          "current + 1 past sweep, random rotation and flip",
            "loss": "mmdet3d CenterHead (Gaussian focal + L1), built from " + str(CONFIG.relative_to(ROOT)),
            "steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed, "device": args.device,
            "final_loss": float(np.mean(history[-100:]))}
    meta = write_weights(model, args.out, meta, start)
    log.info("wrote %s: %s", args.out, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
