"""YOLOX-ELAN in plain PyTorch, module for module as mmdet builds AWML's YOLOX_opt_elan.

The modules carry mmdet's and AWML's names (``backbone.stage1.1.main_conv.conv``, ``neck.reduce_layers``,
``bbox_head.multi_level_conv_cls``) so that an AWML checkpoint loads strictly with no key renaming:
ELANDarknet (two-conv stem, per stage a stride-2 conv and an ELAN block of two-3x3-conv bottlenecks),
YOLOXPAFPN_ELAN (1x1 reduce on the top-down path only, ELAN blocks, 1x1 out-convs) and mmdet's
YOLOXHead (stacked 3x3 convs per branch, 1x1 predictors). mmcv's ConvModule is conv (no bias) → BN →
activation, with the submodules named ``conv``, ``bn``, ``activate``.

The exported graph takes ``images`` [B, 3, H, W] (BGR, 0-255, letterboxed; AWML's data preprocessor
has no mean/std) and returns ``output`` [B, N, 4 + 1 + C] as tier4/YOLOX's export lays it out (the
graph AWML deploys and Autoware decodes): raw box terms (dx, dy, log w, log h per anchor point),
sigmoid objectness and sigmoid class scores, levels of strides 8/16/32 concatenated row-major.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from model_specs.seeding import init_like_trained
from model_specs.yolox.config import YoloxConfig

# mmcv's activation registry names and what they compute (mmcv's Swish is x * sigmoid(x), i.e. SiLU)
ACTIVATIONS = {"ReLU6": nn.ReLU6, "ReLU": nn.ReLU, "Swish": nn.SiLU, "SiLU": nn.SiLU}


class ConvModule(nn.Module):
    """mmcv's ConvModule as these configs build it: conv without bias (a norm follows), BN, activation."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, act: str, norm: tuple[float, float]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=norm[0], momentum=norm[1])
        self.activate = ACTIVATIONS[act](inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """AWML's DarknetBottleneckOpt in an ELAN: two 3x3 convs, the input added when ``add_identity``."""

    def __init__(self, channels: int, add_identity: bool, act: str, norm: tuple[float, float]) -> None:
        super().__init__()
        self.conv1 = ConvModule(channels, channels, 3, 1, act, norm)
        self.conv2 = ConvModule(channels, channels, 3, 1, act, norm)
        self.add_identity = add_identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class ELAN(nn.Module):
    """AWML's ELAN: a 1x1 short branch and a 1x1 main branch through ``blocks`` bottlenecks; the short
    branch and every bottleneck's output are concatenated (in that order) and fused by a 1x1 conv."""

    def __init__(self, cin: int, cout: int, blocks: int, expand_ratio: float, add_identity: bool, act: str,
                 norm: tuple[float, float]) -> None:
        super().__init__()
        mid = int(cout * expand_ratio)
        self.main_conv = ConvModule(cin, mid, 1, 1, act, norm)
        self.short_conv = ConvModule(cin, mid, 1, 1, act, norm)
        self.final_conv = ConvModule((blocks + 1) * mid, cout, 1, 1, act, norm)
        self.blocks = nn.Sequential(*(Bottleneck(mid, add_identity, act, norm) for _ in range(blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.short_conv(x)]
        main = self.main_conv(x)
        for block in self.blocks:
            main = block(main)
            outs.append(main)
        return self.final_conv(torch.cat(outs, 1))


class Stem(nn.Module):
    """AWML's slice-free stem: a stride-2 3x3 conv and a stride-1 3x3 conv."""

    def __init__(self, cout: int, act: str, norm: tuple[float, float]) -> None:
        super().__init__()
        self.conv = nn.Sequential(ConvModule(3, cout, 3, 2, act, norm), ConvModule(cout, cout, 3, 1, act, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ELANDarknet(nn.Module):
    def __init__(self, cfg: YoloxConfig) -> None:
        super().__init__()
        act, norm = cfg.backbone_act, cfg.backbone_norm
        self.out_indices = cfg.out_indices
        self.stem = Stem(cfg.stem_channels, act, norm)
        self.layers = ["stem"]
        for i, (cin, cout, blocks, ratio, identity) in enumerate(cfg.stages):
            self.add_module(f"stage{i + 1}", nn.Sequential(ConvModule(cin, cout, 3, 2, act, norm),
                                                           ELAN(cout, cout, blocks, ratio, identity, act, norm)))
            self.layers.append(f"stage{i + 1}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


class PAFPN_ELAN(nn.Module):
    """AWML's YOLOXPAFPN_ELAN. Top-down: the coarser level is reduced (1x1) to the finer level's width,
    upsampled and concatenated (upsampled first) into an ELAN; the reduced map replaces the coarser
    level. Bottom-up: a stride-2 3x3 conv, concatenated with the reduced map of the next level, into an
    ELAN. Last, a 1x1 out-conv per level to ``neck_out_channels``."""

    def __init__(self, cfg: YoloxConfig) -> None:
        super().__init__()
        act, norm, chans, blocks = cfg.neck_act, cfg.neck_norm, cfg.neck_in_channels, cfg.neck_elan_blocks
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.reduce_layers = nn.ModuleList(ConvModule(chans[i], chans[i - 1], 1, 1, act, norm) for i in range(len(chans) - 1, 0, -1))
        self.top_down_blocks = nn.ModuleList(ELAN(chans[i - 1] * 2, chans[i - 1], blocks, 0.5, False, act, norm)
                                             for i in range(len(chans) - 1, 0, -1))
        self.downsamples = nn.ModuleList(ConvModule(chans[i], chans[i], 3, 2, act, norm) for i in range(len(chans) - 1))
        self.bottom_up_blocks = nn.ModuleList(ELAN(chans[i] * 2, chans[i + 1], blocks, 0.5, False, act, norm) for i in range(len(chans) - 1))
        self.out_convs = nn.ModuleList(ConvModule(c, cfg.neck_out_channels, 1, 1, act, norm) for c in chans)

    def forward(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        last = len(inputs) - 1
        inner = [inputs[-1]]
        for idx in range(last, 0, -1):
            reduced = self.reduce_layers[last - idx](inner[0])
            inner[0] = reduced
            inner.insert(0, self.top_down_blocks[last - idx](torch.cat([self.upsample(reduced), inputs[idx - 1]], 1)))
        outs = [inner[0]]
        for idx in range(last):
            outs.append(self.bottom_up_blocks[idx](torch.cat([self.downsamples[idx](outs[-1]), inner[idx + 1]], 1)))
        return tuple(conv(out) for conv, out in zip(self.out_convs, outs, strict=True))


class YOLOXHead(nn.Module):
    """mmdet's YOLOXHead at inference: per level, stacked 3x3 ConvModules for the class branch and for
    the box branch; 1x1 convs predict class logits (from the class branch), box terms and objectness
    (both from the box branch)."""

    def __init__(self, cfg: YoloxConfig) -> None:
        super().__init__()
        act, norm, feat = cfg.head_act, cfg.head_norm, cfg.head_feat_channels

        def stacked() -> nn.Sequential:
            return nn.Sequential(*(ConvModule(cfg.head_in_channels if i == 0 else feat, feat, 3, 1, act, norm)
                                   for i in range(cfg.head_stacked_convs)))

        levels = range(len(cfg.strides))
        self.multi_level_cls_convs = nn.ModuleList(stacked() for _ in levels)
        self.multi_level_reg_convs = nn.ModuleList(stacked() for _ in levels)
        self.multi_level_conv_cls = nn.ModuleList(nn.Conv2d(feat, len(cfg.classes), 1) for _ in levels)
        self.multi_level_conv_reg = nn.ModuleList(nn.Conv2d(feat, 4, 1) for _ in levels)
        self.multi_level_conv_obj = nn.ModuleList(nn.Conv2d(feat, 1, 1) for _ in levels)

    def forward_single(self, x: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw (cls logits, box terms, objectness logit) of one level, as mmdet's forward_single returns them."""
        cls_feat, reg_feat = self.multi_level_cls_convs[level](x), self.multi_level_reg_convs[level](x)
        return self.multi_level_conv_cls[level](cls_feat), self.multi_level_conv_reg[level](reg_feat), self.multi_level_conv_obj[level](reg_feat)


class YoloxElan(nn.Module):
    def __init__(self, cfg: YoloxConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = ELANDarknet(cfg)
        self.neck = PAFPN_ELAN(cfg)
        self.bbox_head = YOLOXHead(cfg)

    def head_outputs(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        feats = self.neck(self.backbone(images))
        return [self.bbox_head.forward_single(x, level) for level, x in enumerate(feats)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return export_layout(self.head_outputs(images))


def export_layout(levels: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """[B, N, 4 + 1 + C] from each level's raw (cls, reg, obj): box terms, sigmoid obj, sigmoid cls."""
    flat = [torch.cat([reg, obj.sigmoid(), cls.sigmoid()], 1).flatten(2) for cls, reg, obj in levels]
    return torch.cat(flat, 2).permute(0, 2, 1)


# Seeded weights are shaped like a trained YOLOX's in two places. AWML feeds BGR 0-255 unnormalised, so
# the stem is scaled to start near unit scale instead of saturating every ReLU6 (a trained stem has
# learned that scale); and the objectness predictors are widened so that a few anchor points score high
# and most near 0, as a trained detector's do, instead of all sitting at one value. (Widening the class
# predictors too would saturate several classes' sigmoids to 1.0 and make the best class a float tie.)
RAW_INPUT_GAIN = 1.0 / 128.0
HEAD_GAIN = 8.0
STEM_WEIGHT = "backbone.stem.conv.0.conv.weight"


def trained_like(state: Mapping[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """The tensors of ``state`` (this model's or mmdet's: the names are the same) that seeded weights change."""
    changed = {STEM_WEIGHT: state[STEM_WEIGHT] * RAW_INPUT_GAIN}
    for level in range(levels):
        key = f"bbox_head.multi_level_conv_obj.{level}.weight"
        changed[key] = state[key] * HEAD_GAIN
    return changed


def seeded(cfg: YoloxConfig, seed: int) -> YoloxElan:
    model = init_like_trained(YoloxElan(cfg), seed)
    model.load_state_dict({**model.state_dict(), **trained_like(model.state_dict(), len(cfg.strides))}, strict=True)
    return model


def objectness_biases(model: YoloxElan) -> list[torch.Tensor]:
    return [conv.bias for conv in model.bbox_head.multi_level_conv_obj]


def objectness_shift(levels: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], detections: int, threshold: float) -> float:
    """How far to move every objectness logit so that ``detections`` anchor points score above
    ``threshold`` (score = sigmoid(obj) x best sigmoid(cls)), the threshold falling midway between the
    shifts that the k-th and the (k+1)-th anchor need. Read from the raw head outputs: a float32 sigmoid
    saturates at 1.0 and would hide how far above the threshold an anchor is.

    Seeded weights score every anchor alike; calibrated, a few anchors pass Autoware's threshold and the
    rest stay low, as with a trained detector, so that flips and unmatched boxes are meaningful checks.
    """
    obj_logit = torch.cat([obj.flatten() for _, _, obj in levels]).double()
    best = torch.cat([cls.sigmoid().amax(1).flatten() for cls, _, _ in levels]).double()
    reachable = best > threshold  # sigmoid(obj) < 1: an anchor whose best class is below never passes
    need = torch.logit((threshold / best[reachable]).clamp(max=1 - 1e-12)) - obj_logit[reachable]
    ranked = torch.sort(need).values
    if ranked.numel() < 2:
        return 0.0
    k = min(detections, ranked.numel() - 1)
    return float(ranked[k - 1] + ranked[k]) / 2


def calibrate(model: YoloxElan, images: torch.Tensor, detections: int, threshold: float) -> None:
    with torch.no_grad():
        shift = objectness_shift(model.head_outputs(images), detections, threshold)
        for bias in objectness_biases(model):
            bias.add_(shift)


# Seeded models calibrate their objectness on a frame no test samples (samples are seeds 0..N-1 x 1000).
CALIBRATION_SEED = 424_242


def calibrated(cfg: YoloxConfig, seed: int) -> YoloxElan:
    """Seeded weights whose objectness is shifted so that ``cfg.calibration_detections`` anchor points pass
    Autoware's threshold on a frame no test samples: what a spec without trained weights runs."""
    from model_specs.yolox.data import camera_frames, network_input

    model = seeded(cfg, seed)
    images = torch.from_numpy(network_input(camera_frames(CALIBRATION_SEED, cfg, 1), cfg))
    calibrate(model, images, cfg.calibration_detections, cfg.autoware_score_threshold)
    return model.eval()
