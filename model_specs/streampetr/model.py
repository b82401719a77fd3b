"""AWML's StreamPETR (``projects/StreamPETR``, ``Petr3D``) at inference, in plain PyTorch, with AWML's module names so
that an AWML checkpoint loads strictly: ``img_backbone`` (mmdet's ResNet), ``img_neck`` (CPFPN), ``img_roi_head``
(FocalHead: unused by the deployed graphs, kept for the checkpoint's keys), ``pts_bbox_head`` (StreamPETRHead with
its PETRTemporalTransformer, as mmcv's ``MultiheadAttention``/``FFN``/``LayerNorm`` name their parts).

The three sections are AWML's ``deploy/containers.py``: ``extract_img_feat`` (images → features),
``position_embedding`` (features and camera matrices → 3D position embedding and the cone), ``pts_head_memory``
(the head with the memory queue in and out: ego-motion alignment of the memory before the decoder, the top-k
update after it). The head's math is AWML's; it is written functionally (the memory is the section's inputs and
outputs, never attributes set on the head), which is how the deployed graph holds it anyway.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from model_specs.streampetr.config import StreamPETRConfig

EMBED = 256  # MLN's feature width is fixed at 256 in AWML (MLN(c_dim, f_dim=256)): the head's embed_dims must be it
NUM_PRED = 6  # StreamPETRHead.num_pred: six (shared) cls and reg branches whatever the decoder's depth


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def pos2posemb3d(pos: torch.Tensor, num_pos_feats: int = 128, temperature: float = 10000) -> torch.Tensor:
    pos = pos * (2 * math.pi)
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=pos.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    x, y, z = (pos[..., i, None] / dim_t for i in range(3))
    x, y, z = (torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=-1).flatten(-2) for p in (x, y, z))
    return torch.cat((y, x, z), dim=-1)


def pos2posemb1d(pos: torch.Tensor, num_pos_feats: int = 256, temperature: float = 10000) -> torch.Tensor:
    pos = pos * (2 * math.pi)
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=pos.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    x = pos[..., 0, None] / dim_t
    return torch.stack((x[..., 0::2].sin(), x[..., 1::2].cos()), dim=-1).flatten(-2)


def nerf_positional_encoding(tensor: torch.Tensor, functions: int = 6) -> torch.Tensor:
    bands = 2.0 ** torch.linspace(0.0, functions - 1, functions, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([f(tensor * b) for b in bands for f in (torch.sin, torch.cos)], dim=-1)


def topk_gather(feat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    view = [1] * feat.dim()
    view[:2] = index.shape[:2]
    return torch.gather(feat, 1, index.view(*view).repeat(1, 1, *feat.shape[2:]))


def transform_reference_points(points: torch.Tensor, egopose: torch.Tensor) -> torch.Tensor:
    points = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)
    return (egopose.unsqueeze(1) @ points.unsqueeze(-1)).squeeze(-1)[..., :3]


# -- image backbone and neck (mmdet's ResNet, AWML's CPFPN) -------------------------------------------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """mmdet's Bottleneck in ``style="pytorch"``: the stride on the 3x3 conv."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


ARCH: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3))}


class ResNet(nn.Module):
    """mmdet's ResNet (``num_stages=4``, ``style="pytorch"``, no deep stem): the outputs of ``out_indices``."""

    def __init__(self, depth: int, out_indices: tuple[int, ...]) -> None:
        super().__init__()
        block, stages = ARCH[depth]
        self.out_indices = out_indices
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, blocks in enumerate(stages):
            planes, stride = 64 * 2**i, 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                                           nn.BatchNorm2d(planes * block.expansion))
            layers = [block(inplanes, planes, stride, downsample)]
            inplanes = planes * block.expansion
            layers += [block(inplanes, planes, 1, None) for _ in range(1, blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            if i in self.out_indices:
                outs.append(x)
        return outs


class ConvModule(nn.Module):
    """mmcv's ConvModule without norm or activation (CPFPN's ``norm_cfg=None, act_cfg=None``): its ``conv``."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class CPFPN(nn.Module):
    """AWML's CPFPN: laterals for every input, a 3x3 output conv on the first level only, nearest upsampling."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList([ConvModule(out_channels, out_channels, 3)])

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], mode="nearest")
        return [self.fpn_convs[0](laterals[0]), *laterals[1:]]


