"""The calibration-status classifier's parameters, with the values of AWML's CalibrationStatusClassification.

AWML's ``resnet18_5ch_1xb16-50e_j6gen2.py`` builds mmpretrain's ImageClassifier (ResNet, global average
pooling, LinearClsHead) on 5 channels; its test pipeline (``CalibrationClassificationTransform``) fixes
how those channels are made; its deploy config (``configs/deploy/resnet18_5ch.py``) the opset and
the TensorRT profile. Each switch is a field here with AWML's value as default, read from a training
config by ``mmconfig.to_calibration``.
"""

from __future__ import annotations

from dataclasses import dataclass

# mmpretrain's ResNet.arch_settings for the depths built of BasicBlocks (the ones implemented here)
BASIC_BLOCK_STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
# AWML's deploy script: LABELS = {"0": "miscalibrated", "1": "calibrated"}
CLASSES = ("miscalibrated", "calibrated")


@dataclass(frozen=True)
class CalibrationConfig:
    """The network (mmpretrain names) and the transform that makes its input.

    Input channels: B, G, R, depth, intensity, each divided by 255; depth is 255 x z / ``max_depth`` for
    projected lidar points with 0 < z < ``max_depth`` (camera frame), written into a (2 x
    ``dilation_size`` + 1)^2 patch around each point, the nearer point winning where patches overlap.
    """

    in_channels: int = 5
    depth: int = 18
    stem_channels: int = 64
    base_channels: int = 64
    strides: tuple[int, ...] = (1, 2, 2, 2)
    norm: tuple[float, float] = (1e-5, 0.1)  # (eps, momentum): mmpretrain's BN, which AWML's config keeps
    classes: tuple[str, ...] = CLASSES
    max_depth: float = 128.0
    dilation_size: int = 1
    miscalibration_probability: float = 0.5  # the share of samples whose lidar-to-camera transform is miscalibrated
    opset: int = 16  # configs/deploy/resnet18_5ch.py

    @property
    def stage_blocks(self) -> tuple[int, ...]:
        return BASIC_BLOCK_STAGES[self.depth][: len(self.strides)]

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.base_channels * 2 ** i for i in range(len(self.strides)))

    @property
    def head_in_channels(self) -> int:
        return self.widths[-1]


FULL = CalibrationConfig()

# ResNet-18's topology at an eighth of the widths: the project's own tests run it.
TINY = CalibrationConfig(stem_channels=8, base_channels=8)
