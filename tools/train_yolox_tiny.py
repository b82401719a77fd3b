"""Train yolox-tiny on the project's own synthetic camera frames and their ground-truth boxes.

Frames are built as the spec's samples are (``model_specs.yolox.data.camera_frames``: a synthetic scene
seen by four cameras, letterboxed as AWML and Autoware do), from seeds no spec sample uses; each frame
carries the 2D boxes of the objects it shows. The loss is YOLOX's three terms with mmdet's weights
(objectness BCE over every anchor point, class BCE with IoU-scaled targets and 5 x (1 - IoU^2) box loss over
the positives, all over the number of positives), with one simplification: instead of mmdet's SimOTA
(a cost of class, IoU and centre prior per pair, then a dynamic top-k of anchors per object) an anchor
point is positive for an object when it lies inside the box and within 2.5 strides of its centre
(SimOTA's centre prior alone), an anchor claimed by several objects goes to the smallest, and an object
without one gets the finest level's point nearest its centre. No L1 term, no mosaic or mixup: a random
horizontal flip only. Runs on the CPU in minutes; reproducible from ``--seed``:

    python tools/train_yolox_tiny.py --out model_specs/yolox/weights/yolox-tiny.pt
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_specs.bundled_weights import write_weights  # noqa: E402
from model_specs.yolox.config import TINY  # noqa: E402
from model_specs.yolox.data import FrameTruth, camera_frames, letterbox_scale, network_input  # noqa: E402
from model_specs.yolox.metric import coco_ap  # noqa: E402
from model_specs.yolox.model import calibrated, seeded  # noqa: E402
from model_specs.yolox.postprocess import box_iou, grid, mmdet_decode  # noqa: E402

log = logging.getLogger("train_yolox_tiny")
FRAME_SEED_BASE = 30_000_000  # spec samples use seed * 1000 + i, far below; calibration-tiny trains from 20_000_000
CAMERAS = 4  # cameras per scene, 90 degrees apart: every frame of a scene is a training frame
HELD_OUT = 32  # scenes kept out of training, to report the AP it reached
CENTRE_RADIUS = 2.5  # SimOTA's centre prior, in strides
PRIOR_PROB = 0.01  # mmdet's YOLOXHead initialises class and objectness biases to this probability
BOX_WEIGHT = 5.0  # mmdet's loss_bbox weight (IoULoss, mode "square")
MAX_LOG_SIZE = 8.0  # box size logits are clamped while training: exp() of an early outlier overflows


def frames(scenes: int, start: int) -> tuple[torch.Tensor, list[FrameTruth]]:
    """Letterboxed uint8 images [scenes x CAMERAS, 3, h, w] and each one's ground truth in network pixels."""
    images, truths = [], []
    for i in range(scenes):
        sample = camera_frames(start + i, TINY, CAMERAS)
        scale = letterbox_scale(sample.frames.shape[1:3], TINY.input_size)
        images.append(torch.from_numpy(network_input(sample, TINY)).to(torch.uint8))  # letterboxed values are 8-bit
        truths += [FrameTruth(t.boxes * scale, t.labels) for t in sample.truth]
    return torch.cat(images), truths


