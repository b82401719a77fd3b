"""Train streampetr-tiny on the project's own synthetic drives, so that its mAP over a sequence judges something.

Drives are built as the spec's frames are (``model_specs.streampetr.data.sequence``: a seeded scene seen by the tiny
config's two cameras while the ego vehicle drives), from seeds no spec sample or frame uses. Training streams as
StreamPETR's does: the clip's frames in order, each frame's memory the previous frame's (detached), the first frame's
AWML's initial memory. The loss is the head's kind (AWML's configs: focal classification, L1 on the box codes with
``code_weights``, every decoder layer supervised, queries assigned to the objects by Hungarian matching through
scipy) on the objects in ``pc_range`` whose centre a camera sees. BatchNorm statistics stay frozen (AWML's
``norm_eval``). Runs on one CPU thread in minutes; reproducible from ``--seed``:

    python tools/train_streampetr_tiny.py --out model_specs/streampetr/weights/streampetr-tiny.pt
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_specs.bundled_weights import write_weights  # noqa: E402
from model_specs.streampetr import data  # noqa: E402
from model_specs.streampetr.boxes import metric  # noqa: E402
from model_specs.streampetr.config import TINY  # noqa: E402
from model_specs.streampetr.head import ExtractImgFeat, PositionEmbedding, PtsHeadMemory  # noqa: E402
from model_specs.streampetr.spec import HOST, MEMORY, TINY_SPEC, between, initial_memory  # noqa: E402
from model_specs.streampetr.weights import seeded  # noqa: E402
from pytest_awml.sequence import roll  # noqa: E402

log = logging.getLogger("train_streampetr_tiny")
SCENE_SEED_BASE = 40_000_000  # spec samples and frames use seed * 1000 + i, far below
HELD_OUT = 3  # drives kept out of training, to report the mAP it reached
FOCAL_GAMMA, FOCAL_ALPHA = 2.0, 0.25  # AWML's loss_cls (FocalLoss)
CLS_WEIGHT, BOX_WEIGHT = 2.0, 0.25  # AWML's loss weights: loss_cls 2.0, loss_bbox 0.25
MIN_DEPTH_M = 1.0


def visible_truth(frame: data.Frame) -> tuple[torch.Tensor, torch.Tensor]:
    """The frame's objects in ``pc_range`` whose centre lies in a camera's picture: (codes [G, 10], labels [G])."""
    boxes, labels = frame.gt_boxes.astype(np.float64), frame.gt_labels
    r = TINY.pc_range
    keep = (boxes[:, 0] >= r[0]) & (boxes[:, 0] < r[3]) & (boxes[:, 1] >= r[1]) & (boxes[:, 1] < r[4])
    seen = np.zeros(len(boxes), bool)
    for camera in data.cameras(TINY):
        points = np.c_[boxes[:, :3], np.ones(len(boxes))] @ camera.lidar_to_camera().T
        uvw = points[:, :3] @ camera.intrinsics().T
        depth = points[:, 2]
        u, v = uvw[:, 0] / np.maximum(depth, 1e-6), uvw[:, 1] / np.maximum(depth, 1e-6)
        seen |= (depth > MIN_DEPTH_M) & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    b = boxes[keep & seen]
    codes = np.c_[b[:, :3], np.log(b[:, 3:6]), np.sin(b[:, 6]), np.cos(b[:, 6]), b[:, 7:9]]
    return torch.tensor(codes, dtype=torch.float32), torch.tensor(labels[keep & seen], dtype=torch.int64)


def layer_loss(logits: torch.Tensor, codes: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One decoder layer: logits [Q, C], codes [Q, 10] against truth [G, 10], labels [G]."""
    target = torch.zeros_like(logits)
    weights = torch.tensor(TINY.code_weights)
    box = logits.new_zeros(())
    if len(labels):
        with torch.no_grad():
            cost = -CLS_WEIGHT * logits.sigmoid()[:, labels] + BOX_WEIGHT * torch.cdist(codes[:, :3], truth[:, :3], p=1)
            rows, cols = linear_sum_assignment(cost.numpy())
        rows, cols = torch.as_tensor(rows), torch.as_tensor(cols)
        target[rows, labels[cols]] = 1.0
        box = ((codes[rows] - truth[cols]).abs() * weights).sum() / len(labels)
    p = logits.sigmoid()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    focal = bce * ((1 - p) * target + p * (1 - target)) ** FOCAL_GAMMA * (FOCAL_ALPHA * target + (1 - FOCAL_ALPHA) * (1 - target))
    return CLS_WEIGHT * focal.sum() / max(len(labels), 1) + BOX_WEIGHT * box


