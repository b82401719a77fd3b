# CenterPoint-ConvNeXtPC (standard) as a training config: the structure and model values of AWML's
# projects/CenterPoint/configs/t4dataset/CenterPoint-ConvNeXtPC/pillar_020_convnext_standard_secfpn_4xb8_121m_base.py
# (tier4/AWML 7a6ec07), written for pytest-awml: 0.2 m pillars over +-121.6 m, BackwardPillarFeatureNet, the
# SECOND backbone replaced (_delete_) by ConvNeXt_PC with five stages (outputs of stages 2-4 at strides 4/8/16),
# SECONDFPN 1/2/4 and heads at stride 4.
_base_ = ["second_secfpn_base.py"]
custom_imports = dict(imports=["projects.CenterPoint.models"], allow_failed_imports=False)
custom_imports["imports"] += ["projects.ConvNeXt_PC"]

point_cloud_range = [-121.60, -121.60, -3.0, 121.60, 121.60, 5.0]
voxel_size = [0.20, 0.20, 8.0]
grid_size = [1216, 1216, 1]  # 243.2 m / 0.2 m
sweeps_num = 1
out_size_factor = 4
point_load_dim = 5  # x, y, z, intensity, ring index in the files
lidar_sweep_dims = [0, 1, 2, 4]
class_names = ["car", "truck", "bus", "bicycle", "pedestrian"]
backbone_widths = [32, 192, 192, 192, 192]
backbone_depths = [3, 3, 2, 1, 1]

test_pipeline = [
    dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=point_load_dim, use_dim=point_load_dim),
    dict(
        type="LoadPointsFromMultiSweeps",
        sweeps_num=sweeps_num,
        load_dim=point_load_dim,
        use_dim=lidar_sweep_dims,
        pad_empty_sweeps=True,
        remove_close=True,
        test_mode=True,
    ),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points"]),
]

model = dict(
    data_preprocessor=dict(
        type="Det3DDataPreprocessor",
        voxel=True,
        voxel_layer=dict(
            max_num_points=32,
            voxel_size=voxel_size,
            point_cloud_range=point_cloud_range,
            max_voxels=(48000, 60000),
            deterministic=True,
        ),
    ),
    pts_voxel_encoder=dict(
        type="BackwardPillarFeatureNet",
        in_channels=4,
        feat_channels=[32, 32],
        with_distance=False,
        with_cluster_center=True,
        with_voxel_center=True,
        point_cloud_range=point_cloud_range,
        voxel_size=voxel_size,
        norm_cfg=dict(type="BN1d", eps=1e-3, momentum=0.01),
        legacy=False,
    ),
    pts_middle_encoder=dict(type="PointPillarsScatter", in_channels=32, output_shape=(grid_size[0], grid_size[1])),
    pts_backbone=dict(
        _delete_=True,
        type="ConvNeXt_PC",
        in_channels=32,
        out_channels=backbone_widths,
        depths=backbone_depths,
        out_indices=[2, 3, 4],
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        gap_before_final_norm=False,
        with_cp=True,
    ),
    pts_neck=dict(
        type="SECONDFPN",
        in_channels=backbone_widths[2:],
        out_channels=[128, 128, 128],
        upsample_strides=[1, 2, 4],
        norm_cfg=dict(type="BN", eps=1e-3, momentum=0.01),
        upsample_cfg=dict(type="deconv", bias=False),
        use_conv_for_no_stride=True,
    ),
    pts_bbox_head=dict(
        type="CenterHead",
        in_channels=sum([128, 128, 128]),
        tasks=[dict(num_class=len(class_names), class_names=class_names)],
        bbox_coder=dict(
            voxel_size=voxel_size,
            pc_range=point_cloud_range,
            post_center_range=[-200.0, -200.0, -10.0, 200.0, 200.0, 10.0],  # no filter by range
            out_size_factor=out_size_factor,
        ),
        loss_cls=dict(type="mmdet.GaussianFocalLoss", reduction="none", loss_weight=1.0),
        norm_bbox=True,
    ),
    train_cfg=dict(pts=dict(grid_size=grid_size, voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                            out_size_factor=out_size_factor)),
    test_cfg=dict(pts=dict(grid_size=grid_size, out_size_factor=out_size_factor, pc_range=point_cloud_range,
                           voxel_size=voxel_size, post_center_limit_range=[-200.0, -200.0, -10.0, 200.0, 200.0, 10.0])),
)
