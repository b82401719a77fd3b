# calibration-tiny as a training config: the ResNet-18 5-channel config above at an eighth of the widths.
_base_ = ["calibration_resnet18_5ch.py"]
model = dict(
    backbone=dict(stem_channels=8, base_channels=8),
    head=dict(in_channels=64),
)
