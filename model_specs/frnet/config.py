"""FRNet's parameters, with the values of AWML's ``projects/FRNet`` for the Hesai OT128 (t4dataset).

``configs/model/frnet.py`` builds the network (FrustumFeatureEncoder, FRNetBackbone of ResNet-34 BasicBlocks with
HSwish, FRHead, four FrustumHeads as auxiliary heads); ``configs/t4dataset/frnet_1xb8_t4dataset-ot128-seg.py`` sets
the sensor (128 rings, 4096 range columns, 1024 frustum columns, field of view +15..-25 degrees) and 27 classes;
``configs/deploy/t4dataset/frnet_tensorrt_dynamic.py`` the graph's four dynamic inputs, opset 16 and profiles.
Each switch is a field here with AWML's value as default, read from a training config by ``mmconfig.to_frnet``.
"""

from __future__ import annotations

from dataclasses import dataclass

# j6gen2 t4dataset class_mapping (values 0..25; 26 is ignore_index, the 27th class "unknown")
CLASSES = ("drivable_surface", "other_flat_surface", "sidewalk", "manmade", "vegetation", "car", "bus", "emergency_vehicle",
           "train", "truck", "tractor_unit", "semi_trailer", "construction_vehicle", "forklift", "kart", "motorcycle", "bicycle",
           "pedestrian", "personal_mobility", "animal", "pushable_pullable", "traffic_cone", "stroller", "debris", "other_stuff",
           "noise", "unknown")
RESNET_STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}  # FRNetBackbone.arch_settings


@dataclass(frozen=True)
class FRNetConfig:
    classes: tuple[str, ...] = CLASSES
    ignore_index: int = 26
    # the sensor: RangeInterpolation's image (lidar_h x range_w) and the frustum image (lidar_h x frustum_w)
    lidar_h: int = 128
    range_w: int = 4096
    frustum_w: int = 1024
    fov_up: float = 15.0
    fov_down: float = -25.0
    point_features: int = 4  # x, y, z, intensity (LoadPointsWithIdentifierFromFile use_dim=4)
    # FrustumFeatureEncoder
    feat_channels: tuple[int, ...] = (64, 128, 256, 256)
    with_distance: bool = True
    with_cluster_center: bool = True
    with_pre_norm: bool = True
    feat_compression: int = 16
    # FRNetBackbone
    depth: int = 34
    stem_channels: int = 128
    out_channels: tuple[int, ...] = (128, 128, 128, 128)
    strides: tuple[int, ...] = (1, 2, 2, 2)
    fuse_channels: tuple[int, ...] = (256, 128)
    # FRHead
    middle_channels: tuple[int, ...] = (128, 256, 128, 64)
    channels: int = 64
    auxiliary_heads: tuple[int, ...] = (0, 2, 3, 4)  # each FrustumHead's ``indices``: which backbone output it reads
    norm: tuple[float, float] = (1e-3, 0.01)  # (eps, momentum) of every SyncBN in AWML's config
    opset: int = 16  # frnet_tensorrt_dynamic.py
    # the deploy config's TensorRT profile: points (min, opt, max) and frustum cells (min, opt, max)
    points: tuple[int, int, int] = (5000, 60000, 160000)
    cells: tuple[int, int, int] = (3000, 30000, 60000)

    @property
    def encoder_in(self) -> int:
        return self.point_features + int(self.with_distance) + 3 * int(self.with_cluster_center)

    @property
    def point_in_channels(self) -> int:
        return self.stem_channels + self.feat_channels[-1]


FULL = FRNetConfig()
# FRNet's topology at an eighth of the widths, ResNet-18 blocks, a 32-ring sensor: the project's tests run it.
TINY = FRNetConfig(lidar_h=32, range_w=512, frustum_w=128, feat_channels=(8, 16, 32, 32), feat_compression=8, depth=18, stem_channels=16,
                   out_channels=(16, 16, 16, 16), fuse_channels=(32, 16), middle_channels=(16, 32, 16, 8), channels=8,
                   points=(500, 6000, 16000), cells=(300, 2500, 4000))
