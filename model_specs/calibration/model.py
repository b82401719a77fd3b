"""mmpretrain's ImageClassifier (ResNet, GlobalAveragePooling, LinearClsHead) in plain PyTorch.

Written out because torchvision does not import beside this project's CPU torch wheel. The modules carry
mmpretrain's names (``backbone.conv1``, ``backbone.bn1``, ``backbone.layer1.0.conv1``,
``backbone.layer1.0.downsample.0``, ``head.fc``) so that an AWML checkpoint loads strictly with no key
renaming. The exported graph is AWML's: ``model(input)`` in mmpretrain's tensor mode, raw logits
[B, 2] (class 0 miscalibrated, 1 calibrated).
"""

from __future__ import annotations

import torch
from torch import nn

from model_specs.calibration.config import CalibrationConfig
from model_specs.seeding import init_like_trained


def _bn(channels: int, norm: tuple[float, float]) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=norm[0], momentum=norm[1])


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: tuple[float, float]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = _bn(cout, norm)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = _bn(cout, norm)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:  # mmpretrain's ResLayer, style "pytorch", avg_down False
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _bn(cout, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet(nn.Module):
    """mmpretrain's ResNet (no deep stem): 7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max pool, then the
    stages; only the last stage is returned (``out_indices=(3,)``)."""

    def __init__(self, cfg: CalibrationConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cfg.in_channels, cfg.stem_channels, 7, 2, 3, bias=False)
        self.bn1 = _bn(cfg.stem_channels, cfg.norm)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = cfg.stem_channels
        for i, (blocks, width, stride) in enumerate(zip(cfg.stage_blocks, cfg.widths, cfg.strides, strict=True)):
            self.add_module(f"layer{i + 1}", nn.Sequential(*(BasicBlock(cin if b == 0 else width, width, stride if b == 0 else 1, cfg.norm)
                                                             for b in range(blocks))))
            cin = width
        self.stages = len(cfg.widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


class LinearClsHead(nn.Module):
    def __init__(self, cfg: CalibrationConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.head_in_channels, len(cfg.classes))

    def forward(self, pre_logits: torch.Tensor) -> torch.Tensor:
        return self.fc(pre_logits)


class CalibrationClassifier(nn.Module):
    """backbone → global average pooling (mmpretrain's neck, no weights) → head."""

    def __init__(self, cfg: CalibrationConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = ResNet(cfg)
        self.head = LinearClsHead(cfg)

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.backbone(x), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pre_logits(x))


def seeded(cfg: CalibrationConfig, seed: int) -> CalibrationClassifier:
    # Every channel of AWML's input is in [0, 1] (see config.CalibrationConfig), the scale a
    # Kaiming-initialised stem expects: no gain is needed.
    return init_like_trained(CalibrationClassifier(cfg), seed)
