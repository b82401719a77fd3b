"""CenterPoint in plain PyTorch, with mmdet3d's module tree and state_dict keys.

Module names mirror mmdet3d/AWML (``pts_voxel_encoder.pfn_layers.N.{linear,norm}``,
``pts_backbone.blocks…``, ``pts_neck.deblocks…``, ``pts_bbox_head.shared_conv.{conv,bn}``,
``pts_bbox_head.task_heads.0.<head>.{0.conv,0.bn,1}``) so that an mmdet3d checkpoint loads with
``strict=True``. The two exported components are :class:`VoxelEncoderExport` and
:class:`BackboneNeckHeadExport`, exactly the graphs AWML ships.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from model_specs.centerpoint.config import CenterPointConfig
from model_specs.centerpoint.convnext_pc import ConvNeXtPC
from model_specs.seeding import init_like_trained


def _bn(kind, channels: int, norm: tuple[float, float]) -> nn.Module:
    eps, momentum = norm
    return kind(channels, eps=eps, momentum=momentum)


class PFNLayer(nn.Module):
    """mmdet3d's PFNLayer (mode='max'): linear → BN → ReLU → max over points."""

    def __init__(self, in_channels: int, out_channels: int, last_layer: bool, norm: tuple[float, float]) -> None:
        super().__init__()
        self.last_vfe = last_layer
        if not last_layer:
            out_channels //= 2  # mmdet3d halves non-final layers: their max is concatenated back
        self.linear = nn.Linear(in_channels, out_channels, bias=False)
        self.norm = _bn(nn.BatchNorm1d, out_channels, norm)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self.linear(inputs)
        x = self.norm(x.permute(0, 2, 1).contiguous()).permute(0, 2, 1).contiguous()
        x = torch.relu(x)
        x_max = torch.max(x, dim=1, keepdim=True)[0]
        if self.last_vfe:
            return x_max
        return torch.cat([x, x_max.repeat(1, inputs.shape[1], 1)], dim=2)


class PillarFeatureNet(nn.Module):
    """The pillar encoder on already-decorated features [num_voxels, points, 11] → [num_voxels, 1, C]."""

    def __init__(self, cfg: CenterPointConfig) -> None:
        super().__init__()
        channels = [cfg.decorated_features, *cfg.pfn_channels]
        self.pfn_layers = nn.ModuleList(
            PFNLayer(channels[i], channels[i + 1], last_layer=i == len(channels) - 2, norm=cfg.pfn_norm)
            for i in range(len(channels) - 1)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        for layer in self.pfn_layers:
            features = layer(features)
        return features


class SECOND(nn.Module):
    def __init__(self, cfg: CenterPointConfig) -> None:
        super().__init__()
        in_channels = [cfg.pfn_channels[-1], *cfg.backbone_channels[:-1]]
        blocks = []
        for in_ch, out_ch, layers, stride in zip(in_channels, cfg.backbone_channels, cfg.backbone_layers, cfg.backbone_strides, strict=True):
            bias = cfg.backbone_conv_bias
            block = [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=bias),
                     _bn(nn.BatchNorm2d, out_ch, cfg.backbone_norm), nn.ReLU(inplace=True)]
            for _ in range(layers):
                block += [nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=bias),
                          _bn(nn.BatchNorm2d, out_ch, cfg.backbone_norm), nn.ReLU(inplace=True)]
            blocks.append(nn.Sequential(*block))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return tuple(outs)


def upsample_layer(in_ch: int, out_ch: int, stride: float, use_conv_for_no_stride: bool, deconv_bias: bool = False,
                   conv_bias: bool = False) -> nn.Module:
    """mmdet3d's SECONDFPN rule: a transposed conv for strides > 1 (and for 1 unless
    ``use_conv_for_no_stride``), else a conv of kernel = stride = round(1 / stride).

    With AWML's ``use_conv_for_no_stride=True`` the stride-1 layer is a ``Conv2d`` whose weight is
    [out, in, 1, 1]; a ``ConvTranspose2d`` has the same shape for square channels ([in, out, 1, 1]),
    so a checkpoint would load strictly and then apply the transposed matrix.
    """
    if stride > 1 or (stride == 1 and not use_conv_for_no_stride):
        return nn.ConvTranspose2d(in_ch, out_ch, int(stride), stride=int(stride), bias=deconv_bias)
    k = int(round(1 / stride))  # noqa: RUF046 (NumPy 1.x rounds its floats to floats)
    return nn.Conv2d(in_ch, out_ch, k, stride=k, bias=conv_bias)


