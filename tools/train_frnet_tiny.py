"""Train frnet-tiny on the project's own synthetic labelled scans, so that its mIoU judges something.

Scans are built as the spec's samples are (``model_specs.frnet.data.lidar_scan``: the centerpoint scene's ray-cast
sweep on FRNet's sensor, each point labelled by the box it lies on or as drivable surface), from seeds no spec
sample uses, through AWML's pre-processing (RangeInterpolation, frustum grouping). The loss is FRHead's: cross-entropy
on the scan's own points (the interpolated ones carry no label), weighted by inverse square-root class frequency
because nine points in ten are ground. The auxiliary heads (training only, never deployed) keep their seeded weights.
BatchNorm statistics are re-estimated over the training scans at the end (FRNet's momentum 0.01 would otherwise
still remember the seeded ones). Runs on the CPU in minutes; reproducible from ``--seed``:

    python tools/train_frnet_tiny.py --out model_specs/frnet/weights/frnet-tiny.pt
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_specs.bundled_weights import write_weights  # noqa: E402
from model_specs.frnet.config import TINY  # noqa: E402
from model_specs.frnet.data import TINY_AZIMUTH_STEPS, lidar_scan, network_inputs  # noqa: E402
from model_specs.frnet.metric import miou  # noqa: E402
from model_specs.frnet.model import seeded  # noqa: E402

log = logging.getLogger("train_frnet_tiny")
SCAN_SEED_BASE = 30_000_000  # spec samples use seed * 1000 + i, far below
HELD_OUT = 8  # scans kept out of training, to report the mIoU it reached


def labels_of(model: torch.nn.Module, scans) -> list:
    model.eval()
    with torch.no_grad():
        return [(None, model.logits(**network_inputs(s, TINY))[: len(s.points)].argmax(1).numpy()) for s in scans]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scans", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: a shared CI machine wastes more on spinning)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    azimuth_steps = TINY_AZIMUTH_STEPS
    start = time.perf_counter()
    base = SCAN_SEED_BASE + args.seed * (args.scans + HELD_OUT)
    scans = [lidar_scan(base + i, TINY, azimuth_steps) for i in range(args.scans)]
    held = [lidar_scan(base + args.scans + i, TINY, azimuth_steps) for i in range(HELD_OUT)]
    inputs = [network_inputs(s, TINY) for s in scans]
    counts = np.bincount(np.concatenate([s.labels for s in scans]), minlength=len(TINY.classes)).astype(np.float64)
    weight = torch.tensor(np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1) / counts.sum()), 0.0), dtype=torch.float32)
    weight = weight / weight[counts > 0].mean()
    model = seeded(TINY, args.seed).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * len(scans)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        losses = []
        for i in torch.randperm(len(scans), generator=generator).tolist():
            logits = model.logits(**inputs[i])[: len(scans[i].points)]
            loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(scans[i].labels), weight=weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if len(losses) % 40 == 0:
                log.info("epoch %d step %d loss %.4f (%.0f s)", epoch, len(losses), np.mean(losses[-40:]), time.perf_counter() - start)
        score = miou(labels_of(model, held), held)
        model.train()
        log.info("epoch %d loss %.4f held-out mIoU %.3f (%.0f s)", epoch, np.mean(losses), score.value, time.perf_counter() - start)
    for module in model.modules():  # BatchNorm statistics of the trained weights: a cumulative average over the scans
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        for item in inputs:
            model.logits(**item)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = TINY.norm[1]
    score = miou(labels_of(model, held), held)
    log.info("after BatchNorm re-estimation: held-out mIoU %.3f %s", score.value, dict(score.details))
    meta = {"trained_on": f"{args.scans} synthetic {TINY.lidar_h}-ring labelled scans ({azimuth_steps} azimuth steps; seeds from {base})",
            "loss": "cross-entropy on the scan's points, inverse square-root class frequency weights", "epochs": args.epochs,
            "lr": args.lr, "seed": args.seed, "steps": steps, "held_out_miou": round(score.value, 4),
            "held_out_iou": {k: round(v, 4) for k, v in score.details.items()}}
    meta = write_weights(model, args.out, meta, start)
    log.info("wrote %s: %s", args.out, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