def assign(boxes: torch.Tensor, points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Each anchor point's object index, -1 for background (see the module docstring)."""
    owner = torch.full((len(points),), -1, dtype=torch.long)
    if not len(boxes):
        return owner
    anchor = points * strides  # mmdet's priors: the cell's top-left corner, in pixels
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = ((anchor[:, None] > boxes[None, :, :2]) & (anchor[:, None] < boxes[None, :, 2:])).all(-1)
    near = ((anchor[:, None] - centre[None]).abs() < CENTRE_RADIUS * strides[:, :, None]).all(-1)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(-1)
    cost = torch.where(inside & near, area[None].expand(len(points), -1), torch.full((), math.inf))
    best, index = cost.min(1)
    owner[torch.isfinite(best)] = index[torch.isfinite(best)]
    finest = (strides[:, 0] == strides.min()).nonzero()[:, 0]
    for k in range(len(boxes)):
        if not (owner == k).any():
            owner[finest[((anchor[finest] - centre[k]) ** 2).sum(-1).argmin()]] = k
    return owner


def loss(levels, truths: list[FrameTruth], points: torch.Tensor, strides: torch.Tensor, classes: int) -> torch.Tensor:
    cls = torch.cat([c.flatten(2) for c, _, _ in levels], 2).permute(0, 2, 1)  # [B, A, C] logits
    reg = torch.cat([r.flatten(2) for _, r, _ in levels], 2).permute(0, 2, 1)  # [B, A, 4]
    obj = torch.cat([o.flatten(2) for _, _, o in levels], 2).permute(0, 2, 1)[..., 0]  # [B, A]
    centre = (reg[..., :2] + points) * strides
    size = reg[..., 2:].clamp(max=MAX_LOG_SIZE).exp() * strides
    pred = torch.cat([centre - size / 2, centre + size / 2], -1)
    obj_target = torch.zeros_like(obj)
    cls_terms, box_terms, positives = [], [], 0
    for b, truth in enumerate(truths):
        boxes, labels = torch.from_numpy(truth.boxes).float(), torch.from_numpy(truth.labels)
        owner = assign(boxes, points, strides)
        fg = owner >= 0
        if not fg.any():
            continue
        iou = box_iou(pred[b, fg], boxes[owner[fg]]).diagonal()
        obj_target[b, fg] = 1.0
        cls_terms.append(F.binary_cross_entropy_with_logits(cls[b, fg], F.one_hot(labels[owner[fg]], classes).float() * iou.detach()[:, None],
                                                            reduction="sum"))
        box_terms.append((1.0 - iou.pow(2)).sum())
        positives += int(fg.sum())
    n = max(positives, 1)
    obj_loss = F.binary_cross_entropy_with_logits(obj, obj_target, reduction="sum")
    return (obj_loss + sum(cls_terms) + BOX_WEIGHT * sum(box_terms)) / n


def held_out_ap(model, images: torch.Tensor, truths: list[FrameTruth], scale: float, batch: int) -> tuple[float, float]:
    """(AP@0.5, AP@[.5:.95]) of the mmdet-decoded exported output against the ground truth, in frame pixels."""
    model.eval()
    with torch.no_grad():
        outputs = torch.cat([model(images[i:i + batch].float()) for i in range(0, len(images), batch)]).numpy()
    found = [mmdet_decode(out, TINY, scale) for out in outputs]
    result = coco_ap(found, [FrameTruth(t.boxes / scale, t.labels) for t in truths], TINY.classes)
    return result.details["AP@0.5"], result.value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=256)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    base = FRAME_SEED_BASE + args.seed * (args.scenes + HELD_OUT)
    images, truths = frames(args.scenes, base)
    held_images, held_truths = frames(HELD_OUT, base + args.scenes)
    scale = letterbox_scale(TINY.camera_size, TINY.input_size)
    log.info("%d + %d frames, %d + %d boxes in %.0f s", len(images), len(held_images), sum(len(t.labels) for t in truths),
             sum(len(t.labels) for t in held_truths), time.perf_counter() - start)
    seeded_ap = held_out_ap(calibrated(TINY, args.seed), held_images, held_truths, scale, args.batch)  # what the spec had before
    model = seeded(TINY, args.seed)
    with torch.no_grad():
        prior = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)
        for conv in (*model.bbox_head.multi_level_conv_cls, *model.bbox_head.multi_level_conv_obj):
            conv.bias.fill_(prior)
    model.train()
    points, strides = grid(TINY, TINY.input_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=0.2)
    generator = torch.Generator().manual_seed(args.seed)
    history = []
    for step in range(args.steps):
        index = torch.randint(len(images), (args.batch,), generator=generator)
        flip = torch.rand(args.batch, generator=generator) < 0.5
        batch = torch.where(flip.view(-1, 1, 1, 1), images[index].flip(-1), images[index]).float()
        width = TINY.input_size[1]
        batch_truths = []
        for k, i in enumerate(index.tolist()):
            t = truths[i]
            boxes = np.stack([width - t.boxes[:, 2], t.boxes[:, 1], width - t.boxes[:, 0], t.boxes[:, 3]], 1) if flip[k] else t.boxes
            batch_truths.append(FrameTruth(boxes.reshape(-1, 4).astype(np.float32), t.labels))
        value = loss(model.head_outputs(batch), batch_truths, points, strides, len(TINY.classes))
        optimizer.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        schedule.step()
        history.append(float(value.detach()))
        if step % 50 == 0 or step == args.steps - 1:
            log.info("step %d loss %.4f (%.0f s)", step, np.mean(history[-50:]), time.perf_counter() - start)
    ap50, ap = held_out_ap(model, held_images, held_truths, scale, args.batch)
    log.info("held-out AP@0.5 %.3f AP@[.5:.95] %.3f (seeded: %.3f, %.3f)", ap50, ap, *seeded_ap)
    meta = {"trained_on": f"{len(images)} synthetic {TINY.camera_size[1]}x{TINY.camera_size[0]} camera frames ({args.scenes} scenes x "
                          f"{CAMERAS} cameras, seeds from {base}) with their ground-truth 2D boxes, random horizontal flip",
            "loss": "YOLOX (objectness BCE, IoU-scaled class BCE, 5 x (1 - IoU^2)) with a centre-prior assignment instead of SimOTA",
            "steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed, "device": "cpu",
            "held_out": f"{len(held_images)} frames ({HELD_OUT} scenes x {CAMERAS} cameras, seeds from {base + args.scenes}), mmdet decoder, COCOeval",
            "held_out_ap50": round(ap50, 4), "held_out_ap": round(ap, 4),
            "seeded_held_out_ap50": round(seeded_ap[0], 4), "seeded_held_out_ap": round(seeded_ap[1], 4),
            "final_loss": float(np.mean(history[-50:]))}
    meta = write_weights(model, args.out, meta, start)
    log.info("wrote %s: %s", args.out, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
