"""Train calibration-tiny on the project's own synthetic frames: calibrated and miscalibrated in turn.

Frames are built as the spec's samples are (AWML's transform on a synthetic camera + lidar scene, AWML's
miscalibration magnitudes), from seeds no spec sample uses; the loss is plain cross-entropy over the two
classes (what mmpretrain's LinearClsHead trains with). Runs on the CPU in minutes; reproducible from ``--seed``:

    python tools/train_calibration_tiny.py --out model_specs/calibration/weights/calibration-tiny.pt
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
from model_specs.calibration.config import TINY  # noqa: E402
from model_specs.calibration.data import calibration_frame, fuse  # noqa: E402
from model_specs.calibration.model import seeded  # noqa: E402
from model_specs.calibration.spec import TINY_SPEC  # noqa: E402

log = logging.getLogger("train_calibration_tiny")
FRAME_SEED_BASE = 20_000_000  # spec samples use seed * 1000 + i, far below
HELD_OUT = 64  # frames kept out of training, to report the accuracy it reached


def frames(count: int, start: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    items = [calibration_frame(start + i, height, width, calibrated=i % 2 == 0) for i in range(count)]
    return torch.from_numpy(np.stack([fuse(f, TINY) for f in items])), torch.tensor([f.label for f in items])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=768)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)
    height, width = (d.min for d in TINY_SPEC.components[0].inputs[0].shape[2:])
    start = time.perf_counter()
    base = FRAME_SEED_BASE + args.seed * (args.frames + HELD_OUT)
    x, y = frames(args.frames, base, height, width)
    x_held, y_held = frames(HELD_OUT, base + args.frames, height, width)
    log.info("%d + %d frames of %dx%d in %.0f s", len(x), len(x_held), height, width, time.perf_counter() - start)
    model = seeded(TINY, args.seed).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * ((len(x) + args.batch - 1) // args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        order = torch.randperm(len(x), generator=generator)
        flips = torch.rand(len(x), generator=generator) < 0.5
        losses = []
        for i in range(0, len(x), args.batch):
            index = order[i:i + args.batch]
            batch = x[index]
            batch = torch.where(flips[index].view(-1, 1, 1, 1), batch.flip(-1), batch)  # a mirrored scene is as (mis)calibrated
            loss = torch.nn.functional.cross_entropy(model(batch), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
        model.eval()
        with torch.no_grad():
            accuracy = float((model(x_held).argmax(1) == y_held).float().mean())
        model.train()
        log.info("epoch %d loss %.4f held-out accuracy %.3f", epoch, np.mean(losses), accuracy)
    meta = {"trained_on": f"{args.frames} synthetic {height}x{width} camera + lidar frames, half miscalibrated as AWML's "
                          f"transform does (seeds from {base})", "loss": "cross-entropy", "epochs": args.epochs, "batch": args.batch,
            "lr": args.lr, "seed": args.seed, "steps": steps, "held_out_accuracy": accuracy}
    meta = write_weights(model, args.out, meta, start)
    log.info("wrote %s: %s", args.out, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
