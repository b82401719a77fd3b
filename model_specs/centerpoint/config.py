"""CenterPoint's parameters, with the values of AWML's CenterPoint j6gen2 base config.

Every architectural switch that AWML's ``second_secfpn_8xb16_121m_j6gen2_base_amp`` config sets (and
its ``_base_`` chain: ``second_secfpn_base.py``) is a field here with AWML's value as default, and
``mmconfig.to_centerpoint`` reads each one from a training config. The recorded mmdet3d outputs under
``tests/data/mmdet3d/`` prove the model built from these fields computes what mmdet3d computes.
"""

from __future__ import annotations

from dataclasses import dataclass

from model_specs.centerpoint.convnext_pc import ConvNeXtPCConfig

# x, y, z, intensity, and the time lag of the sweep a point came from (0 for the current sweep):
# mmdet3d's LoadPointsFromMultiSweeps writes the lag into column 4 (use_dim [0, 1, 2, 3, 4]) and
# Autoware's densification does the same. Not the ring index a T4/nuScenes .bin holds in that column.
POINT_FEATURES = ("x", "y", "z", "intensity", "time_lag")
XYZ = POINT_FEATURES[:3]  # PillarFeatureNet's offsets read the first three columns as x, y, z

# mmcv's BatchNorm defaults (BN2d) that the CenterHead keeps; PFN, SECOND and SECONDFPN set (1e-3, 0.01).
_DEFAULT_BN = (1e-5, 0.1)
_AWML_BN = (1e-3, 0.01)