def clip_losses(sections, frames: list[data.Frame]) -> Iterator[torch.Tensor]:
    """Each frame's loss in turn, the memory carried detached from frame to frame as the spec's host does: the next
    frame runs after the caller's update on this one."""
    queries, layers = TINY.num_query + TINY.num_propagated, TINY.num_layers
    memory = initial_memory(sections[2].mod, frames[0])
    advance = between(TINY)
    for k, frame in enumerate(frames):
        feats = sections[0](torch.from_numpy(frame.img))
        pos_embed, cone = sections[1](*(torch.from_numpy(v) for v in (frame.img_metas_pad, frame.intrinsics, frame.img2lidar)))
        out = sections[2](feats, pos_embed, cone, torch.from_numpy(frame.ego_pose), torch.from_numpy(frame.ego_pose_inv),
                          *(torch.from_numpy(v) for v in memory.values()))
        logits = out[0][0].T.reshape(layers, queries, -1)
        codes = out[1][0].T.reshape(layers, queries, -1)
        truth, labels = visible_truth(frame)
        yield sum(layer_loss(logits[i], codes[i], truth, labels) for i in range(layers))
        if k + 1 < len(frames):
            carried = {f"pre_memory_{m}": o.detach().numpy() for m, o in zip(MEMORY, out[2:7], strict=True)}
            memory = dict(advance(carried, {HOST: {"timestamp": frame.timestamp}}, {HOST: {"timestamp": frames[k + 1].timestamp}}))


def sequence_map(model, seed: int) -> float:
    """The spec's metric over its own sequence of frames at ``seed`` (what test_sequence_metric scores), PyTorch."""
    sequence = TINY_SPEC.sequence
    frames = sequence.make_frames(model, sequence.frames, seed)
    modules = {c.name: (c, c.extract(model)) for c in TINY_SPEC.components}

    def run(name, inputs):
        component, module = modules[name]
        with torch.no_grad():
            out = module(*(torch.as_tensor(np.asarray(inputs[i])) for i in component.input_names))
        out = out if isinstance(out, tuple) else (out,)
        return {n: o.numpy() for n, o in zip(component.output_names, out, strict=True)}

    return metric(TINY)(roll(sequence, frames, run), frames).value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drives", type=int, default=400)
    parser.add_argument("--clip", type=int, default=3, help="frames per drive, streamed with the memory carried")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--budget-s", type=float, default=1080.0, help="stop training after this many seconds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: a shared CI machine wastes more on spinning)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    base = SCENE_SEED_BASE + args.seed * (args.drives + HELD_OUT)
    model = seeded(TINY, args.seed)
    model.train()
    for module in model.modules():  # AWML's norm_eval: BatchNorm statistics frozen
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    sections = (ExtractImgFeat(model), PositionEmbedding(model), PtsHeadMemory(model))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01)
    steps = args.drives * args.clip
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.05)
    done, losses = 0, []
    for drive in range(args.drives):
        if time.perf_counter() - start > args.budget_s:
            break
        frames = data.sequence(TINY, args.clip, base + drive)
        for loss in clip_losses(sections, frames):
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 35.0)  # AWML's optim_wrapper clip_grad
            optimizer.step()
            schedule.step()
            done += 1
            losses.append(float(loss.detach()))
        if drive % 20 == 0:
            log.info("drive %d step %d loss %.4f (%.0f s)", drive, done, np.mean(losses[-60:]), time.perf_counter() - start)
    model.eval()
    held = [sequence_map(model, base + args.drives + i) for i in range(HELD_OUT)]
    default = sequence_map(model, 0)
    log.info("held-out sequence mAP %s; the spec's default frames (seed 0) %.4f", [round(h, 4) for h in held], default)
    meta = {"trained_on": f"{done // args.clip} synthetic drives of {args.clip} frames ({TINY.num_cameras} cameras; seeds from {base})",
            "loss": "focal classification + L1 box codes (AWML's weights), every decoder layer, Hungarian assignment to visible objects",
            "lr": args.lr, "seed": args.seed, "steps": done, "held_out_map": round(float(np.mean(held)), 4),
            "default_frames_map": round(default, 4)}
    meta = write_weights(model, args.out, meta, start)
    log.info("wrote %s: %s", args.out, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