class FocalHead(nn.Module):
    """The 2D auxiliary head's layers (trained only; ``aux_2d_only`` at inference): here for the checkpoint's keys."""

    def __init__(self, num_classes: int, in_channels: int, embed_dims: int) -> None:
        super().__init__()
        self.cls = nn.Conv2d(embed_dims, num_classes, 1)
        self.shared_reg = nn.Sequential(nn.Conv2d(in_channels, embed_dims, 3, padding=1), nn.GroupNorm(32, embed_dims), nn.ReLU())
        self.shared_cls = nn.Sequential(nn.Conv2d(in_channels, embed_dims, 3, padding=1), nn.GroupNorm(32, embed_dims), nn.ReLU())
        self.centerness = nn.Conv2d(embed_dims, 1, 1)
        self.ltrb = nn.Conv2d(embed_dims, 4, 1)
        self.center2d = nn.Conv2d(embed_dims, 2, 1)


# -- the head's parts (AWML's misc.py, mmcv's transformer layers) --------------------------------------------
class SELayer_Linear(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Linear(channels, channels)
        self.act1 = nn.ReLU()
        self.conv_expand = nn.Linear(channels, channels)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor, x_se: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.conv_expand(self.act1(self.conv_reduce(x_se))))


class MLN(nn.Module):
    """Modulated LayerNorm: a LayerNorm without affine, scaled and shifted by a code ``c``."""

    def __init__(self, c_dim: int, f_dim: int = EMBED) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Linear(c_dim, f_dim), nn.ReLU())
        self.gamma = nn.Linear(f_dim, f_dim)
        self.beta = nn.Linear(f_dim, f_dim)
        self.ln = nn.LayerNorm(f_dim, elementwise_affine=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        c = self.reduce(c)
        return self.gamma(c) * self.ln(x) + self.beta(c)


class PETRMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` (sequence first) with positions added to query and key and the identity added back."""

    def __init__(self, embed_dims: int, num_heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dims, num_heads, 0.0)
        self.proj_drop = nn.Dropout(0.0)
        self.dropout_layer = nn.Identity()

    def forward(self, query, key, value, query_pos, key_pos):
        out = self.attn(query=query + query_pos, key=key + key_pos, value=value)[0]
        return query + self.dropout_layer(self.proj_drop(out))


class FFN(nn.Module):
    """mmcv's FFN (two fcs, ReLU, identity added): its ``layers`` as mmcv nests them."""

    def __init__(self, embed_dims: int, feedforward_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(embed_dims, feedforward_channels), nn.ReLU(inplace=True), nn.Dropout(0.0)),
                                    nn.Linear(feedforward_channels, embed_dims), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class PETRTemporalDecoderLayer(nn.Module):
    """``("self_attn", "norm", "cross_attn", "norm", "ffn", "norm")``: self-attention over the queries and the
    temporal memory, cross-attention to the image tokens, FFN; post-norm."""

    def __init__(self, embed_dims: int, num_heads: int, feedforward_channels: int) -> None:
        super().__init__()
        self.attentions = nn.ModuleList([PETRMultiheadAttention(embed_dims, num_heads), PETRMultiheadAttention(embed_dims, num_heads)])
        self.ffns = nn.ModuleList([FFN(embed_dims, feedforward_channels)])
        self.norms = nn.ModuleList(nn.LayerNorm(embed_dims) for _ in range(3))

    def forward(self, query, key, query_pos, key_pos, temp_memory, temp_pos):
        temp = torch.cat([query, temp_memory], dim=0)
        query = self.norms[0](self.attentions[0](query, temp, temp, query_pos, torch.cat([query_pos, temp_pos], dim=0)))
        query = self.norms[1](self.attentions[1](query, key, key, query_pos, key_pos))
        return self.norms[2](self.ffns[0](query))


class PETRTransformerDecoder(nn.Module):
    def __init__(self, cfg: StreamPETRConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(PETRTemporalDecoderLayer(EMBED, cfg.num_heads, cfg.feedforward_channels) for _ in range(cfg.num_layers))
        self.post_norm = nn.LayerNorm(EMBED)

    def forward(self, query, key, query_pos, key_pos, temp_memory, temp_pos) -> torch.Tensor:
        intermediate = []
        for layer in self.layers:
            query = layer(query, key, query_pos, key_pos, temp_memory, temp_pos)
            intermediate.append(self.post_norm(query))
        return torch.stack(intermediate)


class PETRTemporalTransformer(nn.Module):
    def __init__(self, cfg: StreamPETRConfig) -> None:
        super().__init__()
        self.decoder = PETRTransformerDecoder(cfg)

    def forward(self, memory, tgt, query_pos, pos_embed, temp_memory, temp_pos) -> torch.Tensor:
        first = [t.transpose(0, 1) for t in (memory, tgt, query_pos, pos_embed, temp_memory, temp_pos)]
        memory, tgt, query_pos, pos_embed, temp_memory, temp_pos = first
        return self.decoder(tgt, memory, query_pos, pos_embed, temp_memory, temp_pos).transpose(1, 2)