class SECONDFPN(nn.Module):
    """Upsamples (or downsamples) each stage to one resolution and concatenates."""

    def __init__(self, cfg: CenterPointConfig) -> None:
        super().__init__()
        deblocks = []
        for in_ch, out_ch, stride in zip(cfg.backbone_channels, cfg.neck_channels, cfg.neck_upsample_strides, strict=True):
            up = upsample_layer(in_ch, out_ch, stride, cfg.use_conv_for_no_stride, cfg.neck_deconv_bias, cfg.neck_conv_bias)
            deblocks.append(nn.Sequential(up, _bn(nn.BatchNorm2d, out_ch, cfg.neck_norm), nn.ReLU(inplace=True)))
        self.deblocks = nn.ModuleList(deblocks)

    def forward(self, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.cat([deblock(x) for deblock, x in zip(self.deblocks, features, strict=True)], dim=1)


class ConvModule(nn.Module):
    """mmcv's ConvModule (conv → BN → ReLU) with its attribute names ``conv`` and ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm: tuple[float, float], bias: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.bn = _bn(nn.BatchNorm2d, out_channels, norm)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class SeparateHead(nn.Module):
    """mmdet3d's SeparateHead: per output, ``head_num_conv - 1`` ConvModules of kernel
    ``head_final_kernel`` (AWML: 1), then the final conv with a bias."""

    def __init__(self, cfg: CenterPointConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        k = cfg.head_final_kernel
        for name, channels in self.heads:
            layers, width = [], cfg.head_shared_channels
            for _ in range(cfg.head_num_conv - 1):
                layers.append(ConvModule(width, cfg.head_conv_channels, k, cfg.head_norm, cfg.head_conv_bias))
                width = cfg.head_conv_channels
            layers.append(nn.Conv2d(width, channels, k, padding=k // 2, bias=True))
            self.add_module(name, nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, name)(x) for name, _ in self.heads)


class CenterHead(nn.Module):
    def __init__(self, cfg: CenterPointConfig) -> None:
        super().__init__()
        self.shared_conv = ConvModule(sum(cfg.neck_channels), cfg.head_shared_channels, 3, cfg.head_norm, cfg.head_shared_conv_bias)
        self.task_heads = nn.ModuleList([SeparateHead(cfg)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.task_heads[0](self.shared_conv(x))


class CenterPoint(nn.Module):
    """The whole network; preprocessing and decoding live in ``pipeline``/``voxelize``."""

    def __init__(self, cfg: CenterPointConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pts_voxel_encoder = PillarFeatureNet(cfg)
        self.pts_backbone = SECOND(cfg) if cfg.convnext is None else ConvNeXtPC(cfg.convnext)
        self.pts_neck = SECONDFPN(cfg)
        self.pts_bbox_head = CenterHead(cfg)


class VoxelEncoderExport(nn.Module):
    """``input_features`` [num_voxels, 32, 11] → ``pillar_features`` [num_voxels, 1, 32]."""

    def __init__(self, model: CenterPoint) -> None:
        super().__init__()
        self.pts_voxel_encoder = model.pts_voxel_encoder

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return self.pts_voxel_encoder(input_features)


class BackboneNeckHeadExport(nn.Module):
    """``spatial_features`` [1, 32, H, W] → heatmap, reg, height, dim, rot, vel (in that order).

    With ``rot_y_axis_reference`` (Autoware's convention) the graph emits dim as (w, l, h) and the
    rotation measured clockwise from the y axis, as AWML's exporter does.
    """

    def __init__(self, model: CenterPoint, rot_y_axis_reference: bool = False) -> None:
        super().__init__()
        self.pts_backbone = model.pts_backbone
        self.pts_neck = model.pts_neck
        self.pts_bbox_head = model.pts_bbox_head
        self.rot_y_axis_reference = rot_y_axis_reference

    def forward(self, spatial_features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        heatmap, reg, height, dim, rot, vel = self.pts_bbox_head(self.pts_neck(self.pts_backbone(spatial_features)))
        if self.rot_y_axis_reference:
            dim = dim[:, [1, 0, 2]]
            rot = torch.cat([-rot[:, 1:2], -rot[:, 0:1]], dim=1)  # (sin, cos) of yaw → of (-yaw - π/2)
        return heatmap, reg, height, dim, rot, vel


def seeded(cfg: CenterPointConfig, seed: int) -> CenterPoint:
    """A CenterPoint with seeded weights whose activations keep a realistic scale; the heatmap
    bias starts at mmdet3d's focal-loss prior (``calibrate_heatmap`` then places it)."""
    model = init_like_trained(CenterPoint(cfg), seed)
    with torch.no_grad():
        heatmap_bias(model).fill_(cfg.heatmap_init_bias)
    return model


def calibrate_heatmap(model: CenterPoint, spatial_features: torch.Tensor, detections: int, score_threshold: float) -> None:
    """Shift the heatmap bias so that ``detections`` cells of a real-looking scene pass the threshold.

    Seeded weights put every heatmap cell far above or near the threshold, unlike a trained model
    whose heatmap is low everywhere but at objects. Calibrated, the top-k candidates straddle the
    threshold as in deployment, so threshold flips and unmatched boxes are meaningful checks.
    """
    with torch.no_grad():
        heatmap = BackboneNeckHeadExport(model)(spatial_features)[0]
        heatmap_bias(model).add_(calibration_shift(heatmap, detections, score_threshold))


def heatmap_bias(model: CenterPoint) -> torch.Tensor:
    """The heatmap's final-conv bias: the only parameter seeded-weight calibration moves."""
    return model.pts_bbox_head.task_heads[0].heatmap[-1].bias


def calibration_shift(heatmap: torch.Tensor, detections: int, score_threshold: float) -> float:
    """How far to move every heatmap logit so that ``detections`` cells lie above ``score_threshold``
    (the threshold falls midway between the k-th and the (k+1)-th highest logit)."""
    ranked = torch.sort(heatmap.flatten(), descending=True).values
    k = min(detections, ranked.numel() - 1)
    threshold_logit = math.log(score_threshold / (1.0 - score_threshold))
    return threshold_logit - float(ranked[k - 1] + ranked[k]) / 2
