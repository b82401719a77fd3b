# A training config with the structure and model values of AWML's CenterPoint j6gen2 base
# (projects/CenterPoint/configs/t4dataset/Centerpoint/second_secfpn_8xb16_121m_j6gen2_base_amp.py), written for
# pytest-awml: a three-file _base_ chain, += on custom_imports, {{_base_.x}} substitutions, an if block, and the
# model settings that decide what the network computes. Training-only settings are kept to a few.
_base_ = [
    "default_runtime.py",
    "t4dataset_j6gen2.py",
    "second_secfpn_base.py",
]
custom_imports = dict(imports=["projects.CenterPoint.models"], allow_failed_imports=False)
custom_imports["imports"] += _base_.custom_imports["imports"]
custom_imports["imports"] += ["autoware_ml.hooks"]

point_cloud_range = [-122.40, -122.40, -3.0, 122.40, 122.40, 5.0]
voxel_size = [0.24, 0.24, 8.0]
grid_size = [1020, 1020, 1]  # 244.8 m / 0.24 m
sweeps_num = 1
out_size_factor = 2
point_load_dim = 5  # x, y, z, intensity, ring index in the files
lidar_sweep_dims = [0, 1, 2, 3, 4]  # column 4 becomes the time lag in LoadPointsFromMultiSweeps

train_gpu_size = 8
train_batch_size = 16
max_epochs = 30
experiment_group_name = "centerpoint/j6gen2_base/" + _base_.dataset_type
work_dir = "work_dirs/" + experiment_group_name + "/second_secfpn_j6gen2"

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
train_pipeline = test_pipeline[:2] + [
    dict(type="ObjectNameFilter", classes={{_base_.class_names}}),
    dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"]),
]
test_evaluator = dict(type="T4Metric", class_names={{_base_.class_names}}, name_mapping={{_base_.name_mapping}})

model = dict(
    data_preprocessor=dict(
        type="Det3DDataPreprocessor",
        voxel=True,
        voxel_layer=dict(
            max_num_points=32,
            voxel_size=voxel_size,
            point_cloud_range=point_cloud_range,
            max_voxels=(96000, 96000),
            deterministic=True,
        ),
    ),
    pts_voxel_encoder=dict(
        type="PillarFeatureNet",
        in_channels=5,
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
        type="SECOND",
        in_channels=32,
        out_channels=[64, 128, 256],
        layer_nums=[3, 5, 5],
        layer_strides=[1, 2, 2],
        norm_cfg=dict(type="BN", eps=1e-3, momentum=0.01),
        conv_cfg=dict(type="Conv2d", bias=False),
    ),
    pts_neck=dict(
        type="SECONDFPN",
        in_channels=[64, 128, 256],
        out_channels=[128, 128, 128],
        upsample_strides=[0.5, 1, 2],
        norm_cfg=dict(type="BN", eps=0.001, momentum=0.01),
        upsample_cfg=dict(type="deconv", bias=False),
        use_conv_for_no_stride=True,
    ),
    pts_bbox_head=dict(
        type="CenterHead",
        in_channels=sum([128, 128, 128]),
        tasks=[dict(num_class=5, class_names=["car", "truck", "bus", "bicycle", "pedestrian"])],
        bbox_coder=dict(
            voxel_size=voxel_size,
            pc_range=point_cloud_range,
            post_center_range=[-200.0, -200.0, -10.0, 200.0, 200.0, 10.0],  # no filter by range
            out_size_factor=out_size_factor,
        ),
        separate_head=dict(type="CustomSeparateHead", init_bias=-4.595, final_kernel=1),  # sigmoid(-4.595) = 0.01
        loss_cls=dict(type="mmdet.AmpGaussianFocalLoss", reduction="none", loss_weight=1.0),
        loss_bbox=dict(type="mmdet.L1Loss", reduction="mean", loss_weight=0.25),
        norm_bbox=True,
    ),
    train_cfg=dict(pts=dict(grid_size=grid_size, voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                            out_size_factor=out_size_factor)),
    test_cfg=dict(pts=dict(grid_size=grid_size, out_size_factor=out_size_factor, pc_range=point_cloud_range,
                           voxel_size=voxel_size, post_center_limit_range=[-200.0, -200.0, -10.0, 200.0, 200.0, 10.0])),
)

lr = 3e-4
optim_wrapper = dict(
    type="AmpOptimWrapper",
    dtype="float16",
    optimizer=dict(type="AdamW", lr=lr, weight_decay=0.01),
    clip_grad=dict(max_norm=5.0, norm_type=2),
    loss_scale={"init_scale": 2.0**12, "growth_interval": 600},
)
if train_gpu_size > 1:
    sync_bn = "torch"
