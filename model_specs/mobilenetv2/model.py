"""mmpretrain's ImageClassifier (MobileNetV2, GlobalAveragePooling, LinearClsHead) in plain PyTorch, as AWML
exports it.

The modules carry mmpretrain's and mmcv's names (``backbone.conv1.conv``, ``backbone.conv1.bn``,
``backbone.layer2.0.conv.0.conv``, ``backbone.conv2.bn``, ``head.fc``: mmcv's ConvModule holds ``conv`` and
``bn``, its ReLU6 has no weights) so that an AWML checkpoint loads strictly with no key renaming. The graph is
mmdeploy's end-to-end classifier (AWML's ``tools/classification2d/deploy.py`` calls mmdeploy's ``torch2onnx``,
whose rewrite of ``BaseClassifier.forward`` ends in a softmax): ``output`` [B, classes] probabilities.
"""

from __future__ import annotations

import torch
from torch import nn

from model_specs.mobilenetv2.config import ClassifierConfig
from model_specs.seeding import init_like_trained


class ConvModule(nn.Module):
    """mmcv's ConvModule as MobileNetV2 builds it: conv without bias (a norm follows), BN, ReLU6 unless ``act``
    is False."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int, norm: tuple[float, float], act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=norm[0], momentum=norm[1])
        self.activate = nn.ReLU6(inplace=True) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return x if self.activate is None else self.activate(x)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int, norm: tuple[float, float]) -> None:
        super().__init__()
        hidden = round(cin * expand)  # mmpretrain's int(round(...))
        layers = [ConvModule(cin, hidden, 1, 1, 1, norm)] if expand != 1 else []
        layers += [ConvModule(hidden, hidden, 3, stride, hidden, norm), ConvModule(hidden, cout, 1, 1, 1, norm, act=False)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """mmpretrain's MobileNetV2 with its default ``out_indices=(7,)``: the 1x1 ``conv2`` alone feeds the head."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.conv1 = ConvModule(3, cfg.stem_channels, 3, 2, 1, cfg.norm)
        cin = cfg.stem_channels
        for i, (expand, cout, blocks, stride) in enumerate(cfg.layers):
            blocks_of = (InvertedResidual(cin if b == 0 else cout, cout, stride if b == 0 else 1, expand, cfg.norm) for b in range(blocks))
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks_of))
            cin = cout
        self.conv2 = ConvModule(cin, cfg.head_in_channels, 1, 1, 1, cfg.norm)
        self.depth = len(cfg.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for i in range(self.depth):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.conv2(x)


class LinearClsHead(nn.Module):
    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.head_in_channels, len(cfg.classes))

    def forward(self, pre_logits: torch.Tensor) -> torch.Tensor:
        return self.fc(pre_logits)


class TrafficLightClassifier(nn.Module):
    """backbone → global average pooling (mmpretrain's neck, no weights) → head → softmax (mmdeploy's end2end)."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = MobileNetV2(cfg)
        self.head = LinearClsHead(cfg)

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.backbone(x), 1), 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pre_logits(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)


def seeded(cfg: ClassifierConfig, seed: int) -> TrafficLightClassifier:
    # the input is normalised (ImageNet mean and std): unit scale, what a Kaiming-initialised stem expects
    return init_like_trained(TrafficLightClassifier(cfg), seed)
