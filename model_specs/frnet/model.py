"""AWML's FRNet (FrustumFeatureEncoder, FRNetBackbone, FRHead, FrustumHeads) in plain PyTorch, in deploy mode.

Module names are AWML's and mmcv's (``voxel_encoder.ffe_layers.0.1``, ``backbone.layer1.0.bn1``,
``backbone.fuse_layer1.conv``, ``decode_head.mlps.0.0``, ``auxiliary_head.0.conv_seg``) so that an AWML checkpoint
loads strictly; the auxiliary heads are built (their weights are in every checkpoint) and never run, as in AWML's
deploy graph. ``forward(points, coors, voxel_coors, inverse_map)`` is AWML's exported graph
(``deploy/torch_model.py``: the segmentor's ``_forward`` in deploy mode, batch 1, then a softmax): ``pred_probs``
[N, classes]. Scatter-max reductions are ``scatter_reduce(amax, include_self)``, which opset 16 writes as
ScatterElements with ``reduction="max"`` (AWML registers the same symbolic; torch's own exporter does it here).
"""

from __future__ import annotations

import torch
from torch import nn

from model_specs.frnet.config import RESNET_STAGES, FRNetConfig
from model_specs.seeding import init_like_trained


def _bn2d(channels: int, cfg: FRNetConfig) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=cfg.norm[0], momentum=cfg.norm[1])


def _bn1d(channels: int, cfg: FRNetConfig) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(channels, eps=cfg.norm[0], momentum=cfg.norm[1])


def _point_layer(cin: int, cout: int, cfg: FRNetConfig) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, cout, bias=False), _bn1d(cout, cfg), nn.ReLU(inplace=True))


def _conv_bn_act(cin: int, cout: int, cfg: FRNetConfig) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), _bn2d(cout, cfg), nn.Hardswish()]  # mmcv's HSwish is torch's


