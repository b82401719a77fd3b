"""Train mobilenetv2-car-tiny and mobilenetv2-pedestrian-tiny on the project's own synthetic traffic-light frames, so
that their top-1 accuracy judges something.

Frames are built as the spec's samples are (``model_specs.mobilenetv2.data.traffic_light_frame``: lights drawn with
their class's lit lamp), from seeds no spec sample uses, and cropped and normalised as AWML's pipeline does
(``crops``); the loss is mmpretrain's LinearClsHead's, plain cross-entropy. No flip augmentation: a mirrored car
light lights another lamp. A car light's arrows are drawn under its box, outside the crop, so the red classes that
differ only by their arrows cannot be told apart and the car classifier's accuracy tops out well below 1 (chance is
1/11). Runs on the CPU in minutes; reproducible from ``--seed``:

    python tools/train_mobilenetv2_tiny.py --model car --out model_specs/mobilenetv2/weights/mobilenetv2-car-tiny.pt
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
from model_specs.mobilenetv2.config import CAR_TINY, PEDESTRIAN_TINY  # noqa: E402
from model_specs.mobilenetv2.data import crops, traffic_light_frame  # noqa: E402
from model_specs.mobilenetv2.model import seeded  # noqa: E402

log = logging.getLogger("train_mobilenetv2_tiny")
FRAME_SEED_BASE = 40_000_000  # spec samples use seed * 1000 + i, far below
HELD_OUT = 32  # frames kept out of training, to report the accuracy it reached
CONFIGS = {"car": CAR_TINY, "pedestrian": PEDESTRIAN_TINY}


def lights(count: int, start: int, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    frames = [traffic_light_frame(start + i, cfg.classes) for i in range(count)]
    return torch.cat([crops(f, cfg) for f in frames]), torch.from_numpy(np.concatenate([f.labels for f in frames]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(CONFIGS), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: a shared CI machine wastes more on spinning)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    cfg = CONFIGS[args.model]
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    base = FRAME_SEED_BASE + args.seed * (args.frames + HELD_OUT)
    x, y = lights(args.frames, base, cfg)
    x_held, y_held = lights(HELD_OUT, base + args.frames, cfg)
    log.info("%d + %d lights in %.0f s", len(x), len(x_held), time.perf_counter() - start)
    model = seeded(cfg, args.seed).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * ((len(x) + args.batch - 1) // args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    generator = torch.Generator().manual_seed(args.seed)
    accuracy = 0.0
    for epoch in range(args.epochs):
        order = torch.randperm(len(x), generator=generator)
        losses = []
        for i in range(0, len(x), args.batch):
            index = order[i:i + args.batch]
            loss = torch.nn.functional.cross_entropy(model.logits(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
        model.eval()
        with torch.no_grad():
            accuracy = float((model.logits(x_held).argmax(1) == y_held).float().mean())
        model.train()
        log.info("epoch %d loss %.4f held-out accuracy %.3f", epoch, np.mean(losses), accuracy)
    meta = {"trained_on": f"{len(x)} lights of {args.frames} synthetic frames, cropped to {cfg.image_size} x {cfg.image_size} "
                          f"as AWML's pipeline does (seeds from {base})",
            "loss": "cross-entropy", "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seed": args.seed, "steps": steps,
            "held_out_accuracy": round(accuracy, 4), "chance": round(1 / len(cfg.classes), 4)}
    meta = write_weights(model, args.out, meta, start)
    log.info("wrote %s: %s", args.out, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
