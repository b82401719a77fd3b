"""The traffic-light classifiers' parameters, with the values of AWML's ``projects/MobileNetv2``.

AWML's ``mobilenet-v2_tlr_{car,ped}_t4dataset.py`` build mmpretrain's ImageClassifier (MobileNetV2,
GlobalAveragePooling, LinearClsHead) over the classes of their ``_base_`` dataset config; the crop of a
traffic light's box (``CropROI``), ``Resize(scale=224, keep_ratio=True, backend="pillow")``,
``Pad(pad_to_square=True)`` and the ``data_preprocessor`` (BGR to RGB, ImageNet mean and std) make the
input; the deploy configs (``configs/deploy/.../*_batch_{1,4,6}.py``) fix opset 11, 224 x 224 and one
static batch per engine. Each switch is a field here with AWML's value as default, read from a training
config by ``mmconfig.to_classifier``.
"""

from __future__ import annotations

from dataclasses import dataclass

# autoware_ml/configs/classification2d/dataset/t4dataset/tlr_classifier_car.py and ..._pedestrian.py
CAR_CLASSES = ("green", "left,red", "left,red,straight", "red", "red,right", "red,straight", "unknown", "yellow",
               "red,up_left", "red,right,straight", "red,up_right")
PEDESTRIAN_CLASSES = ("crosswalk_red", "crosswalk_green", "crosswalk_unknown")
# mmpretrain's MobileNetV2.arch_settings: (expand ratio, channels, blocks, stride) per layer
ARCH = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def make_divisible(value: float, divisor: int = 8, min_ratio: float = 0.9) -> int:
    """mmpretrain's ``make_divisible`` (channels rounded to a multiple of ``divisor``, never below 90 % of ``value``)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < min_ratio * value else rounded


@dataclass(frozen=True)
class ClassifierConfig:
    """The network (mmpretrain names) and the transform that makes its input: [B, 3, size, size] float32, the crop
    resized so that its long side is ``image_size`` (bilinear, Pillow), padded with 0 at the bottom and right to a
    square, channels reversed (BGR to RGB) when ``to_rgb``, then ``(x - mean) / std`` per channel."""

    classes: tuple[str, ...] = CAR_CLASSES
    widen_factor: float = 1.0
    norm: tuple[float, float] = (1e-5, 0.1)  # (eps, momentum): mmcv's BN
    image_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    to_rgb: bool = True
    opset: int = 11  # configs/deploy/*/..._batch_N.py: opset_version=11

    @property
    def stem_channels(self) -> int:
        return make_divisible(32 * self.widen_factor)

    @property
    def layers(self) -> tuple[tuple[int, int, int, int], ...]:
        """(expand ratio, output channels, blocks, first stride) per layer, at ``widen_factor``."""
        return tuple((t, make_divisible(c * self.widen_factor), n, s) for t, c, n, s in ARCH)

    @property
    def head_in_channels(self) -> int:
        return int(1280 * self.widen_factor) if self.widen_factor > 1.0 else 1280


CAR = ClassifierConfig()
PEDESTRIAN = ClassifierConfig(classes=PEDESTRIAN_CLASSES)
# MobileNetV2's topology at a quarter of the widths on 64 x 64 crops: the project's own tests run it.
CAR_TINY = ClassifierConfig(widen_factor=0.25, image_size=64)
PEDESTRIAN_TINY = ClassifierConfig(classes=PEDESTRIAN_CLASSES, widen_factor=0.25, image_size=64)