def _scatter_max(values: torch.Tensor, inverse_map: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Per-cell max of ``values`` (rows by ``inverse_map``), cells never hit left at the dtype's lowest value."""
    out = torch.full((cells, values.size(1)), torch.finfo(values.dtype).min, dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, inverse_map.unsqueeze(-1).expand_as(values), values, reduce="amax", include_self=True)


class FrustumFeatureEncoder(nn.Module):
    def __init__(self, cfg: FRNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = (cfg.encoder_in, *cfg.feat_channels)
        self.pre_norm = _bn1d(cfg.encoder_in, cfg) if cfg.with_pre_norm else None
        layers: list[nn.Module] = [_point_layer(widths[i], widths[i + 1], cfg) for i in range(len(widths) - 2)]
        layers.append(nn.Linear(widths[-2], widths[-1]))
        self.ffe_layers = nn.ModuleList(layers)
        self.compression_layers = nn.Sequential(nn.Linear(widths[-1], cfg.feat_compression), nn.ReLU(inplace=True))

    def forward(self, points: torch.Tensor, inverse_map: torch.Tensor, cells: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        parts = [points]
        if self.cfg.with_distance:
            parts.append(torch.norm(points[:, :3], 2, 1, keepdim=True))
        if self.cfg.with_cluster_center:  # each point's offset from its frustum cell's mean
            index = inverse_map.unsqueeze(-1).expand(-1, points.size(1))
            sums = torch.zeros(cells, points.size(1), dtype=points.dtype, device=points.device).scatter_add(0, index, points)
            counts = torch.zeros(cells, points.size(1), dtype=points.dtype, device=points.device).scatter_add(0, index, torch.ones_like(points))
            parts.append(points[:, :3] - (sums / counts)[inverse_map][:, :3])
        features = torch.cat(parts, dim=-1)
        if self.pre_norm is not None:
            features = self.pre_norm(features)
        point_feats = []
        for layer in self.ffe_layers:
            features = layer(features)
            point_feats.append(features)
        return self.compression_layers(_scatter_max(features, inverse_map, cells)), point_feats


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, cfg: FRNetConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = _bn2d(cout, cfg)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = _bn2d(cout, cfg)
        self.relu = nn.Hardswish()
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _bn2d(cout, cfg))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + identity)


class ConvModule(nn.Module):
    """mmcv's ConvModule (3x3 conv without bias, BN as ``bn``, HSwish)."""

    def __init__(self, cin: int, cout: int, cfg: FRNetConfig) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = _bn2d(cout, cfg)
        self.activate = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class FRNetBackbone(nn.Module):
    """Frustum image and points, fused at every stage: pixel→point (gather), point→frustum (scatter max),
    frustum→pixel (place), then residual attention; outputs upsampled to the stem's size and fused."""

    def __init__(self, cfg: FRNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        stem = cfg.stem_channels
        self.stem = nn.Sequential(*_conv_bn_act(cfg.feat_compression, stem // 2, cfg), *_conv_bn_act(stem // 2, stem, cfg),
                                  *_conv_bn_act(stem, stem, cfg))
        self.point_stem = _point_layer(cfg.point_in_channels, stem, cfg)
        self.fusion_stem = nn.Sequential(*_conv_bn_act(2 * stem, stem, cfg))
        self.point_fusion_layers, self.pixel_fusion_layers, self.attention_layers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin, overall, self.overall_strides = stem, 1, []
        for i, (blocks, cout, stride) in enumerate(zip(RESNET_STAGES[cfg.depth], cfg.out_channels, cfg.strides, strict=True)):
            overall *= stride
            self.overall_strides.append(overall)
            self.add_module(f"layer{i + 1}", nn.Sequential(*(BasicBlock(cin if b == 0 else cout, cout, stride if b == 0 else 1, cfg)
                                                             for b in range(blocks))))
            self.point_fusion_layers.append(_point_layer(cin + cout, cout, cfg))
            self.pixel_fusion_layers.append(nn.Sequential(*_conv_bn_act(2 * cout, cout, cfg)))
            attention = [*_conv_bn_act(cout, cout, cfg), nn.Conv2d(cout, cout, 3, padding=1, bias=False), _bn2d(cout, cfg), nn.Sigmoid()]
            self.attention_layers.append(nn.Sequential(*attention))
            cin = cout
        cin = stem + sum(cfg.out_channels)
        for i, cout in enumerate(cfg.fuse_channels):
            self.add_module(f"fuse_layer{i + 1}", ConvModule(cin, cout, cfg))
            self.add_module(f"point_fuse_layer{i + 1}", _point_layer(cin, cout, cfg))
            cin = cout

    def _to_pixels(self, feats: torch.Tensor, coors: torch.Tensor, stride: int) -> torch.Tensor:
        """Frustum cells' features placed in the [1, C, H/stride, W/stride] image (batch 1: AWML's deploy mode).

        At a stride above 1 several cells fall on one pixel. AWML writes them all (``image[coors] = feats``): which
        one stays is the runtime's choice (PyTorch's CPU kernel splits the writes over threads, TensorRT's ScatterND
        leaves duplicates undefined), so two runs of AWML's graph can differ. Here every cell of a pixel writes the
        features of the pixel's last cell (the largest index, as a sequential scatter ends: ONNX Runtime's, and
        PyTorch's deterministic mode), found by a scatter-max of the cell indices: the same writes, any order, one
        answer."""
        ny, nx = self.cfg.lidar_h // stride, self.cfg.frustum_w // stride
        if stride > 1:
            pixel = coors[:, 1] * nx + coors[:, 2]
            order = torch.arange(coors.shape[0], dtype=pixel.dtype, device=pixel.device)
            last = torch.full((ny * nx,), -1, dtype=pixel.dtype, device=pixel.device)
            last = last.scatter_reduce(0, pixel, order, reduce="amax", include_self=True)
            feats = feats[last[pixel]]
        image = torch.zeros((1, ny, nx, feats.shape[-1]), dtype=feats.dtype, device=feats.device)
        image[coors[:, 0], coors[:, 1], coors[:, 2]] = feats
        return image.permute(0, 3, 1, 2).contiguous()

    @staticmethod
    def _to_points(image: torch.Tensor, coors: torch.Tensor, stride: int) -> torch.Tensor:
        return image.permute(0, 2, 3, 1).contiguous()[coors[:, 0], coors[:, 1] // stride, coors[:, 2] // stride]

    def forward(self, voxel_feats: torch.Tensor, point_feats: torch.Tensor, coors: torch.Tensor, voxel_coors: torch.Tensor,
                inverse_map: torch.Tensor, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(self._to_pixels(voxel_feats, voxel_coors, 1))
        point_feats = self.point_stem(torch.cat((self._to_points(x, coors, 1), point_feats), dim=1))
        pixels = self._to_pixels(_scatter_max(point_feats, inverse_map, cells), voxel_coors, 1)
        x = self.fusion_stem(torch.cat((pixels, x), dim=1))
        outs, out_points = [x], [point_feats]
        for i, stride in enumerate(self.overall_strides):
            x = getattr(self, f"layer{i + 1}")(x)
            point_feats = self.point_fusion_layers[i](torch.cat((self._to_points(x, coors, stride), point_feats), dim=1))
            pixels = self._to_pixels(_scatter_max(point_feats, inverse_map, cells), voxel_coors // stride, stride)
            fused = self.pixel_fusion_layers[i](torch.cat((pixels, x), dim=1))
            x = fused * self.attention_layers[i](fused) + x
            outs.append(x)
            out_points.append(point_feats)
        size = outs[0].shape[2:]
        image = torch.cat([nn.functional.interpolate(o, size=size, mode="bilinear", align_corners=True) for o in outs], dim=1)
        points = torch.cat(out_points, dim=1)
        for i in range(len(self.cfg.fuse_channels)):
            image = getattr(self, f"fuse_layer{i + 1}")(image)
            points = getattr(self, f"point_fuse_layer{i + 1}")(points)
        return image, points


class FRHead(nn.Module):
    def __init__(self, cfg: FRNetConfig) -> None:
        super().__init__()
        widths = (cfg.fuse_channels[-1], *cfg.middle_channels)
        self.conv_seg = nn.Linear(cfg.channels, len(cfg.classes))  # built first, as mmdet3d's Base3DDecodeHead does
        self.mlps = nn.ModuleList(_point_layer(widths[i], widths[i + 1], cfg) for i in range(len(cfg.middle_channels)))

    def forward(self, image: torch.Tensor, points: torch.Tensor, encoder_feats: list[torch.Tensor], coors: torch.Tensor) -> torch.Tensor:
        feats = image.permute(0, 2, 3, 1)[coors[:, 0], coors[:, 1], coors[:, 2]]
        skips = [points, *reversed(encoder_feats[:-1])]  # the backbone's points, then the encoder's layers deepest first
        for mlp, skip in zip(self.mlps, skips, strict=True):
            feats = mlp(feats) + skip
        return self.conv_seg(feats)


class FrustumHead(nn.Module):
    """An auxiliary head of training (a 1x1 conv over one backbone output): in every checkpoint, never deployed."""

    def __init__(self, cfg: FRNetConfig, channels: int) -> None:
        super().__init__()
        self.conv_seg = nn.Conv2d(channels, len(cfg.classes), 1)


class FRNet(nn.Module):
    def __init__(self, cfg: FRNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # registered in AWML's order (EncoderDecoder3D's modules, then FRNet's encoder): a state_dict's keys in its order
        self.backbone = FRNetBackbone(cfg)
        self.decode_head = FRHead(cfg)
        widths = (cfg.stem_channels, *cfg.out_channels)
        self.auxiliary_head = nn.ModuleList(FrustumHead(cfg, widths[i]) for i in cfg.auxiliary_heads)
        self.voxel_encoder = FrustumFeatureEncoder(cfg)

    def logits(self, points: torch.Tensor, coors: torch.Tensor, voxel_coors: torch.Tensor, inverse_map: torch.Tensor) -> torch.Tensor:
        cells = inverse_map.max() + 1
        voxel_coors = voxel_coors[:cells]
        voxel_feats, point_feats = self.voxel_encoder(points, inverse_map, cells)
        image, backbone_points = self.backbone(voxel_feats, point_feats[-1], coors, voxel_coors, inverse_map, cells)
        return self.decode_head(image, backbone_points, point_feats, coors)

    def forward(self, points: torch.Tensor, coors: torch.Tensor, voxel_coors: torch.Tensor, inverse_map: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(points, coors, voxel_coors, inverse_map), dim=-1)


def seeded(cfg: FRNetConfig, seed: int) -> FRNet:
    return init_like_trained(FRNet(cfg), seed)