@dataclass(frozen=True)
class CenterPointConfig:
    """Everything that shapes the model, its pre-processing and its decoding.

    Norms are ``(eps, momentum)``; momentum only matters for training but is read and kept so that a
    config round-trips. ``neck_upsample_strides`` below 1 are strided convs (mmdet3d's rule); a stride
    of exactly 1 is a 1x1 ``Conv2d`` when ``use_conv_for_no_stride`` (AWML), else a ``ConvTranspose2d``.
    """

    point_cloud_range: tuple[float, float, float, float, float, float] = (-122.4, -122.4, -3.0, 122.4, 122.4, 5.0)
    voxel_size: tuple[float, float, float] = (0.24, 0.24, 8.0)
    max_points_per_voxel: int = 32
    max_voxels: int = 96_000
    min_voxels: int = 1_000
    opt_voxels: int = 20_000
    # The encoder's input columns in order: x, y, z, then any of intensity and time_lag (mmdet3d's use_dim)
    point_feature_names: tuple[str, ...] = POINT_FEATURES
    past_sweeps: int = 1  # AWML's sweeps_num; Autoware's densification_num_past_frames
    remove_close: bool = True  # past sweeps lose points within 1 m (|x|, |y| < 1) of their own sensor, as mmdet3d's
    pad_empty_sweeps: bool = True  # a scan without past sweeps stands in for them (lag 0), as mmdet3d's
    file_point_features: int = 5  # LoadPointsFromFile's load_dim: the columns of a .bin scan (x, y, z, intensity, ring)
    sweep_interval_s: float = 0.1  # a 10 Hz lidar: the time lag of the n-th past sweep is n x this
    pfn_channels: tuple[int, ...] = (32, 32)
    pfn_norm: tuple[float, float] = _AWML_BN
    # PillarFeatureNet offsets a point from its pillar's centre in x, y and z; AWML's BackwardPillarFeatureNet
    # (CenterPoint-ShortRange, -ConvNeXtPC) in x and y only, so its PFN takes one column fewer.
    voxel_center_z: bool = True
    # one entry per stage: a config may build more or fewer than three (the readers check the lists agree)
    backbone_channels: tuple[int, ...] = (64, 128, 256)
    backbone_layers: tuple[int, ...] = (3, 5, 5)
    backbone_strides: tuple[int, ...] = (1, 2, 2)
    backbone_norm: tuple[float, float] = _AWML_BN
    backbone_conv_bias: bool = False  # conv_cfg's bias (mmdet3d's default conv_cfg has none: BN follows)
    # AWML's ConvNeXt_PC instead of SECOND (then backbone_channels are its output stages' widths, which the neck reads)
    convnext: ConvNeXtPCConfig | None = None
    neck_channels: tuple[int, ...] = (128, 128, 128)
    neck_upsample_strides: tuple[float, ...] = (0.5, 1.0, 2.0)
    neck_norm: tuple[float, float] = _AWML_BN
    use_conv_for_no_stride: bool = True
    neck_deconv_bias: bool = False  # upsample_cfg's bias (the transposed convs)
    neck_conv_bias: bool = False  # conv_cfg's bias (the strided and 1x1 convs)
    head_shared_channels: int = 64  # share_conv_channel
    head_conv_channels: int = 64  # separate_head.head_conv (mmdet3d's default; AWML does not set it)
    head_num_conv: int = 2  # common_heads[*][1]: (num_conv - 1) ConvModules, then the final conv
    head_final_kernel: int = 1
    head_norm: tuple[float, float] = _DEFAULT_BN
    head_shared_conv_bias: bool = False  # CenterHead's bias ('auto': none before a norm)
    head_conv_bias: bool = False  # separate_head's bias for its ConvModules ('auto': none); the final convs have one
    class_names: tuple[str, ...] = ("car", "truck", "bus", "bicycle", "pedestrian")
    heatmap_init_bias: float = -4.595  # sigmoid(-4.595) = 0.01, AWML's CustomSeparateHead
    out_size_factor: int = 2
    opset: int = 13  # AWML's deploy.py --onnx_opset_version default
    # decoding (CenterPointBBoxCoder + circle NMS, mmdet3d's semantics)
    score_threshold: float = 0.1  # a box is kept when its score is strictly above (mmdet3d's ``>``)
    max_detections_pre_nms: int = 500
    nms_min_radius: float = 1.0
    post_max_size: int = 100
    post_center_range: tuple[float, float, float, float, float, float] = (-200.0, -200.0, -10.0, 200.0, 200.0, 10.0)
    y_axis_reference: bool = False  # AWML's bbox coder option: boxes as (w, l) and yaw clockwise from y (-yaw - pi/2)
    # seeded weights only: heatmap cells above the threshold on the calibration scene
    calibration_detections: int = 200

    @property
    def point_features(self) -> int:
        """Width of a point as the voxel encoder sees it (PillarFeatureNet's ``in_channels``)."""
        return len(self.point_feature_names)

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """(nx, ny, nz) voxels, as mmdet3d computes it."""
        r, v = self.point_cloud_range, self.voxel_size
        nx, ny, nz = (int(round((r[i + 3] - r[i]) / v[i])) for i in range(3))  # noqa: RUF046 (NumPy 1.x rounds its floats to floats)
        return nx, ny, nz

    @property
    def decorated_features(self) -> int:
        """Raw features + 3 cluster-centre offsets + 3 voxel-centre offsets (non-legacy PillarFeatureNet; 2, x and y,
        for BackwardPillarFeatureNet)."""
        return self.point_features + 3 + (3 if self.voxel_center_z else 2)

    @property
    def head_size(self) -> tuple[int, int]:
        nx, ny, _ = self.grid_size
        return ny // self.out_size_factor, nx // self.out_size_factor

    @property
    def heads(self) -> tuple[tuple[str, int], ...]:
        """The CenterHead outputs in the order AWML exports them (SeparateHeadONNX's order)."""
        return (("heatmap", len(self.class_names)), ("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2))


FULL = CenterPointConfig()

# The j6gen2 topology (two PFN layers, SECOND 3/5/5 at strides 1/2/2, SECONDFPN 0.5/1/2 with the 1x1
# conv, kernel-1 heads) on a 128 x 128 grid with narrower layers: the project's own tests run it.
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
