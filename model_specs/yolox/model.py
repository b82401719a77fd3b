"""YOLOX-ELAN in plain PyTorch: ELAN backbone, PAFPN-style neck, decoupled heads on strides 8/16/32.

The exported graph takes ``images`` [B, 3, H, W] (BGR, 0-255, no normalisation, as AWML feeds it)
and returns ``output`` [B, N, 4 + 1 + C]: raw box terms (dx, dy, log w, log h per anchor point),
sigmoid objectness and sigmoid class scores, concatenated over the three levels (N = sum of
(H/s) x (W/s)). Decoding and NMS stay outside, in ``postprocess``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from model_specs.seeding import init_like_trained


@dataclass(frozen=True)
class YoloxConfig:
    input_size: tuple[int, int] = (960, 960)
    classes: tuple[str, ...] = ("unknown", "car", "truck", "bus", "trailer", "motorcycle", "pedestrian", "bicycle")
    stem_channels: int = 16
    stage_channels: tuple[int, int, int, int] = (32, 64, 128, 256)  # strides 4, 8, 16, 32
    neck_channels: int = 64
    strides: tuple[int, int, int] = (8, 16, 32)
    score_threshold: float = 0.01
    nms_iou: float = 0.65
    max_pre_nms: int = 1000
    max_detections: int = 100
    calibration_detections: int = 30  # seeded weights only: boxes above 0.3 on the calibration image

    @property
    def anchors(self) -> int:
        h, w = self.input_size
        return sum((h // s) * (w // s) for s in self.strides)

    @property
    def outputs(self) -> int:
        return 5 + len(self.classes)


def conv(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.03), nn.SiLU(inplace=True))


class ELAN(nn.Module):
    """Efficient layer aggregation: two 1x1 branches, a chain of 3x3 convs, all concatenated."""

    def __init__(self, cin: int, cout: int, depth: int = 2) -> None:
        super().__init__()
        mid = cout // 2
        self.short, self.main = conv(cin, mid, 1), conv(cin, mid, 1)
        self.chain = nn.ModuleList(conv(mid, mid) for _ in range(depth))
        self.fuse = conv(mid * (2 + depth), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.short(x), self.main(x)]
        for layer in self.chain:
            outs.append(layer(outs[-1]))
        return self.fuse(torch.cat(outs, 1))


class YoloxElan(nn.Module):
    def __init__(self, cfg: YoloxConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.stage_channels
        self.stem = conv(3, cfg.stem_channels, 3, 2)
        cins = (cfg.stem_channels, *c[:-1])
        self.stages = nn.ModuleList(nn.Sequential(conv(cin, cout, 3, 2), ELAN(cout, cout)) for cin, cout in zip(cins, c))
        n = cfg.neck_channels
        self.lateral = nn.ModuleList(conv(ch, n, 1) for ch in c[1:])
        self.top_down = nn.ModuleList(ELAN(2 * n, n) for _ in range(2))
        self.down = nn.ModuleList(conv(n, n, 3, 2) for _ in range(2))
        self.bottom_up = nn.ModuleList(ELAN(2 * n, n) for _ in range(2))
        self.cls_convs = nn.ModuleList(conv(n, n) for _ in cfg.strides)
        self.reg_convs = nn.ModuleList(conv(n, n) for _ in cfg.strides)
        self.cls_preds = nn.ModuleList(nn.Conv2d(n, len(cfg.classes), 1) for _ in cfg.strides)
        self.reg_preds = nn.ModuleList(nn.Conv2d(n, 4, 1) for _ in cfg.strides)
        self.obj_preds = nn.ModuleList(nn.Conv2d(n, 1, 1) for _ in cfg.strides)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        p3, p4, p5 = (lat(f) for lat, f in zip(self.lateral, feats[1:]))
        t4 = self.top_down[0](torch.cat([p4, nn.functional.interpolate(p5, scale_factor=2.0, mode="nearest")], 1))
        t3 = self.top_down[1](torch.cat([p3, nn.functional.interpolate(t4, scale_factor=2.0, mode="nearest")], 1))
        b4 = self.bottom_up[0](torch.cat([self.down[0](t3), t4], 1))
        b5 = self.bottom_up[1](torch.cat([self.down[1](b4), p5], 1))
        outs = []
        for i, f in enumerate((t3, b4, b5)):
            cls_feat, reg_feat = self.cls_convs[i](f), self.reg_convs[i](f)
            level = torch.cat([self.reg_preds[i](reg_feat), self.obj_preds[i](reg_feat).sigmoid(), self.cls_preds[i](cls_feat).sigmoid()], 1)
            outs.append(level.flatten(2))
        return torch.cat(outs, 2).permute(0, 2, 1)


HEAD_GAIN = 8.0


def seeded(cfg: YoloxConfig, seed: int) -> YoloxElan:
    """Seeded weights scaled for raw BGR 0-255 input, with heads wide enough to spread scores."""
    model = init_like_trained(YoloxElan(cfg), seed)
    with torch.no_grad():
        # raw BGR 0-255 input: scale the stem so its activations start near unit variance
        model.stem[0].weight.mul_(1.0 / 128.0)
        # SiLU halves the variance per layer; widen the heads' logits so that scores spread over
        # (0, 1) as a trained detector's do, instead of all sitting at one value
        for preds in (model.cls_preds, model.obj_preds, model.reg_preds):
            for pred in preds:
                pred.weight.mul_(HEAD_GAIN)
    return model


def calibrate(model: YoloxElan, image: torch.Tensor, detections: int) -> None:
    """Shift objectness biases so that ``detections`` anchor points of a scene score above 0.3."""
    with torch.no_grad():
        out = model(image)[0]
        score = (out[:, 4] * out[:, 5:].max(1).values).clamp(1e-6, 1 - 1e-6)
        logit = torch.logit(out[:, 4].clamp(1e-6, 1 - 1e-6))
        kth = torch.sort(torch.logit(score), descending=True).values[detections]
        shift = math.log(0.3 / 0.7) - float(kth)
        for pred in model.obj_preds:
            pred.bias.add_(shift)
        del logit
