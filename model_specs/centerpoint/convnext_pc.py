"""AWML's ``ConvNeXt_PC`` backbone (CenterPoint-ConvNeXtPC) in plain PyTorch, with its module names.

AWML's class (``projects/ConvNeXt_PC/backbones/convnext_pc.py``, after PillarNeSt) subclasses
mmpretrain's ``ConvNeXt`` and rebuilds its layers: stage 0 runs on the pillar canvas at full resolution
with the canvas's own width (``out_channels[0]`` is replaced by ``in_channels``), every later stage
starts with a LayerNorm (eps 1e-5, AWML's own ``LayerNorm2d``) and a 2x2 stride-2 conv, each block is
mmpretrain's ``ConvNeXtBlock`` (7x7 depthwise conv, LayerNorm eps from ``norm_cfg``, Linear x4, exact
GELU, Linear, layer scale ``gamma``, residual), and every stage in ``out_indices`` gets a LayerNorm
``norm<i>``. State-dict keys therefore read ``downsample_layers.<i>.{0,1}``, ``stages.<i>.<j>.
{depthwise_conv,norm,pointwise_conv1,pointwise_conv2,gamma}`` and ``norm<i>``, so AWML's checkpoint
loads strictly. Written here rather than imported from mmpretrain because the project's models run
without the OpenMMLab stack (mmpretrain pulls in mmcv and mmengine).

Two inherited quirks are kept because they change the state_dict: mmpretrain's ``ConvNeXt.__init__``
runs first with its defaults (arch ``tiny``, ``out_indices=-1``), which registers ``norm3`` with 768
channels; AWML's constructor replaces it only when 3 is one of its own ``out_indices``, so otherwise
the checkpoint carries that unused 768-wide ``norm3`` (:attr:`ConvNeXtPCConfig.stale_norm3`). And a
negative out index counts from 4 (mmpretrain's rule for its four stages), not from the stage count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

# mmpretrain's ConvNeXt 'tiny' arch, whose last width the inherited constructor gives ``norm3``.
INHERITED_NORM3_CHANNELS = 768
INHERITED_OUT_INDEX = 3
MMPRETRAIN_STAGES = 4  # what a negative out index counts from
DOWNSAMPLE_LN_EPS = 1e-5  # AWML's LayerNorm2d keeps nn.LayerNorm's default
DEPTHWISE_KERNEL = 7  # mmpretrain ConvNeXtBlock's dw_conv_cfg
MLP_RATIO = 4


@dataclass(frozen=True)
class ConvNeXtPCConfig:
    """What ``ConvNeXt_PC`` reads from a config (inference only: drop path and checkpointing are training)."""

    channels: tuple[int, ...]  # per stage, stage 0 already replaced by in_channels
    depths: tuple[int, ...]
    out_indices: tuple[int, ...]  # non-negative
    norm_eps: float = 1e-6  # norm_cfg LN2d
    layer_scale: bool = True  # layer_scale_init_value > 0: each block has a gamma

    @property
    def out_channels(self) -> tuple[int, ...]:
        """What the neck receives, one width per output stage."""
        return tuple(self.channels[i] for i in self.out_indices)

    @property
    def stale_norm3(self) -> bool:
        return INHERITED_OUT_INDEX not in self.out_indices

    @property
    def stride(self) -> int:
        """Downsampling of the first output stage against the canvas (stage i is at 2**i)."""
        return 2 ** min(self.out_indices)


def _layer_norm_channels_first(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """LayerNorm over the channels of [N, C, H, W], as both LayerNorm2d variants compute it (permute, normalise, permute back)."""
    return F.layer_norm(x.permute(0, 2, 3, 1), norm.normalized_shape, norm.weight, norm.bias, norm.eps).permute(0, 3, 1, 2).contiguous()


class LayerNorm2d(nn.LayerNorm):
    """A LayerNorm over the channel dimension of a [N, C, H, W] map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _layer_norm_channels_first(x, self)


class ConvNeXtBlock(nn.Module):
    """mmpretrain's ConvNeXtBlock with ``linear_pw_conv=True``, no GRN, inference (drop path is the identity)."""

    def __init__(self, channels: int, eps: float, layer_scale: bool) -> None:
        super().__init__()
        self.depthwise_conv = nn.Conv2d(channels, channels, DEPTHWISE_KERNEL, padding=DEPTHWISE_KERNEL // 2, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=eps)
        self.pointwise_conv1 = nn.Linear(channels, MLP_RATIO * channels)
        self.act = nn.GELU()
        self.pointwise_conv2 = nn.Linear(MLP_RATIO * channels, channels)
        self.gamma = nn.Parameter(torch.ones(channels)) if layer_scale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise_conv(x).permute(0, 2, 3, 1)  # channels last for the norm and the Linears
        y = self.pointwise_conv2(self.act(self.pointwise_conv1(self.norm(y)))).permute(0, 3, 1, 2)
        if self.gamma is not None:
            y = y.mul(self.gamma.view(1, -1, 1, 1))
        return x + y


class ConvNeXtPC(nn.Module):
    """Canvas [1, C, H, W] → one map per ``out_indices`` stage (stage i at 1 / 2**i resolution), each normalised."""

    def __init__(self, cfg: ConvNeXtPCConfig) -> None:
        super().__init__()
        self.out_indices = cfg.out_indices
        # index 0 holds no layer (stage 0 is not downsampled), so the keys count from 1 as AWML's do
        downsample: list[nn.Module] = [nn.Identity()]
        stages = []
        for i, (channels, depth) in enumerate(zip(cfg.channels, cfg.depths, strict=True)):
            if i:
                downsample.append(nn.Sequential(LayerNorm2d(cfg.channels[i - 1], eps=DOWNSAMPLE_LN_EPS),
                                                nn.Conv2d(cfg.channels[i - 1], channels, 2, stride=2)))
            stages.append(nn.Sequential(*(ConvNeXtBlock(channels, cfg.norm_eps, cfg.layer_scale) for _ in range(depth))))
        self.downsample_layers = nn.ModuleList(downsample)
        self.stages = nn.ModuleList(stages)
        if cfg.stale_norm3:  # never run: see the module's docstring
            self.add_module(f"norm{INHERITED_OUT_INDEX}", LayerNorm2d(INHERITED_NORM3_CHANNELS, eps=cfg.norm_eps))
        for i in cfg.out_indices:
            self.add_module(f"norm{i}", LayerNorm2d(cfg.channels[i], eps=cfg.norm_eps))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = []
        for i, (down, stage) in enumerate(zip(self.downsample_layers, self.stages, strict=True)):
            x = stage(down(x))
            if i in self.out_indices:
                outs.append(getattr(self, f"norm{i}")(x))
        return tuple(outs)
