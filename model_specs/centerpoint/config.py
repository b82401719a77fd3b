"""CenterPoint's parameters, with the defaults of AWML's j6gen2 base config."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CenterPointConfig:
    """Everything that shapes the model and its pre/post-processing.

    Defaults follow AWML's CenterPoint j6gen2 base config: range ±122.4 m × [-3, 5] m, pillars of
    0.24 × 0.24 × 8 m (grid 1020 × 1020), 32 points per pillar, 96 000 pillars, 5 point features.
    """

    point_cloud_range: tuple[float, float, float, float, float, float] = (-122.4, -122.4, -3.0, 122.4, 122.4, 5.0)
    voxel_size: tuple[float, float, float] = (0.24, 0.24, 8.0)
    max_points_per_voxel: int = 32
    max_voxels: int = 96_000
    min_voxels: int = 1_000
    opt_voxels: int = 20_000
    point_features: int = 5  # x, y, z, intensity, ring
    pfn_channels: tuple[int, ...] = (32, 32)
    backbone_channels: tuple[int, int, int] = (64, 128, 256)
    backbone_layers: tuple[int, int, int] = (3, 5, 5)
    backbone_strides: tuple[int, int, int] = (1, 2, 2)
    neck_channels: tuple[int, int, int] = (128, 128, 128)
    neck_upsample_strides: tuple[float, float, float] = (0.5, 1.0, 2.0)
    head_shared_channels: int = 64
    head_conv_channels: int = 64
    head_final_kernel: int = 3
    class_names: tuple[str, ...] = ("car", "truck", "bus", "bicycle", "pedestrian")
    heatmap_init_bias: float = -2.19
    out_size_factor: int = 2
    # decoding (used by the pipeline)
    score_threshold: float = 0.1
    max_detections_pre_nms: int = 500
    nms_min_radius: float = 1.0
    post_max_size: int = 100
    post_center_range: tuple[float, float, float, float, float, float] = (-200.0, -200.0, -10.0, 200.0, 200.0, 10.0)
    # seeded weights only: heatmap cells above the threshold on the calibration scene
    calibration_detections: int = 200

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """(nx, ny, nz) voxels, as mmdet3d computes it."""
        r, v = self.point_cloud_range, self.voxel_size
        return tuple(int(round((r[i + 3] - r[i]) / v[i])) for i in range(3))

    @property
    def decorated_features(self) -> int:
        """Raw features + 3 cluster-centre offsets + 3 voxel-centre offsets."""
        return self.point_features + 6

    @property
    def head_size(self) -> tuple[int, int]:
        nx, ny, _ = self.grid_size
        return ny // self.out_size_factor, nx // self.out_size_factor

    @property
    def heads(self) -> tuple[tuple[str, int], ...]:
        """The CenterHead outputs in the order AWML exports them."""
        return (("heatmap", len(self.class_names)), ("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2))


FULL = CenterPointConfig()

# Same architecture on a 128 × 128 grid with narrower layers: the project's own tests run it.
TINY = CenterPointConfig(
    point_cloud_range=(-25.6, -25.6, -3.0, 25.6, 25.6, 5.0),
    voxel_size=(0.4, 0.4, 8.0),
    max_points_per_voxel=32,
    max_voxels=12_000,
    min_voxels=100,
    opt_voxels=3_000,
    backbone_channels=(16, 32, 64),
    neck_channels=(32, 32, 32),
    head_shared_channels=32,
    head_conv_channels=32,
    calibration_detections=60,
)
